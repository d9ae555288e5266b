package boot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/ports"
)

// writeCA makes a self-signed CA and writes its certificate to dir/name.pem.
func writeCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	return c, k
}

// writeLeaf issues a leaf from ca with usage and writes dir/name.pem and dir/name-key.pem.
func writeLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, ca, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", kd)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startSigner runs the signer until the test ends and returns its address.
func startSigner(t *testing.T, c config.Signer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runSigner(ctx, c, slog.New(slog.DiscardHandler), func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("signer: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("signer did not start: %v", err)
	}
	return ""
}

func TestSignerOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if _, err := casigner.EnsureLocalCA(pkiDir, systemClock{}); err != nil {
		t.Fatal(err)
	}
	srvCA, srvCAKey := writeCA(t, dir, "server-ca")
	cliCA, cliCAKey := writeCA(t, dir, "client-ca")
	otherCA, otherCAKey := writeCA(t, dir, "other-ca")
	writeLeaf(t, dir, "signer", srvCA, srvCAKey, x509.ExtKeyUsageServerAuth)
	writeLeaf(t, dir, "serve", cliCA, cliCAKey, x509.ExtKeyUsageClientAuth)
	writeLeaf(t, dir, "intruder", otherCA, otherCAKey, x509.ExtKeyUsageClientAuth)
	tok, sec := config.Secret(e2eSignerToken), config.Secret(e2eSignerSecret)
	addr := startSigner(t, config.Signer{Listen: "127.0.0.1:0", PKIDir: pkiDir, TLSCert: filepath.Join(dir, "signer.pem"),
		TLSKey: filepath.Join(dir, "signer-key.pem"), ClientCA: filepath.Join(dir, "client-ca.pem"), Token: tok, HMACSecret: sec})

	backend := func(cert string) config.Config {
		b := config.CABackend{Kind: "remote", URL: "https://" + addr, Token: tok, HMACSecret: sec, CAFile: filepath.Join(dir, "server-ca.pem")}
		if cert != "" {
			b.ClientCert, b.ClientKey = filepath.Join(dir, cert+".pem"), filepath.Join(dir, cert+"-key.pem")
		}
		return config.Config{CABackend: b}
	}
	ctx := context.Background()
	for _, cert := range []string{"", "intruder"} {
		if _, err := caKeyStore(ctx, backend(cert)); err == nil || !strings.Contains(err.Error(), "remote signer at") {
			t.Fatalf("client certificate %q: %v, want the start refused", cert, err)
		}
	}
	ca, err := caKeyStore(ctx, backend("serve"))
	if err != nil {
		t.Fatal(err)
	}
	issueAndVerify(t, ca, systemClock{})

	// A wrong token stops the start too.
	bad := backend("serve")
	bad.CABackend.Token = config.Secret(strings.Repeat("x", 40))
	if _, err := caKeyStore(ctx, bad); err == nil {
		t.Fatal("wrong token accepted")
	}
}

func TestCAKeyStoreLocal(t *testing.T) {
	ca, err := caKeyStore(context.Background(), config.Config{PKIDir: filepath.Join(t.TempDir(), "pki"), CABackend: config.CABackend{Kind: "local"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ca.(*casigner.LocalCA); !ok {
		t.Fatalf("local backend is %T", ca)
	}
	var _ ports.CAKeyStore = ca
}

func TestSignerRefusesEmptyPKIDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	err := runSigner(context.Background(), config.Signer{Listen: "127.0.0.1:0", PKIDir: dir,
		Token: e2eSignerToken, HMACSecret: e2eSignerSecret}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) {})
	if err == nil || !strings.Contains(err.Error(), "no CA hierarchy") {
		t.Fatalf("got %v", err)
	}
	// It made nothing there: above all no root key.
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the signer created %s", dir)
	}
}
