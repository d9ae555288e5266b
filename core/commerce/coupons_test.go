package commerce

import (
	"slices"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func couponIntp(v int) *int { return &v }

func TestCreateCoupon(t *testing.T) {
	h := newHarness(t)
	starts := harnessStart.Add(-time.Hour).Add(123 * time.Millisecond).In(time.FixedZone("CET", 3600))
	c := h.mustCoupon(ports.CouponInput{Code: " spring-10 ", Kind: "Percent", PercentOff: 10, StartsAt: &starts, MaxRedemptions: couponIntp(3), Notes: " Spring sale "})
	if c.Coupon.Code != "SPRING-10" || c.Coupon.Kind != order.CouponPercent || c.Coupon.PercentOff != 10 || !c.Coupon.Active ||
		c.Coupon.Notes != "Spring sale" || c.Coupon.Redemptions != 0 || !c.Coupon.CreatedAt.Equal(harnessStart) {
		t.Fatalf("coupon %+v", c.Coupon)
	}
	if c.Coupon.StartsAt.Location() != time.UTC || c.Coupon.StartsAt.Nanosecond() != 0 || !c.Coupon.StartsAt.Equal(starts.Truncate(time.Second)) {
		t.Fatalf("starts_at not stored in UTC whole seconds: %v", c.Coupon.StartsAt)
	}
	if c.Status != "redeemable" || c.Remaining == nil || *c.Remaining != 3 {
		t.Fatalf("view %s %v", c.Status, c.Remaining)
	}
	stored, err := h.store.Coupons().ByCode(h.ctx, "SPRING-10")
	if err != nil || stored.ID != c.Coupon.ID {
		t.Fatalf("stored %+v %v", stored, err)
	}

	// Fixed: currency upper-cased; unlimited has no Remaining.
	f := h.mustCoupon(ports.CouponInput{Code: "TENOFF", Kind: "fixed", AmountOffCents: 1000, Currency: "eur"})
	if f.Coupon.Currency != "EUR" || f.Remaining != nil {
		t.Fatalf("fixed %+v", f)
	}
	// Inactive from the start.
	off := h.mustCoupon(ports.CouponInput{Code: "LATER", Kind: "full", Active: boolp(false)})
	if off.Status != "inactive" {
		t.Fatal(off.Status)
	}

	_, err = h.svc.CreateCoupon(h.ctx, ports.CouponInput{Code: "spring-10", Kind: "full"})
	wantCode(t, err, order.CodeCouponExists, errs.Conflict)
	cases := []ports.CouponInput{
		{Kind: "full"},
		{Code: "OK1"},
		{Code: "a b c", Kind: "full"},
		{Code: "OK2", Kind: "bogo"},
		{Code: "OK3", Kind: "percent", PercentOff: 0},
		{Code: "OK4", Kind: "percent", PercentOff: 150},
		{Code: "OK5", Kind: "fixed", AmountOffCents: 100},
		{Code: "OK6", Kind: "fixed", Currency: "EUR"},
		{Code: "OK7", Kind: "full", PercentOff: 20},
		{Code: "OK8", Kind: "full", MaxRedemptions: couponIntp(0)},
		{Code: "OK9", Kind: "full", StartsAt: &starts, EndsAt: &starts},
	}
	for _, in := range cases {
		_, err := h.svc.CreateCoupon(h.ctx, in)
		wantCode(t, err, order.CodeInvalidCoupon, errs.Invalid)
	}
	rows, _, _ := h.store.Coupons().List(h.ctx, ports.Page{})
	if len(rows) != 3 {
		t.Fatalf("invalid coupons were stored: %d rows", len(rows))
	}
}

func TestCouponStatusFollowsTheClock(t *testing.T) {
	h := newHarness(t)
	starts, ends := harnessStart.Add(time.Hour), harnessStart.Add(2*time.Hour)
	c := h.mustCoupon(ports.CouponInput{Code: "WINDOW", Kind: "full", StartsAt: &starts, EndsAt: &ends})
	status := func() string {
		t.Helper()
		v, err := h.svc.GetCoupon(h.ctx, c.Coupon.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v.Status
	}
	if s := status(); s != "scheduled" {
		t.Fatal(s)
	}
	h.clock.Set(starts)
	if s := status(); s != "redeemable" {
		t.Fatal(s)
	}
	h.clock.Set(ends)
	if s := status(); s != "expired" {
		t.Fatal(s)
	}
}

func TestCouponExhaustedAfterRedemptions(t *testing.T) {
	h := newHarness(t)
	c := h.mustCoupon(ports.CouponInput{Code: "TWICE", Kind: "full", MaxRedemptions: couponIntp(2)})
	for range 2 {
		if err := h.store.Coupons().Redeem(h.ctx, c.Coupon.ID); err != nil {
			t.Fatal(err)
		}
	}
	v, err := h.svc.GetCoupon(h.ctx, c.Coupon.ID)
	if err != nil || v.Status != "exhausted" || *v.Remaining != 0 || v.Coupon.Redemptions != 2 {
		t.Fatalf("%+v %v", v, err)
	}
	// Raising the maximum makes it redeemable again; the count is kept.
	v, err = h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{Kind: "full", MaxRedemptions: couponIntp(3)})
	if err != nil || v.Status != "redeemable" || *v.Remaining != 1 || v.Coupon.Redemptions != 2 {
		t.Fatalf("%+v %v", v, err)
	}
	// Lowering it below the count is allowed: the coupon is exhausted, never negative.
	v, err = h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{Kind: "full", MaxRedemptions: couponIntp(1)})
	if err != nil || v.Status != "exhausted" || *v.Remaining != 0 {
		t.Fatalf("%+v %v", v, err)
	}
}

func TestUpdateCoupon(t *testing.T) {
	h := newHarness(t)
	ends := harnessStart.Add(24 * time.Hour)
	c := h.mustCoupon(ports.CouponInput{Code: "SPRING", Kind: "percent", PercentOff: 10, EndsAt: &ends, MaxRedemptions: couponIntp(5), Notes: "n"})
	if err := h.store.Coupons().Redeem(h.ctx, c.Coupon.ID); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	// A replacement of the definition: kind and code kept when left empty, the end date and the
	// maximum cleared because they are not given, Active kept.
	v, err := h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{PercentOff: 20})
	if err != nil {
		t.Fatal(err)
	}
	if v.Coupon.Code != "SPRING" || v.Coupon.Kind != order.CouponPercent || v.Coupon.PercentOff != 20 || v.Coupon.EndsAt != nil ||
		v.Coupon.MaxRedemptions != nil || v.Coupon.Notes != "" || !v.Coupon.Active || v.Coupon.Redemptions != 1 ||
		!v.Coupon.UpdatedAt.Equal(harnessStart.Add(time.Minute)) || !v.Coupon.CreatedAt.Equal(harnessStart) || v.Remaining != nil {
		t.Fatalf("updated %+v", v.Coupon)
	}
	// Switching kind needs the new kind's fields, and only those.
	_, err = h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{Kind: "fixed", PercentOff: 20})
	wantCode(t, err, order.CodeInvalidCoupon, errs.Invalid)
	v, err = h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{Code: "spring-fixed", Kind: "fixed", AmountOffCents: 500, Currency: "usd", Active: boolp(false)})
	if err != nil || v.Coupon.Code != "SPRING-FIXED" || v.Coupon.Kind != order.CouponFixed || v.Coupon.Currency != "USD" || v.Status != "inactive" {
		t.Fatalf("%+v %v", v, err)
	}
	// A failed update wrote nothing.
	stored, _ := h.store.Coupons().Get(h.ctx, c.Coupon.ID)
	if stored.Code != "SPRING-FIXED" || stored.AmountOffCents != 500 || stored.Redemptions != 1 {
		t.Fatalf("stored %+v", stored)
	}
	// Another coupon's code.
	h.mustCoupon(ports.CouponInput{Code: "TAKEN", Kind: "full"})
	_, err = h.svc.UpdateCoupon(h.ctx, c.Coupon.ID, ports.CouponInput{Code: "taken", Kind: "full"})
	wantCode(t, err, order.CodeCouponExists, errs.Conflict)
	_, err = h.svc.UpdateCoupon(h.ctx, "cpn_nope", ports.CouponInput{Kind: "full"})
	wantCode(t, err, order.CodeCouponNotFound, errs.NotFound)
}

func TestGetListDeleteCoupons(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for _, code := range []string{"ONE", "TWO", "THREE"} {
		ids = append(ids, h.mustCoupon(ports.CouponInput{Code: code, Kind: "full", MaxRedemptions: couponIntp(1)}).Coupon.ID)
		h.clock.Advance(time.Second)
	}
	_, err := h.svc.GetCoupon(h.ctx, "cpn_nope")
	wantCode(t, err, order.CodeCouponNotFound, errs.NotFound)

	var seen []string
	p := ports.Page{Limit: 2}
	for {
		rows, next, err := h.svc.ListCoupons(h.ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range rows {
			if v.Status != "redeemable" || v.Remaining == nil || *v.Remaining != 1 {
				t.Fatalf("view %+v", v)
			}
			seen = append(seen, v.Coupon.ID)
		}
		if next == "" {
			break
		}
		p.Cursor = next
	}
	slices.Sort(seen)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(seen, want) {
		t.Fatalf("listed %v, want %v", seen, want)
	}
	_, _, err = h.svc.ListCoupons(h.ctx, ports.Page{Limit: -1})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)

	// A redeemed coupon cannot be deleted; a fresh one can.
	if err := h.store.Coupons().Redeem(h.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, h.svc.DeleteCoupon(h.ctx, ids[0]), order.CodeCouponInUse, errs.Conflict)
	if _, err := h.svc.GetCoupon(h.ctx, ids[0]); err != nil {
		t.Fatal("the redeemed coupon is gone")
	}
	if err := h.svc.DeleteCoupon(h.ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.GetCoupon(h.ctx, ids[1])
	wantCode(t, err, order.CodeCouponNotFound, errs.NotFound)
	wantCode(t, h.svc.DeleteCoupon(h.ctx, ids[1]), order.CodeCouponNotFound, errs.NotFound)
}
