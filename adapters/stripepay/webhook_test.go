package stripepay_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/stripepay"
	"github.com/samplero/samplero/adapters/stripepay/stripetest"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

const whsec = "whsec_test_0123456789abcdef"

// apiVersions are webhook endpoint versions seen in the wild: older than stripe-go v76's, its own,
// and newer.
var apiVersions = []string{"2020-08-27", "2023-10-16", "2025-03-31.basil"}

var epoch = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func webhookAdapter(t *testing.T) (*stripepay.Stripe, *portstest.FakeClock) {
	t.Helper()
	clock := portstest.NewFakeClock(epoch)
	s, err := stripepay.New(stripepay.Options{WebhookSecret: whsec, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

func TestParseWebhookMapping(t *testing.T) {
	expandedPI := stripetest.CheckoutCompleted("ord_2", "b@example.com", 900, 100, "usd", "")
	expandedPI["payment_intent"] = map[string]any{"id": "pi_expanded", "object": "payment_intent", "amount": 900}

	fallbacks := stripetest.CheckoutCompleted("ord_3", "c@example.com", 500, 0, "gbp", "pi_3")
	delete(fallbacks, "metadata")
	fallbacks["customer_details"] = nil

	noPayment := stripetest.CheckoutCompleted("ord_4", "d@example.com", 0, 2000, "usd", "")
	noPayment["payment_status"] = "no_payment_required"

	refundedByAmount := stripetest.ChargeRefunded("pi_7", 1500, 1500, "usd")
	refundedByAmount["refunded"] = false // some versions flip the flag later than the amount

	refundWithOrder := stripetest.ChargeRefunded("pi_8", 1500, 1500, "usd")
	refundWithOrder["metadata"] = map[string]any{"samplero_order_id": "ord_8"}

	legacyCharge := stripetest.ChargeRefunded("pi_x", 700, 700, "eur")
	legacyCharge["id"] = "ch_legacy"
	legacyCharge["payment_intent"] = nil

	disputeExpanded := stripetest.DisputeCreated("", "ch_d2", 800, "usd")
	disputeExpanded["charge"] = map[string]any{"id": "ch_d2", "object": "charge"}
	disputeExpanded["payment_intent"] = map[string]any{"id": "pi_d2", "object": "payment_intent"}

	cases := []struct {
		name      string
		eventType string
		object    map[string]any
		want      ports.PaymentEventIn
	}{
		{"completed paid", "checkout.session.completed",
			stripetest.CheckoutCompleted("ord_1", "a@example.com", 4500, 500, "eur", "pi_1"),
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, OrderID: "ord_1", SessionID: "cs_test_ord_1",
				CustomerEmail: "a@example.com", PaymentRef: "pi_1", AmountCents: 4500, DiscountCents: 500, Currency: "EUR"}},
		{"completed with an expanded payment intent", "checkout.session.completed", expandedPI,
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, OrderID: "ord_2", SessionID: "cs_test_ord_2",
				CustomerEmail: "b@example.com", PaymentRef: "pi_expanded", AmountCents: 900, DiscountCents: 100, Currency: "USD"}},
		{"completed: client_reference_id and customer_email fallbacks", "checkout.session.completed", fallbacks,
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, OrderID: "ord_3", SessionID: "cs_test_ord_3",
				CustomerEmail: "c@example.com", PaymentRef: "pi_3", AmountCents: 500, Currency: "GBP"}},
		{"completed, nothing to pay", "checkout.session.completed", noPayment,
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, OrderID: "ord_4", SessionID: "cs_test_ord_4",
				CustomerEmail: "d@example.com", DiscountCents: 2000, Currency: "USD"}},
		{"payment link", "checkout.session.completed",
			stripetest.PaymentLinkCompleted("cs_link_1", "synth-pro:1,drums:2", "e@example.com", 7000, 0, "usd", "pi_5"),
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, SessionID: "cs_link_1", Products: "synth-pro:1,drums:2",
				CustomerEmail: "e@example.com", PaymentRef: "pi_5", AmountCents: 7000, Currency: "USD"}},
		{"completed but unpaid (delayed method)", "checkout.session.completed",
			stripetest.CheckoutUnpaid("ord_6", "f@example.com", 1000, "eur"),
			ports.PaymentEventIn{Type: ports.PaymentIgnored, OrderID: "ord_6", SessionID: "cs_test_ord_6",
				CustomerEmail: "f@example.com", AmountCents: 1000, Currency: "EUR"}},
		{"async payment succeeded", "checkout.session.async_payment_succeeded",
			stripetest.CheckoutCompleted("ord_6", "f@example.com", 1000, 0, "eur", "pi_6"),
			ports.PaymentEventIn{Type: ports.PaymentSucceeded, OrderID: "ord_6", SessionID: "cs_test_ord_6",
				CustomerEmail: "f@example.com", PaymentRef: "pi_6", AmountCents: 1000, Currency: "EUR"}},
		{"async payment failed", "checkout.session.async_payment_failed",
			stripetest.CheckoutUnpaid("ord_6", "f@example.com", 1000, "eur"),
			ports.PaymentEventIn{Type: ports.PaymentCheckoutExpired, OrderID: "ord_6", SessionID: "cs_test_ord_6",
				CustomerEmail: "f@example.com", AmountCents: 1000, Currency: "EUR"}},
		{"session expired", "checkout.session.expired",
			stripetest.CheckoutExpired("ord_9", "g@example.com", 300, "usd"),
			ports.PaymentEventIn{Type: ports.PaymentCheckoutExpired, OrderID: "ord_9", SessionID: "cs_test_ord_9",
				CustomerEmail: "g@example.com", AmountCents: 300, Currency: "USD"}},
		{"full refund", "charge.refunded", stripetest.ChargeRefunded("pi_7", 1500, 1500, "usd"),
			ports.PaymentEventIn{Type: ports.PaymentRefunded, PaymentRef: "pi_7", AmountCents: 1500, ChargeAmountCents: 1500, Currency: "USD"}},
		{"full refund by amount", "charge.refunded", refundedByAmount,
			ports.PaymentEventIn{Type: ports.PaymentRefunded, PaymentRef: "pi_7", AmountCents: 1500, ChargeAmountCents: 1500, Currency: "USD"}},
		{"partial refund", "charge.refunded", stripetest.ChargeRefunded("pi_7", 1500, 500, "usd"),
			ports.PaymentEventIn{Type: ports.PaymentPartialRefund, PaymentRef: "pi_7", AmountCents: 500, ChargeAmountCents: 1500, Currency: "USD"}},
		{"refund names the order", "charge.refunded", refundWithOrder,
			ports.PaymentEventIn{Type: ports.PaymentRefunded, OrderID: "ord_8", PaymentRef: "pi_8", AmountCents: 1500, ChargeAmountCents: 1500, Currency: "USD"}},
		{"refund of a charge without payment intent", "charge.refunded", legacyCharge,
			ports.PaymentEventIn{Type: ports.PaymentRefunded, PaymentRef: "ch_legacy", AmountCents: 700, ChargeAmountCents: 700, Currency: "EUR"}},
		{"dispute", "charge.dispute.created", stripetest.DisputeCreated("pi_d1", "ch_d1", 4500, "eur"),
			ports.PaymentEventIn{Type: ports.PaymentDisputed, PaymentRef: "pi_d1", AmountCents: 4500, Currency: "EUR"}},
		{"dispute with expanded references", "charge.dispute.created", disputeExpanded,
			ports.PaymentEventIn{Type: ports.PaymentDisputed, PaymentRef: "pi_d2", AmountCents: 800, Currency: "USD"}},
		{"dispute of a charge without payment intent", "charge.dispute.created", stripetest.DisputeCreated("", "ch_d3", 800, "usd"),
			ports.PaymentEventIn{Type: ports.PaymentDisputed, PaymentRef: "ch_d3", AmountCents: 800, Currency: "USD"}},
		{"unrelated event", "customer.created", map[string]any{"id": "cus_1", "object": "customer", "email": "x@example.com"},
			ports.PaymentEventIn{Type: ports.PaymentIgnored}},
		{"payment intent event", "payment_intent.succeeded", map[string]any{"id": "pi_1", "object": "payment_intent", "amount": 4500},
			ports.PaymentEventIn{Type: ports.PaymentIgnored}},
	}
	s, clock := webhookAdapter(t)
	for _, v := range apiVersions {
		for i, c := range cases {
			t.Run(v+"/"+c.name, func(t *testing.T) {
				id := "evt_" + strings.ReplaceAll(v, ".", "_") + "_" + string(rune('a'+i))
				payload, header := stripetest.SignedEventAt(t, whsec, id, c.eventType, c.object, v, clock.Now())
				got, err := s.ParseWebhook(payload, header)
				if err != nil {
					t.Fatalf("ParseWebhook: %v", err)
				}
				want := c.want
				want.Provider, want.EventID, want.RawType = "stripe", id, c.eventType
				if got != want {
					t.Fatalf("mapped\n got %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// An event of an API version older than 2017-05-25 carries "request" as a string, which stripe-go
// v76's Event cannot decode; the adapter still reads it.
func TestParseWebhookPre2017Envelope(t *testing.T) {
	s, clock := webhookAdapter(t)
	payload := stripetest.EventJSON(t, "evt_old", "checkout.session.completed",
		stripetest.CheckoutCompleted("ord_old", "o@example.com", 100, 0, "usd", "pi_old"), "2015-10-16", clock.Now())
	payload = bytes.Replace(payload, []byte(`"request":{"id":null,"idempotency_key":null}`), []byte(`"request":"req_abc"`), 1)
	if !bytes.Contains(payload, []byte(`"request":"req_abc"`)) {
		t.Fatal("test setup: request field not replaced")
	}
	got, err := s.ParseWebhook(payload, stripetest.Sign(whsec, payload, clock.Now()))
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	if got.Type != ports.PaymentSucceeded || got.OrderID != "ord_old" || got.EventID != "evt_old" || got.PaymentRef != "pi_old" {
		t.Fatalf("got %+v", got)
	}
	// The fallback path verifies too: the same body with a bad signature is refused.
	tampered := bytes.Replace(payload, []byte(`"amount_total":100`), []byte(`"amount_total":1`), 1)
	_, err = s.ParseWebhook(tampered, stripetest.Sign(whsec, payload, clock.Now()))
	wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)
}

func TestParseWebhookSignatureRefusals(t *testing.T) {
	s, clock := webhookAdapter(t)
	obj := stripetest.CheckoutCompleted("ord_1", "a@example.com", 4500, 0, "eur", "pi_1")
	payload, header := stripetest.SignedEventAt(t, whsec, "evt_1", "checkout.session.completed", obj, "2023-10-16", clock.Now())
	if _, err := s.ParseWebhook(payload, header); err != nil {
		t.Fatalf("the untouched event must verify: %v", err)
	}
	_, wrongSecret := stripetest.SignedEventAt(t, "whsec_other", "evt_1", "checkout.session.completed", obj, "2023-10-16", clock.Now())
	ts := strings.SplitN(header, ",", 2)[0]

	cases := []struct {
		name    string
		payload []byte
		header  string
	}{
		{"missing header", payload, ""},
		{"garbage header", payload, "nonsense"},
		{"no v1 signature", payload, ts},
		{"bad signature", payload, ts + ",v1=" + strings.Repeat("ab", 32)},
		{"not hex", payload, ts + ",v1=zz"},
		{"wrong secret", payload, wrongSecret},
		{"tampered body", bytes.Replace(payload, []byte(`"amount_total":4500`), []byte(`"amount_total":1`), 1), header},
		{"timestamp changed", payload, "t=" + strconv.FormatInt(clock.Now().Unix()+1, 10) + "," + strings.SplitN(header, ",", 2)[1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "tampered body" && bytes.Equal(c.payload, payload) {
				t.Fatal("test setup: body not tampered")
			}
			_, err := s.ParseWebhook(c.payload, c.header)
			wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)
			if strings.Contains(err.Error(), whsec) {
				t.Fatal("the error names the webhook secret")
			}
		})
	}
}

func TestParseWebhookTimestampWindow(t *testing.T) {
	s, clock := webhookAdapter(t)
	obj := stripetest.CheckoutCompleted("ord_1", "a@example.com", 4500, 0, "eur", "pi_1")

	// Measured with the injected clock: just inside the window passes, just outside fails.
	payload, header := stripetest.SignedEventAt(t, whsec, "evt_1", "checkout.session.completed", obj, "", clock.Now().Add(-stripepay.Tolerance+time.Second))
	if _, err := s.ParseWebhook(payload, header); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
	payload, header = stripetest.SignedEventAt(t, whsec, "evt_1", "checkout.session.completed", obj, "", clock.Now().Add(-stripepay.Tolerance-time.Second))
	_, err := s.ParseWebhook(payload, header)
	wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)

	// The same delivery replayed later: valid when it arrived, stale ten minutes on.
	payload, header = stripetest.SignedEventAt(t, whsec, "evt_2", "checkout.session.completed", obj, "", clock.Now())
	if _, err := s.ParseWebhook(payload, header); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	_, err = s.ParseWebhook(payload, header)
	wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)

	// Without an injected clock the wall clock applies.
	wall, err := stripepay.New(stripepay.Options{WebhookSecret: whsec})
	if err != nil {
		t.Fatal(err)
	}
	payload, header = stripetest.SignedEventAt(t, whsec, "evt_3", "checkout.session.completed", obj, "", time.Now().Add(-time.Hour))
	_, err = wall.ParseWebhook(payload, header)
	wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)
	payload, header = stripetest.SignedEvent(t, whsec, "evt_3", "checkout.session.completed", obj, "")
	if _, err := wall.ParseWebhook(payload, header); err != nil {
		t.Fatalf("fresh event on the wall clock: %v", err)
	}
}

func TestParseWebhookPayloadInvalid(t *testing.T) {
	s, clock := webhookAdapter(t)
	now := clock.Now()
	badShape := stripetest.CheckoutCompleted("ord_1", "a@example.com", 0, 0, "eur", "pi_1")
	badShape["amount_total"] = "forty-five"
	badRefund := stripetest.ChargeRefunded("pi_1", 100, 100, "usd")
	badRefund["amount_refunded"] = map[string]any{"x": 1}

	cases := map[string][]byte{
		"not JSON":         []byte(`{"id":"evt_1","type":"checkout.session.completed","data":`),
		"no id":            stripetest.EventJSON(t, "", "checkout.session.completed", badShape, "", now),
		"no data object":   []byte(`{"id":"evt_1","object":"event","type":"charge.refunded","data":{}}`),
		"wrong field type": stripetest.EventJSON(t, "evt_1", "checkout.session.completed", badShape, "", now),
		"refund shape":     stripetest.EventJSON(t, "evt_2", "charge.refunded", badRefund, "", now),
	}
	t.Run("stale and malformed is a signature refusal", func(t *testing.T) {
		payload := cases["not JSON"]
		_, err := s.ParseWebhook(payload, stripetest.Sign(whsec, payload, now.Add(-time.Hour)))
		wantCode(t, err, errs.Invalid, stripepay.CodeSignatureInvalid)
	})
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := s.ParseWebhook(payload, stripetest.Sign(whsec, payload, now))
			wantCode(t, err, errs.Invalid, stripepay.CodePayloadInvalid)
		})
	}
}

func TestParseWebhookWithoutSecret(t *testing.T) {
	s, err := stripepay.New(stripepay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Signed with the empty key anybody could use: must not verify.
	payload, header := stripetest.SignedEvent(t, "", "evt_1", "checkout.session.completed",
		stripetest.CheckoutCompleted("ord_1", "a@example.com", 1, 0, "usd", "pi_1"), "")
	_, err = s.ParseWebhook(payload, header)
	wantCode(t, err, errs.Unavailable, stripepay.CodeWebhookNotConfigured)
}

func wantCode(t *testing.T, err error, kind errs.Kind, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s, got nil", kind, code)
	}
	e, ok := errs.As(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("want %s %s, got %v", kind, code, err)
	}
}
