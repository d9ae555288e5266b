package order

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

func intp(v int) *int              { return &v }
func timep(t time.Time) *time.Time { return &t }

func TestNormalizeCouponCode(t *testing.T) {
	for in, want := range map[string]string{
		" fullfree2026 ":        "FULLFREE2026", // the seed's test case
		"spring-10":             "SPRING-10",
		"a_b":                   "A_B",
		"ABC":                   "ABC",
		strings.Repeat("x", 40): strings.Repeat("X", 40),
	} {
		got, err := NormalizeCouponCode(in)
		if err != nil || got != want {
			t.Errorf("NormalizeCouponCode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "  ", "ab", "-ABC", "_ABC", "AB C", "ABÇ", "AB.C", strings.Repeat("x", 41)} {
		_, err := NormalizeCouponCode(in)
		if errs.CodeOf(err) != CodeInvalidCoupon || errs.KindOf(err) != errs.Invalid {
			t.Errorf("NormalizeCouponCode(%q) = %v, want INVALID_COUPON", in, err)
		}
	}
}

func TestValidateCoupon(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	valid := []Coupon{
		{Code: "FULL", Kind: CouponFull},
		{Code: "PCT1", Kind: CouponPercent, PercentOff: 1},
		{Code: "P100", Kind: CouponPercent, PercentOff: 100},
		{Code: "FIX5", Kind: CouponFixed, AmountOffCents: 500, Currency: "EUR"},
		{Code: "WINDOW", Kind: CouponFull, StartsAt: timep(t0), EndsAt: timep(t0.Add(time.Second)), MaxRedemptions: intp(1)},
	}
	for _, c := range valid {
		if err := ValidateCoupon(c); err != nil {
			t.Errorf("ValidateCoupon(%+v): %v", c, err)
		}
	}
	invalid := []struct {
		name string
		c    Coupon
	}{
		{"lower-case code", Coupon{Code: "full", Kind: CouponFull}},
		{"short code", Coupon{Code: "AB", Kind: CouponFull}},
		{"unknown kind", Coupon{Code: "XYZ", Kind: "bogo"}},
		{"no kind", Coupon{Code: "XYZ"}},
		{"percent 0", Coupon{Code: "XYZ", Kind: CouponPercent}},
		{"percent 101", Coupon{Code: "XYZ", Kind: CouponPercent, PercentOff: 101}},
		{"percent negative", Coupon{Code: "XYZ", Kind: CouponPercent, PercentOff: -5}},
		{"percent with amount", Coupon{Code: "XYZ", Kind: CouponPercent, PercentOff: 10, AmountOffCents: 5}},
		{"percent with currency", Coupon{Code: "XYZ", Kind: CouponPercent, PercentOff: 10, Currency: "EUR"}},
		{"fixed 0", Coupon{Code: "XYZ", Kind: CouponFixed, Currency: "EUR"}},
		{"fixed negative", Coupon{Code: "XYZ", Kind: CouponFixed, AmountOffCents: -1, Currency: "EUR"}},
		{"fixed without currency", Coupon{Code: "XYZ", Kind: CouponFixed, AmountOffCents: 100}},
		{"fixed with lower-case currency", Coupon{Code: "XYZ", Kind: CouponFixed, AmountOffCents: 100, Currency: "eur"}},
		{"fixed with percent", Coupon{Code: "XYZ", Kind: CouponFixed, AmountOffCents: 100, Currency: "EUR", PercentOff: 5}},
		{"full with percent", Coupon{Code: "XYZ", Kind: CouponFull, PercentOff: 5}},
		{"full with amount", Coupon{Code: "XYZ", Kind: CouponFull, AmountOffCents: 5}},
		{"max 0", Coupon{Code: "XYZ", Kind: CouponFull, MaxRedemptions: intp(0)}},
		{"ends at start", Coupon{Code: "XYZ", Kind: CouponFull, StartsAt: timep(t0), EndsAt: timep(t0)}},
		{"ends before start", Coupon{Code: "XYZ", Kind: CouponFull, StartsAt: timep(t0), EndsAt: timep(t0.Add(-time.Hour))}},
		{"long notes", Coupon{Code: "XYZ", Kind: CouponFull, Notes: strings.Repeat("n", MaxCouponNotesLen+1)}},
	}
	for _, c := range invalid {
		err := ValidateCoupon(c.c)
		if errs.CodeOf(err) != CodeInvalidCoupon || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: got %v, want INVALID_COUPON", c.name, err)
		}
	}
}

func TestCouponStatusPrecedence(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	future, past := timep(now.Add(time.Hour)), timep(now.Add(-time.Hour))
	cases := []struct {
		name string
		c    Coupon
		want CouponState
		code string
	}{
		// Every condition at once: inactive wins.
		{"inactive over all", Coupon{Active: false, StartsAt: future, EndsAt: past, MaxRedemptions: intp(1), Redemptions: 1}, CouponStateInactive, CodeCouponInactive},
		// Scheduled beats expired and exhausted (an inconsistent window still reads scheduled).
		{"scheduled over expired", Coupon{Active: true, StartsAt: future, EndsAt: past, MaxRedemptions: intp(1), Redemptions: 1}, CouponStateScheduled, CodeCouponNotStarted},
		{"expired over exhausted", Coupon{Active: true, EndsAt: past, MaxRedemptions: intp(1), Redemptions: 1}, CouponStateExpired, CodeCouponExpired},
		{"exhausted", Coupon{Active: true, MaxRedemptions: intp(2), Redemptions: 2}, CouponStateExhausted, CodeCouponExhausted},
		{"over-exhausted", Coupon{Active: true, MaxRedemptions: intp(2), Redemptions: 5}, CouponStateExhausted, CodeCouponExhausted},
		{"redeemable unlimited", Coupon{Active: true, Redemptions: 1000}, CouponStateRedeemable, ""},
		{"redeemable in window", Coupon{Active: true, StartsAt: past, EndsAt: future, MaxRedemptions: intp(2), Redemptions: 1}, CouponStateRedeemable, ""},
		// The window is [StartsAt, EndsAt).
		{"starts now", Coupon{Active: true, StartsAt: timep(now)}, CouponStateRedeemable, ""},
		{"ends now", Coupon{Active: true, EndsAt: timep(now)}, CouponStateExpired, CodeCouponExpired},
		{"ends in a second", Coupon{Active: true, EndsAt: timep(now.Add(time.Second))}, CouponStateRedeemable, ""},
	}
	for _, c := range cases {
		if got := CouponStatus(c.c, now); got != c.want {
			t.Errorf("%s: CouponStatus = %s, want %s", c.name, got, c.want)
		}
		err := CheckRedeemable(c.c, now)
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: CheckRedeemable = %v", c.name, err)
			}
			continue
		}
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: CheckRedeemable = %v, want %s", c.name, err, c.code)
		}
	}
}

func TestRemainingRedemptions(t *testing.T) {
	if RemainingRedemptions(Coupon{Redemptions: 7}) != nil {
		t.Fatal("unlimited is nil")
	}
	for _, c := range []struct{ max, used, want int }{{5, 0, 5}, {5, 4, 1}, {5, 5, 0}, {5, 9, 0}} {
		got := RemainingRedemptions(Coupon{MaxRedemptions: intp(c.max), Redemptions: c.used})
		if got == nil || *got != c.want {
			t.Errorf("max %d used %d: got %v, want %d", c.max, c.used, got, c.want)
		}
	}
}

func TestDiscount(t *testing.T) {
	full := Coupon{Kind: CouponFull}
	pct := func(p int) Coupon { return Coupon{Kind: CouponPercent, PercentOff: p} }
	fixed := Coupon{Kind: CouponFixed, AmountOffCents: 1000, Currency: "EUR"}
	cases := []struct {
		name     string
		c        Coupon
		subtotal int64
		currency string
		want     int64
	}{
		{"full", full, 4900, "EUR", 4900},
		{"full of zero", full, 0, "EUR", 0},
		{"full ignores currency", full, 4900, "JPY", 4900},
		{"10%", pct(10), 4900, "EUR", 490},
		{"100%", pct(100), 4900, "EUR", 4900},
		{"15% rounds half up", pct(15), 1010, "EUR", 152}, // 151.5 → 152
		{"33% rounds down", pct(33), 1001, "EUR", 330},    // 330.33 → 330
		{"1% of 49", pct(1), 49, "EUR", 0},                // 0.49 → 0
		{"1% of 50", pct(1), 50, "EUR", 1},                // 0.5 → 1
		{"percent huge subtotal", pct(50), math.MaxInt64, "EUR", math.MaxInt64/2 + 1},
		{"fixed", fixed, 4900, "EUR", 1000},
		{"fixed case-insensitive currency", fixed, 4900, "eur", 1000},
		{"fixed capped at subtotal", fixed, 700, "EUR", 700},
	}
	for _, c := range cases {
		got, err := Discount(c.c, c.subtotal, c.currency)
		if err != nil || got != c.want {
			t.Errorf("%s: Discount = %d, %v; want %d", c.name, got, err, c.want)
		}
		if got > c.subtotal {
			t.Errorf("%s: discount %d above subtotal %d", c.name, got, c.subtotal)
		}
	}
	_, err := Discount(fixed, 4900, "USD")
	if errs.CodeOf(err) != CodeCouponCurrencyMismatch || errs.KindOf(err) != errs.Invalid {
		t.Fatalf("fixed EUR coupon on a USD order: %v", err)
	}
	if _, err := Discount(full, -1, "EUR"); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("negative subtotal: %v", err)
	}
	if _, err := Discount(Coupon{Kind: "bogo"}, 100, "EUR"); errs.CodeOf(err) != CodeInvalidCoupon {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestNewCouponID(t *testing.T) {
	a, b := NewCouponID(), NewCouponID()
	if a == b || !strings.HasPrefix(a, "cpn_") || len(a) != 4+26 || strings.ToLower(a) != a {
		t.Fatalf("ids %q %q", a, b)
	}
}
