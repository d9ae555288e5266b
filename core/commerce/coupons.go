package commerce

import (
	"context"
	"strings"
	"time"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// This file is the coupon half of ports.Commerce (the admin calls). Redemption itself happens at
// checkout through ports.CouponRepo.Redeem, a single conditional update, so that of any number of
// buyers racing for the last redemption exactly one gets it.

func couponNotFound() error {
	return errs.E(errs.NotFound, order.CodeCouponNotFound, "coupon not found")
}

// couponView derives the status and the remaining redemptions at now.
func couponView(c order.Coupon, now time.Time) ports.CouponView {
	return ports.CouponView{Coupon: c, Status: string(order.CouponStatus(c, now)), Remaining: order.RemainingRedemptions(c)}
}

// couponFromInput applies in to c. The coupon's value fields are replaced as given (an admin form
// sends the whole coupon: a nil StartsAt, EndsAt or MaxRedemptions clears it), except that Code ""
// and Kind "" keep the stored ones and Active nil keeps the stored flag (true for a new coupon).
// Times are stored in UTC at whole seconds; the currency upper case; fields that the kind does not
// use must be left empty (ValidateCoupon).
func couponFromInput(c order.Coupon, in ports.CouponInput) (order.Coupon, error) {
	if strings.TrimSpace(in.Code) != "" {
		code, err := order.NormalizeCouponCode(in.Code)
		if err != nil {
			return c, err
		}
		c.Code = code
	}
	if k := strings.ToLower(strings.TrimSpace(in.Kind)); k != "" {
		c.Kind = order.CouponKind(k)
	}
	c.PercentOff = in.PercentOff
	c.AmountOffCents = in.AmountOffCents
	c.Currency = strings.ToUpper(strings.TrimSpace(in.Currency))
	c.StartsAt = utcSecond(in.StartsAt)
	c.EndsAt = utcSecond(in.EndsAt)
	c.MaxRedemptions = nil
	if in.MaxRedemptions != nil {
		n := *in.MaxRedemptions
		c.MaxRedemptions = &n
	}
	if in.Active != nil {
		c.Active = *in.Active
	}
	c.Notes = strings.TrimSpace(in.Notes)
	if err := order.ValidateCoupon(c); err != nil {
		return c, err
	}
	return c, nil
}

func utcSecond(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Second)
	return &v
}

// CreateCoupon implements ports.Commerce: a new coupon, active unless Active says otherwise. A code
// that exists is COUPON_EXISTS; an invalid definition INVALID_COUPON.
func (s *Service) CreateCoupon(ctx context.Context, in ports.CouponInput) (ports.CouponView, error) {
	if strings.TrimSpace(in.Code) == "" {
		return ports.CouponView{}, errs.E(errs.Invalid, order.CodeInvalidCoupon, "coupon code is required")
	}
	if strings.TrimSpace(in.Kind) == "" {
		return ports.CouponView{}, errs.E(errs.Invalid, order.CodeInvalidCoupon, "kind must be full, percent or fixed")
	}
	now := s.now()
	c, err := couponFromInput(order.Coupon{ID: order.NewCouponID(), Active: true, CreatedAt: now, UpdatedAt: now}, in)
	if err != nil {
		return ports.CouponView{}, err
	}
	if err := s.d.Coupons.Insert(ctx, c); err != nil {
		if repoConflict(err) {
			return ports.CouponView{}, errs.E(errs.Conflict, order.CodeCouponExists, "a coupon with this code exists")
		}
		return ports.CouponView{}, portFailure("inserting coupon", err)
	}
	return couponView(c, now), nil
}

// couponByID loads a coupon; COUPON_NOT_FOUND when there is none.
func (s *Service) couponByID(ctx context.Context, id string) (order.Coupon, error) {
	c, err := s.d.Coupons.Get(ctx, strings.TrimSpace(id))
	if repoMissing(err) {
		return c, couponNotFound()
	}
	if err != nil {
		return c, portFailure("loading coupon", err)
	}
	return c, nil
}

// UpdateCoupon implements ports.Commerce: replaces the coupon's definition (see couponFromInput).
// The redemption count is never written here (ports.CouponRepo.Update leaves it alone), so an edit
// racing with a checkout cannot lose a redemption. A maximum below the redemptions already taken
// is allowed: the coupon is then exhausted.
func (s *Service) UpdateCoupon(ctx context.Context, id string, in ports.CouponInput) (ports.CouponView, error) {
	var out ports.CouponView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		old, err := s.couponByID(ctx, id)
		if err != nil {
			return err
		}
		c, err := couponFromInput(old, in)
		if err != nil {
			return err
		}
		now := s.now()
		c.UpdatedAt = now
		if err := s.d.Coupons.Update(ctx, c); err != nil {
			if repoConflict(err) {
				return errs.E(errs.Conflict, order.CodeCouponExists, "a coupon with this code exists")
			}
			return portFailure("updating coupon", err)
		}
		// Read back: the redemption count may have moved since old was read.
		if c, err = s.couponByID(ctx, c.ID); err != nil {
			return err
		}
		out = couponView(c, now)
		return nil
	})
	return out, err
}

// GetCoupon implements ports.Commerce.
func (s *Service) GetCoupon(ctx context.Context, id string) (ports.CouponView, error) {
	c, err := s.couponByID(ctx, id)
	if err != nil {
		return ports.CouponView{}, err
	}
	return couponView(c, s.now()), nil
}

// ListCoupons implements ports.Commerce: a page of coupons in the repository's order.
func (s *Service) ListCoupons(ctx context.Context, p ports.Page) ([]ports.CouponView, string, error) {
	if err := checkPage(p); err != nil {
		return nil, "", err
	}
	rows, next, err := s.d.Coupons.List(ctx, p)
	if err != nil {
		return nil, "", portFailure("listing coupons", err)
	}
	now := s.now()
	out := make([]ports.CouponView, len(rows))
	for i, c := range rows {
		out[i] = couponView(c, now)
	}
	return out, next, nil
}

// DeleteCoupon implements ports.Commerce: a coupon that has been redeemed (orders refer to it) is
// COUPON_IN_USE; deactivate it instead.
func (s *Service) DeleteCoupon(ctx context.Context, id string) error {
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		c, err := s.couponByID(ctx, id)
		if err != nil {
			return err
		}
		if c.Redemptions > 0 {
			return errs.E(errs.Conflict, order.CodeCouponInUse, "the coupon has been redeemed; deactivate it instead")
		}
		if err := s.d.Coupons.Delete(ctx, c.ID); err != nil {
			if repoMissing(err) {
				return couponNotFound()
			}
			if errs.CodeOf(err) == order.CodeCouponInUse { // redeemed while we looked
				return errs.E(errs.Conflict, order.CodeCouponInUse, "the coupon has been redeemed; deactivate it instead")
			}
			return portFailure("deleting coupon", err)
		}
		return nil
	})
}
