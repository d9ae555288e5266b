package httpapi

// The seed's anti-forgery, freshness and offline-recovery scenarios (seed-spec section 10.3),
// ported to this protocol (RFC 9421 signatures, mTLS, signed answers) and run through HTTP on the
// real licensing core with an injected clock. The seed's headers and codes map to ours:
// x-payload-signature → Signature, REQUEST_SIGNATURE_REQUIRED → SIGNATURE_REQUIRED,
// INVALID_REQUEST_SIGNATURE → INVALID_SIGNATURE (or DIGEST_MISMATCH when only the body changed),
// "Nonce already used" → REPLAYED_NONCE, stale x-request-timestamp → STALE_REQUEST.

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// seedDevice activates h.dev on a fresh license and returns the license id and key, the
// activation id and the device certificate.
func seedDevice(t *testing.T, h *harness, slug string) (licID, key, actID string, cert *x509.Certificate) {
	t.Helper()
	licID, key = h.product(t, slug, "instant", 2)
	m := h.json(h.activateWith(t, h.dev, key, "device-1-fingerprint", nil), 201)
	block, _ := pem.Decode([]byte(m["certificate"].(string)))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return licID, key, m["activation_id"].(string), cert
}

// lastHeartbeat reads the activation's last_heartbeat_at from the admin view.
func lastHeartbeat(t *testing.T, h *harness, licID, actID string) string {
	t.Helper()
	var view struct {
		Activations []struct {
			ID              string `json:"id"`
			LastHeartbeatAt string `json:"last_heartbeat_at"`
		} `json:"activations"`
	}
	if err := json.Unmarshal([]byte(h.licenseState(t, licID)), &view); err != nil {
		t.Fatal(err)
	}
	for _, a := range view.Activations {
		if a.ID == actID {
			return a.LastHeartbeatAt
		}
	}
	t.Fatalf("activation %s not in license %s", actID, licID)
	return ""
}

func TestSeedAntiForgery(t *testing.T) {
	h := newCoreHarness(t)
	licID, keyA, actID, cert := seedDevice(t, h, "seed-synth")
	licB, keyB := h.product(t, "seed-other", "instant", 2)

	// 1. A signed validate over mTLS: valid at trust 4 (the seed's trust 3 + certificate).
	res := h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert})
	if v := h.json(res, 200); v["valid"] != true || v["trust_level"] != 4.0 || v["activation_id"] != actID {
		t.Fatalf("signed validate = %v", v)
	}
	h.verify(res)

	h.clock.Advance(time.Minute) // so that a moved heartbeat would show
	hb := lastHeartbeat(t, h, licID, actID)
	beforeA, beforeB := h.licenseState(t, licID), h.licenseState(t, licB)

	// The forged activate: signed over a body for license A, sent with license B.
	other := newDeviceKey(t)
	csr := csrPEM(t, other)
	activateBody := func(k string) []byte {
		return body(map[string]string{"license_key": k, "device_fingerprint": "device-2-fingerprint", "platform": "win", "plugin_version": "1.0.0", "csr": csr})
	}
	signedFor := func(b []byte) http.Header {
		sh, err := httpsig.SignRequest(http.MethodPost, "/v1/activate", b, httpsig.RequestParams{Created: h.clock.Now().Unix(), Nonce: httpsig.NewNonce()}, other)
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	bodyA, bodyB := activateBody(keyA), activateBody(keyB)

	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
	}{
		// 2. No signature at all.
		{"unsigned validate", request{path: "/v1/validate", body: []byte(`{}`), cert: cert, unsigned: true}, 401, "SIGNATURE_REQUIRED"},
		// 3. A signature made for license A, the payload naming license B: the body no longer matches
		// the signed digest; with the digest recomputed, the signature fails.
		{"forged license_key, signed digest", request{path: "/v1/activate", body: bodyB, key: other, tamper: func(hd http.Header) {
			for k, v := range signedFor(bodyA) {
				hd[k] = v
			}
		}}, 400, "DIGEST_MISMATCH"},
		{"forged license_key, digest recomputed", request{path: "/v1/activate", body: bodyB, key: other, tamper: func(hd http.Header) {
			sh := signedFor(bodyA)
			hd.Set("Signature-Input", sh.Get("Signature-Input"))
			hd.Set("Signature", sh.Get("Signature"))
			hd.Set("Content-Digest", httpsig.ContentDigest(bodyB))
		}}, 401, "INVALID_SIGNATURE"},
		// 5. A heartbeat without a signature: the activation is not touched.
		{"unsigned heartbeat", request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert, unsigned: true}, 401, "SIGNATURE_REQUIRED"},
		// 6. A heartbeat signed by another key than the certificate's: refused before anything.
		{"heartbeat signed by another key", request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert, tamper: func(hd http.Header) {
			sh, err := httpsig.SignRequest(http.MethodPost, "/v1/heartbeat", []byte(`{}`), httpsig.RequestParams{Created: h.clock.Now().Unix(), Nonce: httpsig.NewNonce()}, newDeviceKey(t))
			if err != nil {
				t.Fatal(err)
			}
			hd.Set("Signature", sh.Get("Signature"))
		}}, 401, "INVALID_SIGNATURE"},
		// Freshness: created 10 minutes ago.
		{"stale heartbeat", request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert, params: httpsig.RequestParams{Created: h.clock.Now().Add(-10 * time.Minute).Unix()}}, 401, "STALE_REQUEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(tc.req)
			h.problem(res, tc.status, tc.code)
			if !tc.req.unsigned {
				h.verify(res) // the refusal is signed and bound to the request
			} else if res.header.Get("Signature") == "" {
				t.Fatal("the refusal of an unsigned request is not signed")
			}
			if got := lastHeartbeat(t, h, licID, actID); got != hb {
				t.Fatalf("last_heartbeat_at moved from %s to %s", hb, got)
			}
			if a, b := h.licenseState(t, licID), h.licenseState(t, licB); a != beforeA || b != beforeB {
				t.Fatalf("a refused request changed a license:\n%s\n%s", a, b)
			}
		})
	}

	// Freshness: the second use of a nonce is refused before the use case runs.
	nonce := httpsig.NewNonce()
	h.json(h.do(request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert, params: httpsig.RequestParams{Nonce: nonce}}), 200)
	moved := lastHeartbeat(t, h, licID, actID)
	if moved == hb {
		t.Fatal("a good heartbeat did not move last_heartbeat_at: the checks above prove nothing")
	}
	h.clock.Advance(time.Minute)
	res = h.do(request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert, params: httpsig.RequestParams{Nonce: nonce}})
	h.problem(res, 409, "REPLAYED_NONCE")
	h.verify(res)
	if got := lastHeartbeat(t, h, licID, actID); got != moved {
		t.Fatalf("a replayed heartbeat moved last_heartbeat_at from %s to %s", moved, got)
	}
	t.Log("seed 10.3 anti-forgery: unsigned → SIGNATURE_REQUIRED, forged license_key → DIGEST_MISMATCH / INVALID_SIGNATURE, bad heartbeat signature → INVALID_SIGNATURE, stale → STALE_REQUEST, replay → REPLAYED_NONCE; nothing changed: ok")
}

func TestSeedOfflineRecovery(t *testing.T) {
	h := newCoreHarness(t)
	licID, _, actID, cert := seedDevice(t, h, "seed-offline") // heartbeat 24 h, grace 7 days

	// Ten days without a heartbeat.
	h.clock.Advance(10 * 24 * time.Hour)
	res := h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert})
	v := h.json(res, 200)
	h.verify(res)
	if v["valid"] != false || v["status"] != "grace_period_expired" || v["action"] != "heartbeat_required" || v["grace_period_remaining_s"] != 0.0 {
		t.Fatalf("validate after 10 days offline = %v", v)
	}
	res = h.do(request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert})
	hb := h.json(res, 200)
	h.verify(res)
	if hb["valid"] != true || hb["status"] != "active" || hb["previous_status"] != "grace_period_expired" || hb["recovered"] != true {
		t.Fatalf("recovering heartbeat = %v", hb)
	}
	if got, want := lastHeartbeat(t, h, licID, actID), h.clock.Now().UTC().Format(time.RFC3339); got != want {
		t.Fatalf("last_heartbeat_at = %s, want now (%s)", got, want)
	}
	res = h.do(request{path: "/v1/validate", body: []byte(`{}`), cert: cert})
	if v := h.json(res, 200); v["valid"] != true || v["status"] != "active" || v["action"] != nil {
		t.Fatalf("validate after recovery = %v", v)
	}
	// A second heartbeat is an ordinary one: no previous_status, not recovered.
	h.clock.Advance(time.Minute)
	hb = h.json(h.do(request{path: "/v1/heartbeat", body: []byte(`{}`), cert: cert}), 200)
	if _, ok := hb["previous_status"]; ok || hb["recovered"] != false {
		t.Fatalf("an ordinary heartbeat = %v", hb)
	}
	t.Log("seed 10.3 offline recovery: 10 days without heartbeat → grace_period_expired, heartbeat recovers (previous_status grace_period_expired) → active: ok")
}
