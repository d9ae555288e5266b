package boot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

// On a dev PKI directory (root key on the machine), dev-sign-intermediate signs a new
// intermediate that installs like one from the offline root; the mutual-TLS probe of the rollout
// then passes the real device listener's handshake with a certificate from it, and a certificate
// from a foreign CA is reported refused.
func TestDevSignAndMTLSProbe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	clock := portstest.NewFakeClock(time.Now())
	ca, err := casigner.EnsureLocalCA(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	media := t.TempDir()
	m := idRE.FindStringSubmatch(mustCLI(t, "", "new-intermediate", "--pki-dir", dir))
	if m == nil {
		t.Fatal("new-intermediate printed no id")
	}
	id := m[1]
	cert, bundle := filepath.Join(media, "int.pem"), filepath.Join(media, "int.tar.gz")
	out := mustCLI(t, "", "rollout", "dev-sign-intermediate", "--pki-dir", dir, "--csr", filepath.Join(dir, "intermediates", id, "csr.pem"), "--out", cert)
	if !strings.Contains(out, "DEV ONLY") || !strings.Contains(out, id) {
		t.Fatalf("dev-sign printed:\n%s", out)
	}
	mustCLI(t, "", "bundle", "build", "--cert", cert, "--root-cert", filepath.Join(dir, "root.pem"), "--out", bundle)
	mustCLI(t, "", "bundle", "install", bundle, "--pki-dir", dir)
	mustCLI(t, "", "state", "set", "--pki-dir", dir, "--id", id, "--state", "canary", "--share", "10")
	clock.Advance(1100 * time.Millisecond) // the CA looks at state.json at most once a second

	svc := pki.New(pki.Deps{CA: ca, Clock: clock})
	health := pki.NewHealth(svc, portstest.NewMemRolloutEvents(nil))
	if err := health.CheckChain(context.Background(), id); err != nil {
		t.Fatalf("chain check of the dev-signed intermediate: %v", err)
	}
	serverCert, err := ca.ServerTLSCertificate([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := deviceTLSConfig(serverCert, &clientCAs{load: svc.ClientCAPool, refresh: time.Second, now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/keys" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"keys":[]}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	probe := NewMTLSProbe(ln.Addr().String(), svc)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issued, err := health.IssueProbeCertificate(context.Background(), id, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := probe.Probe(context.Background(), issued.DER, key)
	if err != nil || !res.Accepted || !strings.Contains(res.Detail, "200") {
		t.Fatalf("probe with a certificate from the canary: %+v %v", res, err)
	}

	// A certificate from a CA the listener does not trust is refused, and said so.
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "samplero-device"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, foreignKey.Public(), foreignKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err = probe.Probe(context.Background(), der, foreignKey)
	if err != nil || res.Accepted || res.Detail == "" {
		t.Fatalf("probe with a foreign certificate: %+v %v", res, err)
	}
	t.Logf("refused as: %s", res.Detail)

	// Nobody listening is an error (the activity retries it), not a refusal.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := dead.Addr().String()
	dead.Close()
	if _, err := NewMTLSProbe(addr, svc).Probe(context.Background(), issued.DER, key); err == nil {
		t.Fatal("probe of a closed port did not fail")
	}
	if got := probeAddr("0.0.0.0:8443"); got != "127.0.0.1:8443" {
		t.Fatalf("probeAddr: %s", got)
	}
}

var _ ports.RootVault = devRootVault{}
