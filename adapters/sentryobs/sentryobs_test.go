package sentryobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
)

const (
	licenseKey  = "VST-ABCDE-FGHJK-LMNPQ-RSTUV"
	bareKey     = "dig23456789abcdefghjkmn"
	bearer      = "Bearer sk_admin_0123456789abcdef"
	signature   = "sig1=:MEUCIQDxyz+abc/def==:"
	sigInput    = `sig1=("@method" "@path" "content-digest");created=1764417600;nonce="q2H4mN8rT5vW1xY3aB7cD9";keyid="0u9Tx";alg="ed25519"`
	lease       = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhY3RfMSJ9.c2lnbmF0dXJl"
	pemBlock    = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBdzCCAR0CAQAw\n-----END CERTIFICATE REQUEST-----"
	cookieValue = "session=topsecretcookie"
)

var secrets = []string{licenseKey, "ABCDE-FGHJK", bareKey, "sk_admin_0123456789abcdef", "MEUCIQDxyz", "q2H4mN8rT5vW1xY3aB7cD9", lease, "MIIBdzCCAR0CAQAw", "topsecretcookie", "proxy-token-value"}

func dirtyEvent() *sentry.Event {
	return &sentry.Event{
		Message:   "activate failed for " + licenseKey + " with " + bearer,
		Exception: []sentry.Exception{{Type: "*errors.errorString", Value: "lookup " + bareKey + ": " + pemBlock}},
		Contexts: map[string]sentry.Context{"log": {
			"license_key": licenseKey,
			"nested":      map[string]any{"lease": lease, "path": "/v1/activate"},
			"note":        "signature " + signature,
		}},
		Breadcrumbs: []*sentry.Breadcrumb{{Message: "sent " + sigInput, Data: map[string]any{"token": "x", "status": 500}}},
		Tags:        map[string]string{"route": "/v1/activate", "authorization": bearer},
		User:        sentry.User{ID: "u1", Email: "owner@example.com", IPAddress: "203.0.113.9"},
		Request: &sentry.Request{
			URL:         "https://licenses.example.com/v1/keys?nonce=q2H4mN8rT5vW1xY3aB7cD9&x=1",
			Method:      "POST",
			Data:        `{"license_key":"` + licenseKey + `","csr":"` + pemBlock + `"}`,
			QueryString: "token=sk_admin_0123456789abcdef&page=2",
			Cookies:     cookieValue,
			Headers: map[string]string{
				"Authorization":          bearer,
				"Cookie":                 cookieValue,
				"Signature":              signature,
				"Signature-Input":        sigInput,
				"X-Samplero-Proxy-Token": "proxy-token-value",
				"User-Agent":             "plugin/1.2",
			},
		},
	}
}

func TestScrubRemovesEverySecret(t *testing.T) {
	out, err := json.Marshal(Scrub(dirtyEvent()))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("scrubbed event still contains %q:\n%s", secret, s)
		}
	}
	if strings.Contains(s, "owner@example.com") || strings.Contains(s, "203.0.113.9") {
		t.Errorf("user details kept: %s", s)
	}
	// What helps debugging survives.
	for _, keep := range []string{"activate failed for [license-key]", "/v1/activate", "plugin/1.2", "page=2", `"status":500`, `"u1"`} {
		if !strings.Contains(s, keep) {
			t.Errorf("scrubbed event lost %q:\n%s", keep, s)
		}
	}
}

type captureTransport struct {
	mu     sync.Mutex
	events []*sentry.Event
}

func (c *captureTransport) Flush(time.Duration) bool              { return true }
func (c *captureTransport) FlushWithContext(context.Context) bool { return true }
func (c *captureTransport) Configure(sentry.ClientOptions)        {}
func (c *captureTransport) Close()                                {}
func (c *captureTransport) SendEvent(e *sentry.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}
func (c *captureTransport) all() []*sentry.Event     { c.mu.Lock(); defer c.mu.Unlock(); return c.events }
func (c *captureTransport) json(t *testing.T) string { b, _ := json.Marshal(c.all()); return string(b) }

func TestReporterScrubsWhatItSends(t *testing.T) {
	tr := &captureTransport{}
	r, err := New(Options{DSN: "https://public@sentry.example.com/1", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	r.CaptureError(errors.New("validate "+licenseKey), map[string]string{"request_id": "req-1"})
	func() {
		defer func() { r.Recover(context.Background(), recover()) }()
		panic("boom with " + bearer)
	}()
	log := slog.New(r.Handler(slog.NewJSONHandler(&strings.Builder{}, nil)))
	log.Info("not reported")
	log.With("request_id", "req-2").Error("internal error", "error", errors.New("db: "+licenseKey), "status", 500)

	events := tr.all()
	if len(events) != 3 {
		t.Fatalf("%d events, want 3 (error, panic, error log)", len(events))
	}
	s := tr.json(t)
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("sent event contains %q", secret)
		}
	}
	if !strings.Contains(s, "req-1") || !strings.Contains(s, "req-2") || !strings.Contains(s, "boom with Bearer [scrubbed]") {
		t.Errorf("events lost context: %s", s)
	}
}

func TestDisabledReporterIsNoop(t *testing.T) {
	r, err := New(Options{})
	if err != nil || r.Enabled() {
		t.Fatalf("empty DSN: enabled=%v err=%v", r.Enabled(), err)
	}
	r.CaptureError(errors.New("x"), nil)
	r.Recover(context.Background(), "x")
	r.Flush(time.Millisecond)
	var nilR *Reporter
	nilR.CaptureError(errors.New("x"), nil)
	base := slog.NewTextHandler(&strings.Builder{}, nil)
	if r.Handler(base) != base {
		t.Fatal("a disabled reporter wraps the log handler")
	}
	if _, err := New(Options{DSN: "::not a dsn::secretpart"}); err == nil || strings.Contains(err.Error(), "secretpart") {
		t.Fatalf("bad DSN: %v", err)
	}
}
