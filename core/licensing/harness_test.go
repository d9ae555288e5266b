package licensing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

// ---- test doubles of the PKI, the vault, the lease signer and the process starter ----

// testCA is a real CA built with crypto/x509: device certificates carry the CSR's public key and
// chain to its root, as the PKI adapter's will.
type testCA struct {
	clock    ports.Clock
	key      *ecdsa.PrivateKey
	cert     *x509.Certificate
	id       string
	mu       sync.Mutex
	rolling  bool
	rollErr  error
	issueErr error
	issued   int
}

var _ ports.CertificateIssuer = (*testCA)(nil)

func newTestCA(t *testing.T, clock ports.Clock) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test intermediate"},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(20 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{clock: clock, key: key, cert: cert, id: "int-1"}
}

func (ca *testCA) IssueDeviceCertificate(_ context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.issueErr != nil {
		return ports.IssuedCertificate{}, ca.issueErr
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	serial.Add(serial, big.NewInt(1))
	now := ca.clock.Now().UTC().Truncate(time.Second)
	u, _ := url.Parse("urn:samplero:activation:" + req.ActivationID)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "samplero-device"},
		URIs:                  []*url.URL{u},
		NotBefore:             now,
		NotAfter:              now.Add(req.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	ca.issued++
	return ports.IssuedCertificate{
		Serial:    strings.ToUpper(serial.Text(16)),
		DER:       der,
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		IssuerID:  ca.id,
		NotBefore: now,
		NotAfter:  now.Add(req.Validity),
	}, nil
}

func (ca *testCA) CAChainPEM(context.Context) (string, error) {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})), nil
}

func (ca *testCA) ClientCAPool(context.Context) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p, nil
}

func (ca *testCA) RollingBack(_ context.Context, issuerID string) (bool, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.rolling && issuerID == ca.id, ca.rollErr
}

func (ca *testCA) VerifyClientCertificate(_ context.Context, cert *x509.Certificate, now time.Time) error {
	p, _ := ca.ClientCAPool(context.Background())
	_, err := cert.Verify(x509.VerifyOptions{Roots: p, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// testVault: HMAC lookup and a reversible (not secret) seal; the real vault is another adapter.
type testVault struct{}

func (testVault) Lookup(k string) []byte {
	m := hmac.New(sha256.New, []byte("lookup-secret"))
	m.Write([]byte(k))
	return m.Sum(nil)
}
func (testVault) Seal(k string) ([]byte, error) { return []byte("sealed:" + k), nil }
func (testVault) Open(b []byte) (string, error) {
	s, ok := strings.CutPrefix(string(b), "sealed:")
	if !ok {
		return "", errors.New("not sealed here")
	}
	return s, nil
}

var _ ports.KeyVault = testVault{}

// testLeases "signs" a lease as header.payload.sig with the JSON payload readable by decodeLease.
type testLeases struct{ err error }

var _ ports.LeaseSigner = testLeases{}

func (l testLeases) SignLease(_ context.Context, c ports.LeaseClaims) (string, error) {
	if l.err != nil {
		return "", l.err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return "eyJhbGciOiJFZERTQSJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln", nil
}

func decodeLease(t *testing.T, jws string) ports.LeaseClaims {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("lease %q is not a compact JWS", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c ports.LeaseClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// testProcesses records e-mails; err makes SendEmail fail.
type testProcesses struct {
	mu   sync.Mutex
	sent []ports.EmailMessage
	err  error
}

var _ ports.Processes = (*testProcesses)(nil)

func (p *testProcesses) SendEmail(_ context.Context, m ports.EmailMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.sent = append(p.sent, m)
	return nil
}

func (p *testProcesses) all() []ports.EmailMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ports.EmailMessage(nil), p.sent...)
}

// ---- the fixture ----

var start = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clock *portstest.FakeClock
	store *portstest.MemStore
	ca    *testCA
	procs *testProcesses
	mails *portstest.EmailRenderer
	svc   *Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := portstest.NewFakeClock(start)
	store := portstest.NewMemStore(portstest.WithClock(clock))
	ca := newTestCA(t, clock)
	procs := &testProcesses{}
	mails := portstest.NewEmailRenderer()
	svc := New(Deps{
		Clock: clock, Tx: store.Tx(), Products: store.Products(), Licenses: store.Licenses(),
		Activations: store.Activations(), Certificates: store.Certificates(), Claims: store.Claims(),
		Issuer: ca, Vault: testVault{}, Leases: testLeases{}, LeaseIssuer: "https://licenses.example",
		Processes: procs,
		Emails:    mails,
		Config:    Config{PublicURL: "http://127.0.0.1:8080/", MTLSURL: "https://127.0.0.1:8443", VendorName: "Acme Audio"},
	})
	return &fixture{t: t, ctx: context.Background(), clock: clock, store: store, ca: ca, procs: procs, mails: mails, svc: svc}
}

func i64p(v int64) *int64 { return &v }
func intp(v int) *int     { return &v }

// product creates a product with a short policy: heartbeat 1 h, grace 3 h, unless changed by mod.
func (f *fixture) product(slug string, mod func(*ports.ProductSpec)) license.ProductRecord {
	f.t.Helper()
	spec := ports.ProductSpec{Slug: slug, Name: "Product " + slug, Type: "plugin", PriceCents: 4900, Currency: "EUR",
		Policy: ports.PolicySpec{MaxActivations: 2, HeartbeatIntervalS: 3600, GracePeriodS: 3 * 3600}}
	if mod != nil {
		mod(&spec)
	}
	p, err := f.svc.PutProduct(f.ctx, spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) license(slug string, mod func(*ports.CreateLicenseCommand)) ports.LicenseView {
	f.t.Helper()
	cmd := ports.CreateLicenseCommand{Product: slug, OwnerEmail: "owner@example.com"}
	if mod != nil {
		mod(&cmd)
	}
	v, err := f.svc.CreateLicense(f.ctx, cmd)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// dev is a device: a fingerprint and a P-256 key.
type dev struct {
	fp    string
	key   crypto.Signer
	csr   string
	thumb string
}

func newDev(t *testing.T, fp string) *dev {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return devWithKey(t, fp, key)
}

func devWithKey(t *testing.T, fp string, key crypto.Signer) *dev {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "anything"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	return &dev{fp: fp, key: key, csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), thumb: license.Thumbprint(spki)}
}

// rekey gives the device a new key (a reinstall).
func (d *dev) rekey(t *testing.T) *dev { return newDev(t, d.fp) }

func (f *fixture) activateCmd(key string, d *dev) ports.ActivateCommand {
	f.t.Helper()
	id, err := f.svc.ResolveCSR(f.ctx, d.csr, d.thumb)
	if err != nil {
		f.t.Fatal(err)
	}
	return ports.ActivateCommand{LicenseKey: key, Fingerprint: d.fp, Platform: "mac", PluginVersion: "1.2.3",
		CSRPEM: d.csr, DeviceName: "Studio Mac", RequestAddr: "203.0.113.7", Identity: id}
}

func (f *fixture) activate(key string, d *dev) (ports.ActivateResult, error) {
	f.t.Helper()
	return f.svc.Activate(f.ctx, f.activateCmd(key, d))
}

func (f *fixture) mustGrant(key string, d *dev) *ports.ActivationGrant {
	f.t.Helper()
	r, err := f.activate(key, d)
	if err != nil {
		f.t.Fatalf("activate: %v", err)
	}
	if r.Grant == nil {
		f.t.Fatalf("activate: no grant: %+v", r)
	}
	return r.Grant
}

// certID resolves the identity of a device presenting the certificate with serial for op.
func (f *fixture) certID(serial string, d *dev, op ports.DeviceOp) (ports.DeviceIdentity, error) {
	return f.svc.ResolveCertificate(f.ctx, serial, d.thumb, op)
}

func (f *fixture) mustCertID(serial string, d *dev, op ports.DeviceOp) ports.DeviceIdentity {
	f.t.Helper()
	id, err := f.certID(serial, d, op)
	if err != nil {
		f.t.Fatalf("ResolveCertificate(%s): %v", op, err)
	}
	return id
}

func wantCode(t *testing.T, err error, code string, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got success", code)
	}
	if errs.CodeOf(err) != code || errs.KindOf(err) != kind {
		t.Fatalf("want %s (%s), got %s (%s): %v", code, kind, errs.CodeOf(err), errs.KindOf(err), err)
	}
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_%-]+)`)

// tokenOf extracts the confirmation token from a claim e-mail.
func tokenOf(t *testing.T, m ports.EmailMessage) string {
	t.Helper()
	mm := tokenRE.FindStringSubmatch(m.Text)
	if mm == nil {
		t.Fatalf("no token in %q", m.Text)
	}
	tok, err := url.QueryUnescape(mm[1])
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fixture) activation(id string) license.ActivationRecord {
	f.t.Helper()
	a, err := f.store.Activations().Get(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) cert(serial string) license.CertificateRecord {
	f.t.Helper()
	c, err := f.store.Certificates().BySerial(f.ctx, serial)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// StartFulfillment is not used by these tests.
func (p *testProcesses) StartFulfillment(context.Context, string) error { return nil }

// StartRevocation is not used by these tests.
func (p *testProcesses) StartRevocation(context.Context, string, string, string) error { return nil }
