package commerce

import (
	"context"
	"fmt"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The fulfilment steps (ports.Fulfilment), driven by the activities of workflows/fulfillment and
// the revocation workflow. Each is idempotent: the workflow retries a step after a crash, and the
// second run finds the work done and changes nothing. The order row lock serialises a step with
// the webhook and with the other workflow, so a refund that lands mid-fulfilment is seen.

// revokedOrder is the error of a step that must not continue on a refunded or disputed order.
func revokedOrder(o order.Order) error {
	return errs.E(errs.Conflict, order.CodeOrderRevoked, "the order was "+string(o.Status))
}

// needPaid refuses a step on an order that is not paid or fulfilled.
func needPaid(o order.Order) error {
	switch {
	case order.IsPaid(o.Status):
		return nil
	case order.IsRevoked(o.Status):
		return revokedOrder(o)
	}
	return errs.E(errs.Conflict, order.CodeOrderNotPayable, "the order is "+string(o.Status))
}

// MarkOrderPaid implements ports.Fulfilment. The webhook, the admin and the checkout already pay
// the order before they start its fulfilment, so this is normally a no-op; it moves a pending
// order paid outside a provider (coupon, admin, free) and refuses one still waiting for the
// provider (ORDER_NOT_PAYABLE) or held for review (ORDER_IN_REVIEW): a held order is never
// fulfilled.
func (s *Service) MarkOrderPaid(ctx context.Context, orderID string) error {
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if o.ReviewReason != "" {
			return errs.E(errs.Conflict, order.CodeOrderInReview, "the order is held for review ("+o.ReviewReason+")")
		}
		if order.IsPaid(o.Status) {
			return nil
		}
		if o.Status == order.StatusPending {
			switch o.PaymentProvider {
			case order.ProviderCoupon, order.ProviderAdmin, order.ProviderFree:
				if err := order.Transition(&o, order.StatusPaid, s.now()); err != nil {
					return err
				}
				return s.saveOrder(ctx, &o)
			}
		}
		if order.IsRevoked(o.Status) {
			return revokedOrder(o)
		}
		return errs.E(errs.Conflict, order.CodeOrderNotPayable, "the order is "+string(o.Status)+" and not paid")
	})
}

// entKey identifies an entitlement within an order (the store's unique key).
type entKey struct {
	line    int
	product string
}

// IssueEntitlements implements ports.Fulfilment. In one transaction, under the order row lock:
// a license per plugin line (activations = the product policy's maximum × quantity), an
// entitlement per product granted (plugin lines, sample packs, a bundle and each of its
// components, plugin components with a license each). License idempotency keys
// (fulfillment/<order id>/<line>/<slug>) and the entitlements already stored make a retry return
// what the first run issued.
func (s *Service) IssueEntitlements(ctx context.Context, orderID string) (ports.IssueResult, error) {
	var res ports.IssueResult
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		res = ports.IssueResult{}
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if err := needPaid(o); err != nil {
			return err
		}
		have, err := s.d.Entitlements.ByOrder(ctx, o.ID)
		if err != nil {
			return portFailure("listing entitlements", err)
		}
		issued := make(map[entKey]order.Entitlement, len(have))
		for _, e := range have {
			issued[entKey{e.LineIndex, e.Product}] = e
		}
		now := s.now()
		grant := func(line int, slug, viaBundle string, quantity int, plugin bool) error {
			e, ok := issued[entKey{line, slug}]
			if !ok {
				e = order.Entitlement{
					ID: order.NewEntitlementID(), OrderID: o.ID, LineIndex: line, Product: slug, ViaBundle: viaBundle,
					CustomerEmail: o.CustomerEmail, Status: order.EntitlementActive, CreatedAt: now,
				}
				if plugin {
					id, err := s.issueLicense(ctx, o, line, slug, quantity)
					if err != nil {
						return err
					}
					e.LicenseID = id
				}
				if err := s.d.Entitlements.Insert(ctx, e); err != nil {
					if !repoConflict(err) {
						return portFailure("inserting entitlement", err)
					}
					// Already issued (the order lock makes this a store that lagged behind
					// ByOrder): use the one that is there. A store whose transaction the
					// conflict aborted fails the next statement, and the retried step finds it.
					found, ferr := s.issuedEntitlement(ctx, o.ID, line, slug)
					if ferr != nil {
						return ferr
					}
					e = found
				}
				issued[entKey{line, slug}] = e
			}
			res.EntitlementIDs = append(res.EntitlementIDs, e.ID)
			if e.LicenseID != "" {
				res.LicenseIDs = append(res.LicenseIDs, e.LicenseID)
			}
			return nil
		}
		for i, l := range o.Lines {
			switch catalog.ProductType(l.ProductType) {
			case catalog.TypePlugin:
				err = grant(i, l.Product, "", l.Quantity, true)
			case catalog.TypeSamplePack:
				err = grant(i, l.Product, "", l.Quantity, false)
			case catalog.TypeBundle:
				if err = grant(i, l.Product, "", l.Quantity, false); err != nil {
					return err
				}
				err = s.grantComponents(ctx, i, l, grant)
			default:
				// Not retryable: the stored order is wrong, which an operator must look at.
				err = errs.E(errs.Invalid, order.CodeInvalidOrder, fmt.Sprintf("line %d of the order has an unknown product type %q", i, l.ProductType))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ports.IssueResult{}, err
	}
	return res, nil
}

// issuedEntitlement finds the entitlement of (order, line, product) after an insert conflict.
func (s *Service) issuedEntitlement(ctx context.Context, orderID string, line int, slug string) (order.Entitlement, error) {
	ents, err := s.d.Entitlements.ByOrder(ctx, orderID)
	if err != nil {
		return order.Entitlement{}, portFailure("listing entitlements", err)
	}
	for _, e := range ents {
		if e.LineIndex == line && e.Product == slug {
			return e, nil
		}
	}
	return order.Entitlement{}, errs.Internalf("commerce: entitlement of order %s line %d %s conflicts but is not there", orderID, line, slug)
}

// grantComponents grants each component of a bundle line. The components are read from the
// catalog now; a bundle cannot be deleted while orders reference it.
func (s *Service) grantComponents(ctx context.Context, i int, l order.Line, grant func(int, string, string, int, bool) error) error {
	b, err := s.d.Catalog.ProductBySlug(ctx, l.Product)
	if repoMissing(err) {
		return errs.E(errs.Invalid, order.CodeProductNotAvailable, "bundle "+l.Product+" is no longer in the catalog")
	}
	if err != nil {
		return portFailure("loading bundle", err)
	}
	for _, slug := range b.Components {
		c, err := s.d.Catalog.ProductBySlug(ctx, slug)
		if repoMissing(err) {
			return errs.E(errs.Invalid, order.CodeProductNotAvailable, "component "+slug+" of bundle "+l.Product+" is no longer in the catalog")
		}
		if err != nil {
			return portFailure("loading bundle component", err)
		}
		if err := grant(i, c.Slug, l.Product, l.Quantity, c.Type == catalog.TypePlugin); err != nil {
			return err
		}
	}
	return nil
}

// issueLicense creates (or, on a retry, finds) the license of one plugin granted by line i.
func (s *Service) issueLicense(ctx context.Context, o order.Order, line int, slug string, quantity int) (string, error) {
	p, err := s.d.Licensing.GetProduct(ctx, slug)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			// Not retryable: the catalog sold a plugin the licensing context does not know.
			return "", errs.Wrap(errs.Invalid, order.CodeProductNotAvailable, "plugin "+slug+" has no licensing policy", err)
		}
		return "", portFailure("loading licensing policy", err)
	}
	seats := max(p.Policy.MaxActivations, 1) * quantity
	lic, err := s.d.Licensing.CreateLicense(ctx, ports.CreateLicenseCommand{
		Product:        slug,
		OwnerEmail:     o.CustomerEmail,
		MaxActivations: &seats,
		IdempotencyKey: fmt.Sprintf("fulfillment/%s/%d/%s", o.ID, line, slug),
	})
	if err != nil {
		return "", portFailure("creating license", err)
	}
	return lic.ID, nil
}

// UnlockDownloads implements ports.Fulfilment: every active entitlement of the order becomes
// downloadable. Refused (ORDER_REVOKED) once the order was refunded or disputed.
func (s *Service) UnlockDownloads(ctx context.Context, orderID string) error {
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if err := needPaid(o); err != nil {
			return err
		}
		ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
		if err != nil {
			return portFailure("listing entitlements", err)
		}
		now := s.now()
		for _, e := range ents {
			if e.Status != order.EntitlementActive || e.UnlockedAt != nil {
				continue
			}
			t := now
			e.UnlockedAt = &t
			if err := s.d.Entitlements.Update(ctx, e); err != nil {
				return portFailure("unlocking entitlement", err)
			}
		}
		return nil
	})
}

// DeliveryEmail implements ports.Fulfilment: the e-mail with every license key and download link
// of the order (ID delivery-<order id>). It reads only, so a retry renders the same e-mail.
func (s *Service) DeliveryEmail(ctx context.Context, orderID string) (ports.EmailMessage, error) {
	o, err := s.getOrder(ctx, orderID)
	if err != nil {
		return ports.EmailMessage{}, err
	}
	if err := needPaid(o); err != nil {
		return ports.EmailMessage{}, err
	}
	return s.deliveryEmail(ctx, o)
}

// MarkFulfilled implements ports.Fulfilment: paid → fulfilled; a no-op when already fulfilled.
func (s *Service) MarkFulfilled(ctx context.Context, orderID string) error {
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if o.Status == order.StatusFulfilled {
			return nil
		}
		if err := order.Transition(&o, order.StatusFulfilled, s.now()); err != nil {
			return err
		}
		return s.saveOrder(ctx, &o)
	})
}

// FlagForSupport implements ports.Fulfilment: a fulfilment that failed for good holds the order
// for review (fulfilment_failed, with the failure in StatusReason) and returns the operator's
// e-mail (ID support-<order id>-fulfilment; To "" without an operator address). What was issued
// stays (a license issue is all-or-nothing); releasing the hold starts the fulfilment again. A
// refunded or disputed order is not held again: there is nothing left to deliver.
func (s *Service) FlagForSupport(ctx context.Context, orderID, reason string) (ports.EmailMessage, error) {
	var o order.Order
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		if o, err = s.lockOrder(ctx, orderID); err != nil {
			return err
		}
		if order.IsRevoked(o.Status) {
			return nil
		}
		o.ReviewReason = order.ReviewFulfilmentFailed
		o.StatusReason = clip(reason, 500)
		return s.saveOrder(ctx, &o)
	})
	if err != nil {
		return ports.EmailMessage{}, err
	}
	detail := clip(reason, 500)
	if detail == "" {
		detail = "(no reason given)"
	}
	return s.supportEmail(o, "fulfilment", "Fulfilment failed",
		"The order could not be fulfilled automatically and is held for review: "+detail+
			". Fix the cause, then release the hold to run the fulfilment again, or refund the order.", nil)
}

// RevokeOrder implements ports.Fulfilment. Under the order lock: each license of the order that
// is not revoked yet is revoked (activations and certificates stay on record, so a reinstatement
// restores them), each entitlement is revoked, and a paid or fulfilled order becomes refunded or
// disputed with the reason. Running it again finds everything revoked and changes nothing.
func (s *Service) RevokeOrder(ctx context.Context, orderID string, status order.Status, reason string) error {
	if status != order.StatusRefunded && status != order.StatusDisputed {
		return errs.Validation("status must be refunded or disputed")
	}
	reason = clip(reason, 500)
	if reason == "" {
		reason = string(status)
	}
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if !order.IsPaid(o.Status) && !order.IsRevoked(o.Status) {
			return errs.E(errs.Conflict, order.CodeOrderNotRefundable, "only paid or fulfilled orders can be revoked; the order is "+string(o.Status))
		}
		ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
		if err != nil {
			return portFailure("listing entitlements", err)
		}
		now := s.now()
		for _, e := range ents {
			if e.LicenseID != "" {
				if err := s.revokeLicense(ctx, e.LicenseID, reason); err != nil {
					return err
				}
			}
			if e.Status == order.EntitlementRevoked {
				continue
			}
			t := now
			e.Status, e.RevokedAt = order.EntitlementRevoked, &t
			if err := s.d.Entitlements.Update(ctx, e); err != nil {
				return portFailure("revoking entitlement", err)
			}
		}
		if order.IsRevoked(o.Status) {
			return nil // refunded, then disputed (or again): the first reason stands
		}
		if err := order.Transition(&o, status, now); err != nil {
			return err
		}
		o.StatusReason = reason
		o.ReviewReason = "" // settled: nothing left to review
		return s.saveOrder(ctx, &o)
	})
}

// revokeLicense revokes a license unless it is revoked already (revoking twice must not fail).
func (s *Service) revokeLicense(ctx context.Context, id, reason string) error {
	l, err := s.d.Licensing.GetLicense(ctx, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil // nothing to revoke
		}
		return portFailure("loading license", err)
	}
	if l.Status == "revoked" {
		return nil
	}
	if _, err := s.d.Licensing.ChangeLicenseStatus(ctx, id, "revoke", reason); err != nil {
		return portFailure("revoking license", err)
	}
	return nil
}

// RefundEmail implements ports.Fulfilment: the "order refunded" (or disputed) e-mail to the
// customer (ID refund-<order id>).
func (s *Service) RefundEmail(ctx context.Context, orderID string) (ports.EmailMessage, error) {
	o, err := s.getOrder(ctx, orderID)
	if err != nil {
		return ports.EmailMessage{}, err
	}
	if !order.IsRevoked(o.Status) {
		return ports.EmailMessage{}, errs.E(errs.Conflict, order.CodeOrderNotRefundable, "the order is "+string(o.Status)+", not refunded")
	}
	return s.refundEmail(o)
}
