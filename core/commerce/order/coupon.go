package order

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// CouponState is a coupon's derived status (never stored: it depends on the time and the count).
type CouponState string

const (
	CouponStateInactive   CouponState = "inactive"   // switched off by an admin
	CouponStateScheduled  CouponState = "scheduled"  // StartsAt is still ahead
	CouponStateExpired    CouponState = "expired"    // EndsAt has passed
	CouponStateExhausted  CouponState = "exhausted"  // every redemption is taken
	CouponStateRedeemable CouponState = "redeemable" // can be applied now
)

// Coupon limits.
const (
	MaxCouponNotesLen = 2000 // code points
	minCouponCodeLen  = 3
	maxCouponCodeLen  = 40
)

// NewCouponID returns a fresh coupon id: cpn_ and 26 base32 characters of 128 random bits.
func NewCouponID() string {
	var b [16]byte
	// crypto/rand.Read never returns an error and always fills b (Go 1.24+).
	_, _ = rand.Read(b[:])
	return "cpn_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// NormalizeCouponCode turns what an admin or a buyer typed into the stored code: trimmed and upper
// case, then ^[A-Z0-9][A-Z0-9_-]{2,39}$. INVALID_COUPON otherwise (the checkout maps a code that
// cannot exist to COUPON_INVALID like an unknown one).
func NormalizeCouponCode(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) < minCouponCodeLen || len(c) > maxCouponCodeLen {
		return "", errs.E(errs.Invalid, CodeInvalidCoupon, "coupon code must be 3 to 40 characters")
	}
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch {
		case ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case (ch == '-' || ch == '_') && i > 0:
		default:
			return "", errs.E(errs.Invalid, CodeInvalidCoupon, "coupon code may contain only A-Z, 0-9, - and _ and must start with a letter or digit")
		}
	}
	return c, nil
}

func invalidCoupon(msg string) error { return errs.E(errs.Invalid, CodeInvalidCoupon, msg) }

// ValidateCoupon checks a coupon as it is about to be stored. Code as NormalizeCouponCode leaves
// it. Per kind: percent has PercentOff 1..100 and no amount; fixed has AmountOffCents > 0 and a
// three-letter upper-case Currency and no percentage; full has neither (it takes the whole order).
// MaxRedemptions, when set, is at least 1; EndsAt, when both are set, is after StartsAt; notes are
// at most 2000 characters. INVALID_COUPON otherwise.
func ValidateCoupon(c Coupon) error {
	if code, err := NormalizeCouponCode(c.Code); err != nil {
		return err
	} else if code != c.Code {
		return invalidCoupon("coupon code must be stored upper case and trimmed")
	}
	switch c.Kind {
	case CouponPercent:
		if c.PercentOff < 1 || c.PercentOff > 100 {
			return invalidCoupon("percent_off must be 1 to 100")
		}
		if c.AmountOffCents != 0 || c.Currency != "" {
			return invalidCoupon("a percent coupon has no amount_off or currency")
		}
	case CouponFixed:
		if c.AmountOffCents <= 0 {
			return invalidCoupon("amount_off_cents must be greater than 0")
		}
		if !isCurrency(c.Currency) {
			return invalidCoupon("a fixed-amount coupon needs a three-letter currency")
		}
		if c.PercentOff != 0 {
			return invalidCoupon("a fixed-amount coupon has no percent_off")
		}
	case CouponFull:
		if c.PercentOff != 0 || c.AmountOffCents != 0 || c.Currency != "" {
			return invalidCoupon("a full coupon has no percent_off, amount_off or currency")
		}
	default:
		return invalidCoupon("kind must be full, percent or fixed")
	}
	if c.MaxRedemptions != nil && *c.MaxRedemptions < 1 {
		return invalidCoupon("max_redemptions must be at least 1 (leave it out for unlimited)")
	}
	if c.Redemptions < 0 {
		return invalidCoupon("redemptions must not be negative")
	}
	if c.StartsAt != nil && c.EndsAt != nil && !c.EndsAt.After(*c.StartsAt) {
		return invalidCoupon("ends_at must be after starts_at")
	}
	if !utf8.ValidString(c.Notes) || utf8.RuneCountInString(c.Notes) > MaxCouponNotesLen {
		return invalidCoupon("notes must be at most 2000 characters")
	}
	return nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// CouponStatus derives a coupon's status at now, with the seed's precedence: inactive > scheduled >
// expired > exhausted > redeemable. A coupon is scheduled while now is before StartsAt and expired
// from EndsAt on (the window is [StartsAt, EndsAt)).
func CouponStatus(c Coupon, now time.Time) CouponState {
	switch {
	case !c.Active:
		return CouponStateInactive
	case c.StartsAt != nil && now.Before(*c.StartsAt):
		return CouponStateScheduled
	case c.EndsAt != nil && !now.Before(*c.EndsAt):
		return CouponStateExpired
	case c.MaxRedemptions != nil && c.Redemptions >= *c.MaxRedemptions:
		return CouponStateExhausted
	}
	return CouponStateRedeemable
}

// RemainingRedemptions returns how many redemptions are left (never below 0); nil when unlimited.
func RemainingRedemptions(c Coupon) *int {
	if c.MaxRedemptions == nil {
		return nil
	}
	n := max(*c.MaxRedemptions-c.Redemptions, 0)
	return &n
}

// CheckRedeemable returns nil when the coupon can be applied at now, else the error of its status:
// COUPON_INACTIVE, COUPON_NOT_STARTED, COUPON_EXPIRED or COUPON_EXHAUSTED (all errs.Invalid: the
// buyer should remove the code or use another).
func CheckRedeemable(c Coupon, now time.Time) error {
	switch CouponStatus(c, now) {
	case CouponStateInactive:
		return errs.E(errs.Invalid, CodeCouponInactive, "the coupon is not active")
	case CouponStateScheduled:
		return errs.E(errs.Invalid, CodeCouponNotStarted, "the coupon is not active yet")
	case CouponStateExpired:
		return errs.E(errs.Invalid, CodeCouponExpired, "the coupon has expired")
	case CouponStateExhausted:
		return errs.E(errs.Invalid, CodeCouponExhausted, "the coupon has no redemptions left")
	}
	return nil
}

// Discount returns what the coupon takes off a subtotal in currency, in minor units, never more
// than the subtotal. Full takes everything; percent takes PercentOff % rounded half up to the
// minor unit (the way Stripe rounds percentage discounts); fixed takes AmountOffCents, and only in
// its own currency (COUPON_CURRENCY_MISMATCH otherwise). It does not check the status: see
// CheckRedeemable.
func Discount(c Coupon, subtotalCents int64, currency string) (int64, error) {
	if subtotalCents < 0 {
		return 0, errs.Validation("subtotal must not be negative")
	}
	switch c.Kind {
	case CouponFull:
		return subtotalCents, nil
	case CouponPercent:
		if c.PercentOff < 1 || c.PercentOff > 100 {
			return 0, invalidCoupon("percent_off must be 1 to 100")
		}
		p := int64(c.PercentOff)
		// Split the subtotal so that subtotal × p cannot overflow: (100q + r)·p/100 = q·p + r·p/100.
		q, r := subtotalCents/100, subtotalCents%100
		return min(q*p+(r*p+50)/100, subtotalCents), nil
	case CouponFixed:
		if !strings.EqualFold(strings.TrimSpace(currency), c.Currency) {
			return 0, errs.E(errs.Invalid, CodeCouponCurrencyMismatch, "the coupon is for amounts in "+c.Currency)
		}
		if c.AmountOffCents < 0 {
			return 0, invalidCoupon("amount_off_cents must be greater than 0")
		}
		return min(c.AmountOffCents, subtotalCents), nil
	}
	return 0, invalidCoupon("kind must be full, percent or fixed")
}
