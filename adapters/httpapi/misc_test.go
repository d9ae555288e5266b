package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestHealthReadyMetrics(t *testing.T) {
	var readyErr error
	h := newHarness(t, func(d *Deps) { d.Ready = func(context.Context) error { return readyErr } })
	get := func(path string) (int, string) {
		res, err := h.app.Test(httptest.NewRequest(http.MethodGet, path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if s, _ := get("/healthz"); s != 200 {
		t.Fatalf("healthz %d", s)
	}
	if s, _ := get("/readyz"); s != 200 {
		t.Fatalf("readyz %d", s)
	}
	readyErr = errors.New("db down: password=hunter2")
	if s, b := get("/readyz"); s != 503 || strings.Contains(b, "hunter2") {
		t.Fatalf("readyz %d %s", s, b)
	}
	if s, _ := get("/healthz"); s != 200 {
		t.Fatalf("healthz while not ready %d", s)
	}

	h.do(request{path: "/v1/validate", body: []byte(`{}`), mtls: true})
	h.do(request{path: "/v1/validate", body: []byte(`{}`)}) // MTLS_REQUIRED
	h.lic.useErr = nil
	h.lic.activateResult.Grant.Created = true
	h.do(request{path: "/v1/activate", body: h.activateBody()})
	h.do(request{path: "/v1/random/" + strings.Repeat("x", 10)})
	s, b := get("/metrics")
	if s != 200 {
		t.Fatalf("metrics %d", s)
	}
	for _, want := range []string{
		`samplero_http_requests_total{route="/v1/validate",status="200"} 1`,
		`samplero_http_requests_total{route="/v1/validate",status="403"} 1`,
		`samplero_http_requests_total{route="unmatched",status="404"} 1`,
		`samplero_validations_total{status="active",valid="true"} 1`,
		`samplero_activations_total{endpoint="activate",result="created"} 1`,
		`samplero_device_requests_refused_total{code="MTLS_REQUIRED"} 1`,
		`samplero_seats_refused_total 0`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(b, "xxxxxxxxxx") {
		t.Error("a raw path became a label value")
	}
}

func TestInternalErrorsAndPanics(t *testing.T) {
	var mu sync.Mutex
	var reported []error
	var logs bytes.Buffer
	h := newHarness(t, func(d *Deps) {
		d.OnServerError = func(_ context.Context, err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	h.lic.useErr = errors.New("pq: connection refused to 10.0.0.3 password=hunter2")
	res := h.do(request{path: "/v1/activate", body: h.activateBody()})
	p := h.problem(res, 500, "INTERNAL")
	if p.Detail != "internal error" {
		t.Fatalf("detail = %q", p.Detail)
	}
	h.verify(res)

	h.lic.useErr = nil
	h.lic.validateResult.Status = "panic"
	res = h.do(request{path: "/v1/validate", body: []byte(`{}`), mtls: true, header: map[string]string{"X-Request-Id": "req-123"}})
	h.problem(res, 500, "INTERNAL")
	h.verify(res)
	if res.header.Get("X-Request-Id") != "req-123" {
		t.Fatalf("request id = %q", res.header.Get("X-Request-Id"))
	}
	mu.Lock()
	n := len(reported)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("OnServerError called %d times, want 2", n)
	}
	// The access log never carries license keys, signatures or Authorization.
	h.admin(http.MethodGet, "/v1/admin/licenses/lic_1", "")
	out := logs.String()
	for _, secret := range []string{"VST-AAAAA", "sig1=", h.adminToken} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
	if !strings.Contains(out, "request_id=req-123") {
		t.Error("access log lacks the request id")
	}
}

func TestRequestIDGeneratedAndSanitized(t *testing.T) {
	h := newHarness(t)
	for _, in := range []string{"", "bad id with spaces", strings.Repeat("a", 200)} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		if in != "" {
			req.Header.Set("X-Request-Id", in)
		}
		res, _ := h.app.Test(req, -1)
		got := res.Header.Get("X-Request-Id")
		if len(got) != 32 || got == in {
			t.Fatalf("request id for %q = %q", in, got)
		}
	}
}

func TestClientAddress(t *testing.T) {
	h := newHarness(t)
	h.lic.activateResult.Grant.Created = true
	for xff, want := range map[string]string{
		"":                     "0.0.0.0",
		"203.0.113.1":          "203.0.113.1",
		"1.1.1.1, 203.0.113.1": "203.0.113.1", // the left entry was written by the client
		"203.0.113.1, 0.0.0.0": "203.0.113.1", // the right one is a trusted proxy
		"garbage, 0.0.0.0":     "0.0.0.0",
		"::ffff:198.51.100.2":  "198.51.100.2",
	} {
		hdr := map[string]string{}
		if xff != "" {
			hdr["X-Forwarded-For"] = xff
		}
		h.json(h.do(request{path: "/v1/activate", body: h.activateBody(), header: hdr}), 201)
		if got := h.lic.lastActivate.RequestAddr; got != want {
			t.Errorf("X-Forwarded-For %q: address %q, want %q", xff, got, want)
		}
	}
	// An untrusted peer's X-Forwarded-For is ignored.
	h = newHarness(t, func(d *Deps) { d.Config.TrustedProxies = nil })
	h.json(h.do(request{path: "/v1/activate", body: h.activateBody(), header: map[string]string{"X-Forwarded-For": "203.0.113.1"}}), 201)
	if got := h.lic.lastActivate.RequestAddr; got != "0.0.0.0" {
		t.Fatalf("address %q", got)
	}
}

// TestRoutesAddedLaterGetTheEdge: cmd mounts the web pages on the returned app; they must get the
// request id, access log, metrics and error rendering too.
func TestRoutesAddedLaterGetTheEdge(t *testing.T) {
	var logs bytes.Buffer
	h := newHarness(t, func(d *Deps) { d.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	h.app.Get("/claims/confirm", func(c *fiber.Ctx) error { return c.SendString("page") })
	h.app.Get("/claims/broken", func(c *fiber.Ctx) error { panic("page exploded") })
	res, err := h.app.Test(httptest.NewRequest(http.MethodGet, "/claims/confirm?token=secret", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("status %d, request id %q", res.StatusCode, res.Header.Get("X-Request-Id"))
	}
	if strings.Contains(logs.String(), "secret") || !strings.Contains(logs.String(), "path=/claims/confirm") {
		t.Fatalf("the access log must have the path without its query: %s", logs.String())
	}
	res, err = h.app.Test(httptest.NewRequest(http.MethodGet, "/claims/broken", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panic on a later route: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

func TestLogPathCutsDownloadTokens(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/files/eyJhbGciOiJIUzI1NiJ9.x.y": "/v1/files/[redacted]",
		"/api/v1/files/abc":                  "/api/v1/files/[redacted]",
		"/v1/files/":                         "/v1/files/",
		"/v1/validate":                       "/v1/validate",
	} {
		if got := logPath(in); got != want {
			t.Errorf("logPath(%q) = %q, want %q", in, got, want)
		}
	}
}
