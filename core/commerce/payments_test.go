package commerce

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func (h *harness) event(provider, id string) order.PaymentEvent {
	h.t.Helper()
	e, err := h.store.PaymentEvents().Get(h.ctx, provider, id)
	if err != nil {
		h.t.Fatalf("event %s/%s: %v", provider, id, err)
	}
	return e
}

func (h *harness) handle(ev ports.PaymentEventIn) ports.PaymentOutcome {
	h.t.Helper()
	out, err := h.svc.HandlePayment(h.ctx, ev)
	if err != nil {
		h.t.Fatalf("HandlePayment(%s %s): %v", ev.Type, ev.EventID, err)
	}
	return out
}

func TestPaymentSucceededPaysAndStartsFulfilment(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.checkout(nil, line("synth", 1)).Order.Order
	o = h.order(o.ID)
	out := h.handle(paidEvent(o, "evt_1"))
	if out != (ports.PaymentOutcome{OrderID: o.ID, Outcome: OutcomeFulfilling}) {
		t.Fatalf("outcome %+v", out)
	}
	got := h.order(o.ID)
	if got.Status != order.StatusPaid || got.PaymentProvider != "stripe" || got.PaymentRef != "pi_evt_1" ||
		got.PaidAmountCents != o.TotalCents || got.PaidCurrency != "EUR" || got.PaidAt == nil || !got.PaidAt.Equal(harnessStart) {
		t.Fatalf("paid order %+v", got)
	}
	if e := h.event("stripe", "evt_1"); e.Outcome != OutcomeFulfilling || e.OrderID != o.ID || e.Type != "checkout.session.completed" {
		t.Fatalf("recorded event %+v", e)
	}
	if starts := h.procs.fulfilmentStarts(); len(starts) != 1 || starts[0] != o.ID {
		t.Fatalf("fulfilment starts %v", starts)
	}

	// The same event again: acknowledged, nothing new; the order is still unfinished (no workflow
	// runs here), so its fulfilment is started again, which is a no-op for a running workflow.
	dup := h.handle(paidEvent(o, "evt_1"))
	if !dup.Duplicate || dup.Outcome != OutcomeFulfilling || dup.OrderID != o.ID {
		t.Fatalf("duplicate outcome %+v", dup)
	}
	if h.order(o.ID).PaidAt == nil || len(h.procs.fulfilmentStarts()) != 2 {
		t.Fatalf("duplicate: %v", h.procs.fulfilmentStarts())
	}
	// Once fulfilled, a duplicate starts nothing; another event for the paid order is ignored.
	h.fulfil(o.ID)
	h.handle(paidEvent(o, "evt_1"))
	if out := h.handle(paidEvent(o, "evt_2")); out.Outcome != OutcomeIgnored || out.Duplicate {
		t.Fatalf("second payment event: %+v", out)
	}
	if len(h.procs.fulfilmentStarts()) != 2 {
		t.Fatalf("a fulfilled order was started again: %v", h.procs.fulfilmentStarts())
	}
}

// A failed start answers 503; the provider's redelivery (a duplicate) starts the fulfilment.
func TestPaymentSucceededHealsAFailedStart(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	h.procs.fulfilErr = errors.New("temporal unreachable")
	_, err := h.svc.HandlePayment(h.ctx, paidEvent(o, "evt_1"))
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	if h.order(o.ID).Status != order.StatusPaid {
		t.Fatal("the payment was not committed")
	}
	h.procs.fulfilErr = nil
	out := h.handle(paidEvent(o, "evt_1"))
	if !out.Duplicate || len(h.procs.fulfilmentStarts()) != 1 {
		t.Fatalf("redelivery: %+v %v", out, h.procs.fulfilmentStarts())
	}
}

// The same event delivered 50 times at once: one delivery acts, the order is paid once.
func TestPaymentSucceededConcurrentDuplicates(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	var wg sync.WaitGroup
	outs := make([]ports.PaymentOutcome, 50)
	errList := make([]error, 50)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errList[i] = h.svc.HandlePayment(h.ctx, paidEvent(o, "evt_burst"))
		}()
	}
	wg.Wait()
	fresh := 0
	for i, out := range outs {
		if errList[i] != nil {
			t.Fatal(errList[i])
		}
		if !out.Duplicate {
			fresh++
			if out.Outcome != OutcomeFulfilling {
				t.Fatalf("fresh outcome %+v", out)
			}
		}
	}
	if fresh != 1 || h.orderCount() != 1 {
		t.Fatalf("%d fresh deliveries, %d orders", fresh, h.orderCount())
	}
	for _, id := range h.procs.fulfilmentStarts() {
		if id != o.ID {
			t.Fatalf("started %s", id)
		}
	}
}

func TestPaymentAmountMismatchHoldsOrder(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*ports.PaymentEventIn)
	}{
		{"short by a cent", func(ev *ports.PaymentEventIn) { ev.AmountCents-- }},
		{"other currency", func(ev *ports.PaymentEventIn) { ev.Currency = "usd" }},
		{"negative amount", func(ev *ports.PaymentEventIn) { ev.AmountCents = -1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.shop()
			o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
			ev := paidEvent(o, "evt_x")
			c.mod(&ev)
			out := h.handle(ev)
			if out.Outcome != OutcomeHeld || out.OrderID != o.ID {
				t.Fatalf("outcome %+v", out)
			}
			got := h.order(o.ID)
			if got.Status != order.StatusPending || got.ReviewReason != order.ReviewAmountMismatch || got.PaymentRef != ev.PaymentRef {
				t.Fatalf("held order %+v", got)
			}
			if len(h.procs.fulfilmentStarts()) != 0 {
				t.Fatal("a held order started its fulfilment")
			}
			mails := h.emailsWithID("support-" + o.ID + "-amount")
			if len(mails) != 1 || mails[0].To != "ops@acme.example" || !strings.Contains(mails[0].Text, order.Reference(o.Number)) {
				t.Fatalf("operator e-mails %+v", h.procs.sentEmails())
			}
			// The fulfilment's first step refuses a held order, whatever starts it.
			wantCode(t, h.svc.MarkOrderPaid(h.ctx, o.ID), order.CodeOrderInReview, errs.Conflict)
			// A second success event for the held order changes nothing.
			if out := h.handle(paidEvent(o, "evt_y")); out.Outcome != OutcomeIgnored || h.order(o.ID).Status != order.StatusPending {
				t.Fatalf("second event: %+v", out)
			}
		})
	}
}

func TestPaymentProviderDiscountCountsTowardsTheTotal(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_promo")
	ev.AmountCents, ev.DiscountCents = 3900, 1000
	if out := h.handle(ev); out.Outcome != OutcomeFulfilling {
		t.Fatalf("outcome %+v", out)
	}
}

func TestPaymentHeldWithoutOperatorSendsNoEmail(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.OperatorEmail = "" })
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_low")
	ev.AmountCents = 1
	if out := h.handle(ev); out.Outcome != OutcomeHeld {
		t.Fatalf("outcome %+v", out)
	}
	if n := len(h.procs.sentEmails()); n != 0 {
		t.Fatalf("%d e-mails without an operator address", n)
	}
}

func TestPaymentFoundBySession(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_s")
	ev.OrderID = ""
	if out := h.handle(ev); out.Outcome != OutcomeFulfilling || out.OrderID != o.ID {
		t.Fatalf("outcome %+v", out)
	}
}

func TestPaymentForUnknownOrder(t *testing.T) {
	h := newHarness(t)
	out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_ghost", Type: ports.PaymentSucceeded,
		OrderID: "ord_ghost", AmountCents: 4900, Currency: "eur", PaymentRef: "pi_ghost"})
	if out.Outcome != OutcomeUnknownOrder || out.OrderID != "" || out.Duplicate {
		t.Fatalf("outcome %+v", out)
	}
	if e := h.event("stripe", "evt_ghost"); e.Outcome != OutcomeUnknownOrder {
		t.Fatalf("event %+v", e)
	}
	mails := h.emailsWithID("support-unknown-stripe-evt_ghost")
	if len(mails) != 1 || !strings.Contains(mails[0].Text, "ord_ghost") || !strings.Contains(mails[0].Text, "49.00 EUR") {
		t.Fatalf("operator e-mails %+v", h.procs.sentEmails())
	}
	if dup := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_ghost", Type: ports.PaymentSucceeded, OrderID: "ord_ghost"}); !dup.Duplicate || dup.Outcome != OutcomeUnknownOrder {
		t.Fatalf("duplicate %+v", dup)
	}
	if len(h.procs.sentEmails()) != 1 {
		t.Fatal("the duplicate alerted again")
	}
}

func TestPaymentLinkCreatesOrder(t *testing.T) {
	h := newHarness(t)
	h.shop()
	// The product was unpublished after the link went out: the paid link is still honoured.
	if _, err := h.svc.SetProductActive(h.ctx, "drums", false); err != nil {
		t.Fatal(err)
	}
	ev := ports.PaymentEventIn{Provider: "stripe", EventID: "evt_link", Type: ports.PaymentSucceeded, RawType: "checkout.session.completed",
		// The link's client_reference_id, which the adapter reads as an order id, names no order.
		OrderID:   "campaign-42",
		SessionID: "cs_link_1", Products: "synth:2, drums", CustomerEmail: "Fan@Example.com", PaymentRef: "pi_link",
		AmountCents: 2*4900 + 1900, Currency: "EUR"}
	out := h.handle(ev)
	if out.Outcome != OutcomeFulfilling || out.OrderID == "" {
		t.Fatalf("outcome %+v", out)
	}
	o := h.order(out.OrderID)
	if o.Source != order.SourcePaymentLink || o.Status != order.StatusPaid || o.CustomerEmail != "fan@example.com" || o.Currency != "EUR" ||
		o.CheckoutSessionID != "cs_link_1" || o.PaymentRef != "pi_link" || o.TotalCents != 11700 || len(o.Lines) != 2 ||
		o.Lines[0] != (order.Line{Product: "synth", ProductName: "Synth One", ProductType: "plugin", Quantity: 2, UnitPriceCents: 4900}) {
		t.Fatalf("payment-link order %+v", o)
	}
	if starts := h.procs.fulfilmentStarts(); len(starts) != 1 || starts[0] != o.ID {
		t.Fatalf("fulfilment starts %v", starts)
	}
	// Redelivered: no second order; the duplicate finds the order by its session.
	dup := h.handle(ev)
	if !dup.Duplicate || dup.OrderID != o.ID || h.orderCount() != 1 {
		t.Fatalf("duplicate %+v, %d orders", dup, h.orderCount())
	}
}

func TestPaymentLinkUnderpaidIsHeld(t *testing.T) {
	h := newHarness(t)
	h.shop()
	out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_cheap", Type: ports.PaymentSucceeded,
		SessionID: "cs_cheap", Products: "synth:1", CustomerEmail: "fan@example.com", PaymentRef: "pi_cheap", AmountCents: 100, Currency: "EUR"})
	if out.Outcome != OutcomeHeld || out.OrderID == "" {
		t.Fatalf("outcome %+v", out)
	}
	o := h.order(out.OrderID)
	if o.Status != order.StatusPending || o.ReviewReason != order.ReviewAmountMismatch || o.PaidAmountCents != 100 {
		t.Fatalf("order %+v", o)
	}
	if len(h.emailsWithID("support-"+o.ID+"-amount")) != 1 || len(h.procs.fulfilmentStarts()) != 0 {
		t.Fatalf("e-mails %+v starts %v", h.procs.sentEmails(), h.procs.fulfilmentStarts())
	}
}

func TestPaymentLinkThatMakesNoOrder(t *testing.T) {
	for name, ev := range map[string]ports.PaymentEventIn{
		"unknown product": {Products: "nope:1", CustomerEmail: "fan@example.com", Currency: "EUR"},
		"bad spec":        {Products: "synth:0", CustomerEmail: "fan@example.com", Currency: "EUR"},
		"no e-mail":       {Products: "synth:1", Currency: "EUR"},
		"no price":        {Products: "drums:1", CustomerEmail: "fan@example.com", Currency: "USD"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.shop()
			ev.Provider, ev.EventID, ev.Type, ev.AmountCents = "stripe", "evt_bad", ports.PaymentSucceeded, 4900
			out := h.handle(ev)
			if out.Outcome != OutcomeUnknownOrder || h.orderCount() != 0 || len(h.emailsWithID("support-unknown-stripe-evt_bad")) != 1 {
				t.Fatalf("outcome %+v, %d orders, e-mails %+v", out, h.orderCount(), h.procs.sentEmails())
			}
		})
	}
}

func TestPaymentAfterExpiryIsHeld(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	if out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_exp", Type: ports.PaymentCheckoutExpired, OrderID: o.ID, SessionID: o.CheckoutSessionID}); out.Outcome != OutcomeFailed {
		t.Fatalf("expiry %+v", out)
	}
	out := h.handle(paidEvent(o, "evt_late"))
	got := h.order(o.ID)
	if out.Outcome != OutcomeHeld || got.Status != order.StatusFailed || got.ReviewReason != order.ReviewPaidAfterFailure || got.PaymentRef != "pi_evt_late" {
		t.Fatalf("late payment: %+v %+v", out, got)
	}
	if len(h.procs.fulfilmentStarts()) != 0 || len(h.emailsWithID("support-"+o.ID+"-late-payment")) != 1 {
		t.Fatalf("starts %v e-mails %+v", h.procs.fulfilmentStarts(), h.procs.sentEmails())
	}
	// The admin accepts the payment: the order becomes paid and is fulfilled.
	v, err := h.svc.ReleaseReview(h.ctx, o.ID)
	if err != nil || v.Order.Status != order.StatusPaid || len(h.procs.fulfilmentStarts()) != 1 {
		t.Fatalf("release: %v %+v", err, v.Order)
	}
}

func TestCheckoutExpiredFailsOrderAndReleasesCoupon(t *testing.T) {
	h := newHarness(t)
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "TENOFF", Kind: "percent", PercentOff: 10})
	o := h.order(h.checkout(func(cmd *ports.CheckoutCommand) { cmd.CouponCode = "TENOFF" }, line("synth", 1)).Order.Order.ID)
	out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_exp", Type: ports.PaymentCheckoutExpired, SessionID: o.CheckoutSessionID})
	if out.Outcome != OutcomeFailed || out.OrderID != o.ID {
		t.Fatalf("outcome %+v", out)
	}
	if got := h.order(o.ID); got.Status != order.StatusFailed || got.StatusReason != "checkout_expired" {
		t.Fatalf("order %+v", got)
	}
	if v := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); v.Coupon.Redemptions != 0 {
		t.Fatalf("coupon redemptions %d", v.Coupon.Redemptions)
	}
	// Expiry of a paid order's session changes nothing.
	p := h.order(h.checkout(nil, line("drums", 1)).Order.Order.ID)
	h.payOrder(p, "evt_p")
	if out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_exp2", Type: ports.PaymentCheckoutExpired, OrderID: p.ID}); out.Outcome != OutcomeIgnored || h.order(p.ID).Status != order.StatusPaid {
		t.Fatalf("expiry of a paid order: %+v", out)
	}
}

func refundEvent(o order.Order, id string, amount int64) ports.PaymentEventIn {
	return ports.PaymentEventIn{Provider: "stripe", EventID: id, Type: ports.PaymentRefunded, RawType: "charge.refunded",
		PaymentRef: o.PaymentRef, AmountCents: amount, ChargeAmountCents: o.TotalCents, Currency: "eur"}
}

func TestPaymentRefundedStartsRevocation(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	out := h.handle(refundEvent(o, "evt_r", o.TotalCents))
	if out.Outcome != OutcomeRevoking || out.OrderID != o.ID {
		t.Fatalf("outcome %+v", out)
	}
	want := revocationStart{OrderID: o.ID, Status: "refunded", Reason: "payment refunded (stripe charge.refunded)"}
	if starts := h.procs.revocationStarts(); len(starts) != 1 || starts[0] != want {
		t.Fatalf("revocation starts %+v", starts)
	}
	// The revocation workflow ran: another refund event is ignored, a duplicate starts nothing.
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, want.Reason); err != nil {
		t.Fatal(err)
	}
	if out := h.handle(refundEvent(o, "evt_r2", o.TotalCents)); out.Outcome != OutcomeIgnored {
		t.Fatalf("second refund %+v", out)
	}
	if dup := h.handle(refundEvent(o, "evt_r", o.TotalCents)); !dup.Duplicate || len(h.procs.revocationStarts()) != 1 {
		t.Fatalf("duplicate %+v starts %+v", dup, h.procs.revocationStarts())
	}
}

func TestPaymentRefundHealsAFailedStart(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	h.procs.revocationEr = errors.New("down")
	_, err := h.svc.HandlePayment(h.ctx, refundEvent(o, "evt_r", o.TotalCents))
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	h.procs.revocationEr = nil
	if dup := h.handle(refundEvent(o, "evt_r", o.TotalCents)); !dup.Duplicate || len(h.procs.revocationStarts()) != 1 {
		t.Fatalf("redelivery %+v starts %+v", dup, h.procs.revocationStarts())
	}
}

func TestPaymentDisputedStartsRevocation(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_d", Type: ports.PaymentDisputed, RawType: "charge.dispute.created",
		PaymentRef: o.PaymentRef, AmountCents: o.TotalCents, Currency: "eur"})
	if out.Outcome != OutcomeRevoking {
		t.Fatalf("outcome %+v", out)
	}
	if starts := h.procs.revocationStarts(); len(starts) != 1 || starts[0].Status != "disputed" || starts[0].OrderID != o.ID {
		t.Fatalf("starts %+v", starts)
	}
}

func TestPaymentPartialRefundHoldsOrder(t *testing.T) {
	for name, ev := range map[string]func(order.Order) ports.PaymentEventIn{
		"typed partial": func(o order.Order) ports.PaymentEventIn {
			e := refundEvent(o, "evt_pr", 1000)
			e.Type = ports.PaymentPartialRefund
			return e
		},
		// An adapter that calls it full while the amounts say partial is corrected.
		"amount says partial": func(o order.Order) ports.PaymentEventIn { return refundEvent(o, "evt_pr", 1000) },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.shop()
			o, _, _ := h.paidOrder(line("synth", 1))
			out := h.handle(ev(o))
			if out.Outcome != OutcomeHeld || out.OrderID != o.ID {
				t.Fatalf("outcome %+v", out)
			}
			got := h.order(o.ID)
			if got.Status != order.StatusFulfilled || got.ReviewReason != order.ReviewPartialRefund || len(h.procs.revocationStarts()) != 0 {
				t.Fatalf("order %+v starts %+v", got, h.procs.revocationStarts())
			}
			if len(h.emailsWithID("support-"+o.ID+"-partial-refund-evt_pr")) != 1 {
				t.Fatalf("e-mails %+v", h.procs.sentEmails())
			}
		})
	}
}

func TestPaymentRefundOfAHeldPaymentFailsTheOrder(t *testing.T) {
	h := newHarness(t)
	h.shop()
	c := h.mustCoupon(ports.CouponInput{Code: "TENOFF", Kind: "percent", PercentOff: 10})
	o := h.order(h.checkout(func(cmd *ports.CheckoutCommand) { cmd.CouponCode = "TENOFF" }, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_low")
	ev.AmountCents = 1
	h.handle(ev)
	held := h.order(o.ID)
	back := refundEvent(held, "evt_back", 1)
	back.ChargeAmountCents = 1 // the whole charge
	out := h.handle(back)
	got := h.order(o.ID)
	if out.Outcome != OutcomeFailed || got.Status != order.StatusFailed || got.ReviewReason != "" || len(h.procs.revocationStarts()) != 0 {
		t.Fatalf("outcome %+v order %+v", out, got)
	}
	if v := mustV(h.svc.GetCoupon(h.ctx, c.Coupon.ID)); v.Coupon.Redemptions != 0 {
		t.Fatalf("coupon not released: %d", v.Coupon.Redemptions)
	}
}

func TestPaymentReversalOfUnknownPayment(t *testing.T) {
	h := newHarness(t)
	for _, typ := range []string{ports.PaymentRefunded, ports.PaymentDisputed, ports.PaymentPartialRefund, ports.PaymentCheckoutExpired} {
		out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_" + typ, Type: typ, PaymentRef: "pi_elsewhere"})
		if out.Outcome != OutcomeUnknownOrder {
			t.Fatalf("%s: %+v", typ, out)
		}
	}
	if len(h.procs.sentEmails()) != 0 || len(h.procs.revocationStarts()) != 0 {
		t.Fatal("a reversal of a payment that is not ours did something")
	}
}

func TestPaymentIgnoredAndInvalidEvents(t *testing.T) {
	h := newHarness(t)
	if out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_i", Type: ports.PaymentIgnored, RawType: "customer.created"}); out.Outcome != OutcomeIgnored {
		t.Fatalf("ignored: %+v", out)
	}
	if e := h.event("stripe", "evt_i"); e.Type != "customer.created" || e.Outcome != OutcomeIgnored {
		t.Fatalf("event %+v", e)
	}
	for _, ev := range []ports.PaymentEventIn{
		{Provider: "stripe", Type: ports.PaymentIgnored},
		{EventID: "evt", Type: ports.PaymentIgnored},
		{Provider: "stripe", EventID: "evt_t", Type: "charge.succeeded"},
	} {
		_, err := h.svc.HandlePayment(h.ctx, ev)
		wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	}
	// Providers have separate event id spaces.
	if out := h.handle(ports.PaymentEventIn{Provider: "generic", EventID: "evt_i", Type: ports.PaymentIgnored}); out.Duplicate {
		t.Fatal("an event id of another provider read as a duplicate")
	}
}

func TestResumeFulfilment(t *testing.T) {
	h := newHarness(t)
	h.shop()
	a := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	b := h.order(h.checkout(nil, line("drums", 1)).Order.Order.ID)
	done := h.order(h.checkout(nil, line("keys", 1)).Order.Order.ID)
	held := h.order(h.checkout(nil, line("loops", 1)).Order.Order.ID)
	h.checkout(nil, line("synth", 1)) // pending: not started
	h.procs.fulfilErr = errors.New("crash between commit and start")
	for i, o := range []order.Order{a, b, done} {
		if _, err := h.svc.HandlePayment(h.ctx, paidEvent(o, "evt_"+string(rune('a'+i)))); err == nil {
			t.Fatal("want the failed start reported")
		}
	}
	h.procs.fulfilErr = nil
	h.fulfil(done.ID)
	ev := paidEvent(held, "evt_held")
	ev.AmountCents = 1
	h.handle(ev)

	n, err := h.svc.ResumeFulfilment(h.ctx)
	if err != nil || n != 2 {
		t.Fatalf("resumed %d: %v", n, err)
	}
	starts := h.procs.fulfilmentStarts()
	if len(starts) != 2 || count(starts, a.ID) != 1 || count(starts, b.ID) != 1 {
		t.Fatalf("starts %v", starts)
	}
	h.procs.fulfilErr = errors.New("still down")
	n, err = h.svc.ResumeFulfilment(h.ctx)
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	if n != 0 {
		t.Fatalf("counted %d failed starts", n)
	}
}

func TestPaymentDisputeOfAHeldPayment(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_low")
	ev.AmountCents = 1
	h.handle(ev)
	out := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_dis", Type: ports.PaymentDisputed, PaymentRef: ev.PaymentRef, AmountCents: 1, Currency: "EUR"})
	got := h.order(o.ID)
	if out.Outcome != OutcomeHeld || got.Status != order.StatusPending || got.ReviewReason != order.ReviewDisputed || len(h.procs.revocationStarts()) != 0 {
		t.Fatalf("outcome %+v order %+v", out, got)
	}
	if len(h.emailsWithID("support-"+o.ID+"-dispute")) != 1 {
		t.Fatalf("e-mails %+v", h.procs.sentEmails())
	}
	// A duplicate of the dispute starts no revocation: nothing was ever delivered.
	if dup := h.handle(ports.PaymentEventIn{Provider: "stripe", EventID: "evt_dis", Type: ports.PaymentDisputed, PaymentRef: ev.PaymentRef}); !dup.Duplicate || len(h.procs.revocationStarts()) != 0 {
		t.Fatalf("duplicate %+v", dup)
	}
}
