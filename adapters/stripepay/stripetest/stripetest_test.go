package stripetest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/samplero/samplero/adapters/stripepay/stripetest"
)

func TestSignedEventVerifiesWithStripeGo(t *testing.T) {
	obj := stripetest.CheckoutCompleted("ord_1", "a@example.com", 4500, 500, "EUR", "pi_1")
	payload, header := stripetest.SignedEvent(t, "whsec_x", "evt_1", "checkout.session.completed", obj, "2025-03-31.basil")
	ev, err := webhook.ConstructEventWithOptions(payload, header, "whsec_x", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("stripe-go refuses the event: %v", err)
	}
	if ev.ID != "evt_1" || ev.Type != "checkout.session.completed" || ev.APIVersion != "2025-03-31.basil" {
		t.Fatalf("event %+v", ev)
	}
	if got := ev.GetObjectValue("metadata", "samplero_order_id"); got != "ord_1" {
		t.Fatalf("metadata.samplero_order_id = %q", got)
	}
	if got := ev.GetObjectValue("currency"); got != "eur" {
		t.Fatalf("currency = %q, Stripe sends it lower case", got)
	}
	if _, err := webhook.ConstructEventWithOptions(payload, header, "whsec_y", webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true}); err == nil {
		t.Fatal("verified with the wrong secret")
	}

	// An old signing time is refused by stripe-go's window.
	old := time.Now().Add(-time.Hour)
	payload, header = stripetest.SignedEventAt(t, "whsec_x", "evt_2", "charge.refunded", stripetest.ChargeRefunded("pi_1", 10, 10, "usd"), "", old)
	if _, err := webhook.ConstructEvent(payload, header, "whsec_x"); err != webhook.ErrTooOld {
		t.Fatalf("old event: %v", err)
	}
	var env struct {
		APIVersion string `json:"api_version"`
		Created    int64  `json:"created"`
	}
	if err := json.Unmarshal(payload, &env); err != nil || env.APIVersion != stripetest.DefaultAPIVersion || env.Created != old.Unix() {
		t.Fatalf("envelope %+v %v", env, err)
	}
}

func TestStartMockAnswersAndStops(t *testing.T) {
	var base string
	t.Run("running", func(t *testing.T) {
		base = stripetest.StartMock(t)
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/balance", nil)
		req.Header.Set("Authorization", "Bearer "+stripetest.MockAPIKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	if base == "" {
		t.Skip("stripe-mock not installed")
	}
	// The subtest's cleanup stopped the process: nothing answers there any more.
	if res, err := http.Get(base + "/v1/balance"); err == nil {
		res.Body.Close()
		t.Fatalf("stripe-mock still answers at %s after cleanup", base)
	}
}

// stopTB records how StartMock gives up, without ending this test.
type stopTB struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (s *stopTB) Helper()          {}
func (s *stopTB) Cleanup(f func()) {}
func (s *stopTB) Skipf(format string, args ...any) {
	s.skipped = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (s *stopTB) Fatalf(format string, args ...any) {
	s.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func startWithout(t *testing.T) *stopTB {
	tb := &stopTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopped); !ok {
					panic(r)
				}
			}
		}()
		stripetest.StartMock(tb)
	}()
	return tb
}

func TestStartMockWithoutTheBinary(t *testing.T) {
	t.Setenv("PATH", "")            // no stripe-mock (and no go to ask for GOPATH)
	t.Setenv("GOPATH", t.TempDir()) // an empty bin directory

	t.Setenv("SAMPLERO_REQUIRE_SERVICES", "")
	tb := startWithout(t)
	if tb.failed != "" || !strings.Contains(tb.skipped, stripetest.InstallCommand) {
		t.Fatalf("want a skip naming the install command; skipped %q failed %q", tb.skipped, tb.failed)
	}

	t.Setenv("SAMPLERO_REQUIRE_SERVICES", "1")
	tb = startWithout(t)
	if tb.skipped != "" || !strings.Contains(tb.failed, "go install github.com/stripe/stripe-mock@v0.203.0") {
		t.Fatalf("want a failure naming the install command; skipped %q failed %q", tb.skipped, tb.failed)
	}
}
