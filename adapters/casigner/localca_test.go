package casigner_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time)  { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func newClock(t time.Time) *clock { return &clock{now: t} }
func pkiDir(t *testing.T) string  { return filepath.Join(t.TempDir(), "data", "pki") }
func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func readPEMCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestEnsureLocalCACreatesHierarchy(t *testing.T) {
	dir := pkiDir(t)
	ca, err := casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root, _ := ca.Root(ctx)
	ints, _ := ca.Intermediates(ctx)
	if len(ints) != 1 || ints[0].State != "active" {
		t.Fatalf("intermediates %+v", ints)
	}
	inter := ints[0].Cert
	if ints[0].ID != authority.IntermediateID(inter) {
		t.Fatalf("id %q", ints[0].ID)
	}

	// Root: ECDSA P-384, 20 years, path length 1, self-signed.
	rk, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || rk.Curve != elliptic.P384() {
		t.Fatalf("root key %T", root.PublicKey)
	}
	if !root.IsCA || root.MaxPathLen != 1 || root.CheckSignatureFrom(root) != nil {
		t.Fatal("root is not a self-signed CA with path length 1")
	}
	if y := root.NotAfter.Sub(t0); y < 20*365*24*time.Hour || y > 20*366*24*time.Hour {
		t.Fatalf("root lifetime %v", y)
	}
	// Intermediate: ECDSA, 5 years, path length 0, signed by the root.
	if _, ok := inter.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("intermediate key %T", inter.PublicKey)
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero || inter.CheckSignatureFrom(root) != nil {
		t.Fatal("intermediate is not a CA with path length 0 signed by the root")
	}
	if y := inter.NotAfter.Sub(t0); y < 5*365*24*time.Hour || y > 5*366*24*time.Hour {
		t.Fatalf("intermediate lifetime %v", y)
	}

	// Files and modes.
	for _, d := range []string{dir, filepath.Join(dir, "root"), filepath.Join(dir, "intermediates"), filepath.Join(dir, "intermediates", ints[0].ID)} {
		if m := mode(t, d); m != 0o700 {
			t.Errorf("%s mode %v, want 0700", d, m)
		}
	}
	for _, k := range []string{filepath.Join(dir, "root", "root-key.pem"), filepath.Join(dir, "intermediates", ints[0].ID, "key.pem")} {
		if m := mode(t, k); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", k, m)
		}
	}
	chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem"))
	if len(chain) != 2 || !chain[0].Equal(inter) || !chain[1].Equal(root) {
		t.Fatal("ca-chain.pem is not intermediate then root")
	}
	if r := readPEMCerts(t, filepath.Join(dir, "root.pem")); len(r) != 1 || !r[0].Equal(root) {
		t.Fatal("root.pem")
	}
	if ca.ChainPath() != filepath.Join(dir, "ca-chain.pem") {
		t.Fatal("ChainPath")
	}
	// No temporary directories left beside it.
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("parent holds %d entries", len(entries))
	}

	// Signer: the intermediate's key; unknown ids are NotFound.
	signer, err := ca.Signer(ctx, ints[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl, _ := authority.DeviceTemplate(big.NewInt(77), "act_1", t0, time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, leafKey.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(chain[1])
	inters := x509.NewCertPool()
	inters.AddCert(chain[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: t0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate signed with Signer does not verify: %v", err)
	}
	if _, err := ca.Signer(ctx, "int_nope"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown signer: %v", err)
	}
}

func TestEnsureLocalCAReloads(t *testing.T) {
	dir := pkiDir(t)
	ctx := context.Background()
	first, err := casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	rootKey, _ := os.ReadFile(filepath.Join(dir, "root", "root-key.pem"))
	chainBefore, _ := os.ReadFile(filepath.Join(dir, "ca-chain.pem"))

	second, err := casigner.EnsureLocalCA(dir, newClock(t0.Add(400*24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := first.Root(ctx)
	r2, _ := second.Root(ctx)
	if !r1.Equal(r2) {
		t.Fatal("root changed across reload")
	}
	i1, _ := first.Intermediates(ctx)
	i2, _ := second.Intermediates(ctx)
	if len(i2) != 1 || i1[0].ID != i2[0].ID || !i1[0].Cert.Equal(i2[0].Cert) || i2[0].State != "active" {
		t.Fatal("intermediate changed across reload")
	}
	s1, _ := first.Signer(ctx, i1[0].ID)
	s2, _ := second.Signer(ctx, i2[0].ID)
	if !s2.Public().(*ecdsa.PublicKey).Equal(s1.Public()) {
		t.Fatal("intermediate key changed across reload")
	}
	rootKeyAfter, _ := os.ReadFile(filepath.Join(dir, "root", "root-key.pem"))
	chainAfter, _ := os.ReadFile(filepath.Join(dir, "ca-chain.pem"))
	if string(rootKey) != string(rootKeyAfter) || string(chainBefore) != string(chainAfter) {
		t.Fatal("files rewritten")
	}
}

func TestEnsureLocalCAConcurrentFirstStart(t *testing.T) {
	dir := pkiDir(t)
	const n = 4
	cas := make([]*casigner.LocalCA, n)
	errc := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], errc[i] = casigner.EnsureLocalCA(dir, newClock(t0))
		}()
	}
	wg.Wait()
	var root *x509.Certificate
	for i := range n {
		if errc[i] != nil {
			t.Fatalf("start %d: %v", i, errc[i])
		}
		r, _ := cas[i].Root(context.Background())
		if root == nil {
			root = r
		} else if !root.Equal(r) {
			t.Fatal("concurrent first starts made different roots")
		}
	}
}

func TestEnsureLocalCARefusesForeignDirectory(t *testing.T) {
	dir := pkiDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "something"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := casigner.EnsureLocalCA(dir, newClock(t0)); err == nil {
		t.Fatal("a non-empty directory without a CA was accepted")
	}
	// An empty directory is fine: it is replaced by the new hierarchy.
	empty := pkiDir(t)
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := casigner.EnsureLocalCA(empty, newClock(t0)); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, empty); m != 0o700 {
		t.Fatalf("mode %v", m)
	}
}

func TestEnsureLocalCADetectsMismatchedKey(t *testing.T) {
	dir := pkiDir(t)
	ca, err := casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	ints, _ := ca.Intermediates(context.Background())
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(other)
	if err := os.WriteFile(filepath.Join(dir, "intermediates", ints[0].ID, "key.pem"),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := casigner.EnsureLocalCA(dir, newClock(t0)); err == nil {
		t.Fatal("a key that does not match its certificate was loaded")
	}
}

func TestEnsureLocalCAFollowsStateFiles(t *testing.T) {
	dir := pkiDir(t)
	ca, err := casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	ints, _ := ca.Intermediates(context.Background())
	// The states live in state.json (they lived in intermediates/<id>/state before several
	// intermediates could be trusted at once; see TestEnsureLocalCAReadsLegacyStateFiles).
	state := filepath.Join(dir, "state.json")
	writeState := func(st string) {
		t.Helper()
		doc := `{"format": 1, "intermediates": [{"id": "` + ints[0].ID + `", "state": "` + st + `"}]}`
		if err := os.WriteFile(state, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeState("retired")
	ca, err = casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	ints, _ = ca.Intermediates(context.Background())
	if ints[0].State != "retired" {
		t.Fatalf("state %q", ints[0].State)
	}
	if chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem")); len(chain) != 1 {
		t.Fatalf("ca-chain.pem has %d certificates, want the root alone", len(chain))
	}
	writeState("bogus")
	if _, err := casigner.EnsureLocalCA(dir, newClock(t0)); err == nil {
		t.Fatal("unknown state accepted")
	}
}

func TestServerTLSCertificate(t *testing.T) {
	dir := pkiDir(t)
	clk := newClock(t0)
	ca, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServerTLSCertificate([]string{"device.example.test", "192.0.2.7", ""})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Fatalf("EKU %v", leaf.ExtKeyUsage)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "device.example.test", "192.0.2.7"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("does not name %s: %v", h, err)
		}
	}
	if m := mode(t, filepath.Join(dir, "server-key.pem")); m != 0o600 {
		t.Errorf("server-key.pem mode %v", m)
	}

	// Verifies with ca-chain.pem's root as the only root, through the chain the server sends.
	chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem"))
	roots := x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	inters := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: t0, DNSName: "localhost"}); err != nil {
		t.Fatalf("server certificate does not chain to ca-chain.pem's root: %v", err)
	}

	// A real handshake with a client that trusts only that root.
	tlsHandshake(t, cert, roots, "127.0.0.1", clk.Now)

	// Reused while valid for more than 30 days and the names are the same (order does not matter).
	again, err := ca.ServerTLSCertificate([]string{"192.0.2.7", "DEVICE.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Leaf.Equal(leaf) {
		t.Fatal("not reused for the same names")
	}
	// Reused across a restart too.
	reloaded, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	again, err = reloaded.ServerTLSCertificate([]string{"device.example.test", "192.0.2.7"})
	if err != nil || !again.Leaf.Equal(leaf) {
		t.Fatalf("not reused after reload: %v", err)
	}
	// Other names: a new certificate.
	other, err := ca.ServerTLSCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if other.Leaf.Equal(leaf) || other.Leaf.VerifyHostname("device.example.test") == nil {
		t.Fatal("names changed but the certificate did not")
	}
	// Close to expiry: replaced.
	clk.set(other.Leaf.NotAfter.Add(-29 * 24 * time.Hour))
	renewed, err := ca.ServerTLSCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Leaf.Equal(other.Leaf) || !renewed.Leaf.NotAfter.After(other.Leaf.NotAfter) {
		t.Fatal("a certificate with under 30 days left was reused")
	}
	// Still more than 30 days: kept.
	clk.set(renewed.Leaf.NotAfter.Add(-31 * 24 * time.Hour))
	kept, err := ca.ServerTLSCertificate(nil)
	if err != nil || !kept.Leaf.Equal(renewed.Leaf) {
		t.Fatalf("a certificate with 31 days left was replaced: %v", err)
	}

	if _, err := ca.ServerTLSCertificate([]string{"http://x"}); err == nil {
		t.Fatal("a URL was accepted as a host")
	}
}

func tlsHandshake(t *testing.T, cert tls.Certificate, roots *x509.CertPool, serverName string, now func() time.Time) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{cert}, Time: now})
	cli := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: serverName, Time: now})
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err != nil {
			s.Close()
		}
		errc <- err
	}()
	cerr := cli.Handshake()
	if cerr != nil {
		c.Close()
	}
	serr := <-errc
	if err := errors.Join(cerr, serr); err != nil {
		t.Fatalf("handshake: %v", err)
	}
}
