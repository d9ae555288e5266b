package httpapi

// These tests run the adapter on the real licensing core (core/licensing) over the in-memory
// stores of ports/portstest, so that the codes the use cases answer, and the promise that a refused
// request changes nothing, are checked end to end through HTTP.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/licensing"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

type testVault struct{}

func (testVault) Lookup(k string) []byte {
	m := hmac.New(sha256.New, []byte("lookup-secret"))
	m.Write([]byte(k))
	return m.Sum(nil)
}
func (testVault) Seal(k string) ([]byte, error) { return []byte("sealed:" + k), nil }
func (testVault) Open(b []byte) (string, error) { return strings.TrimPrefix(string(b), "sealed:"), nil }

type testLeases struct{}

func (testLeases) SignLease(_ context.Context, c ports.LeaseClaims) (string, error) {
	return "lease." + c.Subject, nil
}

type testProcesses struct {
	mu   sync.Mutex
	sent []ports.EmailMessage
}

func (p *testProcesses) SendEmail(_ context.Context, m ports.EmailMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m)
	return nil
}

// newCoreHarness is newHarness with the real licensing service behind the app.
func newCoreHarness(t *testing.T, mutate ...func(*Deps)) *harness {
	t.Helper()
	h := newHarness(t, mutate...)
	store := portstest.NewMemStore(portstest.WithClock(h.clock))
	st := store.Stores()
	svc := licensing.New(licensing.Deps{
		Clock: h.clock, Tx: st.Tx, Products: st.Products, Licenses: st.Licenses, Activations: st.Activations,
		Certificates: st.Certificates, Claims: st.Claims, Issuer: h.deps.Issuer, Vault: testVault{}, Leases: testLeases{},
		LeaseIssuer: h.keys.Issuer(), Processes: &testProcesses{}, Emails: portstest.NewEmailRenderer(),
		Config: licensing.Config{PublicURL: "http://127.0.0.1:8080", MTLSURL: "https://127.0.0.1:8443", VendorName: "Test"},
	})
	h.deps.Licensing = svc
	h.reg = nil
	d := h.deps
	d.Registry = nil
	app, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	h.lic = newFakeLicensing() // unused: keeps noUseCase meaningless here, so the tests check the store
	return h
}

func csrPEM(t *testing.T, key crypto.Signer) string {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// product creates a product and a license on it and returns the license's id and key.
func (h *harness) product(t *testing.T, slug, first string, maxActivations int) (id, key string) {
	t.Helper()
	h.json(h.admin(http.MethodPost, "/v1/admin/products", `{"slug":"`+slug+`","name":"X","type":"plugin","price_cents":100,"currency":"USD",
		"policy":{"max_activations":`+itoa(maxActivations)+`,"first_activation":"`+first+`","heartbeat_interval_s":86400,"grace_period_s":604800}}`), 201)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/licenses", `{"product":"`+slug+`","owner_email":"owner@example.com"}`), 201)
	return m["id"].(string), m["key"].(string)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (h *harness) activateWith(t *testing.T, key *ecdsa.PrivateKey, licenseKey, fingerprint string, extra map[string]string) response {
	t.Helper()
	b := map[string]string{"license_key": licenseKey, "device_fingerprint": fingerprint, "platform": "mac", "plugin_version": "1.0.0", "csr": csrPEM(t, key)}
	for k, v := range extra {
		b[k] = v
	}
	return h.do(request{path: "/v1/activate", body: body(b), key: key})
}

// licenseState is what must not change when a request is refused.
func (h *harness) licenseState(t *testing.T, id string) string {
	t.Helper()
	res := h.admin(http.MethodGet, "/v1/admin/licenses/"+id, "")
	if res.status != 200 {
		t.Fatalf("license %s: %d %s", id, res.status, res.body)
	}
	return string(res.body)
}

func TestOnCoreDeviceLifecycle(t *testing.T) {
	h := newCoreHarness(t)
	licID, key := h.product(t, "synth", "instant", 1)

	res := h.activateWith(t, h.dev, key, "fp-device-one", map[string]string{"device_name": "Studio"})
	m := h.json(res, 201)
	h.verify(res)
	if m["trust_level"] != 3.0 || m["mtls_url"] != "https://127.0.0.1:8443" || !strings.HasPrefix(m["lease"].(string), "lease.act_") {
		t.Fatalf("activate = %v", m)
	}
	block, _ := pem.Decode([]byte(m["certificate"].(string)))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if authority.CanonicalSerial(cert.SerialNumber) != m["certificate_serial"] {
		t.Fatalf("serial %s vs %s", authority.CanonicalSerial(cert.SerialNumber), m["certificate_serial"])
	}

	// The same device again: 200, the same activation.
	res = h.activateWith(t, h.dev, key, "fp-device-one", nil)
	if h.json(res, 200)["activation_id"] != m["activation_id"] {
		t.Fatal("a repeated activation made a new activation")
	}

	res = h.do(request{path: "/v1/validate", body: []byte(`{"product":"synth"}`), cert: cert})
	v := h.json(res, 200)
	h.verify(res)
	if v["valid"] != true || v["trust_level"] != 4.0 || v["activation_id"] != m["activation_id"] {
		t.Fatalf("validate = %v", v)
	}
	res = h.do(request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert})
	if h.json(res, 200)["valid"] != true {
		t.Fatal("heartbeat not valid")
	}
	res = h.do(request{path: "/v1/status", body: body(map[string]string{"license_key": key})})
	s := h.json(res, 200)
	h.verify(res)
	if s["seats_used"] != 1.0 || s["seats_total"] != 1.0 || s["status"] != "active" {
		t.Fatalf("status = %v", s)
	}

	before := h.licenseState(t, licID)
	refused := []struct {
		name   string
		do     func() response
		status int
		code   string
	}{
		{"LICENSE_NOT_FOUND", func() response {
			return h.activateWith(t, newDeviceKey(t), "VST-22222-22222-22222-22222", "fp-device-two", nil)
		}, 404, "LICENSE_NOT_FOUND"},
		{"ACTIVATION_LIMIT_EXCEEDED", func() response { return h.activateWith(t, newDeviceKey(t), key, "fp-device-two", nil) }, 409, "ACTIVATION_LIMIT_EXCEEDED"},
		{"PRODUCT_MISMATCH on activate", func() response {
			return h.activateWith(t, h.dev, key, "fp-device-one", map[string]string{"product": "drums"})
		}, 400, "PRODUCT_MISMATCH"},
		{"PRODUCT_MISMATCH on validate", func() response {
			return h.do(request{path: "/v1/validate", body: []byte(`{"product":"drums"}`), cert: cert})
		}, 400, "PRODUCT_MISMATCH"},
		{"VALIDATION_FAILED platform", func() response {
			return h.activateWith(t, newDeviceKey(t), key, "fp-device-two", map[string]string{"platform": "amiga"})
		}, 400, "VALIDATION_FAILED"},
		{"INVALID_CSR", func() response {
			return h.do(request{path: "/v1/activate", body: body(map[string]string{"license_key": key, "device_fingerprint": "fp-device-two", "platform": "mac", "plugin_version": "1", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"})})
		}, 400, "INVALID_CSR"},
		{"UNKNOWN_KEY", func() response {
			other := newDeviceKey(t)
			return h.do(request{path: "/v1/activate", key: other, body: body(map[string]string{"license_key": key, "device_fingerprint": "fp-device-two", "platform": "mac", "plugin_version": "1", "csr": csrPEM(t, newDeviceKey(t))})})
		}, 401, "UNKNOWN_KEY"},
		{"CERTIFICATE_UNKNOWN", func() response {
			return h.do(request{path: "/v1/validate", body: []byte(`{}`), mtls: true}) // the harness certificate is not on record
		}, 403, "CERTIFICATE_UNKNOWN"},
		{"KEY_MISMATCH", func() response {
			return h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert, key: newDeviceKey(t)})
		}, 403, "KEY_MISMATCH"},
		{"CLAIM_NOT_FOUND", func() response {
			return h.do(request{path: "/v1/bootstrap", body: []byte(`{"claim_id":"clm_nope"}`)})
		}, 404, "CLAIM_NOT_FOUND"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.do()
			h.problem(res, tc.status, tc.code)
			h.verify(res)
			if after := h.licenseState(t, licID); after != before {
				t.Fatalf("the license changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}

	// Revoked: activate is refused and validate answers valid:false, both signed.
	h.json(h.admin(http.MethodPost, "/v1/admin/licenses/"+licID+"/revoke", `{"reason":"refund"}`), 200)
	before = h.licenseState(t, licID)
	res = h.activateWith(t, newDeviceKey(t), key, "fp-device-three", nil)
	h.problem(res, 403, "LICENSE_REVOKED")
	h.verify(res)
	res = h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert})
	if v := h.json(res, 200); v["valid"] != false || v["status"] != "revoked" {
		t.Fatalf("validate on a revoked license = %v", v)
	}
	if after := h.licenseState(t, licID); after != before {
		t.Fatal("a refused request changed the revoked license")
	}
	h.json(h.admin(http.MethodPost, "/v1/admin/licenses/"+licID+"/reinstate", `{}`), 200)
	h.json(h.admin(http.MethodPost, "/v1/admin/licenses/"+licID+"/suspend", `{}`), 200)
	h.problem(h.activateWith(t, newDeviceKey(t), key, "fp-device-three", nil), 403, "LICENSE_SUSPENDED")

	// Deactivate frees the seat; the old certificate then answers ACTIVATION_REVOKED.
	h.json(h.admin(http.MethodPost, "/v1/admin/licenses/"+licID+"/reinstate", `{}`), 200)
	res = h.do(request{path: "/v1/deactivate", body: nil, cert: cert})
	d := h.json(res, 200)
	h.verify(res)
	if d["status"] != "deactivated" || d["seats_used"] != 0.0 {
		t.Fatalf("deactivate = %v", d)
	}
	res = h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert})
	h.problem(res, 403, "ACTIVATION_REVOKED")
	h.verify(res)
}

func TestOnCoreExpiredLicense(t *testing.T) {
	h := newCoreHarness(t)
	h.json(h.admin(http.MethodPost, "/v1/admin/products", `{"slug":"loops","name":"Loops","type":"sample_pack","price_cents":100,"currency":"EUR",
		"policy":{"max_activations":2,"first_activation":"instant","heartbeat_interval_s":60,"grace_period_s":120}}`), 201)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/licenses", `{"product":"loops","expires_at":"2026-11-29T13:00:00Z"}`), 201)
	if m["owner_email"] != nil || m["expires_at"] != "2026-11-29T13:00:00Z" {
		t.Fatalf("license = %v", m)
	}
	h.clock.Advance(2 * time.Hour)
	before := h.licenseState(t, m["id"].(string))
	res := h.activateWith(t, h.dev, m["key"].(string), "fp-device-one", nil)
	h.problem(res, 403, "LICENSE_EXPIRED")
	h.verify(res)
	if after := h.licenseState(t, m["id"].(string)); after != before || !strings.Contains(after, `"status":"expired"`) {
		t.Fatalf("license after a refused activate: %s", after)
	}
}

func TestOnCoreClaims(t *testing.T) {
	h := newCoreHarness(t)
	licID, key := h.product(t, "synth", "owner_approval", 2)

	res := h.activateWith(t, h.dev, key, "fp-device-one", nil)
	p := h.json(res, 202)
	h.verify(res)
	claimID := p["claim_id"].(string)
	if p["status"] != "pending_confirmation" || p["next_step"] != "approve_in_account" {
		t.Fatalf("activate = %v", p)
	}
	res = h.do(request{path: "/v1/bootstrap", body: body(map[string]string{"claim_id": claimID})})
	if h.json(res, 202)["claim_id"] != claimID {
		t.Fatal("bootstrap lost the claim")
	}
	h.verify(res)

	before := h.licenseState(t, licID)
	res = h.activateWith(t, newDeviceKey(t), key, "fp-device-two", nil)
	h.problem(res, 409, "FIRST_ACTIVATION_PENDING_CONFIRMATION")
	h.verify(res)
	// bootstrap signed by another key: UNKNOWN_KEY.
	res = h.do(request{path: "/v1/bootstrap", body: body(map[string]string{"claim_id": claimID}), key: newDeviceKey(t)})
	h.problem(res, 401, "UNKNOWN_KEY")
	if after := h.licenseState(t, licID); after != before {
		t.Fatal("a refused request changed the license")
	}

	h.json(h.admin(http.MethodPost, "/v1/admin/claims/"+claimID+"/reject", `{}`), 200)
	res = h.do(request{path: "/v1/bootstrap", body: body(map[string]string{"claim_id": claimID})})
	h.problem(res, 410, "CLAIM_REJECTED")
	h.verify(res)

	// A new claim that expires unanswered.
	other := newDeviceKey(t)
	res = h.activateWith(t, other, key, "fp-device-three", nil)
	claim2 := h.json(res, 202)["claim_id"].(string)
	h.clock.Advance(16 * time.Minute)
	res = h.do(request{path: "/v1/bootstrap", key: other, body: body(map[string]string{"claim_id": claim2})})
	h.problem(res, 410, "CLAIM_EXPIRED")
	h.verify(res)

	// Approved: bootstrap answers 200 with the grant.
	third := newDeviceKey(t)
	res = h.activateWith(t, third, key, "fp-device-four", nil)
	claim3 := h.json(res, 202)["claim_id"].(string)
	h.json(h.admin(http.MethodPost, "/v1/admin/claims/"+claim3+"/approve", `{}`), 200)
	res = h.do(request{path: "/v1/bootstrap", key: third, body: body(map[string]string{"claim_id": claim3})})
	g := h.json(res, 200)
	h.verify(res)
	if g["status"] != "active" || g["trust_level"] != 3.0 || g["certificate"] == "" {
		t.Fatalf("bootstrap = %v", g)
	}
	// The response nonce check makes a captured answer useless for another request.
	if _, err := httpsig.VerifyResponse(res.status, res.path, res.body, res.header, httpsig.NewNonce(), h.keys.keyFor); err == nil {
		t.Fatal("an answer verified against another nonce")
	}
}

// StartFulfillment is not used by these tests.
func (p *testProcesses) StartFulfillment(context.Context, string) error { return nil }

// StartRevocation is not used by these tests.
func (p *testProcesses) StartRevocation(context.Context, string, string, string) error { return nil }
