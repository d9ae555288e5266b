package samplero_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// testClock is the clock shared by the fake server and the client, moved by tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	testIssuer     = "https://licenses.test"
	testLicenseKey = "VST-ABCDE-FGHJK-LMNPQ-RSTUV"
	testProduct    = "synth-one"
	testFpr        = "device-fingerprint-0001"
)

// answer is one response of the fake server before it is signed; tests mutate it through
// fakeServer.mutate to break one property at a time.
type answer struct {
	Path    string // request path the answer is bound to
	Status  int
	Body    []byte
	Created int64
	Nonce   string
	KID     string
	Key     ed25519.PrivateKey
	Drop    []string // headers removed after signing
	Tamper  func(h http.Header)
}

type activation struct {
	id, fpr, thumb, status string
	cert                   *x509.Certificate
	key                    crypto.PublicKey
}

type fakeClaim struct {
	id, fpr, thumb, csr string
	approved            bool
}

// fakeServer implements the device endpoints of PROTOCOL.md closely enough to exercise the client,
// signing every answer with httpsig.SignResponse.
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	clock  *testClock
	kid    string
	key    ed25519.PrivateKey
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate

	mu            sync.Mutex
	approval      bool
	licenseStatus string
	acts          map[string]*activation // by id
	claims        map[string]*fakeClaim
	n             int
	keysBody      []byte                       // served by GET /v1/keys; nil = built from kid/key
	mutate        func(a *answer)              // test hook on every answer
	leaseMod      func(hdr, cl map[string]any) // test hook on every lease
	requests      []string                     // paths seen
	lastMTLS      bool
	offline       bool // process requests as uploaded air-gapped files (section 8)
}

func newFakeServer(t *testing.T, clock *testClock) *fakeServer {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test device CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(der)
	f := &fakeServer{
		t: t, clock: clock, kid: "srv-1", key: key, caKey: caKey, caCert: caCert,
		licenseStatus: "active", acts: map[string]*activation{}, claims: map[string]*fakeClaim{},
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) rootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	return pool
}

func (f *fakeServer) trusted() []samplero.TrustedKey {
	return []samplero.TrustedKey{{KID: f.kid, PublicKey: f.key.Public().(ed25519.PublicKey)}}
}

func (f *fakeServer) config(store samplero.Storage) samplero.Config {
	return samplero.Config{
		BaseURL: f.srv.URL, RootCAs: f.rootCAs(), TrustedKeys: f.trusted(), Issuer: testIssuer,
		Storage: store, Fingerprint: testFpr, Platform: "linux", PluginVersion: "1.2.3",
		Product: testProduct, DeviceName: "Studio", Now: f.clock.Now,
	}
}

func (f *fakeServer) defaultKeysBody() []byte {
	b, _ := json.Marshal(map[string]any{
		"issuer": testIssuer,
		"keys": []map[string]any{{
			"kid": f.kid, "alg": "ed25519", "public_key": base64.StdEncoding.EncodeToString(f.key.Public().(ed25519.PublicKey)),
			"not_before": "2026-01-01T00:00:00Z", "not_after": nil, "status": "active", "endorsement": "",
		}},
		"ca_chain": "",
	})
	return b
}

func (f *fakeServer) send(w http.ResponseWriter, a answer) {
	f.mu.Lock()
	mutate := f.mutate
	f.mu.Unlock()
	if mutate != nil {
		mutate(&a)
	}
	h, err := httpsig.SignResponse(a.Status, a.Path, a.Body, a.Created, a.Nonce, a.KID, a.Key)
	if err != nil {
		f.t.Errorf("SignResponse: %v", err)
		w.WriteHeader(500)
		return
	}
	for _, d := range a.Drop {
		h.Del(d)
	}
	if a.Tamper != nil {
		a.Tamper(h)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	if a.Status >= 400 {
		w.Header().Set("Content-Type", "application/problem+json")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

func (f *fakeServer) reply(w http.ResponseWriter, r *http.Request, nonce string, status int, v any) {
	body, _ := json.Marshal(v)
	f.send(w, answer{Path: r.URL.Path, Status: status, Body: body, Created: f.clock.Now().Unix(), Nonce: nonce, KID: f.kid, Key: f.key})
}

func (f *fakeServer) problem(w http.ResponseWriter, r *http.Request, nonce string, status int, code string) {
	f.reply(w, r, nonce, status, map[string]any{"type": "about:blank", "title": code, "status": status, "code": code})
}

func (f *fakeServer) lease(act *activation) string {
	now := f.clock.Now().Unix()
	hdr := map[string]any{"alg": "EdDSA", "typ": "samplero-lease+jwt", "kid": f.kid}
	cl := map[string]any{
		"iss": testIssuer, "sub": act.id, "lic": "lic_1", "prd": testProduct, "ent": []string{testProduct, "fx-pack"},
		"fpr": act.fpr, "cnf": map[string]string{"kid": act.thumb}, "iat": now, "nbf": now,
		"hbt": now + 86400, "exp": now + 7*86400, "st": "active",
	}
	if f.leaseMod != nil {
		f.leaseMod(hdr, cl)
	}
	return mintLease(f.key, hdr, cl)
}

func mintLease(key ed25519.PrivateKey, hdr, cl map[string]any) string {
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(cl)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signing)))
}

func (f *fakeServer) issueCert(act *activation) (string, error) {
	u, _ := url.Parse("urn:samplero:activation:" + act.id)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "samplero-device"},
		URIs:         []*url.URL{u},
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.caCert, act.key, f.caKey)
	if err != nil {
		return "", err
	}
	act.cert, _ = x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

func (f *fakeServer) activationBody(act *activation) map[string]any {
	certPEM, err := f.issueCert(act)
	if err != nil {
		f.t.Errorf("issue: %v", err)
	}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.caCert.Raw}))
	return map[string]any{
		"status": "active", "activation_id": act.id, "certificate": certPEM, "ca_chain": caPEM,
		"certificate_serial": fmt.Sprintf("%X", act.cert.SerialNumber), "certificate_not_after": act.cert.NotAfter.UTC().Format(time.RFC3339),
		"lease": f.lease(act), "heartbeat_interval_s": 86400, "grace_period_s": 604800, "mtls_url": f.srv.URL, "trust_level": 3,
	}
}

func parseCSR(s string) (crypto.PublicKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("no PEM")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	return csr.PublicKey, nil
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, httpsig.MaxBodyBytes+1))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.Path)
	if r.URL.Path == "/v1/keys" {
		kb := f.keysBody
		if kb == nil {
			kb = f.defaultKeysBody()
		}
		f.mu.Unlock()
		f.send(w, answer{Path: r.URL.Path, Status: 200, Body: kb, Created: f.clock.Now().Unix(), Nonce: r.URL.Query().Get("nonce"), KID: f.kid, Key: f.key})
		f.mu.Lock()
		return
	}
	nonce := httpsig.NonceOf(r.Header.Get("Signature-Input"))
	// The rest replies with the lock released, since send calls the mutate hook.
	reply := func(status int, v any) {
		f.mu.Unlock()
		f.reply(w, r, nonce, status, v)
		f.mu.Lock()
	}
	problem := func(status int, code string) {
		reply(status, map[string]any{"type": "about:blank", "title": code, "status": status, "code": code})
	}
	pr, err := httpsig.ParseRequest(r.Method, r.URL.EscapedPath(), r.Header, f.offline)
	if err != nil {
		var he *httpsig.Error
		errors.As(err, &he)
		status := 400
		if he.Code == httpsig.CodeSignatureRequired {
			status = 401
		}
		problem(status, he.Code)
		return
	}
	if !pr.DigestMatches(body) {
		problem(400, "DIGEST_MISMATCH")
		return
	}
	maxAge := int64(300)
	if f.offline {
		maxAge = 7 * 86400
	}
	if d := f.clock.Now().Unix() - pr.Params.Created; d > maxAge || d < -300 {
		problem(401, "STALE_REQUEST")
		return
	}
	var in map[string]string
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, &in); err != nil {
		problem(400, "VALIDATION_FAILED")
		return
	}
	switch r.URL.Path {
	case "/v1/activate":
		pub, err := parseCSR(in["csr"])
		if err != nil {
			problem(400, "INVALID_CSR")
			return
		}
		if tp, _ := httpsig.Thumbprint(pub); tp != pr.Params.KeyID {
			problem(401, "UNKNOWN_KEY")
			return
		}
		if pr.Verify(pub) != nil {
			problem(401, "INVALID_SIGNATURE")
			return
		}
		if in["license_key"] != testLicenseKey {
			problem(404, "LICENSE_NOT_FOUND")
			return
		}
		if f.licenseStatus != "active" {
			problem(403, "LICENSE_"+strings.ToUpper(f.licenseStatus))
			return
		}
		for _, a := range f.acts {
			if a.status == "active" && a.thumb == pr.Params.KeyID {
				reply(200, f.activationBody(a))
				return
			}
		}
		if f.approval {
			for _, c := range f.claims {
				if c.thumb == pr.Params.KeyID {
					reply(202, map[string]any{"status": "pending_confirmation", "claim_id": c.id, "expires_at": f.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339), "next_step": "approve_in_account", "trust_level": 3})
					return
				}
			}
			f.n++
			c := &fakeClaim{id: fmt.Sprintf("clm_%d", f.n), fpr: in["device_fingerprint"], thumb: pr.Params.KeyID, csr: in["csr"]}
			f.claims[c.id] = c
			reply(202, map[string]any{"status": "pending_confirmation", "claim_id": c.id, "expires_at": f.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339), "next_step": "approve_in_account", "trust_level": 3})
			return
		}
		f.n++
		a := &activation{id: fmt.Sprintf("act_%d", f.n), fpr: in["device_fingerprint"], thumb: pr.Params.KeyID, status: "active", key: pub}
		f.acts[a.id] = a
		reply(201, f.activationBody(a))
	case "/v1/bootstrap":
		c := f.claims[in["claim_id"]]
		if c == nil {
			problem(404, "CLAIM_NOT_FOUND")
			return
		}
		pub, _ := parseCSR(c.csr)
		if c.thumb != pr.Params.KeyID {
			problem(401, "UNKNOWN_KEY")
			return
		}
		if pr.Verify(pub) != nil {
			problem(401, "INVALID_SIGNATURE")
			return
		}
		if !c.approved {
			reply(202, map[string]any{"status": "pending_confirmation", "claim_id": c.id, "expires_at": f.clock.Now().Add(15 * time.Minute).UTC().Format(time.RFC3339), "trust_level": 3})
			return
		}
		f.n++
		a := &activation{id: fmt.Sprintf("act_%d", f.n), fpr: c.fpr, thumb: c.thumb, status: "active", key: pub}
		f.acts[a.id] = a
		delete(f.claims, c.id)
		reply(200, f.activationBody(a))
	case "/v1/status":
		if in["license_key"] != testLicenseKey {
			problem(404, "LICENSE_NOT_FOUND")
			return
		}
		used := 0
		for _, a := range f.acts {
			if a.status == "active" {
				used++
			}
		}
		reply(200, map[string]any{"status": f.licenseStatus, "seats_used": used, "seats_total": 3, "expires_at": nil, "trust_level": 3})
	case "/v1/validate", "/v1/heartbeat", "/v1/deactivate", "/v1/certificates/renew":
		f.lastMTLS = r.TLS != nil && len(r.TLS.PeerCertificates) > 0
		if !f.lastMTLS {
			problem(403, "MTLS_REQUIRED")
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		var act *activation
		for _, a := range f.acts {
			if a.cert != nil && a.cert.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				act = a
			}
		}
		if act == nil {
			problem(403, "CERTIFICATE_UNKNOWN")
			return
		}
		if act.status != "active" {
			problem(403, "ACTIVATION_REVOKED")
			return
		}
		if tp, _ := httpsig.Thumbprint(leaf.PublicKey); tp != pr.Params.KeyID {
			problem(403, "KEY_MISMATCH")
			return
		}
		if pr.Verify(leaf.PublicKey) != nil {
			problem(401, "INVALID_SIGNATURE")
			return
		}
		valid := f.licenseStatus == "active"
		switch r.URL.Path {
		case "/v1/validate":
			if p := in["product"]; p != "" && p != testProduct && p != "fx-pack" {
				problem(400, "PRODUCT_MISMATCH")
				return
			}
			reply(200, map[string]any{
				"valid": valid, "status": f.licenseStatus, "activation_id": act.id,
				"license":     map[string]any{"id": "lic_1", "product": testProduct, "expires_at": nil, "entitlements": []string{testProduct, "fx-pack"}},
				"trust_level": 4, "heartbeat_due_at": f.clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339), "grace_period_remaining_s": 691200,
			})
		case "/v1/heartbeat":
			if !valid {
				reply(200, map[string]any{"valid": false, "status": f.licenseStatus, "trust_level": 4})
				return
			}
			reply(200, map[string]any{
				"valid": true, "status": "active", "recovered": false, "lease": f.lease(act),
				"heartbeat_due_at": f.clock.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339), "grace_period_remaining_s": 691200,
				"renew_certificate": false, "trust_level": 4,
			})
		case "/v1/deactivate":
			act.status = "deactivated"
			reply(200, map[string]any{"status": "deactivated", "seats_used": 0, "seats_total": 3, "seat_released_at": f.clock.Now().UTC().Format(time.RFC3339), "trust_level": 4})
		case "/v1/certificates/renew":
			pub, err := parseCSR(in["csr"])
			if err != nil {
				problem(400, "INVALID_CSR")
				return
			}
			act.key = pub
			act.thumb, _ = httpsig.Thumbprint(pub)
			b := f.activationBody(act)
			delete(b, "status")
			delete(b, "activation_id")
			reply(200, b)
		}
	default:
		problem(404, "NOT_FOUND")
	}
}
