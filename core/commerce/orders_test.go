package commerce

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func TestCheckoutCreatesPendingOrderAndSession(t *testing.T) {
	h := newHarness(t)
	h.shop()
	r := h.checkout(nil, line("synth", 2), line(" Drums ", 1))
	o := r.Order.Order
	if o.Status != order.StatusPending || o.Source != order.SourceCheckout || o.Currency != "EUR" {
		t.Fatalf("order %+v", o)
	}
	if o.CustomerEmail != "buyer@example.com" {
		t.Fatalf("e-mail stored as %q, want lower case", o.CustomerEmail)
	}
	if o.SubtotalCents != 2*4900+1900 || o.DiscountCents != 0 || o.TotalCents != o.SubtotalCents {
		t.Fatalf("totals %d/%d/%d", o.SubtotalCents, o.DiscountCents, o.TotalCents)
	}
	if r.Order.Reference != order.Reference(o.Number) || !strings.HasPrefix(r.Order.Reference, "LS-") {
		t.Fatalf("reference %q for number %d", r.Order.Reference, o.Number)
	}
	if len(r.Order.Receipt) != 2 || r.Order.Receipt[0].LineTotalCents != 9800 || r.Order.Receipt[0].ProductName != "Synth One" ||
		r.Order.Receipt[1].Product != "drums" || r.Order.Receipt[1].ProductType != "sample_pack" {
		t.Fatalf("receipt %+v", r.Order.Receipt)
	}
	if r.Order.Summary.PluginCount != 2 || r.Order.Summary.SamplePackCount != 1 || r.Order.Summary.ReadyForDelivery {
		t.Fatalf("summary %+v", r.Order.Summary)
	}
	calls := h.pay.checkoutCalls()
	if len(calls) != 1 {
		t.Fatalf("%d checkout calls", len(calls))
	}
	req := calls[0]
	if req.OrderID != o.ID || req.Reference != r.Order.Reference || req.CustomerEmail != "buyer@example.com" || req.Currency != "EUR" ||
		len(req.Lines) != 2 || req.Lines[0] != (ports.CheckoutLine{Name: "Synth One", Product: "synth", UnitPriceCents: 4900, Quantity: 2}) {
		t.Fatalf("checkout request %+v", req)
	}
	if req.SuccessURL != "http://127.0.0.1:8080/thanks?order="+o.ID || req.CancelURL != "http://127.0.0.1:8080/cancelled?order="+o.ID {
		t.Fatalf("return URLs %q %q", req.SuccessURL, req.CancelURL)
	}
	if r.SessionID == "" || r.CheckoutURL == "" || h.order(o.ID).CheckoutSessionID != r.SessionID {
		t.Fatalf("session %q %q not stored (%q)", r.SessionID, r.CheckoutURL, h.order(o.ID).CheckoutSessionID)
	}
	if len(h.procs.fulfilmentStarts()) != 0 {
		t.Fatal("an unpaid order started its fulfilment")
	}
}

func TestCheckoutCurrencyAndURLs(t *testing.T) {
	h := newHarness(t)
	h.shop()
	r := h.checkout(func(c *ports.CheckoutCommand) {
		c.Currency = "usd"
		c.SuccessURL = "https://shop.example/ok/{ORDER_ID}?t={ACCESS_TOKEN}"
		c.CancelURL = "https://shop.example/cancel"
	}, line("synth", 1))
	o := r.Order.Order
	if o.Currency != "USD" || o.TotalCents != 5500 {
		t.Fatalf("currency %s total %d, want USD 5500", o.Currency, o.TotalCents)
	}
	req := h.pay.checkoutCalls()[0]
	if req.SuccessURL != "https://shop.example/ok/"+o.ID+"?t="+h.svc.AccessToken(o.ID) || req.CancelURL != "https://shop.example/cancel" {
		t.Fatalf("return URLs %q %q", req.SuccessURL, req.CancelURL)
	}

	// Without configured or given return pages the order page is the fallback.
	h2 := newHarness(t, func(d *Deps) { d.Config.SuccessURL, d.Config.CancelURL = "", "" })
	h2.shop()
	o2 := h2.checkout(nil, line("drums", 1)).Order.Order
	if got := h2.pay.checkoutCalls()[0].SuccessURL; got != "http://127.0.0.1:8080/orders/"+o2.ID+"?token="+h2.svc.AccessToken(o2.ID) {
		t.Fatalf("fallback success URL %q", got)
	}
}

func TestCheckoutRefusesBadInputAndWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.shop()
	h.mustProduct("gone", func(in *ports.ProductInput) { in.Active = boolp(false) })
	h.mustProduct("yen", func(in *ports.ProductInput) { in.Currency = "JPY" })
	h.mustCoupon(ports.CouponInput{Code: "OLD", Kind: "full", EndsAt: &harnessStart})
	cases := []struct {
		name string
		cmd  ports.CheckoutCommand
		code string
		kind errs.Kind
	}{
		{"no lines", ports.CheckoutCommand{CustomerEmail: "a@example.com"}, order.CodeInvalidOrder, errs.Invalid},
		{"quantity 0", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 0)}, CustomerEmail: "a@example.com"}, order.CodeInvalidQuantity, errs.Invalid},
		{"quantity 101", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 101)}, CustomerEmail: "a@example.com"}, order.CodeInvalidQuantity, errs.Invalid},
		{"same product twice", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1), line("SYNTH", 1)}, CustomerEmail: "a@example.com"}, order.CodeInvalidOrder, errs.Invalid},
		{"no e-mail", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}}, order.CodeInvalidEmail, errs.Invalid},
		{"bad e-mail", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "nobody"}, order.CodeInvalidEmail, errs.Invalid},
		{"unknown product", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("nope", 1)}, CustomerEmail: "a@example.com"}, order.CodeProductNotAvailable, errs.Invalid},
		{"inactive product", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("gone", 1)}, CustomerEmail: "a@example.com"}, order.CodeProductNotAvailable, errs.Invalid},
		{"currency the product lacks", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("drums", 1)}, CustomerEmail: "a@example.com", Currency: "USD"}, order.CodeCurrencyMismatch, errs.Invalid},
		{"products in two currencies", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1), line("yen", 1)}, CustomerEmail: "a@example.com"}, order.CodeCurrencyMismatch, errs.Invalid},
		{"bad currency", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", Currency: "EURO"}, catalog.CodeInvalidCurrency, errs.Invalid},
		{"unknown coupon", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "NOPE"}, order.CodeCouponInvalid, errs.Invalid},
		{"malformed coupon", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "!"}, order.CodeCouponInvalid, errs.Invalid},
		{"expired coupon", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "old"}, order.CodeCouponExpired, errs.Invalid},
		{"script return URL", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", SuccessURL: "javascript:alert(1)"}, order.CodeInvalidURL, errs.Invalid},
		{"relative cancel URL", ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CancelURL: "/cancel"}, order.CodeInvalidURL, errs.Invalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.svc.Checkout(h.ctx, c.cmd)
			wantCode(t, err, c.code, c.kind)
		})
	}
	if n := h.orderCount(); n != 0 || len(h.pay.checkoutCalls()) != 0 {
		t.Fatalf("refused checkouts wrote %d orders and made %d checkout calls", n, len(h.pay.checkoutCalls()))
	}
}

func TestCheckoutWithoutPaymentProvider(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Payments = nil })
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "HALF", Kind: "percent", PercentOff: 50})
	_, err := h.svc.Checkout(h.ctx, ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "HALF"})
	wantCode(t, err, order.CodePaymentsUnavailable, errs.Unavailable)
	if n := h.orderCount(); n != 0 {
		t.Fatalf("%d orders written", n)
	}
	if got := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); got.Coupon.Redemptions != 0 {
		t.Fatalf("the refused checkout redeemed the coupon: %d", got.Coupon.Redemptions)
	}
	// Admin orders and orders with nothing to pay need no provider.
	admin := h.checkout(func(c *ports.CheckoutCommand) { c.Admin = true }, line("synth", 1))
	if admin.Order.Order.Status != order.StatusPending || admin.Order.Order.Source != order.SourceAdmin || admin.CheckoutURL != "" {
		t.Fatalf("admin order %+v", admin)
	}
	h.mustCoupon(ports.CouponInput{Code: "GIFT", Kind: "full"})
	free := h.checkout(func(c *ports.CheckoutCommand) { c.CouponCode = "gift" }, line("synth", 1))
	if free.Order.Order.Status != order.StatusPaid {
		t.Fatalf("free order %+v", free.Order.Order)
	}
}

func mustV[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestCheckoutFullCouponPaysAndStartsFulfilment(t *testing.T) {
	h := newHarness(t)
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "SUPPORT-42", Kind: "full"})
	r := h.checkout(func(cmd *ports.CheckoutCommand) { cmd.CouponCode = " support-42 " }, line("synth", 1), line("drums", 2))
	o := h.order(r.Order.Order.ID)
	if o.Status != order.StatusPaid || o.PaymentProvider != order.ProviderCoupon || o.PaymentRef != "coupon:SUPPORT-42" ||
		o.TotalCents != 0 || o.DiscountCents != o.SubtotalCents || o.CouponID != c.Coupon.ID || o.PaidAt == nil {
		t.Fatalf("coupon order %+v", o)
	}
	if r.CheckoutURL != "" || len(h.pay.checkoutCalls()) != 0 {
		t.Fatal("a free order went to the payment provider")
	}
	if starts := h.procs.fulfilmentStarts(); len(starts) != 1 || starts[0] != o.ID {
		t.Fatalf("fulfilment starts %v", starts)
	}
	if got := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); got.Coupon.Redemptions != 1 {
		t.Fatalf("redemptions %d", got.Coupon.Redemptions)
	}
	// The fulfilment's first step finds the order paid already.
	if err := h.svc.MarkOrderPaid(h.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutFreeOrderSurvivesAFailedStart(t *testing.T) {
	h := newHarness(t)
	h.shop()
	h.mustCoupon(ports.CouponInput{Code: "GIFT", Kind: "full"})
	h.procs.fulfilErr = errors.New("temporal down")
	r := h.checkout(func(c *ports.CheckoutCommand) { c.CouponCode = "GIFT" }, line("synth", 1))
	h.procs.fulfilErr = nil
	n, err := h.svc.ResumeFulfilment(h.ctx)
	if err != nil || n != 1 || h.procs.fulfilmentStarts()[0] != r.Order.Order.ID {
		t.Fatalf("resume: %d %v %v", n, err, h.procs.fulfilmentStarts())
	}
}

func TestCheckoutPercentCouponDiscountGoesToTheSession(t *testing.T) {
	h := newHarness(t)
	h.shop()
	h.mustCoupon(ports.CouponInput{Code: "TENOFF", Kind: "percent", PercentOff: 10})
	r := h.checkout(func(c *ports.CheckoutCommand) { c.CouponCode = "TENOFF" }, line("synth", 2))
	o := r.Order.Order
	if o.SubtotalCents != 9800 || o.DiscountCents != 980 || o.TotalCents != 8820 || o.CouponCode != "TENOFF" {
		t.Fatalf("totals %+v", o)
	}
	if d := h.pay.checkoutCalls()[0].DiscountCents; d != 980 {
		t.Fatalf("session discount %d", d)
	}
}

func TestCheckoutProviderFailureFailsOrderAndReleasesCoupon(t *testing.T) {
	h := newHarness(t)
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "TENOFF", Kind: "percent", PercentOff: 10, MaxRedemptions: intPtr(1)})
	h.pay.checkoutErr = errs.E(errs.Unavailable, "STRIPE_DOWN", "stripe: connection refused")
	_, err := h.svc.Checkout(h.ctx, ports.CheckoutCommand{Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "TENOFF"})
	wantCode(t, err, order.CodePaymentsUnavailable, errs.Unavailable)
	if e, _ := errs.As(err); strings.Contains(e.Message, "connection refused") {
		t.Fatalf("the provider's error leaked into the message: %q", e.Message)
	}
	rows, _, _ := h.store.Orders().List(h.ctx, ports.OrderFilter{})
	if len(rows) != 1 || rows[0].Status != order.StatusFailed || rows[0].StatusReason != "checkout_failed" {
		t.Fatalf("orders after a failed checkout: %+v", rows)
	}
	if got := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); got.Coupon.Redemptions != 0 {
		t.Fatalf("the coupon was not given back: %d redemptions", got.Coupon.Redemptions)
	}
	// The redemption is free again.
	h.pay.checkoutErr = nil
	h.checkout(func(cmd *ports.CheckoutCommand) { cmd.CouponCode = "TENOFF" }, line("synth", 1))
}

func intPtr(v int) *int { return &v }

// The last redemption of a coupon, taken by 20 buyers at once: exactly one order gets it.
func TestCheckoutLastCouponRedemptionRace(t *testing.T) {
	h := newHarness(t)
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "LAST", Kind: "full", MaxRedemptions: intPtr(1)})
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = h.svc.Checkout(h.ctx, ports.CheckoutCommand{
				Lines: []ports.OrderLineInput{line("synth", 1)}, CustomerEmail: "a@example.com", CouponCode: "LAST"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case errs.CodeOf(err) != order.CodeCouponExhausted:
			t.Fatalf("a loser got %v", err)
		}
	}
	if won != 1 || h.orderCount() != 1 {
		t.Fatalf("%d winners, %d orders; want 1 and 1", won, h.orderCount())
	}
	if got := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); got.Coupon.Redemptions != 1 {
		t.Fatalf("redemptions %d", got.Coupon.Redemptions)
	}
}

func TestAccessToken(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.checkout(nil, line("synth", 1)).Order.Order
	tok := h.svc.AccessToken(o.ID)
	if tok == "" || tok != h.svc.AccessToken(o.ID) || tok == h.svc.AccessToken("ord_other") || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q is not a stable base64url MAC of the order id", tok)
	}
	other := newHarness(t, func(d *Deps) { d.Config.AccessSecret = []byte("another secret, 32 bytes long!!!") })
	if other.svc.AccessToken(o.ID) == tok {
		t.Fatal("the token does not depend on the secret")
	}
	v, err := h.svc.OrderByAccessToken(h.ctx, o.ID, tok)
	if err != nil || v.Order.ID != o.ID {
		t.Fatalf("by token: %v %+v", err, v.Order)
	}
	for _, bad := range []string{"", tok[:len(tok)-1], tok + "A", strings.ToUpper(tok), h.svc.AccessToken("ord_other")} {
		_, err := h.svc.OrderByAccessToken(h.ctx, o.ID, bad)
		wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)
	}
	_, err = h.svc.OrderByAccessToken(h.ctx, "ord_missing", h.svc.AccessToken("ord_missing"))
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)

	// Without a secret a token is computable by anyone: every token is refused.
	open := newHarness(t, func(d *Deps) { d.Config.AccessSecret = nil })
	open.shop()
	o2 := open.checkout(nil, line("synth", 1)).Order.Order
	_, err = open.svc.OrderByAccessToken(open.ctx, o2.ID, open.svc.AccessToken(o2.ID))
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)
}

func TestGetAndListOrders(t *testing.T) {
	h := newHarness(t)
	h.shop()
	a := h.checkout(nil, line("synth", 1)).Order.Order
	b := h.checkout(func(c *ports.CheckoutCommand) { c.CustomerEmail = "other@example.com" }, line("drums", 1)).Order.Order
	h.payOrder(b, "evt_b")
	_, err := h.svc.GetOrder(h.ctx, "ord_missing")
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)
	v, err := h.svc.GetOrder(h.ctx, a.ID)
	if err != nil || v.Order.ID != a.ID || v.Summary.DownloadCount != 1 {
		t.Fatalf("GetOrder: %v %+v", err, v.Summary)
	}
	rows, _, err := h.svc.ListOrders(h.ctx, ports.OrderFilter{Status: "PAID"})
	if err != nil || len(rows) != 1 || rows[0].Order.ID != b.ID || rows[0].Reference == "" || rows[0].Entitlements != nil {
		t.Fatalf("paid orders: %v %+v", err, rows)
	}
	rows, _, err = h.svc.ListOrders(h.ctx, ports.OrderFilter{CustomerEmail: " Buyer@EXAMPLE.com "})
	if err != nil || len(rows) != 1 || rows[0].Order.ID != a.ID {
		t.Fatalf("orders of buyer@: %v %+v", err, rows)
	}
	_, _, err = h.svc.ListOrders(h.ctx, ports.OrderFilter{Status: "shipped"})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
}

func TestOrderViewCountsDeliveries(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 3), line("drums", 1), line("studio", 1))
	v, err := h.svc.GetOrder(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	s := v.Summary
	// Licenses: synth and the bundle's keys. Downloads: synth, drums and the bundle's loops (keys
	// has no version, the bundle itself no file).
	if s.PluginCount != 3 || s.SamplePackCount != 1 || s.BundleCount != 1 || s.LicenseCount != 2 || s.DownloadCount != 3 || !s.ReadyForDelivery {
		t.Fatalf("summary %+v", s)
	}
	if len(v.Entitlements) != 5 {
		t.Fatalf("%d entitlements", len(v.Entitlements))
	}
}

func TestMarkPaid(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.checkout(func(c *ports.CheckoutCommand) { c.Admin = true }, line("synth", 1)).Order.Order
	v, err := h.svc.MarkPaid(h.ctx, o.ID, " INV-2026-7 ")
	if err != nil {
		t.Fatal(err)
	}
	got := v.Order
	if got.Status != order.StatusPaid || got.PaymentProvider != order.ProviderAdmin || got.PaymentRef != "INV-2026-7" ||
		got.PaidAmountCents != got.TotalCents || got.PaidCurrency != "EUR" || got.PaidAt == nil {
		t.Fatalf("marked paid: %+v", got)
	}
	// Again: the fulfilment is started again (a no-op while it runs), nothing else changes.
	if _, err := h.svc.MarkPaid(h.ctx, o.ID, "other"); err != nil {
		t.Fatal(err)
	}
	if h.order(o.ID).PaymentRef != "INV-2026-7" || count(h.procs.fulfilmentStarts(), o.ID) != 2 {
		t.Fatalf("second MarkPaid: %+v %v", h.order(o.ID), h.procs.fulfilmentStarts())
	}
	h.fulfil(o.ID)
	_, err = h.svc.MarkPaid(h.ctx, o.ID, "")
	wantCode(t, err, order.CodeOrderNotPayable, errs.Conflict)
	_, err = h.svc.MarkPaid(h.ctx, "ord_missing", "")
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)

	// A default reference; a failed start is UNAVAILABLE and a retry starts it.
	o2 := h.checkout(func(c *ports.CheckoutCommand) { c.Admin = true }, line("drums", 1)).Order.Order
	h.procs.fulfilErr = errors.New("down")
	_, err = h.svc.MarkPaid(h.ctx, o2.ID, "")
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	if got := h.order(o2.ID); got.Status != order.StatusPaid || got.PaymentRef != "admin:"+o2.ID {
		t.Fatalf("order after a failed start: %+v", got)
	}
	h.procs.fulfilErr = nil
	if _, err := h.svc.MarkPaid(h.ctx, o2.ID, ""); err != nil || count(h.procs.fulfilmentStarts(), o2.ID) != 1 {
		t.Fatalf("retry: %v %v", err, h.procs.fulfilmentStarts())
	}
}

func TestMarkPaidRefusesHeldOrder(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.checkout(nil, line("synth", 1)).Order.Order
	ev := paidEvent(o, "evt_low")
	ev.AmountCents = 100
	if _, err := h.svc.HandlePayment(h.ctx, ev); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.MarkPaid(h.ctx, o.ID, "")
	wantCode(t, err, order.CodeOrderInReview, errs.Conflict)
}

func TestRefund(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	pending := h.checkout(nil, line("drums", 1)).Order.Order
	_, err := h.svc.Refund(h.ctx, pending.ID, "", true)
	wantCode(t, err, order.CodeOrderNotRefundable, errs.Conflict)

	// The provider refuses: nothing is revoked.
	h.pay.refundErr = errs.E(errs.Unavailable, "STRIPE_DOWN", "down")
	_, err = h.svc.Refund(h.ctx, o.ID, "customer asked", true)
	wantCode(t, err, order.CodePaymentsUnavailable, errs.Unavailable)
	if len(h.procs.revocationStarts()) != 0 {
		t.Fatal("revocation started although the refund failed")
	}
	h.pay.refundErr = nil

	v, err := h.svc.Refund(h.ctx, o.ID, " customer asked ", true)
	if err != nil {
		t.Fatal(err)
	}
	if calls := h.pay.refundCalls(); len(calls) != 1 || calls[0] != (refundCall{PaymentRef: o.PaymentRef, Reason: "customer asked"}) {
		t.Fatalf("refund calls %+v", calls)
	}
	if starts := h.procs.revocationStarts(); len(starts) != 1 || starts[0] != (revocationStart{OrderID: o.ID, Status: "refunded", Reason: "customer asked"}) {
		t.Fatalf("revocation starts %+v", starts)
	}
	if v.Order.ID != o.ID {
		t.Fatalf("view of %s", v.Order.ID)
	}

	// Without refund_payment the provider is not called; the revocation still starts.
	o2, _, _ := h.paidOrder(line("drums", 1))
	if _, err := h.svc.Refund(h.ctx, o2.ID, "", false); err != nil {
		t.Fatal(err)
	}
	if len(h.pay.refundCalls()) != 1 || len(h.procs.revocationStarts()) != 2 || h.procs.revocationStarts()[1].Reason != "refunded by an admin" {
		t.Fatalf("refund without provider: %+v %+v", h.pay.refundCalls(), h.procs.revocationStarts())
	}
}

func TestRefundWithoutProvider(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	h.svc.d.Payments = nil
	_, err := h.svc.Refund(h.ctx, o.ID, "", true)
	wantCode(t, err, order.CodePaymentsUnavailable, errs.Unavailable)
	if len(h.procs.revocationStarts()) != 0 {
		t.Fatal("revocation started without a refund")
	}
	// A coupon order has nothing to refund at a provider.
	h.mustCoupon(ports.CouponInput{Code: "GIFT", Kind: "full"})
	c := h.checkout(func(cmd *ports.CheckoutCommand) { cmd.CouponCode = "GIFT" }, line("drums", 1)).Order.Order
	if _, err := h.svc.Refund(h.ctx, c.ID, "", true); err != nil || len(h.procs.revocationStarts()) != 1 {
		t.Fatalf("coupon refund: %v %+v", err, h.procs.revocationStarts())
	}
	// A generic payment must be refunded at its provider first.
	g := h.checkout(func(cmd *ports.CheckoutCommand) { cmd.Admin = true }, line("keys", 1)).Order.Order
	ev := paidEvent(g, "gen-1")
	ev.Provider = "generic"
	if _, err := h.svc.HandlePayment(h.ctx, ev); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Refund(h.ctx, g.ID, "", true)
	wantCode(t, err, order.CodeOrderNotRefundable, errs.Invalid)
}

func TestReleaseReview(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.checkout(nil, line("synth", 1)).Order.Order
	ev := paidEvent(o, "evt_short")
	ev.AmountCents = o.TotalCents - 1
	if out, err := h.svc.HandlePayment(h.ctx, ev); err != nil || out.Outcome != OutcomeHeld {
		t.Fatalf("short payment: %v %+v", err, out)
	}
	v, err := h.svc.ReleaseReview(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Order.Status != order.StatusPaid || v.Order.ReviewReason != "" || v.Order.PaidAmountCents != o.TotalCents-1 || v.Order.PaymentRef != ev.PaymentRef {
		t.Fatalf("released: %+v", v.Order)
	}
	if starts := h.procs.fulfilmentStarts(); len(starts) != 1 || starts[0] != o.ID {
		t.Fatalf("fulfilment starts %v", starts)
	}
	// Releasing again changes nothing and restarts the (unfinished) fulfilment only.
	if _, err := h.svc.ReleaseReview(h.ctx, o.ID); err != nil || len(h.procs.fulfilmentStarts()) != 2 {
		t.Fatalf("second release: %v %v", err, h.procs.fulfilmentStarts())
	}

	// A partial refund on a fulfilled order: released, it stays fulfilled and nothing starts.
	f, _, _ := h.paidOrder(line("drums", 1))
	if _, err := h.svc.HandlePayment(h.ctx, ports.PaymentEventIn{Provider: "stripe", EventID: "evt_part", Type: ports.PaymentPartialRefund,
		PaymentRef: f.PaymentRef, AmountCents: 100, ChargeAmountCents: f.TotalCents, Currency: "eur"}); err != nil {
		t.Fatal(err)
	}
	starts := len(h.procs.fulfilmentStarts())
	v, err = h.svc.ReleaseReview(h.ctx, f.ID)
	if err != nil || v.Order.Status != order.StatusFulfilled || v.Order.ReviewReason != "" || len(h.procs.fulfilmentStarts()) != starts {
		t.Fatalf("released partial refund: %v %+v", err, v.Order)
	}
	_, err = h.svc.ReleaseReview(h.ctx, "ord_missing")
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"  short  ", 10, "short"},
		{"abcdef", 3, "abc"},
		{"h\u00e9llo", 2, "h"}, // never half a character
		{"h\u00e9llo", 3, "h\u00e9"},
	} {
		if got := clip(c.in, c.n); got != c.want {
			t.Errorf("clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1))
	if _, err := h.svc.FlagForSupport(h.ctx, o.ID, strings.Repeat("x", 2000)); err != nil {
		t.Fatal(err)
	}
	if n := len(h.order(o.ID).StatusReason); n != 500 {
		t.Fatalf("stored a reason of %d bytes", n)
	}
}
