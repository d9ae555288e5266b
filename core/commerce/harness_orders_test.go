package commerce

import (
	"strings"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/ports"
)

// Helpers of the order, payment, fulfilment and download tests, on top of harness_test.go.

// shop is a small catalog: two plugins, two sample packs and a bundle of one plugin and one pack.
//
//	synth   plugin       49.00 EUR / 55.00 USD, 2 activations per license, versions for mac and win
//	drums   sample_pack  19.00 EUR,              an "all" version
//	keys    plugin       29.00 EUR,              3 activations, no versions
//	loops   sample_pack   9.00 EUR,              an "all" version
//	studio  bundle       59.00 EUR of keys + loops
type shop struct {
	synth, drums, keys, loops, studio string
}

func (h *harness) shop() shop {
	h.t.Helper()
	h.mustProduct("synth", func(in *ports.ProductInput) {
		in.Name = "Synth One"
		in.Prices = append(in.Prices, catalog.Price{Currency: "USD", AmountCents: 5500})
		in.Policy = &ports.PolicySpec{MaxActivations: 2}
	})
	h.mustProduct("drums", func(in *ports.ProductInput) {
		in.Name, in.Type, in.PriceCents = "Drum Pack", "sample_pack", 1900
	})
	h.mustProduct("keys", func(in *ports.ProductInput) {
		in.Name, in.PriceCents = "Keys", 2900
		in.Policy = &ports.PolicySpec{MaxActivations: 3}
	})
	h.mustProduct("loops", func(in *ports.ProductInput) {
		in.Name, in.Type, in.PriceCents = "Loop Pack", "sample_pack", 900
	})
	h.mustProduct("studio", func(in *ports.ProductInput) {
		in.Name, in.Type, in.PriceCents = "Studio Bundle", "bundle", 5900
		in.Components = []string{"keys", "loops"}
	})
	h.mustVersion("synth", "1.0.0", "mac")
	h.mustVersion("synth", "1.1.0", "mac")
	h.mustVersion("synth", "1.0.0", "win")
	h.mustVersion("drums", "1.0.0", "all")
	h.mustVersion("loops", "2.0.0", "all")
	return shop{"synth", "drums", "keys", "loops", "studio"}
}

// checkout places an order (Stripe path unless mod changes it) and fails the test on error.
func (h *harness) checkout(mod func(*ports.CheckoutCommand), lines ...ports.OrderLineInput) ports.CheckoutResult {
	h.t.Helper()
	cmd := ports.CheckoutCommand{Lines: lines, CustomerEmail: "Buyer@Example.com"}
	if mod != nil {
		mod(&cmd)
	}
	r, err := h.svc.Checkout(h.ctx, cmd)
	if err != nil {
		h.t.Fatalf("Checkout: %v", err)
	}
	return r
}

func line(slug string, qty int) ports.OrderLineInput {
	return ports.OrderLineInput{Product: slug, Quantity: qty}
}

// order reads an order straight from the store.
func (h *harness) order(id string) order.Order {
	h.t.Helper()
	o, err := h.store.Orders().Get(h.ctx, id)
	if err != nil {
		h.t.Fatalf("order %s: %v", id, err)
	}
	return o
}

func (h *harness) entitlements(orderID string) []order.Entitlement {
	h.t.Helper()
	es, err := h.store.Entitlements().ByOrder(h.ctx, orderID)
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

// paidEvent is the payment.succeeded event that pays o in full through Stripe.
func paidEvent(o order.Order, eventID string) ports.PaymentEventIn {
	return ports.PaymentEventIn{
		Provider: "stripe", EventID: eventID, Type: ports.PaymentSucceeded, RawType: "checkout.session.completed",
		OrderID: o.ID, SessionID: o.CheckoutSessionID, CustomerEmail: o.CustomerEmail,
		PaymentRef: "pi_" + eventID, AmountCents: o.TotalCents, Currency: strings.ToLower(o.Currency),
	}
}

// pay delivers paidEvent and fails the test unless the order is then paid.
func (h *harness) payOrder(o order.Order, eventID string) ports.PaymentOutcome {
	h.t.Helper()
	out, err := h.svc.HandlePayment(h.ctx, paidEvent(o, eventID))
	if err != nil {
		h.t.Fatalf("HandlePayment: %v", err)
	}
	if st := h.order(o.ID).Status; st != order.StatusPaid {
		h.t.Fatalf("after payment the order is %s (outcome %+v)", st, out)
	}
	return out
}

// fulfil runs the fulfilment steps in the workflow's order.
func (h *harness) fulfil(orderID string) (ports.IssueResult, ports.EmailMessage) {
	h.t.Helper()
	if err := h.svc.MarkOrderPaid(h.ctx, orderID); err != nil {
		h.t.Fatalf("MarkOrderPaid: %v", err)
	}
	res, err := h.svc.IssueEntitlements(h.ctx, orderID)
	if err != nil {
		h.t.Fatalf("IssueEntitlements: %v", err)
	}
	if err := h.svc.UnlockDownloads(h.ctx, orderID); err != nil {
		h.t.Fatalf("UnlockDownloads: %v", err)
	}
	m, err := h.svc.DeliveryEmail(h.ctx, orderID)
	if err != nil {
		h.t.Fatalf("DeliveryEmail: %v", err)
	}
	if err := h.svc.MarkFulfilled(h.ctx, orderID); err != nil {
		h.t.Fatalf("MarkFulfilled: %v", err)
	}
	return res, m
}

// paidOrder checks out the lines, pays and fulfils the order.
func (h *harness) paidOrder(lines ...ports.OrderLineInput) (order.Order, ports.IssueResult, ports.EmailMessage) {
	h.t.Helper()
	r := h.checkout(nil, lines...)
	h.payOrder(r.Order.Order, "evt_"+r.Order.Order.ID)
	res, m := h.fulfil(r.Order.Order.ID)
	return h.order(r.Order.Order.ID), res, m
}

func (h *harness) emailsWithID(id string) []ports.EmailMessage {
	var out []ports.EmailMessage
	for _, m := range h.procs.sentEmails() {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

func (h *harness) orderCount() int {
	h.t.Helper()
	rows, _, err := h.store.Orders().List(h.ctx, ports.OrderFilter{Page: ports.Page{Limit: 200}})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(rows)
}

func count[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}
