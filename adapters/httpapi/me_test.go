package httpapi

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func TestMeAccount(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	res := h.req(tok, http.MethodGet, "/v1/me", "", nil)
	m := h.json(res, 200)
	wantKeys(t, m, "id", "email", "has_password", "created_at")
	if m["email"] != alice || m["has_password"] != false || m["created_at"] != "2026-11-29T12:00:00Z" {
		t.Fatalf("account = %v", m)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Fatal("personal data may be cached")
	}
}

func TestMeLicenses(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodGet, "/v1/me/licenses", "", nil), 200)
	items := m["items"].([]any)
	if len(items) != 1 || m["next_cursor"] != nil {
		t.Fatalf("licenses = %v", m)
	}
	l := items[0].(map[string]any)
	wantKeys(t, l, "id", "masked_key", "status", "product", "max_activations", "seats_used", "expires_at", "created_at", "devices", "pending_claims")
	if l["id"] != "lic_a" || l["masked_key"] != "VST-AAAAA-•••••-•••••-DDDD1" || l["seats_used"] != 2.0 || l["max_activations"] != 3.0 {
		t.Fatalf("license = %v", l)
	}
	if strings.Contains(string(h.req(tok, http.MethodGet, "/v1/me/licenses", "", nil).body), "CCCCC") {
		t.Fatal("the list reveals the key")
	}
	devs := l["devices"].([]any)
	d1, d2 := devs[0].(map[string]any), devs[1].(map[string]any)
	wantKeys(t, d1, "id", "license_id", "status", "device_fingerprint", "device_name", "platform", "plugin_version",
		"last_heartbeat_at", "certificate_serial", "created_at", "trust_level", "seat_held_until", "ended_at", "can_release_seat")
	if d1["trust_level"] != 4.0 || d1["plugin_version"] != "1.2.3" || d1["last_heartbeat_at"] != "2026-11-29T11:00:00Z" || d1["can_release_seat"] != false {
		t.Fatalf("device = %v", d1)
	}
	if d2["can_release_seat"] != true || d2["seat_held_until"] != "2026-12-09T12:00:00Z" || d2["device_name"] != nil {
		t.Fatalf("held device = %v", d2)
	}
	claims := l["pending_claims"].([]any)
	if len(claims) != 1 || claims[0].(map[string]any)["id"] != "clm_a" {
		t.Fatalf("claims = %v", claims)
	}

	// One license by id and by key (with or without dashes, any case).
	for _, ref := range []string{"lic_a", "VST-AAAAA-BBBBB-CCCCC-DDDD1", "vstaaaaabbbbbcccccdddd1"} {
		if m := h.json(h.req(tok, http.MethodGet, "/v1/me/licenses/"+ref, "", nil), 200); m["id"] != "lic_a" {
			t.Fatalf("%s → %v", ref, m)
		}
	}
	h.problem(h.req(tok, http.MethodGet, "/v1/me/licenses/lic_missing", "", nil), 404, license.CodeLicenseNotFound)

	h.owner.fail("OwnerLicenses", errs.E(errs.Unavailable, errs.CodeUnavailable, "db down"))
	h.problem(h.req(tok, http.MethodGet, "/v1/me/licenses", "", nil), 503, errs.CodeUnavailable)
	h.owner.fail("OwnerLicenses", errs.Internalf("boom: secret detail"))
	if p := h.problem(h.req(tok, http.MethodGet, "/v1/me/licenses", "", nil), 500, errs.CodeInternal); strings.Contains(p.Detail, "secret") {
		t.Fatalf("internal detail leaked: %+v", p)
	}
}

func TestMeKeys(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	res := h.req(tok, http.MethodPost, "/v1/me/licenses/lic_a/reveal-key", "", nil)
	if m := h.json(res, 200); m["key"] != "VST-AAAAA-BBBBB-CCCCC-DDDD1" {
		t.Fatalf("reveal = %v", m)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Fatal("a key may be cached")
	}
	h.problem(h.req(tok, http.MethodGet, "/v1/me/licenses/lic_a/reveal-key", "", nil), 405, "METHOD_NOT_ALLOWED")
	h.problem(h.req(tok, http.MethodPost, "/v1/me/licenses/lic_a/reveal-key", `{"x":1}`, nil), 400, errs.CodeValidationFailed)

	m := h.json(h.req(tok, http.MethodPost, "/v1/me/licenses/lic_a/reissue-key", "{}", nil), 200)
	key := m["key"].(string)
	lic := m["license"].(map[string]any)
	if key == "VST-AAAAA-BBBBB-CCCCC-DDDD1" || lic["id"] != "lic_a" || lic["masked_key"] != maskKey(key) {
		t.Fatalf("reissue = %v", m)
	}
	// The old key no longer names the license; the new one does.
	h.problem(h.req(tok, http.MethodGet, "/v1/me/licenses/VST-AAAAA-BBBBB-CCCCC-DDDD1", "", nil), 404, license.CodeLicenseNotFound)
	h.json(h.req(tok, http.MethodGet, "/v1/me/licenses/"+key, "", nil), 200)
	if m := h.json(h.req(tok, http.MethodPost, "/v1/me/licenses/lic_a/reveal-key", "", nil), 200); m["key"] != key {
		t.Fatalf("reveal after reissue = %v", m)
	}
}

func TestMeDevices(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodPatch, "/v1/me/devices/act_a1", `{"name":"  Mix Room  "}`, nil), 200)
	if m["id"] != "act_a1" || m["device_name"] != "Mix Room" {
		t.Fatalf("rename = %v", m)
	}
	for _, body := range []string{`{}`, `{"name":"   "}`, `{"name":"` + strings.Repeat("n", 65) + `"}`, `{"name":"a\u0007b"}`, `{"name":1}`} {
		h.problem(h.req(tok, http.MethodPatch, "/v1/me/devices/act_a1", body, nil), 400, errs.CodeValidationFailed)
	}

	m = h.json(h.req(tok, http.MethodPost, "/v1/me/devices/act_a1/revoke", "", nil), 200)
	if m["id"] != "lic_a" || m["seats_used"] != 1.0 || m["devices"].([]any)[0].(map[string]any)["status"] != "revoked" {
		t.Fatalf("revoke = %v", m)
	}
	h.problem(h.req(tok, http.MethodPost, "/v1/me/devices/act_a1/revoke", "", nil), 409, codeNotActive)

	m = h.json(h.req(tok, http.MethodPost, "/v1/me/devices/act_a2/release-seat", "", nil), 200)
	if m["seats_used"] != 0.0 || m["devices"].([]any)[1].(map[string]any)["can_release_seat"] != false {
		t.Fatalf("release = %v", m)
	}
	h.problem(h.req(tok, http.MethodPost, "/v1/me/devices/act_a2/release-seat", "", nil), 409, codeSeatNotHeld)
	h.problem(h.req(tok, http.MethodPost, "/v1/me/devices/act_missing/revoke", "", nil), 404, codeActivationNotFound)
}

func TestMeClaims(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodGet, "/v1/me/claims", "", nil), 200)
	items := m["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("claims = %v", m)
	}
	c := items[0].(map[string]any)
	wantKeys(t, c, "id", "status", "license_id", "device_name", "platform", "device_fingerprint", "request_addr", "created_at", "expires_at")
	if c["id"] != "clm_a" || c["license_id"] != "lic_a" || c["request_addr"] != "203.0.113.7" {
		t.Fatalf("claim = %v", c)
	}
	if m := h.json(h.req(tok, http.MethodPost, "/v1/me/claims/clm_a/approve", "", nil), 200); m["status"] != "approved" {
		t.Fatalf("approve = %v", m)
	}
	if m := h.json(h.req(tok, http.MethodGet, "/v1/me/claims", "", nil), 200); len(m["items"].([]any)) != 0 {
		t.Fatalf("decided claim still pending: %v", m)
	}
	h.problem(h.req(tok, http.MethodPost, "/v1/me/claims/clm_a/reject", "", nil), 404, license.CodeClaimNotFound)
	h.problem(h.req(tok, http.MethodPost, "/v1/me/claims/clm_a/maybe", "", nil), 404, errs.CodeNotFound)

	// Reject goes through as well.
	bobTok := h.cus.signIn(bob, ports.SessionBearer)
	if m := h.json(h.req(bobTok, http.MethodPost, "/v1/me/claims/clm_b/reject", "", nil), 200); m["status"] != "rejected" {
		t.Fatalf("reject = %v", m)
	}
}

// Customer A's session asking for any of customer B's objects, by id or by key, gets the 404 a
// missing object gets: the same status, code and body, and nothing of B's changes.
func TestMeIDOR(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	cases := []struct {
		method, path, body, code, missing string
	}{
		{http.MethodGet, "/v1/me/licenses/lic_b", "", license.CodeLicenseNotFound, "/v1/me/licenses/lic_zz"},
		{http.MethodGet, "/v1/me/licenses/VST-BBBBB-CCCCC-DDDDD-EEEE2", "", license.CodeLicenseNotFound, "/v1/me/licenses/VST-ZZZZZ-CCCCC-DDDDD-EEEE2"},
		{http.MethodPost, "/v1/me/licenses/lic_b/reveal-key", "", license.CodeLicenseNotFound, "/v1/me/licenses/lic_zz/reveal-key"},
		{http.MethodPost, "/v1/me/licenses/lic_b/reissue-key", "", license.CodeLicenseNotFound, "/v1/me/licenses/lic_zz/reissue-key"},
		{http.MethodPatch, "/v1/me/devices/act_b1", `{"name":"mine now"}`, codeActivationNotFound, "/v1/me/devices/act_zz"},
		{http.MethodPost, "/v1/me/devices/act_b1/revoke", "", codeActivationNotFound, "/v1/me/devices/act_zz/revoke"},
		{http.MethodPost, "/v1/me/devices/act_b1/release-seat", "", codeActivationNotFound, "/v1/me/devices/act_zz/release-seat"},
		{http.MethodPost, "/v1/me/claims/clm_b/approve", "", license.CodeClaimNotFound, "/v1/me/claims/clm_zz/approve"},
		{http.MethodPost, "/v1/me/claims/clm_b/reject", "", license.CodeClaimNotFound, "/v1/me/claims/clm_zz/reject"},
		{http.MethodGet, "/v1/me/orders/ord_b1", "", order.CodeOrderNotFound, "/v1/me/orders/ord_zz"},
		{http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_b1","product":"drums"}`, order.CodeOrderNotFound, ""},
	}
	for _, tc := range cases {
		theirs := h.req(tok, tc.method, tc.path, tc.body, nil)
		h.problem(theirs, 404, tc.code)
		missingPath, missingBody := tc.missing, tc.body
		if missingPath == "" {
			missingPath, missingBody = tc.path, strings.Replace(tc.body, "ord_b1", "ord_zz", 1)
		}
		missing := h.req(tok, tc.method, missingPath, missingBody, nil)
		if string(theirs.body) != string(missing.body) || theirs.status != missing.status {
			t.Errorf("%s %s: %s differs from a missing object's %s", tc.method, tc.path, theirs.body, missing.body)
		}
	}
	// Through the cookie, too.
	ck := h.cus.signIn(alice, ports.SessionCookie)
	h.problem(h.browser(ck, http.MethodPost, "/v1/me/devices/act_b1/revoke", ""), 404, codeActivationNotFound)

	// Nothing of bob's changed, and nothing of his is listed for alice.
	bobTok := h.cus.signIn(bob, ports.SessionBearer)
	m := h.json(h.req(bobTok, http.MethodGet, "/v1/me/licenses/lic_b", "", nil), 200)
	d := m["devices"].([]any)[0].(map[string]any)
	if d["status"] != "active" || d["device_name"] != nil || len(m["pending_claims"].([]any)) != 1 || m["masked_key"] != "VST-BBBBB-•••••-•••••-EEEE2" {
		t.Fatalf("bob's license changed: %v", m)
	}
	if n := h.orders.count("DownloadLink"); n != 0 {
		t.Fatalf("DownloadLink called %d times", n)
	}
	for _, path := range []string{"/v1/me/licenses", "/v1/me/claims", "/v1/me/orders", "/v1/me/downloads"} {
		body := string(h.req(tok, http.MethodGet, path, "", nil).body)
		for _, b := range []string{"lic_b", "act_b1", "clm_b", "ord_b1", "drums", bob} {
			if strings.Contains(body, b) {
				t.Errorf("%s lists bob's %s: %s", path, b, body)
			}
		}
	}
}

// docs/openapi.yaml documents the customer routes with their problem codes.
func TestMeOpenAPI(t *testing.T) {
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n  /v1/me:\n    get:", "\n  /v1/auth/verify:\n    post:", "\n  /v1/recover:\n    post:",
		"SESSION_INVALID", "CSRF_REJECTED", "INVALID_CREDENTIALS", "SIGN_IN_LINK_INVALID", "CUSTOMERS_NOT_CONFIGURED",
		"ACTIVATION_NOT_FOUND", "CLAIM_NOT_FOUND", "LICENSE_NOT_FOUND", "ORDER_NOT_FOUND", "samplero_session"} {
		if !strings.Contains(string(spec), want) {
			t.Errorf("docs/openapi.yaml lacks %q", want)
		}
	}
}
