package commerce

import (
	"errors"
	"strings"
	"testing"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
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
	if m.To != "ops@acme.example" || m.Template != ports.TemplateSupportAlert {
		t.Fatalf("e-mail %+v", m)
	}
	calls := h.mails.CallsOf(ports.TemplateSupportAlert)
	if len(calls) != 1 || calls[0].Subject != m.Subject || calls[0].Text != m.Text {
		t.Fatalf("renderings %+v", calls)
	}
	a := calls[0].Data.(ports.SupportAlertEmail)
	if a.Subject != "Order held for review: amount mismatch" || a.Reference != ref || a.OrderID != o.ID ||
		!strings.Contains(a.Reason, "release it to deliver anyway") ||
		!strings.Contains(a.AdminHint, "POST /v1/admin/orders/"+o.ID+"/release") ||
		!strings.Contains(a.AdminHint, "POST /v1/admin/orders/"+o.ID+"/refund") {
		t.Fatalf("alert %+v", a)
	}
	want := strings.Join([]string{
		"Order: " + ref + " (" + o.ID + ")", "Customer: buyer@example.com", "Status: pending", "Held for: amount_mismatch",
		"Order total: 49.00 EUR", "Paid: 40.00 USD", "Provider: stripe", "Payment: pi_evt_low",
		"Event: stripe evt_low (checkout.session.completed)", "Provider discount: 5.00 USD",
	}, "\n")
	if a.Detail != want {
		t.Fatalf("detail\n%s\nwant\n%s", a.Detail, want)
	}
}

// An alert about a payment without an order carries what the provider sent, unescaped (the
// renderer escapes it), and no order.
func TestUnknownPaymentAlert(t *testing.T) {
	h := newHarness(t)
	m, err := h.svc.unknownPaymentEmail(ports.PaymentEventIn{Provider: "generic", EventID: "e1", Type: ports.PaymentSucceeded,
		OrderID: `<img src=x onerror=alert(1)>`, CustomerEmail: "a@example.com", AmountCents: 100, Currency: "eur"}, "A payment names an unknown order.")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "support-unknown-generic-e1" || m.To != "ops@acme.example" || m.Template != ports.TemplateSupportAlert {
		t.Fatalf("e-mail %+v", m)
	}
	a := h.mails.CallsOf(ports.TemplateSupportAlert)[0].Data.(ports.SupportAlertEmail)
	want := "Event: generic e1 (payment.succeeded)\nOrder id named: <img src=x onerror=alert(1)>\nCustomer: a@example.com\nPaid: 1.00 EUR"
	if a.Subject != "Payment without an order" || a.Reference != "" || a.OrderID != "" || a.Reason != "A payment names an unknown order." ||
		a.Detail != want || !strings.Contains(a.AdminHint, "generic") {
		t.Fatalf("alert %+v", a)
	}
}

// A renderer failure is the renderer's Internal error, and nothing is sent: the webhook that
// wanted the alert fails and the provider retries it.
func TestEmailRenderFailure(t *testing.T) {
	h := newHarness(t)
	h.mails.Fail(errs.Internalf("template exploded"))
	_, err := h.svc.unknownPaymentEmail(ports.PaymentEventIn{Provider: "generic", EventID: "e1"}, "x")
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("err %v", err)
	}
	h.mails.Fail(errors.New("not a domain error"))
	_, err = h.svc.unknownPaymentEmail(ports.PaymentEventIn{Provider: "generic", EventID: "e1"}, "x")
	if errs.KindOf(err) != errs.Internal || !strings.Contains(err.Error(), "support_alert") {
		t.Fatalf("err %v", err)
	}
	// Even a renderer's domain error of another kind is a bug here, not the caller's input.
	h.mails.Fail(errs.Validation("bad data"))
	_, err = h.svc.unknownPaymentEmail(ports.PaymentEventIn{Provider: "generic", EventID: "e1"}, "x")
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("err %v", err)
	}
	if n := len(h.procs.sentEmails()); n != 0 {
		t.Fatalf("%d e-mails sent", n)
	}
}
