package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func (h *harness) admin(method, path, body string, token ...string) response {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tok := h.adminToken
	if len(token) > 0 {
		tok = token[0]
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, path: req.URL.Path}
}

func TestAdminAuth(t *testing.T) {
	h := newHarness(t)
	for _, tok := range []string{"", "wrong"} {
		res := h.admin(http.MethodGet, "/v1/admin/licenses/lic_1", "", tok)
		h.problem(res, 401, "UNAUTHORIZED")
		if res.header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
		if res.header.Get("Signature") != "" {
			t.Fatal("an admin answer is signed")
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/admin/licenses/lic_1", nil)
	req.Header.Set("Authorization", "Basic "+h.adminToken)
	res, _ := h.app.Test(req, -1)
	if res.StatusCode != 401 {
		t.Fatalf("Basic auth: status %d", res.StatusCode)
	}
	if len(h.lic.calls) != 0 {
		t.Fatalf("unauthenticated calls reached the port: %v", h.lic.calls)
	}
	m := h.json(h.admin(http.MethodGet, "/v1/admin/licenses/lic_1", ""), 200)
	wantKeys(t, m, "id", "key", "status", "product", "owner_email", "max_activations", "seats_used", "expires_at", "created_at", "activations")
	if m["owner_email"] != nil || m["expires_at"] != nil {
		t.Fatalf("absent values must be null: %v", m)
	}
	act := m["activations"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "status", "device_fingerprint", "device_name", "platform", "last_heartbeat_at", "certificate_serial"} {
		if _, ok := act[k]; !ok {
			t.Fatalf("activation lacks %s: %v", k, act)
		}
	}
	if act["device_name"] != nil || act["last_heartbeat_at"] != "2026-11-29T12:00:00Z" {
		t.Fatalf("activation = %v", act)
	}
	h.problem(h.admin(http.MethodGet, "/v1/admin/licenses/lic_x", ""), 404, "LICENSE_NOT_FOUND")
}

func TestAdminProducts(t *testing.T) {
	h := newHarness(t)
	good := `{"slug":"synth","name":"Synth","type":"plugin","price_cents":4900,"currency":"USD","policy":{"max_activations":2,"first_activation":"instant","heartbeat_interval_s":60,"grace_period_s":120}}`
	m := h.json(h.admin(http.MethodPost, "/v1/admin/products", good), 201)
	wantKeys(t, m, "slug", "name", "type", "price_cents", "currency", "entitlements", "policy", "created_at", "updated_at")
	pol := m["policy"].(map[string]any)
	if pol["heartbeat_interval_s"] != 60.0 || pol["duration_s"] != nil || pol["first_activation"] != "instant" {
		t.Fatalf("policy = %v", pol)
	}
	for name, tc := range map[string]struct{ body, detail string }{
		"unknown field":  {strings.Replace(good, `"slug"`, `"colour":"red","slug"`, 1), `unknown field "colour"`},
		"wrong type":     {strings.Replace(good, `"price_cents":4900`, `"price_cents":"4900"`, 1), "price_cents must be an integer"},
		"nested type":    {strings.Replace(good, `"max_activations":2`, `"max_activations":2.5`, 1), "policy.max_activations must be an integer"},
		"missing policy": {`{"slug":"s","name":"n","type":"plugin","price_cents":1,"currency":"USD"}`, "policy is required"},
		"missing field":  {strings.Replace(good, `"grace_period_s":120`, `"duration_s":5`, 1), "policy.grace_period_s is required"},
		"not an object":  {`[1]`, "the body must be a JSON object"},
		"trailing data":  {good + `{}`, "exactly one JSON object"},
		"bad json":       {`{"slug":`, "not valid JSON"},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(h.lic.useCases())
			p := h.problem(h.admin(http.MethodPost, "/v1/admin/products", tc.body), 400, "VALIDATION_FAILED")
			if !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("detail = %q, want it to contain %q", p.Detail, tc.detail)
			}
			if len(h.lic.useCases()) != before {
				t.Fatal("an invalid body reached the port")
			}
		})
	}
}

func TestAdminLicenses(t *testing.T) {
	h := newHarness(t)
	req := httptest.NewRequest(http.MethodPost, "/v1/admin/licenses", strings.NewReader(`{"product":"synth","owner_email":"a@example.com","max_activations":3,"expires_at":"2027-01-01T00:00:00+01:00"}`))
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	req.Header.Set("Idempotency-Key", "order-1/line-1")
	res, err := h.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 201 {
		t.Fatalf("status %d", res.StatusCode)
	}
	cmd := h.lic.lastFilter.(ports.CreateLicenseCommand)
	if cmd.Product != "synth" || cmd.OwnerEmail != "a@example.com" || *cmd.MaxActivations != 3 || cmd.IdempotencyKey != "order-1/line-1" ||
		!cmd.ExpiresAt.Equal(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("command = %+v", cmd)
	}
	h.problem(h.admin(http.MethodPost, "/v1/admin/licenses", `{"product":"synth","expires_at":"tomorrow"}`), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodPost, "/v1/admin/licenses", `{}`), 400, "VALIDATION_FAILED")

	m := h.json(h.admin(http.MethodGet, "/v1/admin/licenses?product=synth&status=revoked&owner_email=a@example.com&limit=10&cursor=abc", ""), 200)
	wantKeys(t, m, "items", "next_cursor")
	if m["next_cursor"] != "cur2" || len(m["items"].([]any)) != 1 {
		t.Fatalf("page = %v", m)
	}
	f := h.lic.lastFilter.(ports.LicenseFilter)
	if f.Product != "synth" || f.Status != license.LicenseRevoked || f.OwnerEmail != "a@example.com" || f.Limit != 10 || f.Cursor != "abc" {
		t.Fatalf("filter = %+v", f)
	}
	h.problem(h.admin(http.MethodGet, "/v1/admin/licenses?limit=500", ""), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodGet, "/v1/admin/licenses?status=weird", ""), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodGet, "/v1/admin/licenses?status=expired", ""), 400, "VALIDATION_FAILED")

	for action, status := range map[string]string{"revoke": "revoked", "suspend": "suspended", "reinstate": "active"} {
		m := h.json(h.admin(http.MethodPost, "/v1/admin/licenses/lic_1/"+action, `{"reason":"chargeback"}`), 200)
		if m["status"] != status || h.lic.lastAction != [3]string{"lic_1", action, "chargeback"} {
			t.Fatalf("%s: body %v, call %v", action, m, h.lic.lastAction)
		}
	}
	h.json(h.admin(http.MethodPost, "/v1/admin/licenses/lic_1/revoke", ``), 200)
	h.problem(h.admin(http.MethodPost, "/v1/admin/licenses/lic_1/revoke", `{"why":"x"}`), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodPost, "/v1/admin/licenses/lic_1/destroy", `{}`), 404, "NOT_FOUND")
}

func TestAdminActivationsAndClaims(t *testing.T) {
	h := newHarness(t)
	m := h.json(h.admin(http.MethodGet, "/v1/admin/activations?license_id=lic_1&status=active&fingerprint=fp", ""), 200)
	if m["next_cursor"] != nil {
		t.Fatalf("next_cursor = %v, want null at the end", m["next_cursor"])
	}
	f := h.lic.lastFilter.(ports.ActivationFilter)
	if f.LicenseID != "lic_1" || f.Status != license.ActivationActive || f.Fingerprint != "fp" {
		t.Fatalf("filter = %+v", f)
	}
	h.problem(h.admin(http.MethodGet, "/v1/admin/activations?status=gone", ""), 400, "VALIDATION_FAILED")
	h.json(h.admin(http.MethodPost, "/v1/admin/activations/act_1/release-seat", `{}`), 200)

	m = h.json(h.admin(http.MethodPost, "/v1/admin/claims/clm_1/approve", `{}`), 200)
	wantKeys(t, m, "id", "status", "license_id", "device_name", "platform", "device_fingerprint", "request_addr", "created_at", "expires_at")
	if m["status"] != "approved" || h.lic.lastAction != [3]string{"clm_1", "approve", "admin:ci"} {
		t.Fatalf("body %v, call %v", m, h.lic.lastAction)
	}
	m = h.json(h.admin(http.MethodPost, "/v1/admin/claims/clm_1/reject", `{"reason":"not me"}`), 200)
	if m["status"] != "rejected" {
		t.Fatalf("body %v", m)
	}
}
