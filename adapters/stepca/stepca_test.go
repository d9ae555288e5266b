package stepca_test

import (
	"bytes"
	"context"
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
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/adapters/stepca"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// ---- a CA hierarchy made with crypto/x509, as an operator's offline root would ----

type hierarchy struct {
	rootKey, intKey *ecdsa.PrivateKey
	root, inter     *x509.Certificate
}

func newHierarchy(t *testing.T) hierarchy { return newHierarchyFor(t, 5*365*24*time.Hour) }

// newHierarchyFor makes a root and an intermediate valid for intLife from now.
func newHierarchyFor(t *testing.T, intLife time.Duration) hierarchy {
	t.Helper()
	now := time.Now()
	rootKey := mustKey(t)
	rootT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root := mustCert(t, rootT, rootT, &rootKey.PublicKey, rootKey)
	intKey := mustKey(t)
	intT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(intLife),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	inter := mustCert(t, intT, root, &intKey.PublicKey, rootKey)
	return hierarchy{rootKey: rootKey, intKey: intKey, root: root, inter: inter}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func csrFor(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// provisionerKey is a JWK provisioner's key pair: the private JWK for the adapter, the public JWK
// for ca.json.
func provisionerKey(t *testing.T) (private []byte, public json.RawMessage, kid string) {
	t.Helper()
	k := mustKey(t)
	tp, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	kid = base64.RawURLEncoding.EncodeToString(tp)
	private, err = (&jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	public, err = (&jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return private, public, kid
}

// ---- a real step-ca on loopback ----

func stepCABinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("step-ca"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, p := range []string{filepath.Join(gopath, "bin", "step-ca")} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	// .ci/run installs it, so under SAMPLERO_REQUIRE_SERVICES a missing binary is a failure.
	const install = "CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2"
	if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
		t.Fatalf("step-ca is not installed (%s)", install)
	}
	t.Skipf("step-ca is not installed (%s); see docs/stepca.md", install)
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type stepCA struct {
	url  string
	h    hierarchy
	prov []byte // the provisioner's private JWK
}

// startStepCA writes a root, an intermediate, a JWK provisioner with the device template and a
// hand-written ca.json into a temp dir, starts step-ca on a free loopback port and waits for
// /health.
func startStepCA(t *testing.T) stepCA {
	t.Helper()
	return startStepCAWith(t, newHierarchy(t))
}

func startStepCAWith(t *testing.T, h hierarchy) stepCA {
	t.Helper()
	bin := stepCABinary(t)
	dir := t.TempDir()
	intKeyDER, err := x509.MarshalECPrivateKey(h.intKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPath := write("root_ca.crt", certPEM(h.root))
	intPath := write("intermediate_ca.crt", certPEM(h.inter))
	keyPath := write("intermediate_ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: intKeyDER}))
	tplPath := write("samplero-device.tpl", []byte(stepca.DeviceTemplate))
	priv, pub, _ := provisionerKey(t)
	addr := freePort(t)
	cfg := map[string]any{
		"root":     rootPath,
		"crt":      intPath,
		"key":      keyPath,
		"address":  addr,
		"dnsNames": []string{"127.0.0.1"},
		"logger":   map[string]any{"format": "text"},
		"authority": map[string]any{
			"backdate": "5m",
			"provisioners": []any{map[string]any{
				"type": "JWK",
				"name": "samplero",
				"key":  pub,
				"claims": map[string]any{
					"minTLSCertDuration":     "5m",
					"maxTLSCertDuration":     "17520h",
					"defaultTLSCertDuration": "8760h",
				},
				"options": map[string]any{"x509": map[string]any{"templateFile": tplPath}},
			}},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := write("ca.json", raw)

	var out bytes.Buffer
	cmd := exec.Command(bin, cfgPath)
	cmd.Env = append(os.Environ(), "STEPPATH="+dir, "HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("step-ca output:\n%s", out.String())
		}
	})

	pool := x509.NewCertPool()
	pool.AddCert(h.root)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + addr
	// Polling a real process's startup: there is no clock to fake here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("step-ca exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca did not answer /health in 30 s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return stepCA{url: url, h: h, prov: priv}
}

func (ca stepCA) issuer(t *testing.T, provKey []byte) *stepca.Issuer {
	t.Helper()
	is, err := stepca.New(stepca.Options{URL: ca.url, RootCAs: certPEM(ca.h.root), ProvisionerName: "samplero", ProvisionerKey: provKey})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// checkDeviceProfile asserts PROTOCOL.md section 7 on a certificate.
func checkDeviceProfile(t *testing.T, c *x509.Certificate, activationID string, pub crypto.PublicKey, issuedAt time.Time, validity time.Duration) {
	t.Helper()
	if c.Subject.CommonName != "samplero-device" || len(c.Subject.Organization)+len(c.Subject.OrganizationalUnit) != 0 {
		t.Errorf("subject %v", c.Subject)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "urn:samplero:activation:"+activationID {
		t.Errorf("URI SANs %v", c.URIs)
	}
	if len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
		t.Errorf("other SANs %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses)
	}
	if !c.BasicConstraintsValid || c.IsCA {
		t.Errorf("basic constraints valid=%v CA=%v", c.BasicConstraintsValid, c.IsCA)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v", c.ExtKeyUsage)
	}
	want, _ := x509.MarshalPKIXPublicKey(pub)
	if !bytes.Equal(c.RawSubjectPublicKeyInfo, want) {
		t.Error("certificate is not for the device key")
	}
	// notAfter = issuance + validity (step-ca's issuance instant, within a few seconds of ours);
	// notBefore back-dated by at most 5 minutes.
	if d := c.NotAfter.Sub(issuedAt.Add(validity)); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("notAfter %s, want about %s", c.NotAfter, issuedAt.Add(validity))
	}
	if c.NotBefore.Before(issuedAt.Add(-5*time.Minute-5*time.Second)) || c.NotBefore.After(issuedAt) {
		t.Errorf("notBefore %s for issuance at %s", c.NotBefore, issuedAt)
	}
}

func TestIssueAgainstRealStepCA(t *testing.T) {
	ca := startStepCA(t)
	is := ca.issuer(t, ca.prov)
	ctx := context.Background()

	// A P-256 device as the SDK makes it (CN samplero-device, no SANs).
	dk := mustKey(t)
	validity := 365 * 24 * time.Hour
	now := time.Now()
	got, err := is.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{
		ActivationID: "act_01HSTEPCA", PublicKey: &dk.PublicKey, Validity: validity,
		CSR: csrFor(t, dk, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "samplero-device"}}),
	})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	leaf, err := x509.ParseCertificate(got.DER)
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceProfile(t, leaf, "act_01HSTEPCA", &dk.PublicKey, now, validity)
	if got.IssuerID != authority.IntermediateID(ca.h.inter) || got.Serial != authority.CanonicalSerial(leaf.SerialNumber) ||
		!got.NotAfter.Equal(leaf.NotAfter) || !got.NotBefore.Equal(leaf.NotBefore) {
		t.Errorf("issued %+v", got)
	}
	if b, _ := pem.Decode([]byte(got.PEM)); b == nil || !bytes.Equal(b.Bytes, got.DER) {
		t.Error("PEM is not the leaf")
	}
	// The chain: leaf -> the intermediate -> the root.
	roots := x509.NewCertPool()
	roots.AddCert(ca.h.root)
	inters := x509.NewCertPool()
	inters.AddCert(ca.h.inter)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains[0]) != 3 || !chains[0][1].Equal(ca.h.inter) {
		t.Fatalf("chain: %v", err)
	}

	// ca_chain is the intermediate then the root; the client-CA pool is the intermediate alone.
	chainPEM, err := is.CAChainPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(certPEM(ca.h.inter)) + string(certPEM(ca.h.root)); chainPEM != want {
		t.Errorf("ca chain:\n%s", chainPEM)
	}
	pool, err := is.ClientCAPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the client-CA pool: %v", err)
	}
	if _, err := ca.h.root.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Error("client-CA pool holds the root")
	}
	if rb, err := is.RollingBack(ctx, got.IssuerID); rb || err != nil {
		t.Errorf("RollingBack = %v, %v", rb, err)
	}

	// Forwarded client certificates: the issued one passes; one at a time after it expired, the
	// intermediate itself, and one from a foreign CA do not.
	if err := is.VerifyClientCertificate(ctx, leaf, time.Now()); err != nil {
		t.Errorf("verify issued: %v", err)
	}
	for name, c := range map[string]struct {
		cert *x509.Certificate
		at   time.Time
	}{
		"expired":      {leaf, leaf.NotAfter.Add(time.Hour)},
		"intermediate": {ca.h.inter, time.Now()},
		"foreign":      {newHierarchy(t).inter, time.Now()},
	} {
		if err := is.VerifyClientCertificate(ctx, c.cert, c.at); errs.CodeOf(err) != stepca.CodeCertificateUntrusted || errs.KindOf(err) != errs.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := is.VerifyClientCertificate(ctx, nil, time.Now()); errs.KindOf(err) != errs.Invalid {
		t.Errorf("nil: %v", err)
	}

	// An Ed25519 device whose CSR asks for other names: the certificate still carries only the
	// profile (the template takes the key alone), for the shorter validity asked.
	epub, ekey, _ := ed25519.GenerateKey(rand.Reader)
	now = time.Now()
	got2, err := is.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{
		ActivationID: "act_ed25519", PublicKey: epub, Validity: 30 * 24 * time.Hour,
		CSR: csrFor(t, ekey, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "evil", Organization: []string{"Evil"}},
			DNSNames: []string{"licenses.example.com"}, EmailAddresses: []string{"x@example.com"}}),
	})
	if err != nil {
		t.Fatalf("issue ed25519: %v", err)
	}
	leaf2, _ := x509.ParseCertificate(got2.DER)
	checkDeviceProfile(t, leaf2, "act_ed25519", epub, now, 30*24*time.Hour)
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("serial reused")
	}
}

func TestCertificatesDoNotOutliveTheIntermediate(t *testing.T) {
	ca := startStepCAWith(t, newHierarchyFor(t, 48*time.Hour))
	is := ca.issuer(t, ca.prov)
	dk := mustKey(t)
	got, err := is.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_short", PublicKey: &dk.PublicKey, Validity: 365 * 24 * time.Hour,
		CSR: csrFor(t, dk, &x509.CertificateRequest{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.NotAfter.Equal(ca.h.inter.NotAfter.UTC()) {
		t.Fatalf("notAfter %s, want the intermediate's %s", got.NotAfter, ca.h.inter.NotAfter)
	}
}

func TestStepCARefusesAForeignProvisionerKey(t *testing.T) {
	ca := startStepCA(t)
	other, _, _ := provisionerKey(t)
	is := ca.issuer(t, other)
	dk := mustKey(t)
	_, err := is.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_x", PublicKey: &dk.PublicKey, Validity: time.Hour,
		CSR: csrFor(t, dk, &x509.CertificateRequest{}),
	})
	// step-ca's 401 is a configuration problem of this server, not the device's: internal, and
	// step-ca's words stay out of the message.
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("got %v, want internal", err)
	}
	if e, _ := errs.As(err); e == nil || strings.Contains(e.Message, "401") {
		t.Fatalf("message %v", err)
	}
}

// ---- checks that need no step-ca ----

func TestNewChecksOptions(t *testing.T) {
	h := newHierarchy(t)
	priv, _, _ := provisionerKey(t)
	ok := stepca.Options{URL: "https://127.0.0.1:9000", RootCAs: certPEM(h.root), ProvisionerName: "samplero", ProvisionerKey: priv}
	if _, err := stepca.New(ok); err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(mustKey(t))
	withPEM := ok
	withPEM.ProvisionerKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	if _, err := stepca.New(withPEM); err != nil {
		t.Fatalf("PEM key: %v", err)
	}
	_, pub, _ := provisionerKey(t)
	for name, mod := range map[string]func(*stepca.Options){
		"http URL":   func(o *stepca.Options) { o.URL = "http://127.0.0.1:9000" },
		"no roots":   func(o *stepca.Options) { o.RootCAs = nil },
		"no name":    func(o *stepca.Options) { o.ProvisionerName = "" },
		"public JWK": func(o *stepca.Options) { o.ProvisionerKey = pub },
		"junk key":   func(o *stepca.Options) { o.ProvisionerKey = []byte("junk") },
	} {
		o := ok
		mod(&o)
		if _, err := stepca.New(o); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestIssueChecksTheRequestBeforeCallingStepCA(t *testing.T) {
	h := newHierarchy(t)
	priv, _, _ := provisionerKey(t)
	// Nothing listens on this address: a request that reached the network would be Unavailable.
	is, err := stepca.New(stepca.Options{URL: "https://" + freePort(t), RootCAs: certPEM(h.root), ProvisionerName: "samplero", ProvisionerKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dk, other := mustKey(t), mustKey(t)
	good := ports.DeviceCertificateRequest{ActivationID: "act_1", PublicKey: &dk.PublicKey, Validity: time.Hour, CSR: csrFor(t, dk, &x509.CertificateRequest{})}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	cases := map[string]struct {
		mod  func(*ports.DeviceCertificateRequest)
		code string
	}{
		"no CSR":        {func(r *ports.DeviceCertificateRequest) { r.CSR = nil }, authority.CodeInvalidCSR},
		"junk CSR":      {func(r *ports.DeviceCertificateRequest) { r.CSR = []byte("junk") }, authority.CodeInvalidCSR},
		"other key CSR": {func(r *ports.DeviceCertificateRequest) { r.CSR = csrFor(t, other, &x509.CertificateRequest{}) }, authority.CodeInvalidCSR},
		"P-384 key": {func(r *ports.DeviceCertificateRequest) {
			r.PublicKey, r.CSR = &p384.PublicKey, csrFor(t, p384, &x509.CertificateRequest{})
		}, authority.CodeInvalidCSR},
		"bad id":        {func(r *ports.DeviceCertificateRequest) { r.ActivationID = "a b" }, errs.CodeValidationFailed},
		"zero validity": {func(r *ports.DeviceCertificateRequest) { r.Validity = 0 }, errs.CodeValidationFailed},
	}
	for name, c := range cases {
		r := good
		c.mod(&r)
		if _, err := is.IssueDeviceCertificate(ctx, r); errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The good request goes out, and finds no CA: Unavailable, a retry may cure it.
	if _, err := is.IssueDeviceCertificate(ctx, good); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("unreachable CA: %v", err)
	}
	if _, err := is.CAChainPEM(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("unreachable CA chain: %v", err)
	}
}
