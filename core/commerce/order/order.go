package order

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"math"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
)

// Limits of one order.
const (
	MaxLines    = 50
	MaxQuantity = 100
)

// Id prefixes of the records this package mints ids for.
const (
	IDPrefixOrder       = "ord_"
	IDPrefixEntitlement = "ent_"
	IDPrefixDownload    = "dl_"
)

// Payment providers as stored in Order.PaymentProvider.
const (
	ProviderStripe  = "stripe"
	ProviderGeneric = "generic"
	ProviderCoupon  = "coupon" // a coupon covered the whole amount
	ProviderAdmin   = "admin"  // an admin marked the order paid
	ProviderFree    = "free"   // nothing to pay without a coupon (every line priced 0)
)

// Review reasons (Order.ReviewReason). A held order is never fulfilled until an admin releases it.
const (
	ReviewAmountMismatch   = "amount_mismatch"    // the provider reported less, or another currency
	ReviewPaidAfterFailure = "paid_after_failure" // a payment for an order that had already failed
	ReviewPartialRefund    = "partial_refund"     // part of the payment was refunded
	ReviewDisputed         = "disputed_unpaid"    // a dispute on an order we never accepted as paid
	ReviewFulfilmentFailed = "fulfilment_failed"  // fulfilment failed for good (flagged for support)
)

var orderIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// mintID returns prefix followed by 26 lower-case base32 characters of 128 random bits, like the
// ids of the licensing context.
func mintID(prefix string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error and always fills b (Go 1.24+).
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(orderIDEncoding.EncodeToString(b[:]))
}

// NewOrderID returns a fresh order id (ord_…).
func NewOrderID() string { return mintID(IDPrefixOrder) }

// NewEntitlementID returns a fresh entitlement id (ent_…).
func NewEntitlementID() string { return mintID(IDPrefixEntitlement) }

// NewDownloadID returns a fresh download id (dl_…).
func NewDownloadID() string { return mintID(IDPrefixDownload) }

// Reference is the customer-facing reference of an order number: LS-000123 (at least six digits).
func Reference(number int64) string { return fmt.Sprintf("LS-%06d", number) }

func invalidOrder(msg string) error { return errs.E(errs.Invalid, CodeInvalidOrder, msg) }

// ValidateLines checks the lines a customer asked for: 1..MaxLines lines, each naming a product
// once with a quantity of 1..MaxQuantity. Prices are not looked at (they come from the catalog).
func ValidateLines(lines []Line) error {
	if len(lines) == 0 {
		return invalidOrder("an order needs at least one line")
	}
	if len(lines) > MaxLines {
		return invalidOrder(fmt.Sprintf("an order has at most %d lines", MaxLines))
	}
	seen := make(map[string]bool, len(lines))
	for _, l := range lines {
		if l.Product == "" {
			return invalidOrder("every line needs a product")
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return errs.E(errs.Invalid, CodeInvalidQuantity, fmt.Sprintf("quantity must be between 1 and %d", MaxQuantity))
		}
		if seen[l.Product] {
			// One line per product keeps "one license per plugin line" unambiguous: two lines of
			// one plugin would be two licenses where the customer meant one with more seats.
			return invalidOrder("each product may appear in one line only; raise its quantity instead")
		}
		seen[l.Product] = true
	}
	return nil
}

// LineTotal is UnitPriceCents × Quantity; ok=false when it overflows or a factor is negative.
func LineTotal(l Line) (int64, bool) {
	if l.UnitPriceCents < 0 || l.Quantity < 0 {
		return 0, false
	}
	if l.Quantity != 0 && l.UnitPriceCents > math.MaxInt64/int64(l.Quantity) {
		return 0, false
	}
	return l.UnitPriceCents * int64(l.Quantity), true
}

// Subtotal is the sum of the line totals, checked for overflow.
func Subtotal(lines []Line) (int64, error) {
	var sum int64
	for _, l := range lines {
		t, ok := LineTotal(l)
		if !ok || sum > math.MaxInt64-t {
			return 0, errs.E(errs.Invalid, CodeAmountTooLarge, "the order's amount is too large")
		}
		sum += t
	}
	return sum, nil
}

// SetTotals prices o from its lines and a discount: subtotal = Σ unit × quantity, the discount
// between 0 and the subtotal, total = subtotal − discount.
func SetTotals(o *Order, discountCents int64) error {
	sub, err := Subtotal(o.Lines)
	if err != nil {
		return err
	}
	if discountCents < 0 || discountCents > sub {
		return errs.Internalf("order: discount %d outside 0..%d", discountCents, sub)
	}
	o.SubtotalCents = sub
	o.DiscountCents = discountCents
	o.TotalCents = sub - discountCents
	return nil
}

// transitions is the state machine of an order.
var transitions = map[Status][]Status{
	StatusPending:   {StatusPaid, StatusFailed},
	StatusPaid:      {StatusFulfilled, StatusRefunded, StatusDisputed, StatusFailed},
	StatusFulfilled: {StatusRefunded, StatusDisputed},
	// A payment that arrives after the order failed is held for review (paid_after_failure);
	// releasing it is the only way out of failed.
	StatusFailed: {StatusPaid},
}

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// IsPaid reports a status in which the customer has paid and keeps what was bought.
func IsPaid(s Status) bool { return s == StatusPaid || s == StatusFulfilled }

// IsRevoked reports a status whose entitlements were taken back.
func IsRevoked(s Status) bool { return s == StatusRefunded || s == StatusDisputed }

// Transition moves o to status to at now, stamping PaidAt, FulfilledAt or RefundedAt (refunds and
// disputes) when they are not set yet. A forbidden change is errs.Conflict with the code that
// says why: ORDER_REVOKED (from refunded or disputed), ORDER_NOT_REFUNDABLE (refunding or
// disputing what was never paid), ORDER_NOT_PAYABLE (paying or fulfilling from another state),
// INVALID_TRANSITION otherwise.
func Transition(o *Order, to Status, now time.Time) error {
	if !CanTransition(o.Status, to) {
		switch {
		case IsRevoked(o.Status):
			return errs.E(errs.Conflict, CodeOrderRevoked, "the order was "+string(o.Status))
		case IsRevoked(to):
			return errs.E(errs.Conflict, CodeOrderNotRefundable, "only paid or fulfilled orders can be "+string(to))
		case to == StatusPaid || to == StatusFulfilled:
			return errs.E(errs.Conflict, CodeOrderNotPayable, "the order is "+string(o.Status))
		}
		return errs.E(errs.Conflict, CodeInvalidTransition, fmt.Sprintf("an order cannot go from %s to %s", o.Status, to))
	}
	t := now
	switch to {
	case StatusPaid:
		if o.PaidAt == nil {
			o.PaidAt = &t
		}
	case StatusFulfilled:
		if o.FulfilledAt == nil {
			o.FulfilledAt = &t
		}
	case StatusRefunded, StatusDisputed:
		if o.RefundedAt == nil {
			o.RefundedAt = &t
		}
	}
	o.Status = to
	o.UpdatedAt = now
	return nil
}

// ParseStatus parses a status filter.
func ParseStatus(s string) (Status, error) {
	switch st := Status(strings.ToLower(strings.TrimSpace(s))); st {
	case StatusPending, StatusPaid, StatusFulfilled, StatusRefunded, StatusDisputed, StatusFailed:
		return st, nil
	}
	return "", errs.Validation("status must be one of pending, paid, fulfilled, refunded, disputed, failed")
}

// ParseProductsSpec parses metadata.samplero_products of a Payment Link: "slug:qty,slug:qty"
// (a missing ":qty" is 1; blanks around items are ignored). The lines carry Product and Quantity
// only and pass ValidateLines.
func ParseProductsSpec(spec string) ([]Line, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, invalidOrder("the products list is empty")
	}
	items := strings.Split(spec, ",")
	if len(items) > MaxLines {
		return nil, invalidOrder(fmt.Sprintf("an order has at most %d lines", MaxLines))
	}
	lines := make([]Line, 0, len(items))
	for _, item := range items {
		slug, qty, hasQty := strings.Cut(strings.TrimSpace(item), ":")
		slug = strings.ToLower(strings.TrimSpace(slug))
		if !specSlug(slug) {
			return nil, invalidOrder(fmt.Sprintf("%q is not a product slug", slug))
		}
		n := 1
		if hasQty {
			var err error
			if n, err = strconv.Atoi(strings.TrimSpace(qty)); err != nil {
				return nil, errs.E(errs.Invalid, CodeInvalidQuantity, fmt.Sprintf("quantity of %s is not a number", slug))
			}
		}
		lines = append(lines, Line{Product: slug, Quantity: n})
	}
	if err := ValidateLines(lines); err != nil {
		return nil, err
	}
	return lines, nil
}

// specSlug accepts what a catalog slug may be (lower-case letters, digits, hyphens; at most 64).
func specSlug(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NormalizeEmail trims and lower-cases a customer e-mail and checks that it is one plain address
// (no display name, a dot in the domain, printable ASCII, at most 254 characters). Orders store it
// lower case so that one customer's orders and entitlements are found whatever case was typed.
func NormalizeEmail(s string) (string, error) {
	bad := errs.E(errs.Invalid, CodeInvalidEmail, "customer_email is not a valid e-mail address")
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", errs.E(errs.Invalid, CodeInvalidEmail, "customer_email is required")
	}
	if len(s) > 254 {
		return "", bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "", bad
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", bad
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || !strings.Contains(s[at+1:], ".") || strings.HasSuffix(s, ".") {
		return "", bad
	}
	return s, nil
}
