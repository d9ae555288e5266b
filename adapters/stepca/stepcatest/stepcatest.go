// Package stepcatest starts a real step-ca on loopback for tests: a root and an intermediate made
// with crypto/x509 (as an operator's offline root would), a JWK provisioner with the Samplero device
// template, and a hand-written ca.json. Shared by the adapter's tests and the serve tests in cmd.
package stepcatest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
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
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/adapters/stepca"
)

// ProvisionerName is the JWK provisioner's name in the ca.json Start writes.
const ProvisionerName = "samplero"

// Hierarchy is step-ca's root and intermediate.
type Hierarchy struct {
	RootKey, IntKey *ecdsa.PrivateKey
	Root, Inter     *x509.Certificate
}

// NewHierarchy makes a root (20 years) and an intermediate valid for intLife from now.
func NewHierarchy(t *testing.T, intLife time.Duration) Hierarchy {
	t.Helper()
	now := time.Now()
	rootKey := Key(t)
	rootT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root := Cert(t, rootT, rootT, &rootKey.PublicKey, rootKey)
	intKey := Key(t)
	intT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(intLife),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	inter := Cert(t, intT, root, &intKey.PublicKey, rootKey)
	return Hierarchy{RootKey: rootKey, IntKey: intKey, Root: root, Inter: inter}
}

// Key is a new P-256 key.
func Key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Cert signs tmpl with key under parent.
func Cert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
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

// PEM encodes a certificate.
func PEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// ProvisionerKey is a JWK provisioner's key pair: the private JWK for the adapter, the public JWK
// for ca.json.
func ProvisionerKey(t *testing.T) (private []byte, public json.RawMessage, kid string) {
	t.Helper()
	k := Key(t)
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

// Binary finds step-ca on PATH or in GOPATH/bin. .ci/run installs it, so under
// SAMPLERO_REQUIRE_SERVICES a missing binary fails the test; elsewhere the test skips.
func Binary(t *testing.T) string {
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
	if p := filepath.Join(gopath, "bin", "step-ca"); fileExists(p) {
		return p
	}
	const install = "CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2"
	if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
		t.Fatalf("step-ca is not installed (%s)", install)
	}
	t.Skipf("step-ca is not installed (%s); see docs/stepca.md", install)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// CA is a running step-ca.
type CA struct {
	URL  string
	H    Hierarchy
	Prov []byte // the provisioner's private JWK
}

// Start writes h, a JWK provisioner with the device template and a hand-written ca.json into dir
// ("" = a temp dir), starts step-ca on a free loopback port and waits for /health. It stops with t.
func Start(t *testing.T, dir string, h Hierarchy) CA {
	t.Helper()
	bin := Binary(t)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	intKeyDER, err := x509.MarshalECPrivateKey(h.IntKey)
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
	priv, pub, _ := ProvisionerKey(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := map[string]any{
		"root":     write("root_ca.crt", PEM(h.Root)),
		"crt":      write("intermediate_ca.crt", PEM(h.Inter)),
		"key":      write("intermediate_ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: intKeyDER})),
		"address":  addr,
		"dnsNames": []string{"127.0.0.1"},
		"logger":   map[string]any{"format": "text"},
		"authority": map[string]any{
			"backdate": "5m",
			"provisioners": []any{map[string]any{
				"type": "JWK",
				"name": ProvisionerName,
				"key":  pub,
				"claims": map[string]any{
					"minTLSCertDuration":     "5m",
					"maxTLSCertDuration":     "17520h",
					"defaultTLSCertDuration": "8760h",
				},
				"options": map[string]any{"x509": map[string]any{"templateFile": write("samplero-device.tpl", []byte(stepca.DeviceTemplate))}},
			}},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, write("ca.json", raw))
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
	pool.AddCert(h.Root)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	url := "https://" + addr
	// Polling a real process's startup: there is no clock to fake here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return CA{URL: url, H: h, Prov: priv}
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
}
