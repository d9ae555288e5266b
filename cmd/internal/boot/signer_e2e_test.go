package boot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/remotesigner"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

const (
	e2eSignerToken  = "e2e-signer-token-0123456789abcdef0123"
	e2eSignerSecret = "e2e-signer-hmac-0123456789abcdef01234"
)

// TestRemoteSignerIssuesThroughCorePKI runs the signer over a local CA and issues a device
// certificate through core/pki with the remote backend: the certificate must verify against the
// chain the service publishes, while the server side never holds an intermediate key.
func TestRemoteSignerIssuesThroughCorePKI(t *testing.T) {
	clock := portstest.NewFakeClock(time.Now())
	local, err := casigner.EnsureLocalCA(filepath.Join(t.TempDir(), "pki"), clock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := remotesigner.NewServer(remotesigner.ServerOptions{CA: local, Token: e2eSignerToken, HMACSecret: e2eSignerSecret, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	remote, err := remotesigner.NewClient(remotesigner.ClientOptions{BaseURL: ts.URL, Token: e2eSignerToken, HMACSecret: e2eSignerSecret,
		Clock: clock, CacheTTL: time.Second, MaxStale: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	issueAndVerify(t, remote, clock)

	// The signer goes away: the trust data serves from the cache for MaxStale, then the service
	// reports the CA unavailable.
	ts.Close()
	clock.Advance(2 * time.Minute)
	svc := pki.New(pki.Deps{CA: remote, Clock: clock})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err = svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{ActivationID: "act_e2e2", PublicKey: key.Public(), Validity: time.Hour})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("issuance with the signer gone: %v, want unavailable", err)
	}
}

// issueAndVerify issues a device certificate through core/pki on ca and checks it against the
// published chain, as a device's server would.
func issueAndVerify(t *testing.T, ca ports.CAKeyStore, clock ports.Clock) {
	t.Helper()
	ctx := context.Background()
	svc := pki.New(pki.Deps{CA: ca, Clock: clock})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := svc.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: "act_e2e1", PublicKey: key.Public(), Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(issued.DER)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, err := svc.CAChainPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chain []*x509.Certificate
	for rest := []byte(chainPEM); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("chain has %d certificates", len(chain))
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate from the remote signer does not verify against the chain: %v", err)
	}
	if err := svc.VerifyClientCertificate(ctx, leaf, clock.Now()); err != nil {
		t.Fatalf("VerifyClientCertificate: %v", err)
	}
	pool, err := svc.ClientCAPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the listener's client-CA pool does not accept it: %v", err)
	}
	ints, err := ca.Intermediates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	signedBy := ""
	for _, in := range ints {
		if leaf.CheckSignatureFrom(in.Cert) == nil {
			signedBy = in.ID
		}
	}
	if signedBy == "" || signedBy != issued.IssuerID {
		t.Fatalf("issuer %q, signed by %q", issued.IssuerID, signedBy)
	}
}
