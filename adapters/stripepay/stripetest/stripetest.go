// Package stripetest helps tests talk to the Stripe adapter as Stripe would: it builds realistic
// webhook events signed with an endpoint secret, and starts stripe-mock (Stripe's own API mock) on
// loopback for the outgoing calls.
package stripetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// MockVersion is the stripe-mock release the tests are written against.
const MockVersion = "v0.203.0"

// InstallCommand installs stripe-mock.
const InstallCommand = "go install github.com/stripe/stripe-mock@" + MockVersion

// DefaultAPIVersion is the API version of stripe-go v76, used when an event names none.
const DefaultAPIVersion = "2023-10-16"

// SignedEvent builds the JSON of a Stripe event of type eventType whose data.object is object, and
// the Stripe-Signature header that signs it with secret at the current wall-clock time. t may be
// nil (outside tests); it is only used to fail on an object that does not marshal.
func SignedEvent(t testing.TB, secret, id, eventType string, object map[string]any, apiVersion string) (payload []byte, header string) {
	return SignedEventAt(t, secret, id, eventType, object, apiVersion, time.Now())
}

// SignedEventAt is SignedEvent signed at a chosen time: a fake clock's, or an old one to test the
// timestamp window.
func SignedEventAt(t testing.TB, secret, id, eventType string, object map[string]any, apiVersion string, at time.Time) (payload []byte, header string) {
	payload = EventJSON(t, id, eventType, object, apiVersion, at)
	return payload, Sign(secret, payload, at)
}

// EventJSON builds the JSON of an event as Stripe delivers it (unsigned).
func EventJSON(t testing.TB, id, eventType string, object map[string]any, apiVersion string, created time.Time) []byte {
	if t != nil {
		t.Helper()
	}
	if apiVersion == "" {
		apiVersion = DefaultAPIVersion
	}
	ev := map[string]any{
		"id":               id,
		"object":           "event",
		"api_version":      apiVersion,
		"created":          created.Unix(),
		"data":             map[string]any{"object": object},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             eventType,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		if t != nil {
			t.Fatalf("stripetest: event does not marshal: %v", err)
		}
		panic(fmt.Sprintf("stripetest: event does not marshal: %v", err))
	}
	return b
}

// Sign returns the Stripe-Signature header of payload signed with secret at time at.
func Sign(secret string, payload []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

// SessionID is the Checkout Session id the helpers give an order's session.
func SessionID(orderID string) string { return "cs_test_" + orderID }

// CheckoutCompleted is the Checkout Session of a paid checkout.session.completed for a session
// created by the adapter: metadata.samplero_order_id and client_reference_id name the order.
// discount is what Stripe reports in total_details.amount_discount; currency is lower-cased as
// Stripe sends it.
func CheckoutCompleted(orderID, email string, amountTotal, discount int64, currency, paymentIntent string) map[string]any {
	s := session(SessionID(orderID), email, amountTotal, discount, currency, paymentIntent)
	s["client_reference_id"] = orderID
	s["metadata"] = map[string]any{"samplero_order_id": orderID}
	return s
}

// PaymentLinkCompleted is the Checkout Session of a paid Payment Link: no order yet, the products
// in metadata.samplero_products ("slug:qty,slug:qty") and the buyer in customer_details.
func PaymentLinkCompleted(sessionID, products, email string, amountTotal, discount int64, currency, paymentIntent string) map[string]any {
	s := session(sessionID, email, amountTotal, discount, currency, paymentIntent)
	s["customer_email"] = nil // Payment Links collect the address on the page
	s["payment_link"] = "plink_test_" + sessionID
	s["metadata"] = map[string]any{"samplero_products": products}
	return s
}

// CheckoutUnpaid is a completed session whose delayed payment method has not settled yet.
func CheckoutUnpaid(orderID, email string, amountTotal int64, currency string) map[string]any {
	s := CheckoutCompleted(orderID, email, amountTotal, 0, currency, "")
	s["payment_status"] = "unpaid"
	s["status"] = "complete"
	return s
}

// CheckoutExpired is the session of a checkout.session.expired.
func CheckoutExpired(orderID, email string, amountTotal int64, currency string) map[string]any {
	s := CheckoutCompleted(orderID, email, amountTotal, 0, currency, "")
	s["payment_status"] = "unpaid"
	s["status"] = "expired"
	return s
}

func session(id, email string, amountTotal, discount int64, currency, paymentIntent string) map[string]any {
	var pi any
	if paymentIntent != "" {
		pi = paymentIntent
	}
	return map[string]any{
		"id":                  id,
		"object":              "checkout.session",
		"amount_subtotal":     amountTotal + discount,
		"amount_total":        amountTotal,
		"client_reference_id": nil,
		"currency":            strings.ToLower(currency),
		"customer_email":      email,
		"customer_details":    map[string]any{"email": email, "name": "Test Buyer", "tax_exempt": "none"},
		"livemode":            false,
		"mode":                "payment",
		"payment_intent":      pi,
		"payment_status":      "paid",
		"status":              "complete",
		"total_details":       map[string]any{"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
		"url":                 nil,
		"success_url":         "https://example.test/success",
		"cancel_url":          "https://example.test/cancel",
	}
}

// ChargeRefunded is the charge of a charge.refunded: amount is the charge, amountRefunded what has
// been refunded so far (equal for a full refund).
func ChargeRefunded(paymentIntent string, amount, amountRefunded int64, currency string) map[string]any {
	return map[string]any{
		"id":              "ch_test_" + strings.TrimPrefix(paymentIntent, "pi_"),
		"object":          "charge",
		"amount":          amount,
		"amount_captured": amount,
		"amount_refunded": amountRefunded,
		"captured":        true,
		"currency":        strings.ToLower(currency),
		"metadata":        map[string]any{},
		"paid":            true,
		"payment_intent":  paymentIntent,
		"refunded":        amountRefunded >= amount,
		"status":          "succeeded",
	}
}

// DisputeCreated is the dispute of a charge.dispute.created.
func DisputeCreated(paymentIntent, chargeID string, amount int64, currency string) map[string]any {
	var pi any
	if paymentIntent != "" {
		pi = paymentIntent
	}
	return map[string]any{
		"id":             "dp_test_" + strings.TrimPrefix(chargeID, "ch_"),
		"object":         "dispute",
		"amount":         amount,
		"charge":         chargeID,
		"currency":       strings.ToLower(currency),
		"metadata":       map[string]any{},
		"payment_intent": pi,
		"reason":         "fraudulent",
		"status":         "needs_response",
	}
}

// MockAPIKey is a key stripe-mock accepts (any test-mode-looking key).
const MockAPIKey = "sk_test_samplero"

// StartMock starts stripe-mock on two free loopback ports and returns its HTTP base URL; it is
// stopped when the test ends. Without the binary the test is skipped, unless
// SAMPLERO_REQUIRE_SERVICES is set: then it fails and names the install command.
func StartMock(t testing.TB) (baseURL string) {
	t.Helper()
	bin := findMock()
	if bin == "" {
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
			t.Fatalf("stripe-mock is not installed (PATH or $(go env GOPATH)/bin); install it with: %s", InstallCommand)
		}
		t.Skipf("stripe-mock is not installed; install it with: %s", InstallCommand)
	}
	httpAddr, httpsAddr := freeAddr(t), freeAddr(t)
	out := &headBuffer{max: 16 << 10}
	cmd := exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripetest: start stripe-mock: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	baseURL = "http://" + httpAddr
	// Wait until it answers an authenticated call (it parses its bundled OpenAPI spec first).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/balance", nil)
		req.Header.Set("Authorization", "Bearer "+MockAPIKey)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return baseURL
			}
		}
		select {
		case <-done:
			t.Fatalf("stripetest: stripe-mock exited before answering: %s", out.String())
		case <-ctx.Done():
			t.Fatalf("stripetest: stripe-mock did not answer on %s within 30 s", baseURL)
		case <-time.After(50 * time.Millisecond): // polling a starting process, not waiting for time
		}
	}
}

func findMock() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		gopath = strings.TrimSpace(string(out))
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("stripetest: no free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// headBuffer keeps the first max bytes of stripe-mock's output (its start-up errors), safe to read
// while the process writes: stripe-mock logs every request, which must not grow without bound.
type headBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
