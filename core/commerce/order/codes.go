package order

// Stable error codes of orders, payments, fulfilment and downloads. They live in the aggregate
// package so that the HTTP adapter and the activity error classifier (which may import aggregates
// but never core services) can branch on them. The comment after each code is the errs.Kind it is
// returned with. Coupon codes are in coupon_codes.go.
const (
	CodeOrderNotFound        = "ORDER_NOT_FOUND"        // errs.NotFound: unknown order, or a wrong access token
	CodeInvalidOrder         = "INVALID_ORDER"          // errs.Invalid: lines missing, too many, repeated, or a bad products spec
	CodeInvalidQuantity      = "INVALID_QUANTITY"       // errs.Invalid: a quantity outside 1..100
	CodeInvalidEmail         = "INVALID_EMAIL"          // errs.Invalid: missing or malformed customer e-mail
	CodeInvalidURL           = "INVALID_URL"            // errs.Invalid: a return URL that is not absolute http(s)
	CodeCurrencyMismatch     = "CURRENCY_MISMATCH"      // errs.Invalid: a product has no price in the order's currency
	CodeAmountTooLarge       = "AMOUNT_TOO_LARGE"       // errs.Invalid: the order's amounts overflow
	CodeProductNotAvailable  = "PRODUCT_NOT_AVAILABLE"  // errs.Invalid: unknown or inactive product at checkout
	CodeOrderNotPayable      = "ORDER_NOT_PAYABLE"      // errs.Conflict: the order is not in a state that can be paid or fulfilled
	CodeOrderNotRefundable   = "ORDER_NOT_REFUNDABLE"   // errs.Conflict: only paid or fulfilled orders are refunded
	CodeOrderInReview        = "ORDER_IN_REVIEW"        // errs.Conflict: the order is held for review (not retried by workflows)
	CodeOrderRevoked         = "ORDER_REVOKED"          // errs.Conflict: the order was refunded or disputed
	CodeInvalidTransition    = "INVALID_TRANSITION"     // errs.Conflict: a status change the state machine forbids
	CodePaymentsUnavailable  = "PAYMENTS_UNAVAILABLE"   // errs.Unavailable: no payment provider, or it failed
	CodeDownloadForbidden    = "DOWNLOAD_FORBIDDEN"     // errs.Forbidden: no active, unlocked right to the product
	CodeDownloadNotAvailable = "DOWNLOAD_NOT_AVAILABLE" // errs.NotFound: no published version with a file
)
