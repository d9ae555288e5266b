package commerce

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// ---------------------------------------------------------------------------------------------
// Helpers of the order half of the service (repoMissing and portFailure are in catalog.go).

func orderNotFound() error {
	return errs.E(errs.NotFound, order.CodeOrderNotFound, "order not found")
}

// getOrder loads an order; ORDER_NOT_FOUND when there is none.
func (s *Service) getOrder(ctx context.Context, id string) (order.Order, error) {
	o, err := s.d.Orders.Get(ctx, id)
	if repoMissing(err) {
		return o, orderNotFound()
	}
	if err != nil {
		return o, portFailure("loading order", err)
	}
	return o, nil
}

// lockOrder loads and row-locks an order inside the transaction of ctx.
func (s *Service) lockOrder(ctx context.Context, id string) (order.Order, error) {
	o, err := s.d.Orders.GetForUpdate(ctx, id)
	if repoMissing(err) {
		return o, orderNotFound()
	}
	if err != nil {
		return o, portFailure("locking order", err)
	}
	return o, nil
}

// saveOrder writes o with UpdatedAt now.
func (s *Service) saveOrder(ctx context.Context, o *order.Order) error {
	o.UpdatedAt = s.now()
	if err := s.d.Orders.Update(ctx, *o); err != nil {
		return portFailure("updating order", err)
	}
	return nil
}

// unfinished reports a paid order that is not held and not fulfilled: one whose fulfilment must
// run (again).
func unfinished(o order.Order) bool {
	return o.Status == order.StatusPaid && o.ReviewReason == "" && o.FulfilledAt == nil
}

// startFulfilment starts the order's fulfilment workflow. A failure is UNAVAILABLE: the order is
// committed and paid, so a retry of the caller (or ResumeFulfilment) starts it.
func (s *Service) startFulfilment(ctx context.Context, orderID string) error {
	if err := s.d.Processes.StartFulfillment(ctx, orderID); err != nil {
		s.log.Error("starting fulfilment failed", "order", orderID, "err", err)
		return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the order's fulfilment could not be started; try again", err)
	}
	return nil
}

func (s *Service) startRevocation(ctx context.Context, orderID string, status order.Status, reason string) error {
	if err := s.d.Processes.StartRevocation(ctx, orderID, string(status), reason); err != nil {
		s.log.Error("starting revocation failed", "order", orderID, "err", err)
		return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the order's revocation could not be started; try again", err)
	}
	return nil
}

// clip shortens free text stored in a reason column.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// ---------------------------------------------------------------------------------------------
// Access tokens.

// accessContext separates order access tokens from any other MAC made with the same secret.
const accessContext = "samplero-order-access\x00"

// AccessToken implements ports.Commerce: base64url(HMAC-SHA-256(AccessSecret, context ‖ order id)).
// It is stable, so the links of a delivery e-mail keep working, and cannot be forged without the
// secret.
func (s *Service) AccessToken(orderID string) string {
	m := hmac.New(sha256.New, s.d.Config.AccessSecret)
	m.Write([]byte(accessContext + orderID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenMatches compares a presented token in constant time. Without a configured secret every
// token is refused: a MAC under an empty key is computable by anyone.
func (s *Service) tokenMatches(orderID, token string) bool {
	if len(s.d.Config.AccessSecret) == 0 || token == "" || orderID == "" {
		return false
	}
	return hmac.Equal([]byte(s.AccessToken(orderID)), []byte(token))
}

// publicURL joins the configured base and a path.
func (s *Service) publicURL(path string) string {
	return strings.TrimRight(s.d.Config.PublicURL, "/") + path
}

// OrderPageURL is the customer's order page, opened with the access token.
func (s *Service) orderPageURL(orderID string) string {
	return s.publicURL("/orders/" + url.PathEscape(orderID) + "?token=" + url.QueryEscape(s.AccessToken(orderID)))
}

// downloadPageURL is the stable download link of one product of an order: the server turns it
// into a fresh signed link on every click (DownloadLink), so the e-mail never goes stale.
func (s *Service) downloadPageURL(orderID, slug string) string {
	return s.publicURL("/orders/" + url.PathEscape(orderID) + "/download/" + url.PathEscape(slug) +
		"?token=" + url.QueryEscape(s.AccessToken(orderID)))
}

// ---------------------------------------------------------------------------------------------
// Checkout.

// priceLines fills the lines' product fields and unit prices from the catalog in currency ("" =
// the first product's primary currency, which is returned). With forSale, a product must be
// active (a Payment Link already paid is honoured even for a product unpublished since).
func (s *Service) priceLines(ctx context.Context, lines []order.Line, currency string, forSale bool) ([]order.Line, string, error) {
	out := make([]order.Line, len(lines))
	for i, l := range lines {
		p, err := s.d.Catalog.ProductBySlug(ctx, l.Product)
		if repoMissing(err) || err == nil && forSale && !p.Active {
			return nil, "", errs.E(errs.Invalid, order.CodeProductNotAvailable, "product "+l.Product+" is not available")
		}
		if err != nil {
			return nil, "", portFailure("loading product", err)
		}
		if currency == "" {
			currency = p.Currency
		}
		price, ok := catalog.PriceIn(p, currency)
		if !ok {
			return nil, "", errs.E(errs.Invalid, order.CodeCurrencyMismatch, "product "+p.Slug+" is not sold in "+currency)
		}
		out[i] = order.Line{
			Product: p.Slug, ProductName: p.Name, ProductType: string(p.Type),
			Quantity: l.Quantity, UnitPriceCents: price,
		}
	}
	return out, currency, nil
}

// returnURL checks a caller-supplied Checkout return page: absolute http(s) only, so that the
// payment page cannot be turned into a redirect to another scheme.
func returnURL(field, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2000 {
		return "", errs.E(errs.Invalid, order.CodeInvalidURL, field+" must be an absolute http or https URL")
	}
	return raw, nil
}

// fillReturnURL replaces {ORDER_ID} and {ACCESS_TOKEN} in a return page; the order page is the
// fallback when neither the call nor the configuration names one.
func (s *Service) fillReturnURL(tmpl, orderID string) string {
	if tmpl == "" {
		return s.orderPageURL(orderID)
	}
	r := strings.NewReplacer("{ORDER_ID}", url.QueryEscape(orderID), "{ACCESS_TOKEN}", url.QueryEscape(s.AccessToken(orderID)))
	return r.Replace(tmpl)
}

// Checkout implements ports.Commerce. Everything that can be refused is checked before anything is
// written; the coupon redemption and the order insert commit together, so an exhausted coupon
// writes nothing. An order with nothing to pay is paid in the same transaction (so that
// ResumeFulfilment finds it after a crash) and its fulfilment started; an admin order stays
// pending; any other gets a Checkout Session, and when the provider fails the order is marked
// failed and its coupon given back.
func (s *Service) Checkout(ctx context.Context, cmd ports.CheckoutCommand) (ports.CheckoutResult, error) {
	lines := make([]order.Line, len(cmd.Lines))
	for i, l := range cmd.Lines {
		lines[i] = order.Line{Product: strings.ToLower(strings.TrimSpace(l.Product)), Quantity: l.Quantity}
	}
	if err := order.ValidateLines(lines); err != nil {
		return ports.CheckoutResult{}, err
	}
	email, err := order.NormalizeEmail(cmd.CustomerEmail)
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	currency := ""
	if strings.TrimSpace(cmd.Currency) != "" {
		if currency, err = catalog.NormalizeCurrency(cmd.Currency); err != nil {
			return ports.CheckoutResult{}, err
		}
	}
	successURL, err := returnURL("success_url", cmd.SuccessURL)
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	cancelURL, err := returnURL("cancel_url", cmd.CancelURL)
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	if lines, currency, err = s.priceLines(ctx, lines, currency, true); err != nil {
		return ports.CheckoutResult{}, err
	}
	now := s.now()
	o := order.Order{
		ID:            order.NewOrderID(),
		CustomerEmail: email,
		CustomerID:    strings.TrimSpace(cmd.CustomerID),
		Source:        order.SourceCheckout,
		Currency:      currency,
		Lines:         lines,
		Status:        order.StatusPending,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if cmd.Admin {
		o.Source = order.SourceAdmin
	}
	sub, err := order.Subtotal(lines)
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	var discount int64
	if strings.TrimSpace(cmd.CouponCode) != "" {
		c, err := s.checkoutCoupon(ctx, cmd.CouponCode, now)
		if err != nil {
			return ports.CheckoutResult{}, err
		}
		if discount, err = order.Discount(c, sub, currency); err != nil {
			return ports.CheckoutResult{}, err
		}
		o.CouponID, o.CouponCode = c.ID, c.Code
	}
	if err := order.SetTotals(&o, discount); err != nil {
		return ports.CheckoutResult{}, err
	}
	free := o.TotalCents == 0
	if !free && !cmd.Admin && s.d.Payments == nil {
		return ports.CheckoutResult{}, errs.E(errs.Unavailable, order.CodePaymentsUnavailable, "payments are not configured")
	}
	if free {
		o.PaymentProvider, o.PaymentRef = order.ProviderFree, "free:"+o.ID
		if o.CouponCode != "" {
			o.PaymentProvider, o.PaymentRef = order.ProviderCoupon, "coupon:"+o.CouponCode
		}
		o.PaidCurrency = o.Currency
		if err := order.Transition(&o, order.StatusPaid, now); err != nil {
			return ports.CheckoutResult{}, err
		}
	}
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		if o.CouponID != "" {
			// The conditional update decides the race for the last redemption; the loser's
			// COUPON_EXHAUSTED rolls back everything.
			if err := s.d.Coupons.Redeem(ctx, o.CouponID); err != nil {
				return portFailure("redeeming coupon", err)
			}
		}
		ins, err := s.d.Orders.Insert(ctx, o)
		if err != nil {
			return portFailure("inserting order", err)
		}
		o.Number = ins.Number
		return nil
	})
	if err != nil {
		return ports.CheckoutResult{}, err
	}

	switch {
	case free:
		// The order is paid and committed: if the start fails, ResumeFulfilment starts it later.
		// Failing the call would make the buyer order (and redeem) again.
		_ = s.startFulfilment(ctx, o.ID)
		return s.checkoutResult(ctx, o, "", "")
	case cmd.Admin:
		return s.checkoutResult(ctx, o, "", "")
	}

	req := ports.CheckoutRequest{
		OrderID:       o.ID,
		Reference:     order.Reference(o.Number),
		CustomerEmail: o.CustomerEmail,
		Currency:      o.Currency,
		DiscountCents: o.DiscountCents,
		SuccessURL:    s.fillReturnURL(firstNonEmpty(successURL, s.d.Config.SuccessURL), o.ID),
		CancelURL:     s.fillReturnURL(firstNonEmpty(cancelURL, s.d.Config.CancelURL), o.ID),
	}
	for _, l := range o.Lines {
		req.Lines = append(req.Lines, ports.CheckoutLine{Name: l.ProductName, Product: l.Product, UnitPriceCents: l.UnitPriceCents, Quantity: l.Quantity})
	}
	sess, perr := s.d.Payments.CreateCheckout(ctx, req)
	if perr != nil {
		s.log.Error("creating checkout session failed", "order", o.ID, "err", perr)
		if err := s.abandon(ctx, o.ID, "checkout_failed"); err != nil {
			s.log.Error("failing the abandoned order failed", "order", o.ID, "err", err)
		}
		return ports.CheckoutResult{}, errs.Wrap(errs.Unavailable, order.CodePaymentsUnavailable, "the payment provider is unavailable; try again", perr)
	}
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		// Reload under the lock: the webhook may already have paid the order.
		cur, err := s.lockOrder(ctx, o.ID)
		if err != nil {
			return err
		}
		cur.CheckoutSessionID = sess.ID
		if err := s.saveOrder(ctx, &cur); err != nil {
			return err
		}
		o = cur
		return nil
	})
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	return s.checkoutResult(ctx, o, sess.URL, sess.ID)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Service) checkoutResult(ctx context.Context, o order.Order, checkoutURL, sessionID string) (ports.CheckoutResult, error) {
	v, err := s.orderView(ctx, o, true)
	if err != nil {
		return ports.CheckoutResult{}, err
	}
	return ports.CheckoutResult{Order: v, CheckoutURL: checkoutURL, SessionID: sessionID}, nil
}

// checkoutCoupon finds a coupon a buyer typed and checks that it can be redeemed now. A code that
// cannot exist is COUPON_INVALID like an unknown one.
func (s *Service) checkoutCoupon(ctx context.Context, typed string, now time.Time) (order.Coupon, error) {
	invalid := errs.E(errs.Invalid, order.CodeCouponInvalid, "coupon code is invalid")
	code, err := order.NormalizeCouponCode(typed)
	if err != nil {
		return order.Coupon{}, invalid
	}
	c, err := s.d.Coupons.ByCode(ctx, code)
	if repoMissing(err) {
		return order.Coupon{}, invalid
	}
	if err != nil {
		return order.Coupon{}, portFailure("loading coupon", err)
	}
	if err := order.CheckRedeemable(c, now); err != nil {
		return order.Coupon{}, err
	}
	return c, nil
}

// abandon marks a pending, unheld order failed with reason and gives its coupon back, in one
// transaction. Anything else is left alone.
func (s *Service) abandon(ctx context.Context, orderID, reason string) error {
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		o, err := s.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if o.Status != order.StatusPending || o.ReviewReason != "" {
			return nil
		}
		return s.failPending(ctx, &o, reason)
	})
}

// failPending moves a pending order to failed and releases its coupon (inside a transaction).
func (s *Service) failPending(ctx context.Context, o *order.Order, reason string) error {
	if err := order.Transition(o, order.StatusFailed, s.now()); err != nil {
		return err
	}
	o.StatusReason = reason
	if o.CouponID != "" {
		if err := s.d.Coupons.Release(ctx, o.CouponID); err != nil && !repoMissing(err) {
			return portFailure("releasing coupon", err)
		}
	}
	return s.saveOrder(ctx, o)
}

// ---------------------------------------------------------------------------------------------
// Reads.

// GetOrder implements ports.Commerce (admin): the order with its entitlements.
func (s *Service) GetOrder(ctx context.Context, id string) (ports.OrderView, error) {
	o, err := s.getOrder(ctx, id)
	if err != nil {
		return ports.OrderView{}, err
	}
	return s.orderView(ctx, o, true)
}

// ListOrders implements ports.Commerce (admin): a page of orders, newest first, without
// entitlements.
func (s *Service) ListOrders(ctx context.Context, f ports.OrderFilter) ([]ports.OrderView, string, error) {
	if err := checkPage(f.Page); err != nil {
		return nil, "", err
	}
	if f.Status != "" {
		st, err := order.ParseStatus(string(f.Status))
		if err != nil {
			return nil, "", err
		}
		f.Status = st
	}
	f.CustomerEmail = strings.ToLower(strings.TrimSpace(f.CustomerEmail))
	rows, next, err := s.d.Orders.List(ctx, f)
	if err != nil {
		return nil, "", portFailure("listing orders", err)
	}
	out := make([]ports.OrderView, 0, len(rows))
	for _, o := range rows {
		v, err := s.orderView(ctx, o, false)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// OrderByAccessToken implements ports.Commerce: the customer's view through the token of the
// delivery e-mail. The token is checked before the order is looked up, and a wrong one reads like
// a missing order, so that the answer says nothing about which order ids exist.
func (s *Service) OrderByAccessToken(ctx context.Context, orderID, token string) (ports.OrderView, error) {
	if !s.tokenMatches(orderID, token) {
		return ports.OrderView{}, orderNotFound()
	}
	return s.GetOrder(ctx, orderID)
}

// orderView renders an order. single adds the entitlements and the counts that need them (license
// and download counts); lists leave them zero to stay one query per page.
func (s *Service) orderView(ctx context.Context, o order.Order, single bool) (ports.OrderView, error) {
	v := ports.OrderView{Order: o, Reference: order.Reference(o.Number), Receipt: make([]ports.ReceiptLine, 0, len(o.Lines))}
	for _, l := range o.Lines {
		total, _ := order.LineTotal(l)
		v.Receipt = append(v.Receipt, ports.ReceiptLine{
			Product: l.Product, ProductName: l.ProductName, ProductType: l.ProductType,
			Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: total,
		})
		switch catalog.ProductType(l.ProductType) {
		case catalog.TypePlugin:
			v.Summary.PluginCount += l.Quantity
		case catalog.TypeSamplePack:
			v.Summary.SamplePackCount += l.Quantity
		case catalog.TypeBundle:
			v.Summary.BundleCount += l.Quantity
		}
	}
	v.Summary.ReadyForDelivery = o.Status == order.StatusFulfilled
	if !single {
		return v, nil
	}
	ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
	if err != nil {
		return ports.OrderView{}, portFailure("listing entitlements", err)
	}
	v.Entitlements = ents
	for _, e := range ents {
		if e.LicenseID != "" {
			v.Summary.LicenseCount++
		}
	}
	granted, err := s.grantedProducts(ctx, o)
	if err != nil {
		return ports.OrderView{}, err
	}
	for _, p := range granted {
		ok, err := s.downloadable(ctx, p)
		if err != nil {
			return ports.OrderView{}, err
		}
		if ok {
			v.Summary.DownloadCount++
		}
	}
	return v, nil
}

// grantedProducts lists the distinct products an order grants: its lines and, for bundles, their
// components, in line order.
func (s *Service) grantedProducts(ctx context.Context, o order.Order) ([]catalog.Product, error) {
	seen := map[string]bool{}
	var out []catalog.Product
	add := func(slug string) (catalog.Product, bool, error) {
		if seen[slug] {
			return catalog.Product{}, false, nil
		}
		seen[slug] = true
		p, err := s.d.Catalog.ProductBySlug(ctx, slug)
		if repoMissing(err) {
			return p, false, nil // deleted from the catalog: nothing to download
		}
		if err != nil {
			return p, false, portFailure("loading product", err)
		}
		out = append(out, p)
		return p, true, nil
	}
	for _, l := range o.Lines {
		p, ok, err := add(l.Product)
		if err != nil {
			return nil, err
		}
		if !ok || p.Type != catalog.TypeBundle {
			continue
		}
		for _, c := range p.Components {
			if _, _, err := add(c); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// downloadable reports whether a product has a published version with a file.
func (s *Service) downloadable(ctx context.Context, p catalog.Product) (bool, error) {
	vs, err := s.d.Catalog.Versions(ctx, p.ID)
	if err != nil {
		return false, portFailure("listing versions", err)
	}
	for _, v := range vs {
		if v.Published && v.StorageKey != "" {
			return true, nil
		}
	}
	return false, nil
}

// ---------------------------------------------------------------------------------------------
// Admin actions.

// MarkPaid implements ports.Commerce (admin): a pending order is paid outside any provider and its
// fulfilment starts. Calling it again on the paid, unfinished order starts the fulfilment again
// (a no-op when it runs), so an admin can retry after UNAVAILABLE. A held order must be released
// instead (ORDER_IN_REVIEW).
func (s *Service) MarkPaid(ctx context.Context, orderID, paymentRef string) (ports.OrderView, error) {
	var o order.Order
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		if o, err = s.lockOrder(ctx, orderID); err != nil {
			return err
		}
		if o.ReviewReason != "" {
			return errs.E(errs.Conflict, order.CodeOrderInReview, "the order is held for review ("+o.ReviewReason+"); release it instead")
		}
		if unfinished(o) {
			return nil
		}
		if o.Status != order.StatusPending {
			return errs.E(errs.Conflict, order.CodeOrderNotPayable, "only pending orders can be marked paid; the order is "+string(o.Status))
		}
		ref := clip(paymentRef, 200)
		if ref == "" {
			ref = "admin:" + o.ID
		}
		o.PaymentProvider, o.PaymentRef = order.ProviderAdmin, ref
		o.PaidAmountCents, o.PaidCurrency = o.TotalCents, o.Currency
		if err := order.Transition(&o, order.StatusPaid, s.now()); err != nil {
			return err
		}
		return s.saveOrder(ctx, &o)
	})
	if err != nil {
		return ports.OrderView{}, err
	}
	if err := s.startFulfilment(ctx, o.ID); err != nil {
		return ports.OrderView{}, err
	}
	return s.orderView(ctx, o, true)
}

// Refund implements ports.Commerce (admin): a paid or fulfilled order is refunded at Stripe when
// asked (orders paid by coupon, by an admin or for free have nothing to refund there; a generic
// provider's payment must be refunded at that provider) and then revoked by the revocation
// workflow, like a provider refund. The order reads refunded once that workflow ran.
func (s *Service) Refund(ctx context.Context, orderID, reason string, refundPayment bool) (ports.OrderView, error) {
	o, err := s.getOrder(ctx, orderID)
	if err != nil {
		return ports.OrderView{}, err
	}
	if !order.IsPaid(o.Status) {
		return ports.OrderView{}, errs.E(errs.Conflict, order.CodeOrderNotRefundable, "only paid or fulfilled orders can be refunded; the order is "+string(o.Status))
	}
	reason = clip(reason, 500)
	if reason == "" {
		reason = "refunded by an admin"
	}
	if refundPayment {
		switch o.PaymentProvider {
		case order.ProviderStripe:
			if s.d.Payments == nil {
				return ports.OrderView{}, errs.E(errs.Unavailable, order.CodePaymentsUnavailable, "payments are not configured")
			}
			if o.PaymentRef == "" {
				return ports.OrderView{}, errs.E(errs.Conflict, order.CodeOrderNotRefundable, "the order has no payment reference to refund")
			}
			if err := s.d.Payments.Refund(ctx, o.PaymentRef, reason); err != nil {
				s.log.Error("refunding payment failed", "order", o.ID, "err", err)
				if errs.KindOf(err) == errs.Unavailable || errs.KindOf(err) == errs.Internal {
					return ports.OrderView{}, errs.Wrap(errs.Unavailable, order.CodePaymentsUnavailable, "the payment provider could not refund the payment; try again", err)
				}
				return ports.OrderView{}, err
			}
		case order.ProviderGeneric:
			return ports.OrderView{}, errs.E(errs.Invalid, order.CodeOrderNotRefundable,
				"this order was paid through the generic payment provider: refund it there, then call again without refund_payment")
		}
	}
	if err := s.startRevocation(ctx, o.ID, order.StatusRefunded, reason); err != nil {
		return ports.OrderView{}, err
	}
	return s.GetOrder(ctx, o.ID)
}

// ReleaseReview implements ports.Commerce (admin): clears the hold. A payment that was held
// (amount mismatch, or paid after the order had failed) is accepted and the order becomes paid;
// a paid order whose fulfilment is unfinished has it started. Releasing an order that is not
// held changes nothing but still starts an unfinished fulfilment.
func (s *Service) ReleaseReview(ctx context.Context, orderID string) (ports.OrderView, error) {
	var o order.Order
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		if o, err = s.lockOrder(ctx, orderID); err != nil {
			return err
		}
		if o.ReviewReason == "" {
			return nil
		}
		switch {
		case o.ReviewReason == order.ReviewAmountMismatch && o.Status == order.StatusPending,
			o.ReviewReason == order.ReviewPaidAfterFailure && o.Status == order.StatusFailed:
			if err := order.Transition(&o, order.StatusPaid, s.now()); err != nil {
				return err
			}
			o.StatusReason = "payment accepted after review"
		}
		o.ReviewReason = ""
		return s.saveOrder(ctx, &o)
	})
	if err != nil {
		return ports.OrderView{}, err
	}
	if unfinished(o) {
		if err := s.startFulfilment(ctx, o.ID); err != nil {
			return ports.OrderView{}, err
		}
	}
	return s.orderView(ctx, o, true)
}
