package httpapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// --- server keys ---

type testKeys struct {
	kid  string
	priv ed25519.PrivateKey
}

var _ ports.ServerKeys = (*testKeys)(nil)

func newTestKeys(t testing.TB) *testKeys {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKeys{kid: "srv-2026-11", priv: priv}
}

func (k *testKeys) Issuer() string                  { return "https://licenses.example.test" }
func (k *testKeys) Active() (string, crypto.Signer) { return k.kid, k.priv }
func (k *testKeys) public() ed25519.PublicKey       { return k.priv.Public().(ed25519.PublicKey) }
func (k *testKeys) keyFor(kid string) ed25519.PublicKey {
	if kid == k.kid {
		return k.public()
	}
	return nil
}
func (k *testKeys) Published() []ports.ServerKey {
	return []ports.ServerKey{{
		KID: k.kid, PublicKey: k.public(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(365 * 24 * time.Hour), Status: "active",
	}}
}

// --- a device CA and certificates, for the proxy and TLS paths ---

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  string
}

func newTestCA(t testing.TB) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test device intermediate"},
		NotBefore:             t0.Add(-24 * time.Hour),
		NotAfter:              t0.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue makes a device certificate for pub with this serial.
func (ca *testCA) issue(t testing.TB, pub crypto.PublicKey, serial *big.Int, notAfter time.Time, eku x509.ExtKeyUsage) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "samplero-device"},
		NotBefore:    t0.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func certHeader(c *x509.Certificate) string {
	return url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
}

// testIssuer is the slice of ports.CertificateIssuer the adapter uses.
type testIssuer struct {
	ca    *testCA
	clock ports.Clock
}

var _ ports.CertificateIssuer = (*testIssuer)(nil)

// IssueDeviceCertificate issues a real certificate (for the tests on the real licensing core).
func (i *testIssuer) IssueDeviceCertificate(_ context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	serial.Add(serial, big.NewInt(1))
	u, _ := url.Parse("urn:samplero:activation:" + req.ActivationID)
	notBefore := i.clock.Now().Add(-5 * time.Minute).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "samplero-device"}, URIs: []*url.URL{u},
		NotBefore: notBefore, NotAfter: i.clock.Now().Add(req.Validity).Truncate(time.Second),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca.cert, req.PublicKey, i.ca.key)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	return ports.IssuedCertificate{
		Serial: authority.CanonicalSerial(serial), DER: der, PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		IssuerID: "int-test", NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter,
	}, nil
}
func (i *testIssuer) CAChainPEM(context.Context) (string, error)           { return i.ca.pem, nil }
func (i *testIssuer) ClientCAPool(context.Context) (*x509.CertPool, error) { return i.ca.pool, nil }
func (i *testIssuer) RollingBack(context.Context, string) (bool, error)    { return false, nil }
func (i *testIssuer) VerifyClientCertificate(_ context.Context, cert *x509.Certificate, now time.Time) error {
	_, err := cert.Verify(x509.VerifyOptions{Roots: i.ca.pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return errs.Wrap(errs.Unauthenticated, "CERTIFICATE_UNTRUSTED", "untrusted", err)
	}
	return nil
}

// --- admin tokens ---

type testTokens struct{ tokens map[string]ports.AdminToken }

func (s *testTokens) Insert(_ context.Context, t ports.AdminToken) error {
	s.tokens[string(t.Hash)] = t
	return nil
}
func (s *testTokens) ByHash(_ context.Context, h []byte) (ports.AdminToken, error) {
	t, ok := s.tokens[string(h)]
	if !ok {
		return ports.AdminToken{}, errs.E(errs.NotFound, errs.CodeNotFound, "no such token")
	}
	return t, nil
}

// --- the licensing double ---

// certEntry is a device certificate the fake has on record.
type certEntry struct {
	keyID        string
	activationID string
	err          error // what ResolveCertificate answers for it
}

// fakeLicensing is a ports.Licensing whose step-5 answers and use-case results the test sets, and
// which records every call so a test can prove a use case was not reached.
type fakeLicensing struct {
	mu sync.Mutex

	keys        map[string]crypto.PublicKey // thumbprint → key of a device with an active activation
	claims      map[string]string           // claim id → thumbprint
	certs       map[string]certEntry        // canonical serial → entry
	revokedKeys map[string]bool             // thumbprint → activation no longer active (ResolveKey)
	statusKnown bool                        // ResolveStatusKey finds known keys

	useErr error // the next use case answers this
	calls  []string

	activateResult ports.ActivateResult
	validateResult ports.ValidateResult
	heartbeat      ports.HeartbeatResult

	lastActivate ports.ActivateCommand
	lastIdentity ports.DeviceIdentity
	lastFilter   any
	lastAction   [3]string
}

var _ ports.Licensing = (*fakeLicensing)(nil)

func newFakeLicensing() *fakeLicensing {
	exp := t0.Add(30 * 24 * time.Hour)
	return &fakeLicensing{
		keys: map[string]crypto.PublicKey{}, claims: map[string]string{}, certs: map[string]certEntry{}, revokedKeys: map[string]bool{},
		activateResult: ports.ActivateResult{Grant: &ports.ActivationGrant{
			Created: true, ActivationID: "act_1", CertificatePEM: "-----BEGIN CERTIFICATE-----\n", CAChainPEM: "chain",
			CertificateSerial: "A1B", CertificateNotAfter: t0.Add(365 * 24 * time.Hour), Lease: "lease.jws.sig",
			HeartbeatInterval: 24 * time.Hour, GracePeriod: 7 * 24 * time.Hour,
		}},
		validateResult: ports.ValidateResult{
			Valid: true, Status: "active", ActivationID: "act_1",
			License:        ports.LicenseSummary{ID: "lic_1", Product: "synth", ExpiresAt: &exp, Entitlements: []string{"synth"}},
			HeartbeatDueAt: t0.Add(24 * time.Hour), GracePeriodRemaining: 7 * 24 * time.Hour,
		},
		heartbeat: ports.HeartbeatResult{
			Valid: true, Status: "active", Lease: "lease", HeartbeatDueAt: t0.Add(24 * time.Hour), GracePeriodRemaining: 7 * 24 * time.Hour,
		},
	}
}

func (f *fakeLicensing) record(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	err := f.useErr
	return err
}

// useCases lists the calls that may change state (everything but Resolve* and lookups).
func (f *fakeLicensing) useCases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "Resolve") && c != "LicenseIDForKey" && c != "ClaimByToken" && !strings.HasPrefix(c, "Get") && !strings.HasPrefix(c, "List") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeLicensing) identity(keyID string) (ports.DeviceIdentity, bool) {
	pub, ok := f.keys[keyID]
	return ports.DeviceIdentity{LicenseID: "lic_1", ActivationID: "act_1", Thumbprint: keyID, PublicKey: pub}, ok
}

func (f *fakeLicensing) ResolveCSR(_ context.Context, csr, keyID string) (ports.DeviceIdentity, error) {
	f.record("ResolveCSR")
	f.mu.Lock()
	defer f.mu.Unlock()
	tp, ok := strings.CutPrefix(csr, "csr-for:")
	pub, known := f.keys[tp]
	if !ok || !known {
		return ports.DeviceIdentity{}, errs.E(errs.Invalid, license.CodeInvalidCSR, "the CSR does not parse")
	}
	if tp != keyID {
		return ports.DeviceIdentity{}, errs.E(errs.Unauthenticated, license.CodeUnknownKey, "keyid is not the CSR's key")
	}
	return ports.DeviceIdentity{Thumbprint: keyID, PublicKey: pub}, nil
}

func (f *fakeLicensing) ResolveClaim(_ context.Context, claimID, keyID string) (ports.DeviceIdentity, error) {
	f.record("ResolveClaim")
	f.mu.Lock()
	defer f.mu.Unlock()
	tp, ok := f.claims[claimID]
	if !ok {
		return ports.DeviceIdentity{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
	}
	if tp != keyID {
		return ports.DeviceIdentity{}, errs.E(errs.Unauthenticated, license.CodeUnknownKey, "keyid is not the claim's key")
	}
	return ports.DeviceIdentity{ClaimID: claimID, LicenseID: "lic_1", Thumbprint: keyID, PublicKey: f.keys[tp]}, nil
}

func (f *fakeLicensing) ResolveStatusKey(_ context.Context, keyID string) (ports.DeviceIdentity, bool, error) {
	f.record("ResolveStatusKey")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.statusKnown {
		return ports.DeviceIdentity{}, false, nil
	}
	id, ok := f.identity(keyID)
	return id, ok, nil
}

func (f *fakeLicensing) ResolveCertificate(_ context.Context, serial, keyID string, _ ports.DeviceOp) (ports.DeviceIdentity, error) {
	f.record("ResolveCertificate")
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.certs[serial]
	if !ok {
		return ports.DeviceIdentity{}, errs.E(errs.Forbidden, license.CodeCertificateUnknown, "not on record")
	}
	if e.err != nil {
		return ports.DeviceIdentity{}, e.err
	}
	if e.keyID != keyID {
		return ports.DeviceIdentity{}, errs.E(errs.Forbidden, license.CodeKeyMismatch, "keyid is not the certificate's key")
	}
	id, _ := f.identity(keyID)
	id.ActivationID = e.activationID
	return id, nil
}

func (f *fakeLicensing) ResolveKey(_ context.Context, keyID string, _ ports.DeviceOp) (ports.DeviceIdentity, error) {
	f.record("ResolveKey")
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.identity(keyID)
	if !ok {
		return ports.DeviceIdentity{}, errs.E(errs.Unauthenticated, license.CodeUnknownKey, "no active activation holds this key")
	}
	if f.revokedKeys[keyID] {
		return ports.DeviceIdentity{}, errs.E(errs.Forbidden, license.CodeActivationRevoked, "the activation is no longer active")
	}
	return id, nil
}

func (f *fakeLicensing) Activate(_ context.Context, cmd ports.ActivateCommand) (ports.ActivateResult, error) {
	if err := f.record("Activate"); err != nil {
		return ports.ActivateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastActivate = cmd
	return f.activateResult, nil
}

func (f *fakeLicensing) Bootstrap(_ context.Context, id ports.DeviceIdentity) (ports.ActivateResult, error) {
	if err := f.record("Bootstrap"); err != nil {
		return ports.ActivateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastIdentity = id
	return ports.ActivateResult{Pending: &ports.PendingClaim{ClaimID: id.ClaimID, ExpiresAt: t0.Add(15 * time.Minute)}}, nil
}

func (f *fakeLicensing) Validate(_ context.Context, cmd ports.ValidateCommand) (ports.ValidateResult, error) {
	if err := f.record("Validate"); err != nil {
		return ports.ValidateResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastIdentity = cmd.Identity
	if f.validateResult.Status == "panic" {
		panic("validate exploded")
	}
	return f.validateResult, nil
}

func (f *fakeLicensing) Heartbeat(_ context.Context, cmd ports.HeartbeatCommand) (ports.HeartbeatResult, error) {
	if err := f.record("Heartbeat"); err != nil {
		return ports.HeartbeatResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastIdentity = cmd.Identity
	return f.heartbeat, nil
}

func (f *fakeLicensing) Deactivate(_ context.Context, cmd ports.DeactivateCommand) (ports.DeactivateResult, error) {
	if err := f.record("Deactivate"); err != nil {
		return ports.DeactivateResult{}, err
	}
	return ports.DeactivateResult{SeatsUsed: 0, SeatsTotal: 2, SeatReleasedAt: t0}, nil
}

func (f *fakeLicensing) Renew(_ context.Context, cmd ports.RenewCommand) (ports.RenewResult, error) {
	if err := f.record("Renew"); err != nil {
		return ports.RenewResult{}, err
	}
	return ports.RenewResult{CertificatePEM: "cert", CAChainPEM: "chain", CertificateSerial: "B2C", CertificateNotAfter: t0.Add(time.Hour), Lease: "lease"}, nil
}

func (f *fakeLicensing) Status(_ context.Context, key string) (ports.StatusResult, error) {
	if err := f.record("Status"); err != nil {
		return ports.StatusResult{}, err
	}
	return ports.StatusResult{Status: "active", SeatsUsed: 1, SeatsTotal: 3}, nil
}

func (f *fakeLicensing) LicenseIDForKey(_ context.Context, key string) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "LicenseIDForKey")
	f.mu.Unlock()
	if key == "VST-UNKNOWN" {
		return "", errs.E(errs.NotFound, license.CodeLicenseNotFound, "no such license")
	}
	return "lic_1", nil
}

func (f *fakeLicensing) PutProduct(_ context.Context, spec ports.ProductSpec) (license.ProductRecord, error) {
	if err := f.record("PutProduct"); err != nil {
		return license.ProductRecord{}, err
	}
	return license.ProductRecord{
		Slug: spec.Slug, Name: spec.Name, Type: spec.Type, PriceCents: spec.PriceCents, Currency: spec.Currency,
		Policy: license.Policy{
			MaxActivations: spec.Policy.MaxActivations, FirstActivation: license.FirstActivation(spec.Policy.FirstActivation),
			HeartbeatInterval: time.Duration(spec.Policy.HeartbeatIntervalS) * time.Second, GracePeriod: time.Duration(spec.Policy.GracePeriodS) * time.Second,
			CertificateValidity: 365 * 24 * time.Hour, TransfersPer30d: 3,
		},
		CreatedAt: t0, UpdatedAt: t0,
	}, nil
}

func (f *fakeLicensing) GetProduct(context.Context, string) (license.ProductRecord, error) {
	f.record("GetProduct")
	return license.ProductRecord{}, errs.E(errs.NotFound, license.CodeProductNotFound, "no such product")
}

func sampleLicenseView(id string) ports.LicenseView {
	hb := t0
	return ports.LicenseView{
		ID: id, Key: "VST-AAAAA-BBBBB-CCCCC-DDDDD", Status: "active", Product: "synth", MaxActivations: 2, SeatsUsed: 1, CreatedAt: t0,
		Activations: []ports.ActivationView{{ID: "act_1", LicenseID: id, Status: "active", DeviceFingerprint: "fp-12345678", Platform: "mac", LastHeartbeatAt: &hb, CertificateSerial: "A1B", CreatedAt: t0}},
	}
}

func (f *fakeLicensing) CreateLicense(_ context.Context, cmd ports.CreateLicenseCommand) (ports.LicenseView, error) {
	if err := f.record("CreateLicense"); err != nil {
		return ports.LicenseView{}, err
	}
	f.mu.Lock()
	f.lastFilter = cmd
	f.mu.Unlock()
	v := sampleLicenseView("lic_new")
	v.Activations = nil
	v.OwnerEmail = cmd.OwnerEmail
	v.ExpiresAt = cmd.ExpiresAt
	return v, nil
}

func (f *fakeLicensing) GetLicense(_ context.Context, id string) (ports.LicenseView, error) {
	f.record("GetLicense")
	if id != "lic_1" {
		return ports.LicenseView{}, errs.E(errs.NotFound, license.CodeLicenseNotFound, "no such license")
	}
	return sampleLicenseView(id), nil
}

func (f *fakeLicensing) ListLicenses(_ context.Context, lf ports.LicenseFilter) ([]ports.LicenseView, string, error) {
	f.record("ListLicenses")
	f.mu.Lock()
	f.lastFilter = lf
	f.mu.Unlock()
	return []ports.LicenseView{sampleLicenseView("lic_1")}, "cur2", nil
}

func (f *fakeLicensing) ListActivations(_ context.Context, af ports.ActivationFilter) ([]ports.ActivationView, string, error) {
	f.record("ListActivations")
	f.mu.Lock()
	f.lastFilter = af
	f.mu.Unlock()
	return sampleLicenseView("lic_1").Activations, "", nil
}

func (f *fakeLicensing) ChangeLicenseStatus(_ context.Context, id, action, reason string) (ports.LicenseView, error) {
	if err := f.record("ChangeLicenseStatus"); err != nil {
		return ports.LicenseView{}, err
	}
	f.mu.Lock()
	f.lastAction = [3]string{id, action, reason}
	f.mu.Unlock()
	v := sampleLicenseView(id)
	v.Status = map[string]string{"revoke": "revoked", "suspend": "suspended", "reinstate": "active"}[action]
	return v, nil
}

func (f *fakeLicensing) ReleaseSeat(_ context.Context, id string) (ports.LicenseView, error) {
	if err := f.record("ReleaseSeat"); err != nil {
		return ports.LicenseView{}, err
	}
	return sampleLicenseView("lic_1"), nil
}

func (f *fakeLicensing) DecideClaim(_ context.Context, id string, approve bool, actor string) (ports.ClaimView, error) {
	if err := f.record("DecideClaim"); err != nil {
		return ports.ClaimView{}, err
	}
	f.mu.Lock()
	f.lastAction = [3]string{id, map[bool]string{true: "approve", false: "reject"}[approve], actor}
	f.mu.Unlock()
	st := "rejected"
	if approve {
		st = "approved"
	}
	return ports.ClaimView{ID: id, LicenseID: "lic_1", Status: st, Platform: "mac", Fingerprint: "fp-12345678", CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}, nil
}

func (f *fakeLicensing) ClaimByToken(context.Context, string) (ports.ClaimView, error) {
	f.record("ClaimByToken")
	return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
}

func (f *fakeLicensing) DecideClaimByToken(context.Context, string, bool) (ports.ClaimView, error) {
	f.record("DecideClaimByToken")
	return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
}

// --- the harness ---

type harness struct {
	t       testing.TB
	app     *fiber.App
	lic     *fakeLicensing
	clock   *portstest.FakeClock
	nonces  *portstest.MemNonceStore
	limiter *portstest.MemRateLimiter
	keys    *testKeys
	ca      *testCA
	reg     *prometheus.Registry
	deps    Deps

	dev   *ecdsa.PrivateKey // the device key, registered with the fake
	devID string            // its thumbprint
	cert  *x509.Certificate // its client certificate, serial 0x0A1B → "A1B"

	adminToken string
}

const proxyToken = "proxy-secret-token"

// newHarness builds the app on the licensing double. mutate may change the deps before New.
func newHarness(t testing.TB, mutate ...func(*Deps)) *harness {
	t.Helper()
	h := &harness{t: t, lic: newFakeLicensing(), clock: portstest.NewFakeClock(t0), keys: newTestKeys(t), ca: newTestCA(t), reg: prometheus.NewRegistry()}
	h.nonces = portstest.NewMemNonceStore(h.clock)
	h.limiter = portstest.NewMemRateLimiter(h.clock)
	var err error
	if h.dev, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if h.devID, err = httpsig.Thumbprint(h.dev.Public()); err != nil {
		t.Fatal(err)
	}
	h.lic.keys[h.devID] = h.dev.Public()
	h.cert = h.ca.issue(t, h.dev.Public(), big.NewInt(0x0A1B), t0.Add(365*24*time.Hour), x509.ExtKeyUsageClientAuth)
	h.lic.certs["A1B"] = certEntry{keyID: h.devID, activationID: "act_1"}

	h.adminToken = "adm_test_token"
	sum := sha256.Sum256([]byte(h.adminToken))
	tokens := &testTokens{tokens: map[string]ports.AdminToken{string(sum[:]): {ID: "tok_1", Name: "ci", Hash: sum[:]}}}

	cfg := DefaultConfig()
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")} // app.Test's peer address
	cfg.ProxyToken = proxyToken
	cfg.MTLSURL = "https://127.0.0.1:8443"
	h.deps = Deps{
		Licensing: h.lic, Keys: h.keys, Issuer: &testIssuer{ca: h.ca, clock: h.clock}, Nonces: h.nonces, Limiter: h.limiter,
		AdminTokens: tokens, Clock: h.clock, Registry: h.reg, Config: cfg,
	}
	for _, m := range mutate {
		m(&h.deps)
	}
	if h.app, err = New(h.deps); err != nil {
		t.Fatal(err)
	}
	return h
}

// request describes one device request; zero values give a well-formed signed request.
type request struct {
	method   string
	path     string
	body     []byte
	unsigned bool
	params   httpsig.RequestParams
	key      crypto.Signer
	mtls     bool // send the device certificate through the trusted proxy
	cert     *x509.Certificate
	header   map[string]string // set after signing ("" deletes)
	signAs   string            // path to sign instead of path
	tamper   func(http.Header)
}

// response is an answer with what the test needs to check it.
type response struct {
	status int
	header http.Header
	body   []byte
	path   string
	nonce  string // the nonce the request carried
}

func (h *harness) do(r request) response {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.key == nil {
		r.key = h.dev
	}
	if r.params.Created == 0 {
		r.params.Created = h.clock.Now().Unix()
	}
	if r.params.Nonce == "" {
		r.params.Nonce = httpsig.NewNonce()
	}
	req := httptest.NewRequest(r.method, r.path, bytes.NewReader(r.body))
	if r.method == http.MethodPost && !r.unsigned {
		signPath := r.path
		if r.signAs != "" {
			signPath = r.signAs
		}
		sh, err := httpsig.SignRequest(r.method, signPath, r.body, r.params, r.key)
		if err != nil {
			h.t.Fatal(err)
		}
		for k, v := range sh {
			req.Header[k] = v
		}
	}
	req.Header.Set("Content-Type", "application/json")
	if r.mtls || r.cert != nil {
		c := r.cert
		if c == nil {
			c = h.cert
		}
		req.Header.Set(headerClientCert, certHeader(c))
		req.Header.Set(headerProxyToken, proxyToken)
	}
	for k, v := range r.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	if r.tamper != nil {
		r.tamper(req.Header)
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	nonce := ""
	if !r.unsigned && r.method == http.MethodPost {
		nonce = httpsig.NonceOf(req.Header.Get("Signature-Input"))
	}
	if r.method == http.MethodGet {
		nonce = req.URL.Query().Get("nonce")
		if !httpsig.ValidNonce(nonce) {
			nonce = ""
		}
	}
	return response{status: res.StatusCode, header: res.Header, body: body, path: req.URL.Path, nonce: nonce}
}

// verify checks the answer's signature against the server key, the echoed nonce, the path and created.
func (h *harness) verify(res response) {
	h.t.Helper()
	info, err := httpsig.VerifyResponse(res.status, res.path, res.body, res.header, res.nonce, h.keys.keyFor)
	if err != nil {
		h.t.Fatalf("response signature: %v (status %d, body %s)", err, res.status, res.body)
	}
	if info.Created != h.clock.Now().Unix() {
		h.t.Fatalf("response created = %d, want %d", info.Created, h.clock.Now().Unix())
	}
}

// problemOf decodes and checks the shape of a problem answer.
func (h *harness) problem(res response, status int, code string) problem {
	h.t.Helper()
	if res.status != status {
		h.t.Fatalf("status = %d, want %d (body %s)", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		h.t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(res.body, &raw); err != nil {
		h.t.Fatalf("problem body: %v: %s", err, res.body)
	}
	for _, k := range []string{"type", "title", "status", "code"} {
		if _, ok := raw[k]; !ok {
			h.t.Fatalf("problem lacks %q: %s", k, res.body)
		}
	}
	var p problem
	_ = json.Unmarshal(res.body, &p)
	if p.Code != code || p.Status != status || p.Type != problemType(code) || p.Title == "" {
		h.t.Fatalf("problem = %+v, want code %s status %d", p, code, status)
	}
	return p
}

// json decodes a 2xx body into a map.
func (h *harness) json(res response, status int) map[string]any {
	h.t.Helper()
	if res.status != status {
		h.t.Fatalf("status = %d, want %d (body %s)", res.status, status, res.body)
	}
	var m map[string]any
	if err := json.Unmarshal(res.body, &m); err != nil {
		h.t.Fatalf("body: %v: %s", err, res.body)
	}
	return m
}

// noUseCase asserts that no state-changing call reached the licensing port.
func (h *harness) noUseCase() {
	h.t.Helper()
	if uc := h.lic.useCases(); len(uc) != 0 {
		h.t.Fatalf("use cases called: %v", uc)
	}
}

// nonceFresh asserts that the request's nonce was not spent.
func (h *harness) nonceFresh(res response) {
	h.t.Helper()
	if res.nonce == "" {
		return
	}
	if n := h.nonces.Len(); n != 0 {
		h.t.Fatalf("%d nonces spent", n)
	}
}

func body(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (h *harness) activateBody() []byte {
	return body(map[string]string{
		"license_key": "VST-AAAAA-BBBBB-CCCCC-DDDDD", "device_fingerprint": "fp-12345678", "platform": "mac",
		"plugin_version": "1.2.3", "csr": "csr-for:" + h.devID, "device_name": "Studio Mac",
	})
}

// ecdsaKeys is a ports.ServerKeys whose active key cannot sign responses.
type ecdsaKeys struct{ key *ecdsa.PrivateKey }

func (k ecdsaKeys) Issuer() string                  { return "x" }
func (k ecdsaKeys) Active() (string, crypto.Signer) { return "k", k.key }
func (k ecdsaKeys) Published() []ports.ServerKey    { return nil }
