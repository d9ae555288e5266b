package stepca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/stepca"
	"github.com/samplero/samplero/adapters/stepca/stepcatest"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// ---- a real step-ca on loopback: adapters/stepca/stepcatest ----

func newHierarchy(t *testing.T) stepcatest.Hierarchy {
	return stepcatest.NewHierarchy(t, 5*365*24*time.Hour)
}

func csrFor(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
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

// issuer is the adapter on ca with a provisioner key.
func issuer(t *testing.T, ca stepcatest.CA, provKey []byte) *stepca.Issuer {
	t.Helper()
	is, err := stepca.New(stepca.Options{URL: ca.URL, RootCAs: stepcatest.PEM(ca.H.Root), ProvisionerName: stepcatest.ProvisionerName, ProvisionerKey: provKey})
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
	ca := stepcatest.Start(t, "", newHierarchy(t))
	is := issuer(t, ca, ca.Prov)
	ctx := context.Background()

	// A P-256 device as the SDK makes it (CN samplero-device, no SANs).
	dk := stepcatest.Key(t)
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
	if got.IssuerID != authority.IntermediateID(ca.H.Inter) || got.Serial != authority.CanonicalSerial(leaf.SerialNumber) ||
		!got.NotAfter.Equal(leaf.NotAfter) || !got.NotBefore.Equal(leaf.NotBefore) {
		t.Errorf("issued %+v", got)
	}
	if b, _ := pem.Decode([]byte(got.PEM)); b == nil || !bytes.Equal(b.Bytes, got.DER) {
		t.Error("PEM is not the leaf")
	}
	// The chain: leaf -> the intermediate -> the root.
	roots := x509.NewCertPool()
	roots.AddCert(ca.H.Root)
	inters := x509.NewCertPool()
	inters.AddCert(ca.H.Inter)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains[0]) != 3 || !chains[0][1].Equal(ca.H.Inter) {
		t.Fatalf("chain: %v", err)
	}

	// ca_chain is the intermediate then the root; the client-CA pool is the intermediate alone.
	chainPEM, err := is.CAChainPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(stepcatest.PEM(ca.H.Inter)) + string(stepcatest.PEM(ca.H.Root)); chainPEM != want {
		t.Errorf("ca chain:\n%s", chainPEM)
	}
	pool, err := is.ClientCAPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the client-CA pool: %v", err)
	}
	if _, err := ca.H.Root.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
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
		"intermediate": {ca.H.Inter, time.Now()},
		"foreign":      {newHierarchy(t).Inter, time.Now()},
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
	ca := stepcatest.Start(t, "", stepcatest.NewHierarchy(t, 48*time.Hour))
	is := issuer(t, ca, ca.Prov)
	dk := stepcatest.Key(t)
	got, err := is.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_short", PublicKey: &dk.PublicKey, Validity: 365 * 24 * time.Hour,
		CSR: csrFor(t, dk, &x509.CertificateRequest{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.NotAfter.Equal(ca.H.Inter.NotAfter.UTC()) {
		t.Fatalf("notAfter %s, want the intermediate's %s", got.NotAfter, ca.H.Inter.NotAfter)
	}
}

func TestStepCARefusesAForeignProvisionerKey(t *testing.T) {
	ca := stepcatest.Start(t, "", newHierarchy(t))
	other, _, _ := stepcatest.ProvisionerKey(t)
	is := issuer(t, ca, other)
	dk := stepcatest.Key(t)
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
	priv, _, _ := stepcatest.ProvisionerKey(t)
	ok := stepca.Options{URL: "https://127.0.0.1:9000", RootCAs: stepcatest.PEM(h.Root), ProvisionerName: "samplero", ProvisionerKey: priv}
	if _, err := stepca.New(ok); err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(stepcatest.Key(t))
	withPEM := ok
	withPEM.ProvisionerKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	if _, err := stepca.New(withPEM); err != nil {
		t.Fatalf("PEM key: %v", err)
	}
	_, pub, _ := stepcatest.ProvisionerKey(t)
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
	priv, _, _ := stepcatest.ProvisionerKey(t)
	// Nothing listens on this address: a request that reached the network would be Unavailable.
	is, err := stepca.New(stepca.Options{URL: "https://" + freePort(t), RootCAs: stepcatest.PEM(h.Root), ProvisionerName: "samplero", ProvisionerKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dk, other := stepcatest.Key(t), stepcatest.Key(t)
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
