package order

// Stable error codes of coupons. They live in the aggregate package so that the HTTP adapter and
// the tests can refer to them. The comment after each code is the errs.Kind it is returned with.
const (
	// CodeCouponNotFound answers the admin calls naming an unknown coupon id.
	CodeCouponNotFound = "COUPON_NOT_FOUND" // errs.NotFound
	// CodeCouponInvalid answers a checkout naming a coupon code that does not exist: the buyer's
	// input is wrong, so it is a 400, not a 404 that would read as a missing endpoint.
	CodeCouponInvalid = "COUPON_INVALID" // errs.Invalid
	// The coupon exists but cannot be redeemed now (CouponStatus precedence).
	CodeCouponInactive   = "COUPON_INACTIVE"    // errs.Invalid
	CodeCouponNotStarted = "COUPON_NOT_STARTED" // errs.Invalid
	CodeCouponExpired    = "COUPON_EXPIRED"     // errs.Invalid
	// CodeCouponExhausted is also the code of ports.CouponRepo.Redeem losing the race for the last
	// redemption (errs.Conflict there).
	CodeCouponExhausted = "COUPON_EXHAUSTED" // errs.Invalid (status check) or errs.Conflict (Redeem)
	// CodeCouponCurrencyMismatch: a fixed-amount coupon applied to an order in another currency.
	CodeCouponCurrencyMismatch = "COUPON_CURRENCY_MISMATCH" // errs.Invalid
	// CodeCouponInUse refuses deleting a coupon that has been redeemed.
	CodeCouponInUse = "COUPON_IN_USE" // errs.Conflict
	// CodeCouponExists refuses a second coupon with the same code.
	CodeCouponExists = "COUPON_EXISTS" // errs.Conflict
	// CodeInvalidCoupon is a coupon definition an admin gave that breaks the rules.
	CodeInvalidCoupon = "INVALID_COUPON" // errs.Invalid
)
