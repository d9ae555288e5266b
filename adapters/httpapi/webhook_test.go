package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

const webhookSecret = "whsec_generic_test_secret"

func sign(secret, ts, id, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + id + "." + body))
	return hex.EncodeToString(mac.Sum(nil))
}

func webhookHarness(t *testing.T, mutate ...func(*Deps)) *commerceHarness {
	return newCommerceHarness(t, append([]func(*Deps){func(d *Deps) { d.Config.WebhookSecret = webhookSecret }}, mutate...)...)
}

// deliver posts body to the generic webhook with a good signature unless the headers say otherwise
// ("" deletes a header).
func (h *commerceHarness) deliver(id, body string, header map[string]string) response {
	h.t.Helper()
	ts := strconv.FormatInt(h.clock.Now().Unix(), 10)
	hdr := map[string]string{
		"X-Webhook-Timestamp": ts,
		"X-Webhook-Id":        id,
		"X-Webhook-Signature": sign(webhookSecret, ts, id, body),
	}
	for k, v := range header {
		hdr[k] = v
	}
	for k, v := range hdr {
		if v == "" {
			delete(hdr, k)
		}
	}
	return h.call(http.MethodPost, "/v1/webhooks/payment", body, hdr)
}

const paidBody = `{"event":"payment.succeeded","data":{"order_id":"ord_1","payment_id":"pay_77","amount_cents":7840,"currency":"usd","discount_cents":1960,"email":"buyer@example.com","extra":"ignored"},"livemode":false}`

func TestGenericWebhookGoodSignature(t *testing.T) {
	h := webhookHarness(t)
	m := h.json(h.deliver("evt_1", paidBody, nil), 200)
	if m["received"] != true || m["duplicate"] != false {
		t.Fatalf("answer = %v", m)
	}
	ev := h.com.last("HandlePayment")[0].(ports.PaymentEventIn)
	want := ports.PaymentEventIn{Provider: "generic", EventID: "evt_1", Type: ports.PaymentSucceeded, RawType: "payment.succeeded",
		OrderID: "ord_1", PaymentRef: "pay_77", AmountCents: 7840, DiscountCents: 1960, Currency: "USD", CustomerEmail: "buyer@example.com"}
	if ev != want {
		t.Fatalf("event = %+v\nwant    %+v", ev, want)
	}
	// The event id is the replay key: a redelivery is acknowledged as a duplicate.
	m = h.json(h.deliver("evt_1", paidBody, nil), 200)
	if m["duplicate"] != true {
		t.Fatalf("redelivery answer = %v", m)
	}
	// The signature may carry sha256= and upper-case hex.
	ts := strconv.FormatInt(h.clock.Now().Unix(), 10)
	h.json(h.deliver("evt_2", paidBody, map[string]string{"X-Webhook-Signature": "SHA256=" + strings.ToUpper(sign(webhookSecret, ts, "evt_2", paidBody))}), 200)
	// A timestamp in milliseconds.
	ms := strconv.FormatInt(h.clock.Now().UnixMilli(), 10)
	h.json(h.deliver("evt_3", paidBody, map[string]string{"X-Webhook-Timestamp": ms, "X-Webhook-Signature": sign(webhookSecret, ms, "evt_3", paidBody)}), 200)
	if n := h.com.count("HandlePayment"); n != 4 {
		t.Fatalf("HandlePayment called %d times", n)
	}
}

func TestGenericWebhookRefusals(t *testing.T) {
	h := webhookHarness(t)
	now := h.clock.Now().Unix()
	stale := strconv.FormatInt(now-301, 10)
	future := strconv.FormatInt(now+301, 10)
	edge := strconv.FormatInt(now-300, 10)
	staleMs := strconv.FormatInt((now-400)*1000, 10)
	for name, tc := range map[string]struct {
		header map[string]string
		body   string
		status int
		code   string
	}{
		"no timestamp":       {map[string]string{"X-Webhook-Timestamp": ""}, paidBody, 401, "WEBHOOK_HEADERS_MISSING"},
		"no id":              {map[string]string{"X-Webhook-Id": ""}, paidBody, 401, "WEBHOOK_HEADERS_MISSING"},
		"no signature":       {map[string]string{"X-Webhook-Signature": ""}, paidBody, 401, "WEBHOOK_HEADERS_MISSING"},
		"text timestamp":     {map[string]string{"X-Webhook-Timestamp": "yesterday"}, paidBody, 401, "WEBHOOK_HEADERS_MISSING"},
		"bad signature":      {map[string]string{"X-Webhook-Signature": sign("other secret", strconv.FormatInt(now, 10), "evt_x", paidBody)}, paidBody, 401, "WEBHOOK_SIGNATURE_INVALID"},
		"not hex":            {map[string]string{"X-Webhook-Signature": "zz"}, paidBody, 401, "WEBHOOK_SIGNATURE_INVALID"},
		"tampered body":      {map[string]string{"X-Webhook-Signature": sign(webhookSecret, strconv.FormatInt(now, 10), "evt_x", paidBody)}, strings.Replace(paidBody, "7840", "1", 1), 401, "WEBHOOK_SIGNATURE_INVALID"},
		"other event id":     {map[string]string{"X-Webhook-Signature": sign(webhookSecret, strconv.FormatInt(now, 10), "evt_y", paidBody)}, paidBody, 401, "WEBHOOK_SIGNATURE_INVALID"},
		"stale, signed":      {map[string]string{"X-Webhook-Timestamp": stale, "X-Webhook-Signature": sign(webhookSecret, stale, "evt_x", paidBody)}, paidBody, 401, "WEBHOOK_TIMESTAMP_OUT_OF_WINDOW"},
		"future, signed":     {map[string]string{"X-Webhook-Timestamp": future, "X-Webhook-Signature": sign(webhookSecret, future, "evt_x", paidBody)}, paidBody, 401, "WEBHOOK_TIMESTAMP_OUT_OF_WINDOW"},
		"stale ms, signed":   {map[string]string{"X-Webhook-Timestamp": staleMs, "X-Webhook-Signature": sign(webhookSecret, staleMs, "evt_x", paidBody)}, paidBody, 401, "WEBHOOK_TIMESTAMP_OUT_OF_WINDOW"},
		"missing amount":     {nil, `{"event":"payment.succeeded","data":{"order_id":"o","payment_id":"p","currency":"USD"}}`, 400, "VALIDATION_FAILED"},
		"wrong type":         {nil, `{"event":"payment.succeeded","data":{"order_id":"o","payment_id":"p","currency":"USD","amount_cents":"10"}}`, 400, "VALIDATION_FAILED"},
		"refund without ids": {nil, `{"event":"payment.refunded","data":{"amount_cents":10}}`, 400, "VALIDATION_FAILED"},
		"no event":           {nil, `{"data":{}}`, 400, "VALIDATION_FAILED"},
	} {
		t.Run(name, func(t *testing.T) {
			h.problem(h.deliver("evt_x", tc.body, tc.header), tc.status, tc.code)
		})
	}
	// Exactly 300 s is inside the window.
	h.json(h.deliver("evt_edge", paidBody, map[string]string{"X-Webhook-Timestamp": edge, "X-Webhook-Signature": sign(webhookSecret, edge, "evt_edge", paidBody)}), 200)
	if n := h.com.count("HandlePayment"); n != 1 {
		t.Fatalf("HandlePayment called %d times, want 1", n)
	}

	// Not configured: 503 before anything else.
	h = newCommerceHarness(t)
	h.problem(h.deliver("evt_1", paidBody, nil), 503, "WEBHOOK_NOT_CONFIGURED")
}

func TestGenericWebhookEventMapping(t *testing.T) {
	h := webhookHarness(t)
	for i, tc := range []struct {
		body string
		want ports.PaymentEventIn
	}{
		{`{"event":"payment.refunded","data":{"payment_id":"pay_77","amount_cents":7840,"currency":"USD"}}`,
			ports.PaymentEventIn{Type: ports.PaymentRefunded, PaymentRef: "pay_77", AmountCents: 7840, ChargeAmountCents: 7840, Currency: "USD"}},
		{`{"event":"payment.partially_refunded","data":{"order_id":"ord_1","amount_cents":100,"charge_amount_cents":7840,"currency":"USD"}}`,
			ports.PaymentEventIn{Type: ports.PaymentPartialRefund, OrderID: "ord_1", AmountCents: 100, ChargeAmountCents: 7840, Currency: "USD"}},
		{`{"event":"payment.disputed","data":{"order_id":"ord_1"}}`,
			ports.PaymentEventIn{Type: ports.PaymentDisputed, OrderID: "ord_1"}},
		{`{"event":"payment.failed","data":{"order_id":"ord_1"}}`,
			ports.PaymentEventIn{Type: ports.PaymentCheckoutExpired, OrderID: "ord_1"}},
		{`{"event":"customer.created","data":{"email":"x@example.com"}}`,
			ports.PaymentEventIn{Type: ports.PaymentIgnored, CustomerEmail: "x@example.com"}},
	} {
		id := "evt_m" + strconv.Itoa(i)
		h.json(h.deliver(id, tc.body, nil), 200)
		ev := h.com.last("HandlePayment")[0].(ports.PaymentEventIn)
		tc.want.Provider, tc.want.EventID = "generic", id
		tc.want.RawType = ev.RawType
		if ev != tc.want || ev.RawType == "" {
			t.Errorf("%s: event = %+v\nwant %+v", tc.body, ev, tc.want)
		}
	}
	h.com.fail("HandlePayment", errs.Unavailable, errs.CodeUnavailable)
	h.problem(h.deliver("evt_down", paidBody, nil), 503, "UNAVAILABLE")
}

// The allowlist sees the TCP peer, or behind a trusted proxy the right-most untrusted
// X-Forwarded-For entry; never an entry the client wrote (the seed took the left-most one).
func TestGenericWebhookAllowlist(t *testing.T) {
	allowed := netip.MustParsePrefix("198.51.100.0/24")
	// The peer of app.Test is 0.0.0.0: a direct delivery from an allowed address.
	h := webhookHarness(t, func(d *Deps) {
		d.Config.TrustedProxies = nil
		d.Config.WebhookAllowlist = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}
	})
	h.json(h.deliver("evt_1", paidBody, nil), 200)

	// A peer that is not allowed cannot talk its way in with X-Forwarded-For, from an untrusted peer.
	h = webhookHarness(t, func(d *Deps) {
		d.Config.TrustedProxies = nil
		d.Config.WebhookAllowlist = []netip.Prefix{allowed}
	})
	h.problem(h.deliver("evt_1", paidBody, map[string]string{"X-Forwarded-For": "198.51.100.7"}), 403, "WEBHOOK_SOURCE_FORBIDDEN")

	// Behind the trusted proxy (the harness trusts 0.0.0.0): the proxy's appended entry counts.
	h = webhookHarness(t, func(d *Deps) { d.Config.WebhookAllowlist = []netip.Prefix{allowed} })
	h.json(h.deliver("evt_2", paidBody, map[string]string{"X-Forwarded-For": "198.51.100.7"}), 200)
	// A client-written entry on the left, the real client (appended by the proxy) on the right.
	h.problem(h.deliver("evt_3", paidBody, map[string]string{"X-Forwarded-For": "198.51.100.7, 203.0.113.99"}), 403, "WEBHOOK_SOURCE_FORBIDDEN")
	h.problem(h.deliver("evt_4", paidBody, nil), 403, "WEBHOOK_SOURCE_FORBIDDEN") // the proxy itself
	if n := h.com.count("HandlePayment"); n != 1 {
		t.Fatalf("HandlePayment called %d times, want 1", n)
	}
	// The source check runs before the header checks.
	h.problem(h.deliver("evt_5", paidBody, map[string]string{"X-Webhook-Signature": ""}), 403, "WEBHOOK_SOURCE_FORBIDDEN")
}

// Fifty concurrent deliveries of one event: every one acknowledged, one applied.
func TestGenericWebhookConcurrentDuplicates(t *testing.T) {
	h := webhookHarness(t)
	var wg sync.WaitGroup
	dups := make(chan bool, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := strconv.FormatInt(h.clock.Now().Unix(), 10)
			res := h.call(http.MethodPost, "/v1/webhooks/payment", paidBody, map[string]string{
				"X-Webhook-Timestamp": ts, "X-Webhook-Id": "evt_same", "X-Webhook-Signature": sign(webhookSecret, ts, "evt_same", paidBody)})
			dups <- res.status == 200 && strings.Contains(string(res.body), `"duplicate":true`)
		}()
	}
	wg.Wait()
	close(dups)
	n := 0
	for d := range dups {
		if !d {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d deliveries were not duplicates, want 1", n)
	}
}

func TestStripeWebhook(t *testing.T) {
	var gotPayload, gotSig string
	h := newCommerceHarness(t, func(d *Deps) {
		d.StripeWebhook = func(payload []byte, sig string) (ports.PaymentEventIn, error) {
			gotPayload, gotSig = string(payload), sig
			if sig != "t=1,v1=good" {
				return ports.PaymentEventIn{}, errs.E(errs.Invalid, "WEBHOOK_SIGNATURE_INVALID", "no signature matches")
			}
			return ports.PaymentEventIn{Provider: "stripe", EventID: "evt_s1", Type: ports.PaymentSucceeded, OrderID: "ord_1", AmountCents: 7840, Currency: "USD"}, nil
		}
	})
	body := `{"id":"evt_s1","type":"checkout.session.completed"}`
	good := map[string]string{"Stripe-Signature": "t=1,v1=good"}
	m := h.json(h.call(http.MethodPost, "/v1/webhooks/stripe", body, good), 200)
	if m["received"] != true || m["duplicate"] != false || gotPayload != body || gotSig != "t=1,v1=good" {
		t.Fatalf("answer %v, payload %q, sig %q", m, gotPayload, gotSig)
	}
	if ev := h.com.last("HandlePayment")[0].(ports.PaymentEventIn); ev.EventID != "evt_s1" || ev.OrderID != "ord_1" {
		t.Fatalf("event = %+v", ev)
	}
	m = h.json(h.call(http.MethodPost, "/v1/webhooks/stripe", body, good), 200)
	if m["duplicate"] != true {
		t.Fatalf("redelivery = %v", m)
	}
	h.problem(h.call(http.MethodPost, "/v1/webhooks/stripe", body, map[string]string{"Stripe-Signature": "t=1,v1=bad"}), 400, "WEBHOOK_SIGNATURE_INVALID")
	h.problem(h.call(http.MethodPost, "/v1/webhooks/stripe", body, nil), 400, "WEBHOOK_SIGNATURE_INVALID")
	// Any refusal of the verifier is a 400, even one it gives another kind.
	hu := newCommerceHarness(t, func(d *Deps) {
		d.StripeWebhook = func([]byte, string) (ports.PaymentEventIn, error) {
			return ports.PaymentEventIn{}, errs.E(errs.Unauthenticated, "STRIPE_SIGNATURE", "too old")
		}
	})
	hu.problem(hu.call(http.MethodPost, "/v1/webhooks/stripe", body, good), 400, "STRIPE_SIGNATURE")
	// Stripe redelivers what fails with a 5xx.
	h.com.fail("HandlePayment", errs.Unavailable, errs.CodeUnavailable)
	h.problem(h.call(http.MethodPost, "/v1/webhooks/stripe", body, good), 503, "UNAVAILABLE")
	if n := h.com.count("HandlePayment"); n != 3 {
		t.Fatalf("HandlePayment called %d times, want 3", n)
	}
	// Bodies above 1 MiB are refused, whatever BodyLimit allows.
	hb := newCommerceHarness(t, func(d *Deps) {
		d.Config.BodyLimit = 4 << 20
		d.StripeWebhook = func([]byte, string) (ports.PaymentEventIn, error) { return ports.PaymentEventIn{}, nil }
	})
	hb.problem(hb.call(http.MethodPost, "/v1/webhooks/stripe", `{"x":"`+strings.Repeat("a", 1<<20)+`"}`, good), 413, "BODY_TOO_LARGE")

	// Not configured.
	h = newCommerceHarness(t)
	h.problem(h.call(http.MethodPost, "/v1/webhooks/stripe", body, good), 503, "STRIPE_NOT_CONFIGURED")
	// Webhook answers are never signed like device answers.
	if res := h.call(http.MethodPost, "/v1/webhooks/stripe", body, good); res.header.Get("Signature") != "" {
		t.Fatal("a webhook answer is signed")
	}
}
