package stripepay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/samplero/samplero/adapters/stripepay"
	"github.com/samplero/samplero/adapters/stripepay/stripetest"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// recorded is one request the adapter sent, with the answer it got.
type recorded struct {
	Method, Path   string
	IdempotencyKey string
	Auth           string
	Form           url.Values
	Status         int
	Response       []byte
}

// recorder is a RoundTripper that keeps every request and response: stripe-mock answers with
// fixtures, so what the adapter sent is what these tests check.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	rec := recorded{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"),
		Auth: req.Header.Get("Authorization"), Form: form}
	res, err := r.next.RoundTrip(req)
	if err == nil {
		rec.Status = res.StatusCode
		rec.Response, _ = io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(rec.Response))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return res, err
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func apiAdapter(t *testing.T, base string, retries int) (*stripepay.Stripe, *recorder) {
	t.Helper()
	rec := &recorder{next: http.DefaultTransport}
	s, err := stripepay.New(stripepay.Options{
		SecretKey:      stripetest.MockAPIKey,
		APIBase:        base,
		HTTPClient:     &http.Client{Transport: rec},
		NetworkRetries: retries,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func checkoutRequest(discount int64) ports.CheckoutRequest {
	return ports.CheckoutRequest{
		OrderID:       "ord_01JTEST",
		Reference:     "LS-000042",
		CustomerEmail: "buyer@example.com",
		Currency:      "EUR",
		Lines: []ports.CheckoutLine{
			{Name: "Synth Pro", Product: "synth-pro", UnitPriceCents: 4900, Quantity: 2},
			{Name: "Drum Kit", Product: "drum-kit", UnitPriceCents: 1500, Quantity: 1},
		},
		DiscountCents: discount,
		SuccessURL:    "https://shop.example/success?order=ord_01JTEST",
		CancelURL:     "https://shop.example/cancel",
	}
}

func wantForm(t *testing.T, form url.Values, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := form.Get(k); got != v {
			t.Errorf("form %s = %q, want %q", k, got, v)
		}
	}
}

func TestCreateCheckoutAgainstStripeMock(t *testing.T) {
	base := stripetest.StartMock(t)
	s, rec := apiAdapter(t, base, 0)

	sess, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
	if err != nil {
		t.Fatalf("CreateCheckout: %v", err)
	}
	if !strings.HasPrefix(sess.ID, "cs_") || !strings.HasPrefix(sess.URL, "https://") || sess.ExpiresAt.IsZero() {
		t.Fatalf("session %+v: want an id, a URL and an expiry", sess)
	}
	reqs := rec.all()
	if len(reqs) != 1 {
		t.Fatalf("sent %d requests, want 1 (no coupon without a discount)", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/checkout/sessions" || r.Status != http.StatusOK {
		t.Fatalf("sent %s %s → %d", r.Method, r.Path, r.Status)
	}
	if r.IdempotencyKey != "samplero-checkout-ord_01JTEST" {
		t.Errorf("Idempotency-Key = %q", r.IdempotencyKey)
	}
	if r.Auth != "Bearer "+stripetest.MockAPIKey {
		t.Errorf("Authorization = %q", r.Auth)
	}
	wantForm(t, r.Form, map[string]string{
		"mode":                         "payment",
		"customer_email":               "buyer@example.com",
		"client_reference_id":          "ord_01JTEST",
		"metadata[samplero_order_id]":  "ord_01JTEST",
		"metadata[samplero_reference]": "LS-000042",
		"success_url":                  "https://shop.example/success?order=ord_01JTEST",
		"cancel_url":                   "https://shop.example/cancel",
		"payment_intent_data[metadata][samplero_order_id]": "ord_01JTEST",

		"line_items[0][price_data][currency]":                                 "eur",
		"line_items[0][price_data][unit_amount]":                              "4900",
		"line_items[0][price_data][product_data][name]":                       "Synth Pro",
		"line_items[0][price_data][product_data][metadata][samplero_product]": "synth-pro",
		"line_items[0][quantity]":                                             "2",
		"line_items[1][price_data][currency]":                                 "eur",
		"line_items[1][price_data][unit_amount]":                              "1500",
		"line_items[1][price_data][product_data][name]":                       "Drum Kit",
		"line_items[1][price_data][product_data][metadata][samplero_product]": "drum-kit",
		"line_items[1][quantity]":                                             "1",
	})
	if r.Form.Has("line_items[2][quantity]") || r.Form.Has("discounts[0][coupon]") {
		t.Errorf("unexpected fields in %v", r.Form)
	}
	// No package globals: the key lives in the adapter's own client.
	if stripe.Key != "" {
		t.Errorf("stripe.Key was set to %q", stripe.Key)
	}
}

func TestCreateCheckoutWithDiscountAgainstStripeMock(t *testing.T) {
	base := stripetest.StartMock(t)
	s, rec := apiAdapter(t, base, 0)

	sess, err := s.CreateCheckout(context.Background(), checkoutRequest(1200))
	if err != nil {
		t.Fatalf("CreateCheckout: %v", err)
	}
	if sess.ID == "" || sess.URL == "" {
		t.Fatalf("session %+v", sess)
	}
	reqs := rec.all()
	if len(reqs) != 2 {
		t.Fatalf("sent %d requests, want a coupon then a session", len(reqs))
	}
	c, cs := reqs[0], reqs[1]
	if c.Path != "/v1/coupons" || c.IdempotencyKey != "samplero-discount-ord_01JTEST" {
		t.Fatalf("first request %s with key %q", c.Path, c.IdempotencyKey)
	}
	wantForm(t, c.Form, map[string]string{
		"amount_off":                  "1200",
		"currency":                    "eur",
		"duration":                    "once",
		"max_redemptions":             "1",
		"metadata[samplero_order_id]": "ord_01JTEST",
	})
	var coupon struct{ ID string }
	if err := json.Unmarshal(c.Response, &coupon); err != nil || coupon.ID == "" {
		t.Fatalf("coupon answer %s: %v", c.Response, err)
	}
	if cs.Path != "/v1/checkout/sessions" || cs.IdempotencyKey != "samplero-checkout-ord_01JTEST" {
		t.Fatalf("second request %s with key %q", cs.Path, cs.IdempotencyKey)
	}
	wantForm(t, cs.Form, map[string]string{
		"discounts[0][coupon]":        coupon.ID,
		"metadata[samplero_order_id]": "ord_01JTEST",
		"line_items[0][quantity]":     "2",
	})
}

func TestRefundAgainstStripeMock(t *testing.T) {
	base := stripetest.StartMock(t)
	s, rec := apiAdapter(t, base, 0)
	ctx := context.Background()

	if err := s.Refund(ctx, "pi_3Refund", "requested_by_customer"); err != nil {
		t.Fatalf("Refund: %v", err)
	}
	if err := s.Refund(ctx, "pi_3Other", "Customer changed their mind"); err != nil {
		t.Fatalf("Refund with a free-text reason: %v", err)
	}
	if err := s.Refund(ctx, "ch_3Legacy", "Fraudulent"); err != nil {
		t.Fatalf("Refund of a charge: %v", err)
	}
	reqs := rec.all()
	if len(reqs) != 3 {
		t.Fatalf("sent %d requests", len(reqs))
	}
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/v1/refunds" || r.Status != http.StatusOK {
			t.Fatalf("sent %s %s → %d", r.Method, r.Path, r.Status)
		}
	}
	if reqs[0].IdempotencyKey != "samplero-refund-pi_3Refund" {
		t.Errorf("Idempotency-Key = %q", reqs[0].IdempotencyKey)
	}
	wantForm(t, reqs[0].Form, map[string]string{"payment_intent": "pi_3Refund", "reason": "requested_by_customer"})
	if reqs[0].Form.Has("amount") {
		t.Error("a whole refund must not name an amount")
	}
	wantForm(t, reqs[1].Form, map[string]string{"payment_intent": "pi_3Other", "reason": "",
		"metadata[samplero_reason]": "Customer changed their mind"})
	wantForm(t, reqs[2].Form, map[string]string{"charge": "ch_3Legacy", "payment_intent": "", "reason": "fraudulent"})
	if reqs[2].IdempotencyKey != "samplero-refund-ch_3Legacy" {
		t.Errorf("Idempotency-Key = %q", reqs[2].IdempotencyKey)
	}
}

func TestInvalidRequestsSendNothing(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s, _ := apiAdapter(t, srv.URL, -1)
	ctx := context.Background()

	mutate := map[string]func(*ports.CheckoutRequest){
		"no order":           func(r *ports.CheckoutRequest) { r.OrderID = "" },
		"no lines":           func(r *ports.CheckoutRequest) { r.Lines = nil },
		"zero quantity":      func(r *ports.CheckoutRequest) { r.Lines[0].Quantity = 0 },
		"negative price":     func(r *ports.CheckoutRequest) { r.Lines[1].UnitPriceCents = -1 },
		"bad currency":       func(r *ports.CheckoutRequest) { r.Currency = "EURO" },
		"no success URL":     func(r *ports.CheckoutRequest) { r.SuccessURL = "" },
		"negative discount":  func(r *ports.CheckoutRequest) { r.DiscountCents = -5 },
		"discount too large": func(r *ports.CheckoutRequest) { r.DiscountCents = 2*4900 + 1500 + 1 },
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			req := checkoutRequest(0)
			m(&req)
			_, err := s.CreateCheckout(ctx, req)
			wantCode(t, err, errs.Invalid, errs.CodeValidationFailed)
		})
	}
	for _, ref := range []string{"", "coupon:SPRING", "manual-123"} {
		wantCode(t, s.Refund(ctx, ref, ""), errs.Invalid, errs.CodeValidationFailed)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("invalid requests reached the provider %d times", n)
	}
}

func TestWithoutSecretKeyPaymentsAreUnavailable(t *testing.T) {
	s, err := stripepay.New(stripepay.Options{WebhookSecret: whsec})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateCheckout(context.Background(), checkoutRequest(0))
	wantCode(t, err, errs.Unavailable, stripepay.CodeProviderUnavailable)
	wantCode(t, s.Refund(context.Background(), "pi_1", ""), errs.Unavailable, stripepay.CodeProviderUnavailable)
}

func TestNewRejectsBadAPIBase(t *testing.T) {
	for _, base := range []string{"127.0.0.1:12111", "ftp://x", "http://"} {
		if _, err := stripepay.New(stripepay.Options{APIBase: base}); err == nil {
			t.Errorf("APIBase %q accepted", base)
		}
	}
}

// stripeError answers like Stripe does when it refuses a call.
func stripeError(status int, typ, code, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_test")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "code": code, "message": msg}})
	}
}

func TestProviderErrorsAreMapped(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		kind    errs.Kind
		code    string
		msgHas  string
	}{
		{"400 invalid request", stripeError(400, "invalid_request_error", "parameter_invalid_integer", "Invalid integer: abc"),
			errs.Invalid, stripepay.CodeProviderRejected, "Invalid integer: abc"},
		{"402 card error", stripeError(402, "card_error", "card_declined", "Your card was declined."),
			errs.Invalid, stripepay.CodeProviderRejected, "Your card was declined."},
		{"401 bad key", stripeError(401, "invalid_request_error", "", "Invalid API Key provided: sk_test_********************abcd"),
			errs.Invalid, stripepay.CodeProviderRejected, "credentials"},
		{"idempotency conflict", stripeError(400, "idempotency_error", "", "Keys for idempotent requests can only be used with the same parameters"),
			errs.Invalid, stripepay.CodeProviderRejected, "same parameters"},
		{"429 rate limited", stripeError(429, "invalid_request_error", "rate_limit", "Too many requests"),
			errs.Unavailable, stripepay.CodeProviderUnavailable, "unavailable"},
		{"500 api error", stripeError(500, "api_error", "", "Something went wrong"),
			errs.Unavailable, stripepay.CodeProviderUnavailable, "unavailable"},
		{"502 from a proxy", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}, errs.Unavailable, stripepay.CodeProviderUnavailable, "unavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			s, _ := apiAdapter(t, srv.URL, -1)
			_, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
			wantCode(t, err, c.kind, c.code)
			e, _ := errs.As(err)
			if !strings.Contains(e.Message, c.msgHas) {
				t.Errorf("message %q does not say %q", e.Message, c.msgHas)
			}
			if strings.Contains(e.Message, "sk_") || strings.Contains(err.Error(), stripetest.MockAPIKey) {
				t.Errorf("error carries a key: %v", err)
			}
			// Refunds map the same way.
			wantCode(t, s.Refund(context.Background(), "pi_1", ""), c.kind, c.code)
		})
	}

	t.Run("network failure", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		base := srv.URL
		srv.Close() // nothing listens there any more
		s, _ := apiAdapter(t, base, -1)
		_, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
		wantCode(t, err, errs.Unavailable, stripepay.CodeProviderUnavailable)
	})

	t.Run("secrets in Stripe's message are redacted", func(t *testing.T) {
		srv := httptest.NewServer(stripeError(400, "invalid_request_error", "", "No such key sk_live_51Habc123 or whsec_abc"))
		defer srv.Close()
		s, _ := apiAdapter(t, srv.URL, -1)
		_, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
		wantCode(t, err, errs.Invalid, stripepay.CodeProviderRejected)
		if strings.Contains(err.Error(), "sk_live_51Habc123") || strings.Contains(err.Error(), "whsec_abc") {
			t.Fatalf("secret leaked: %v", err)
		}
	})
}

func TestRefundOfARefundedPaymentIsDone(t *testing.T) {
	srv := httptest.NewServer(stripeError(400, "invalid_request_error", "charge_already_refunded", "Charge ch_1 has already been refunded."))
	defer srv.Close()
	s, rec := apiAdapter(t, srv.URL, -1)
	if err := s.Refund(context.Background(), "pi_1", "duplicate"); err != nil {
		t.Fatalf("Refund of an already refunded payment: %v", err)
	}
	if n := len(rec.all()); n != 1 {
		t.Fatalf("sent %d requests", n)
	}
}

// A failed call is retried with the same idempotency key, so Stripe answers the retry with the
// first call's result rather than creating a second session.
func TestRetriesKeepTheIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			stripeError(503, "api_error", "", "try again")(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"cs_test_retry","object":"checkout.session","url":"https://checkout.stripe.com/c/pay/cs_test_retry","expires_at":1900000000}`)
	}))
	defer srv.Close()
	s, rec := apiAdapter(t, srv.URL, 1)
	sess, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
	if err != nil {
		t.Fatalf("CreateCheckout: %v", err)
	}
	if sess.ID != "cs_test_retry" || sess.ExpiresAt.Unix() != 1900000000 {
		t.Fatalf("session %+v", sess)
	}
	reqs := rec.all()
	if len(reqs) != 2 || reqs[0].IdempotencyKey != reqs[1].IdempotencyKey || reqs[1].IdempotencyKey != "samplero-checkout-ord_01JTEST" {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestSessionWithoutURLIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"cs_test_1","object":"checkout.session","url":null}`)
	}))
	defer srv.Close()
	s, _ := apiAdapter(t, srv.URL, -1)
	_, err := s.CreateCheckout(context.Background(), checkoutRequest(0))
	wantCode(t, err, errs.Unavailable, stripepay.CodeProviderUnavailable)
}
