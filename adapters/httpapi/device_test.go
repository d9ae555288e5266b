package httpapi

import (
	"encoding/base64"
	"net/http"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

// keysOf returns the sorted keys of a JSON object, to assert that a body has exactly its fields.
func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantKeys(t *testing.T, m map[string]any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keysOf(m); !reflect.DeepEqual(got, want) {
		t.Fatalf("fields = %v, want %v", got, want)
	}
}

func TestActivateCreated(t *testing.T) {
	h := newHarness(t)
	res := h.do(request{path: "/v1/activate", body: h.activateBody(), header: map[string]string{"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}})
	m := h.json(res, http.StatusCreated)
	h.verify(res)
	wantKeys(t, m, "status", "activation_id", "certificate", "ca_chain", "certificate_serial", "certificate_not_after",
		"lease", "heartbeat_interval_s", "grace_period_s", "mtls_url", "trust_level")
	want := map[string]any{
		"status": "active", "activation_id": "act_1", "certificate_serial": "A1B", "certificate_not_after": "2027-11-29T12:00:00Z",
		"heartbeat_interval_s": 86400.0, "grace_period_s": 604800.0, "mtls_url": "https://127.0.0.1:8443", "trust_level": 3.0,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	cmd := h.lic.lastActivate
	if cmd.LicenseKey != "VST-AAAAA-BBBBB-CCCCC-DDDDD" || cmd.Platform != "mac" || cmd.DeviceName != "Studio Mac" ||
		cmd.CSRPEM != "csr-for:"+h.devID || cmd.Identity.Thumbprint != h.devID || cmd.RequestAddr != "203.0.113.5" {
		t.Fatalf("command = %+v", cmd)
	}
	if h.nonces.Len() != 1 {
		t.Fatalf("nonces spent = %d, want 1", h.nonces.Len())
	}
}

func TestActivateSameDeviceAndPending(t *testing.T) {
	h := newHarness(t)
	h.lic.activateResult.Grant.Created = false
	res := h.do(request{path: "/v1/activate", body: h.activateBody()})
	h.json(res, http.StatusOK)
	h.verify(res)

	h.lic.activateResult = ports.ActivateResult{Pending: &ports.PendingClaim{ClaimID: "clm_1", ExpiresAt: t0.Add(15*time.Minute + 500*time.Millisecond)}}
	res = h.do(request{path: "/v1/activate", body: h.activateBody()})
	m := h.json(res, http.StatusAccepted)
	h.verify(res)
	wantKeys(t, m, "status", "claim_id", "expires_at", "next_step", "trust_level")
	if m["status"] != "pending_confirmation" || m["expires_at"] != "2026-11-29T12:15:00Z" || m["next_step"] != "approve_in_account" || m["trust_level"] != 3.0 {
		t.Fatalf("body = %v", m)
	}
}

func TestBootstrapPending(t *testing.T) {
	h := newHarness(t)
	h.lic.claims["clm_1"] = h.devID
	res := h.do(request{path: "/v1/bootstrap", body: []byte(`{"claim_id":"clm_1"}`)})
	m := h.json(res, http.StatusAccepted)
	h.verify(res)
	wantKeys(t, m, "status", "claim_id", "expires_at", "trust_level")
	if h.lic.lastIdentity.ClaimID != "clm_1" {
		t.Fatalf("identity = %+v", h.lic.lastIdentity)
	}
}

func TestValidateTrustLevels(t *testing.T) {
	h := newHarness(t)
	res := h.do(request{path: "/v1/validate", body: []byte(`{"product":"synth","plugin_version":"1.0"}`), mtls: true})
	m := h.json(res, http.StatusOK)
	h.verify(res)
	wantKeys(t, m, "valid", "status", "activation_id", "license", "trust_level", "heartbeat_due_at", "grace_period_remaining_s")
	if m["trust_level"] != 4.0 || m["heartbeat_due_at"] != "2026-11-30T12:00:00Z" || m["grace_period_remaining_s"] != 604800.0 {
		t.Fatalf("body = %v", m)
	}
	lic := m["license"].(map[string]any)
	wantKeys(t, lic, "id", "product", "expires_at", "entitlements")
	if !h.lic.lastIdentity.MTLS || h.lic.lastIdentity.CertificateSerial != "A1B" {
		t.Fatalf("identity = %+v", h.lic.lastIdentity)
	}

	h = newHarness(t, func(d *Deps) { d.Config.RequireMTLS = false })
	h.lic.validateResult.Action = "heartbeat_required"
	h.lic.validateResult.License.ExpiresAt = nil
	h.lic.validateResult.License.Entitlements = nil
	res = h.do(request{path: "/v1/validate", body: nil})
	m = h.json(res, http.StatusOK)
	h.verify(res)
	if m["trust_level"] != 3.0 || m["action"] != "heartbeat_required" {
		t.Fatalf("body = %v", m)
	}
	lic = m["license"].(map[string]any)
	if v, ok := lic["expires_at"]; !ok || v != nil {
		t.Fatalf("license.expires_at = %v, present %v; want null", v, ok)
	}
	if e, ok := lic["entitlements"].([]any); !ok || len(e) != 0 {
		t.Fatalf("entitlements = %#v, want []", lic["entitlements"])
	}
	if h.lic.lastIdentity.MTLS {
		t.Fatal("identity claims mTLS without a certificate")
	}
}

func TestHeartbeatBodies(t *testing.T) {
	h := newHarness(t)
	h.lic.heartbeat.Recovered, h.lic.heartbeat.PreviousStatus = true, "grace_period"
	res := h.do(request{path: "/v1/heartbeat", body: []byte(`{"plugin_version":"2.0"}`), mtls: true})
	m := h.json(res, http.StatusOK)
	h.verify(res)
	wantKeys(t, m, "valid", "status", "previous_status", "recovered", "lease", "heartbeat_due_at", "grace_period_remaining_s", "renew_certificate", "trust_level")

	h.lic.heartbeat = ports.HeartbeatResult{Valid: true, Status: "active", Lease: "l", HeartbeatDueAt: t0}
	res = h.do(request{path: "/v1/heartbeat", body: nil, mtls: true})
	m = h.json(res, http.StatusOK)
	if _, ok := m["previous_status"]; ok || m["recovered"] != false {
		t.Fatalf("previous_status present without recovery: %v", m)
	}

	h.lic.heartbeat = ports.HeartbeatResult{Valid: false, Status: "revoked"}
	res = h.do(request{path: "/v1/heartbeat", body: nil, mtls: true})
	m = h.json(res, http.StatusOK)
	h.verify(res)
	if m["valid"] != false || m["status"] != "revoked" || m["trust_level"] != 4.0 || m["lease"] != nil {
		t.Fatalf("body = %v", m)
	}
}

func TestDeactivateRenewStatus(t *testing.T) {
	h := newHarness(t)
	res := h.do(request{path: "/v1/deactivate", body: nil, mtls: true})
	m := h.json(res, http.StatusOK)
	h.verify(res)
	wantKeys(t, m, "status", "seats_used", "seats_total", "seat_released_at", "trust_level")
	if m["status"] != "deactivated" || m["seat_released_at"] != "2026-11-29T12:00:00Z" {
		t.Fatalf("body = %v", m)
	}

	res = h.do(request{path: "/v1/certificates/renew", body: []byte(`{"csr":"pem"}`), mtls: true})
	m = h.json(res, http.StatusOK)
	h.verify(res)
	wantKeys(t, m, "certificate", "ca_chain", "certificate_serial", "certificate_not_after", "lease", "trust_level")

	res = h.do(request{path: "/v1/certificates/renew", body: []byte(`{}`), mtls: true})
	h.problem(res, 400, "VALIDATION_FAILED")
	h.verify(res)

	// status with a key that names nothing: no signature check, no nonce spent, still signed.
	before := h.nonces.Len()
	res = h.do(request{path: "/v1/status", body: []byte(`{"license_key":"VST-AAAAA"}`), key: newDeviceKey(t)})
	m = h.json(res, http.StatusOK)
	h.verify(res)
	wantKeys(t, m, "status", "seats_used", "seats_total", "expires_at", "trust_level")
	if m["expires_at"] != nil || m["trust_level"] != 3.0 {
		t.Fatalf("body = %v", m)
	}
	if h.nonces.Len() != before {
		t.Fatal("status with an unknown key spent a nonce")
	}
}

func TestStatusKnownKeyIsVerified(t *testing.T) {
	h := newHarness(t)
	h.lic.statusKnown = true
	// Signed by another key under the known keyid: the signature is checked and fails.
	res := h.do(request{path: "/v1/status", body: []byte(`{"license_key":"k"}`), key: newDeviceKey(t), params: httpsig.RequestParams{KeyID: h.devID}})
	h.problem(res, 401, "INVALID_SIGNATURE")
	h.verify(res)
	res = h.do(request{path: "/v1/status", body: []byte(`{"license_key":"k"}`)})
	h.json(res, http.StatusOK)
	if h.nonces.Len() != 1 {
		t.Fatalf("nonces = %d, want 1", h.nonces.Len())
	}
}

func TestKeys(t *testing.T) {
	h := newHarness(t)
	nonce := httpsig.NewNonce()
	res := h.do(request{method: http.MethodGet, path: "/v1/keys?nonce=" + nonce})
	m := h.json(res, http.StatusOK)
	if res.nonce != nonce {
		t.Fatal("harness lost the nonce")
	}
	h.verify(res)
	wantKeys(t, m, "issuer", "keys", "ca_chain")
	keys := m["keys"].([]any)
	k := keys[0].(map[string]any)
	wantKeys(t, k, "kid", "alg", "public_key", "not_before", "not_after", "status", "endorsement")
	if k["alg"] != "ed25519" || k["public_key"] != base64.StdEncoding.EncodeToString(h.keys.public()) || k["endorsement"] != nil || k["not_before"] != "2026-11-29T11:00:00Z" {
		t.Fatalf("key = %v", k)
	}
	if _, ok := m["trust_level"]; ok {
		t.Fatal("/v1/keys carries trust_level")
	}
	if m["ca_chain"] != h.ca.pem {
		t.Fatal("ca_chain is not the issuer's")
	}

	// Without a nonce: signed, no nonce param.
	res = h.do(request{method: http.MethodGet, path: "/v1/keys"})
	h.json(res, http.StatusOK)
	h.verify(res)

	res = h.do(request{method: http.MethodGet, path: "/v1/keys?nonce=bad!"})
	h.problem(res, 400, "VALIDATION_FAILED")
	h.verify(res)
}

func TestUnknownDevicePathsAreSigned(t *testing.T) {
	h := newHarness(t)
	res := h.do(request{path: "/v1/nope", body: []byte(`{}`)})
	h.problem(res, 404, "NOT_FOUND")
	h.verify(res)
	res = h.do(request{method: http.MethodGet, path: "/v1/validate"})
	h.problem(res, 405, "METHOD_NOT_ALLOWED")
	h.verify(res)
	// Paths outside the device API are not signed.
	res = h.do(request{method: http.MethodGet, path: "/nope"})
	h.problem(res, 404, "NOT_FOUND")
	if res.header.Get("Signature") != "" {
		t.Fatal("a non-device answer is signed")
	}
}

// TestCheckOrder runs requests that fail two checks at once: the earlier check must answer.
func TestCheckOrder(t *testing.T) {
	cases := map[string]struct {
		r      func(h *harness) request
		status int
		code   string
	}{
		"body size before signature": {func(h *harness) request {
			return request{path: "/v1/validate", body: make([]byte, httpsig.MaxBodyBytes+10), unsigned: true}
		}, 413, "BODY_TOO_LARGE"},
		"signature before digest": {func(h *harness) request {
			return request{path: "/v1/validate", body: []byte(`{}`), header: map[string]string{"Signature": "", "Content-Digest": "sha-256=:AAAA:"}}
		}, 401, "SIGNATURE_REQUIRED"},
		"digest before stale": {func(h *harness) request {
			return request{path: "/v1/validate", body: []byte(`{}`), params: httpsig.RequestParams{Created: 1}, tamper: func(hd http.Header) {
				hd.Set("Content-Digest", httpsig.ContentDigest([]byte("x")))
			}}
		}, 400, "DIGEST_MISMATCH"},
		"stale before body validation": {func(h *harness) request {
			return request{path: "/v1/activate", body: []byte(`[]`), params: httpsig.RequestParams{Created: 1}}
		}, 401, "STALE_REQUEST"},
		"body validation before key": {func(h *harness) request {
			return request{path: "/v1/activate", body: []byte(`{"csr":"garbage"}`), key: newDeviceKey(h.t)}
		}, 400, "VALIDATION_FAILED"},
		"mTLS before signature": {func(h *harness) request {
			return request{path: "/v1/validate", body: []byte(`{}`), key: newDeviceKey(h.t), params: httpsig.RequestParams{KeyID: h.devID}}
		}, 403, "MTLS_REQUIRED"},
		"key before signature": {func(h *harness) request {
			return request{path: "/v1/validate", body: []byte(`{}`), mtls: true, key: newDeviceKey(h.t)}
		}, 403, "KEY_MISMATCH"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			res := h.do(tc.r(h))
			h.problem(res, tc.status, tc.code)
			h.verify(res)
			h.nonceFresh(res)
			h.noUseCase()
		})
	}
}

func TestPublicPathPrefix(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.PublicPathPrefix = "/licensing/" })
	res := h.do(request{path: "/v1/validate", signAs: "/licensing/v1/validate", body: []byte(`{}`), mtls: true})
	h.json(res, http.StatusOK)
	res.path = "/licensing/v1/validate"
	h.verify(res)
}

func TestNewRefusesNonEd25519Key(t *testing.T) {
	h := newHarness(t)
	d := h.deps
	d.Keys = ecdsaKeys{key: newDeviceKey(t)}
	d.Registry = nil
	if _, err := New(d); err == nil {
		t.Fatal("New accepted an ECDSA response key")
	}
}
