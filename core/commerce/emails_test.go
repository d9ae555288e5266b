package commerce

import (
	"strings"
	"testing"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/ports"
)

func TestMoney(t *testing.T) {
	for _, c := range []struct {
		cents    int64
		currency string
		want     string
	}{
		{4900, "EUR", "49.00 EUR"},
		{5, "USD", "0.05 USD"},
		{123456, "GBP", "1234.56 GBP"},
		{-250, "EUR", "-2.50 EUR"},
		{4900, "JPY", "4900 JPY"},
		{0, "EUR", "0.00 EUR"},
	} {
		if got := money(c.cents, c.currency); got != c.want {
			t.Errorf("money(%d, %s) = %q, want %q", c.cents, c.currency, got, c.want)
		}
	}
}

func TestSupportEmailOfAnAmountMismatch(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.order(h.checkout(nil, line("synth", 1)).Order.Order.ID)
	ev := paidEvent(o, "evt_low")
	ev.AmountCents, ev.DiscountCents, ev.Currency = 4000, 500, "usd"
	h.handle(ev)
	ms := h.emailsWithID("support-" + o.ID + "-amount")
	if len(ms) != 1 {
		t.Fatalf("e-mails %+v", h.procs.sentEmails())
	}
	m := ms[0]
	ref := order.Reference(o.Number)
	if m.To != "ops@acme.example" || m.Template != "support_alert" || m.Subject != "[Acme Audio] Order held for review: amount mismatch: "+ref {
		t.Fatalf("e-mail %+v", m)
	}
	for _, s := range []string{
		"Order: " + ref + " (" + o.ID + ")", "Customer: buyer@example.com", "Status: pending", "Held for: amount_mismatch",
		"Order total: 49.00 EUR", "Paid: 40.00 USD", "Provider: stripe", "Payment: pi_evt_low",
		"Event: stripe evt_low (checkout.session.completed)", "Provider discount: 5.00 USD", "release it to deliver anyway",
	} {
		if !strings.Contains(m.Text, s) {
			t.Fatalf("text lacks %q:\n%s", s, m.Text)
		}
	}
	if !strings.Contains(m.HTML, "<code>40.00 USD</code>") || !strings.Contains(m.HTML, "<!doctype html>") {
		t.Fatalf("html:\n%s", m.HTML)
	}
}

func TestSupportEmailEscapesWhatTheProviderSent(t *testing.T) {
	h := newHarness(t)
	m, err := h.svc.unknownPaymentEmail(ports.PaymentEventIn{Provider: "generic", EventID: "e1", Type: ports.PaymentSucceeded,
		OrderID: `<img src=x onerror=alert(1)>`, CustomerEmail: "a@example.com", AmountCents: 100, Currency: "eur"}, "A payment names an unknown order.")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<img") || !strings.Contains(m.HTML, "&lt;img") {
		t.Fatalf("html not escaped:\n%s", m.HTML)
	}
	if m.ID != "support-unknown-generic-e1" || m.Subject != "[Acme Audio] Payment without an order" || !strings.Contains(m.Text, "Paid: 1.00 EUR") {
		t.Fatalf("e-mail %+v", m)
	}
}

func TestVendorNameDefault(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.VendorName = "  " })
	h.shop()
	_, _, m := h.paidOrder(line("drums", 1))
	if !strings.HasPrefix(m.Subject, "Your Samplero order ") || !strings.HasSuffix(m.Text, "-- \nSamplero\n") {
		t.Fatalf("subject %q, text ends %q", m.Subject, m.Text[max(0, len(m.Text)-40):])
	}
}
