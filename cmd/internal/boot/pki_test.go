package boot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

const testPassphrase = "correct horse battery staple"

// pkiCLI runs `samplero pki args…` as the binary does (config.Parse, then PKI) with stdin as its
// standard input and an environment of env alone.
func pkiCLI(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cfg, err := config.Parse(append([]string{"pki"}, args...), func(k string) string { return env[k] }, &errOut)
	if err != nil {
		return errOut.String(), err
	}
	err = PKI(context.Background(), cfg, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := pkiCLI(t, nil, stdin, args...)
	if err != nil {
		t.Fatalf("samplero pki %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var (
	idRE = regexp.MustCompile(`New intermediate key (int_[0-9a-f]{16})`)
	fpRE = regexp.MustCompile(`SHA-256 fingerprint\s+([0-9A-F:]{95})`)
)

// pkiWorld is an offline root, a server PKI directory and a transfer medium, on temp dirs.
type pkiWorld struct {
	root, pki, media string
	rootFP           string
}

func newPKIWorld(t *testing.T) *pkiWorld {
	t.Helper()
	base := t.TempDir()
	w := &pkiWorld{root: filepath.Join(base, "offline", "root"), pki: filepath.Join(base, "srv", "pki"), media: filepath.Join(base, "media")}
	if err := os.MkdirAll(w.media, 0o700); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, testPassphrase+"\n", "init-root", "--dir", w.root)
	m := fpRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init-root printed no fingerprint:\n%s", out)
	}
	w.rootFP = m[1]
	return w
}

// intermediate runs new-intermediate, sign-intermediate and bundle build, and returns the id and
// the bundle's path.
func (w *pkiWorld) intermediate(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	out := mustCLI(t, "", "new-intermediate", "--pki-dir", w.pki)
	m := idRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("new-intermediate printed no id:\n%s", out)
	}
	id := m[1]
	csr := filepath.Join(w.pki, "intermediates", id, "csr.pem")
	cert := filepath.Join(w.media, id+".pem")
	mustCLI(t, testPassphrase+"\n", append([]string{"sign-intermediate", "--root-dir", w.root, "--csr", csr, "--out", cert}, extra...)...)
	bundle := filepath.Join(w.media, id+".tar.gz")
	mustCLI(t, "", "bundle", "build", "--cert", cert, "--root-cert", filepath.Join(w.root, "root.pem"), "--out", bundle)
	return id, bundle
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestPKIInitRoot(t *testing.T) {
	w := newPKIWorld(t)
	if fileMode(t, w.root) != 0o700 || fileMode(t, filepath.Join(w.root, "root-key.jwe")) != 0o600 || fileMode(t, filepath.Join(w.root, "root.pem")) != 0o600 {
		t.Fatal("root directory or files too open")
	}
	data, _ := os.ReadFile(filepath.Join(w.root, "root.pem"))
	b, _ := pem.Decode(data)
	root, _ := x509.ParseCertificate(b.Bytes)
	if authority.Fingerprint(root) != w.rootFP {
		t.Fatalf("printed fingerprint %s is not the root's %s", w.rootFP, authority.Fingerprint(root))
	}
	// Again in the same directory: refused.
	if out, err := pkiCLI(t, nil, testPassphrase+"\n", "init-root", "--dir", w.root); err == nil || !strings.Contains(err.Error(), "ROOT_EXISTS") {
		t.Fatalf("second init-root: %v\n%s", err, out)
	}
	// No passphrase, a short one, or one from a file.
	if _, err := pkiCLI(t, nil, "", "init-root", "--dir", filepath.Join(t.TempDir(), "r")); err == nil || !strings.Contains(err.Error(), "no passphrase") {
		t.Fatalf("empty stdin: %v", err)
	}
	if _, err := pkiCLI(t, nil, "short\n", "init-root", "--dir", filepath.Join(t.TempDir(), "r")); err == nil || !strings.Contains(err.Error(), "WEAK_PASSPHRASE") {
		t.Fatalf("weak passphrase: %v", err)
	}
	pf := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pf, []byte(testPassphrase+"\nsecond line ignored\n"), 0o600)
	dir := filepath.Join(t.TempDir(), "r")
	mustCLI(t, "", "init-root", "--dir", dir, "--passphrase-file", pf)
	// The passphrase from the file (its first line) opens the key: sign-intermediate works with it.
	pkiDir := filepath.Join(t.TempDir(), "pki")
	id := idRE.FindStringSubmatch(mustCLI(t, "", "new-intermediate", "--pki-dir", pkiDir))[1]
	out := filepath.Join(t.TempDir(), "i.pem")
	mustCLI(t, "", "sign-intermediate", "--root-dir", dir, "--csr", filepath.Join(pkiDir, "intermediates", id, "csr.pem"), "--out", out, "--passphrase-file", pf)
}

func TestPKISignIntermediate(t *testing.T) {
	w := newPKIWorld(t)
	out := mustCLI(t, "", "new-intermediate", "--pki-dir", w.pki, "--org", "Example Audio")
	id := idRE.FindStringSubmatch(out)[1]
	keyPath := filepath.Join(w.pki, "intermediates", id, "key.pem")
	if fileMode(t, keyPath) != 0o600 || fileMode(t, w.pki) != 0o700 || !strings.Contains(out, filepath.Join(w.pki, "intermediates", id, "csr.pem")) {
		t.Fatalf("new-intermediate: modes or CSR path\n%s", out)
	}
	csr := filepath.Join(w.pki, "intermediates", id, "csr.pem")
	cert := filepath.Join(w.media, "i.pem")
	if _, err := pkiCLI(t, nil, "wrong passphrase\n", "sign-intermediate", "--root-dir", w.root, "--csr", csr, "--out", cert); err == nil || !strings.Contains(err.Error(), "ROOT_PASSPHRASE_WRONG") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := os.Stat(cert); !os.IsNotExist(err) {
		t.Fatal("a refused signature left a certificate")
	}
	if _, err := pkiCLI(t, nil, testPassphrase+"\n", "sign-intermediate", "--root-dir", w.root, "--csr", csr, "--out", cert, "--permitted-dns", "example.com"); err == nil || !strings.Contains(err.Error(), "NAME_CONSTRAINTS_UNSUPPORTED") {
		t.Fatalf("name constraints: %v", err)
	}
	out = mustCLI(t, testPassphrase+"\n", "sign-intermediate", "--root-dir", w.root, "--csr", csr, "--out", cert, "--validity", "8760h")
	if !strings.Contains(out, "Intermediate "+id+" signed") {
		t.Fatalf("output:\n%s", out)
	}
	data, _ := os.ReadFile(cert)
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || c.NotAfter.Sub(c.NotBefore) != 8761*time.Hour ||
		c.Subject.Organization[0] != "Example Audio" {
		t.Fatalf("intermediate profile: pathlen %d usage %v life %s subject %s", c.MaxPathLen, c.KeyUsage, c.NotAfter.Sub(c.NotBefore), c.Subject)
	}
	// The output file is never overwritten.
	if _, err := pkiCLI(t, nil, testPassphrase+"\n", "sign-intermediate", "--root-dir", w.root, "--csr", csr, "--out", cert); err == nil {
		t.Fatal("overwrote --out")
	}
	log, _ := os.ReadFile(filepath.Join(w.root, "issued.log"))
	if !strings.Contains(string(log), "id="+id) {
		t.Fatalf("issued.log: %s", log)
	}
}

func TestPKIBundleSteps(t *testing.T) {
	w := newPKIWorld(t)
	id, bundle := w.intermediate(t)
	out := mustCLI(t, "", "bundle", "verify", bundle, "--root-fingerprint", w.rootFP)
	for _, want := range []string{"verified", id, w.rootFP, "sha256 intermediate.pem", "sha256 ca-chain.pem", "sha256 root.pem"} {
		if !strings.Contains(out, want) {
			t.Fatalf("verify output lacks %q:\n%s", want, out)
		}
	}
	if _, err := pkiCLI(t, nil, "", "bundle", "verify", bundle, "--root-fingerprint", strings.Repeat("00:", 31)+"00"); err == nil {
		t.Fatal("a bundle of another root verified against a pinned fingerprint")
	}
	// Tampered bundles: a root key slipped in, a symlink, a path that climbs out.
	rootKey, _ := os.ReadFile(filepath.Join(w.root, "root-key.jwe"))
	for name, extra := range map[string]*tar.Header{
		"root key":  {Name: "root-key.jwe", Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(rootKey))},
		"symlink":   {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"},
		"traversal": {Name: "../../etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(rootKey))},
	} {
		bad := filepath.Join(t.TempDir(), "bad.tar.gz")
		appendToBundle(t, bundle, bad, extra, rootKey)
		out, err := pkiCLI(t, nil, "", "bundle", "verify", bad)
		if err == nil || !strings.Contains(err.Error(), "BUNDLE_REJECTED") {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
		if _, err := pkiCLI(t, nil, "", "bundle", "install", bad, "--pki-dir", w.pki); err == nil || !strings.Contains(err.Error(), "BUNDLE_REJECTED") {
			t.Errorf("%s install: %v", name, err)
		}
	}

	// Install: staged, root installed, backups on --force.
	out = mustCLI(t, "", "bundle", "install", bundle, "--pki-dir", w.pki, "--root-fingerprint", w.rootFP)
	if !strings.Contains(out, "state staged") || !strings.Contains(out, "root") {
		t.Fatalf("install output:\n%s", out)
	}
	if out := mustCLI(t, "", "bundle", "install", bundle, "--pki-dir", w.pki); !strings.Contains(out, "already installed") {
		t.Fatalf("second install:\n%s", out)
	}
	// A re-signed certificate for the same key: --force needed; the old one is backed up.
	cert2 := filepath.Join(w.media, "again.pem")
	mustCLI(t, testPassphrase+"\n", "sign-intermediate", "--root-dir", w.root, "--csr", filepath.Join(w.pki, "intermediates", id, "csr.pem"), "--out", cert2)
	bundle2 := filepath.Join(w.media, "again.tar.gz")
	mustCLI(t, "", "bundle", "build", "--cert", cert2, "--root-cert", filepath.Join(w.root, "root.pem"), "--out", bundle2)
	if _, err := pkiCLI(t, nil, "", "bundle", "install", bundle2, "--pki-dir", w.pki); err == nil || !strings.Contains(err.Error(), "INTERMEDIATE_INSTALLED") {
		t.Fatalf("overwrite without --force: %v", err)
	}
	out = mustCLI(t, "", "bundle", "install", bundle2, "--pki-dir", w.pki, "--force")
	m := regexp.MustCompile(`previous state kept in\s+(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no backup named:\n%s", out)
	}
	if old, _ := os.ReadFile(filepath.Join(m[1], "cert.pem")); !bytes.Contains(old, firstPEM(t, filepath.Join(w.media, id+".pem"))) {
		t.Fatal("the backup does not hold the replaced certificate")
	}

	// A bundle whose key is not on this server.
	other := filepath.Join(t.TempDir(), "pki2")
	if _, err := pkiCLI(t, nil, "", "bundle", "install", bundle, "--pki-dir", other); err == nil {
		t.Fatal("installed into a directory without the key (or without a directory)")
	}
	os.MkdirAll(other, 0o700)
	if _, err := pkiCLI(t, nil, "", "bundle", "install", bundle, "--pki-dir", other); err == nil || !strings.Contains(err.Error(), "INTERMEDIATE_KEY_MISSING") {
		t.Fatalf("no key here: %v", err)
	}
}

func firstPEM(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	return pem.EncodeToMemory(b)
}

// appendToBundle copies the bundle at from to to with one more entry.
func appendToBundle(t *testing.T, from, to string, hdr *tar.Header, data []byte) {
	t.Helper()
	raw, _ := os.ReadFile(from)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.WriteHeader(hdr)
	if hdr.Typeflag == tar.TypeReg {
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(to, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPKIAuditAndStatus(t *testing.T) {
	w := newPKIWorld(t)
	id, bundle := w.intermediate(t)
	mustCLI(t, "", "bundle", "install", bundle, "--pki-dir", w.pki)
	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", id, "--state", "active")
	out := mustCLI(t, "", "audit", "--pki-dir", w.pki)
	if !strings.Contains(out, "OK:") {
		t.Fatalf("audit:\n%s", out)
	}
	out = mustCLI(t, "", "status", "--pki-dir", w.pki)
	if !regexp.MustCompile(id+`\s+active\s+-\s+`).MatchString(out) || !strings.Contains(out, "n/a") || !strings.Contains(out, w.rootFP) {
		t.Fatalf("status:\n%s", out)
	}
	// A copy of the root key on the server, an open key: audit fails, naming each finding.
	rootKey, _ := os.ReadFile(filepath.Join(w.root, "root-key.jwe"))
	os.WriteFile(filepath.Join(w.pki, "root-key.jwe"), rootKey, 0o600)
	os.Chmod(filepath.Join(w.pki, "intermediates", id, "key.pem"), 0o644)
	out, err := pkiCLI(t, nil, "", "audit", "--pki-dir", w.pki)
	if !errors.Is(err, ErrAuditFindings) || !strings.Contains(out, "FINDING ROOT_KEY_PRESENT") || !strings.Contains(out, "FINDING KEY_MODE") {
		t.Fatalf("audit with findings: %v\n%s", err, out)
	}
	// A key waiting for its certificate shows in status.
	pending := idRE.FindStringSubmatch(mustCLI(t, "", "new-intermediate", "--pki-dir", w.pki))[1]
	if out := mustCLI(t, "", "status", "--pki-dir", w.pki); !strings.Contains(out, "Keys waiting for a certificate") || !strings.Contains(out, pending) {
		t.Fatalf("status with a pending key:\n%s", out)
	}
}

// status counts the valid device certificates of each intermediate from the database of
// `samplero dev`, and audit flags dev's own root key.
func TestPKIStatusCountsDevCertificates(t *testing.T) {
	s := devServer(t, nil)
	ctx := context.Background()
	if _, err := s.Licenses.PutProduct(ctx, ports.ProductSpec{Slug: "synth", Name: "Synth", Type: license.TypePlugin, PriceCents: 100, Currency: "EUR",
		Policy: ports.PolicySpec{MaxActivations: 5, FirstActivation: "instant"}}); err != nil {
		t.Fatal(err)
	}
	lic, err := s.Licenses.CreateLicense(ctx, ports.CreateLicenseCommand{Product: "synth"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		key, _ := samplero.GenerateKey(samplero.KeyP256)
		csr, _ := samplero.CreateCSR(key)
		thumb, _ := httpsig.Thumbprint(key.Public())
		id, err := s.Licenses.ResolveCSR(ctx, csr, thumb)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Licenses.Activate(ctx, ports.ActivateCommand{LicenseKey: lic.Key, Fingerprint: fmt.Sprintf("device-fingerprint-%d", i), Platform: license.PlatformLinux,
			PluginVersion: "1.0.0", CSRPEM: csr, RequestAddr: "127.0.0.1", Identity: id}); err != nil {
			t.Fatal(err)
		}
	}
	ints, _ := s.CA.Intermediates(ctx)
	out := mustCLI(t, "", "status", "--data", s.Cfg.DataDir)
	if !regexp.MustCompile(ints[0].ID + `\s+active\s+-\s+\S+\s+\S+\s+\S+\s+3\s`).MatchString(out) {
		t.Fatalf("status does not count 3 valid certificates of %s:\n%s", ints[0].ID, out)
	}
	// dev keeps its root key in DIR/pki: the audit says so, and fails.
	out, err = pkiCLI(t, nil, "", "audit", "--data", s.Cfg.DataDir)
	if !errors.Is(err, ErrAuditFindings) || !strings.Contains(out, "ROOT_KEY_PRESENT") {
		t.Fatalf("audit of a dev directory: %v\n%s", err, out)
	}
}

func TestPKIStateSet(t *testing.T) {
	w := newPKIWorld(t)
	first, b1 := w.intermediate(t)
	mustCLI(t, "", "bundle", "install", b1, "--pki-dir", w.pki)
	// A canary needs an active intermediate first.
	if _, err := pkiCLI(t, nil, "", "state", "set", "--pki-dir", w.pki, "--id", first, "--state", "canary"); err == nil || !strings.Contains(err.Error(), "NO_ACTIVE_INTERMEDIATE") {
		t.Fatalf("canary without an active one: %v", err)
	}
	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", first, "--state", "active")
	if out := mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", first, "--state", "active"); !strings.Contains(out, "nothing changed") {
		t.Fatalf("repeat:\n%s", out)
	}
	second, b2 := w.intermediate(t)
	mustCLI(t, "", "bundle", "install", b2, "--pki-dir", w.pki)
	out := mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "canary", "--share", "10")
	if !strings.Contains(out, second+": staged -> canary (10% of new device certificates)") {
		t.Fatalf("canary:\n%s", out)
	}
	out = mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "active")
	if !strings.Contains(out, first+": active -> retiring (moved with "+second+")") || !strings.Contains(out, second+": canary -> active") {
		t.Fatalf("promotion:\n%s", out)
	}
	if _, err := pkiCLI(t, nil, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "staged"); err == nil {
		t.Fatal("state set staged accepted")
	}
	if _, err := pkiCLI(t, nil, "", "state", "set", "--pki-dir", w.pki, "--id", "int_0123456789abcdef", "--state", "retired"); err == nil || !strings.Contains(err.Error(), "INTERMEDIATE_NOT_FOUND") {
		t.Fatalf("unknown id: %v", err)
	}
}

// handshake connects a client presenting cert (nil: none) to a TLS server using cfg over
// loopback TCP, and returns the server's verdict on the handshake (or the client's).
func handshake(t *testing.T, cfg *tls.Config, roots *x509.CertPool, cert *tls.Certificate) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		errc <- tls.Server(conn, cfg).Handshake()
	}()
	ccfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Time: cfg.Time}
	if cert != nil {
		ccfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	if err == nil {
		defer conn.Close()
	}
	if serr := <-errc; serr != nil {
		return serr
	}
	return err
}

// A whole rollout on a production-like PKI directory, while one server (LocalCA, the PKI service,
// and the device listener's TLS configuration) serves from it: devices activated before the
// rollout, during the canary (from each intermediate), after the promotion and after a rollback
// all keep passing the mutual TLS handshake, and none is refused until its intermediate retires.
func TestPKIRolloutOverMTLS(t *testing.T) {
	w := newPKIWorld(t)
	ctx := context.Background()
	first, b1 := w.intermediate(t)
	mustCLI(t, "", "bundle", "install", b1, "--pki-dir", w.pki)
	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", first, "--state", "active")

	clock := portstest.NewFakeClock(time.Now())
	ca, err := casigner.EnsureLocalCA(w.pki, clock)
	if err != nil {
		t.Fatal(err)
	}
	svc := pki.New(pki.Deps{CA: ca, Clock: clock})
	serverCert, err := ca.ServerTLSCertificate([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cas := &clientCAs{load: svc.ClientCAPool, refresh: time.Second, now: clock.Now}
	tlsCfg, err := deviceTLSConfig(serverCert, cas)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.Time = clock.Now
	roots := x509.NewCertPool()
	rootPEM, _ := os.ReadFile(filepath.Join(w.pki, "root.pem"))
	roots.AppendCertsFromPEM(rootPEM)
	// Every step below is picked up after the server's next look, a second on.
	tick := func() { clock.Advance(1100 * time.Millisecond) }

	type device struct {
		act    string
		issuer string
		cert   tls.Certificate
	}
	var devices []device
	n := 0
	activate := func(phase string, count int) map[string]int {
		t.Helper()
		by := map[string]int{}
		for range count {
			n++
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			got, err := svc.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: fmt.Sprintf("act_%04d", n), PublicKey: key.Public(), Validity: 24 * time.Hour})
			if err != nil {
				t.Fatalf("%s: issue: %v", phase, err)
			}
			leaf, _ := x509.ParseCertificate(got.DER)
			devices = append(devices, device{act: fmt.Sprintf("act_%04d", n), issuer: got.IssuerID, cert: tls.Certificate{Certificate: [][]byte{got.DER}, PrivateKey: key, Leaf: leaf}})
			by[got.IssuerID]++
		}
		return by
	}
	// validateAll handshakes every device and returns the failures by issuer.
	validateAll := func(phase string) map[string]int {
		t.Helper()
		failed := map[string]int{}
		for _, d := range devices {
			if err := handshake(t, tlsCfg, roots, &d.cert); err != nil {
				failed[d.issuer]++
			}
		}
		t.Logf("%-22s %3d devices, handshake failures %v", phase, len(devices), failed)
		return failed
	}

	if by := activate("before the rollout", 10); by[first] != 10 {
		t.Fatalf("before the rollout: %v", by)
	}
	if f := validateAll("before the rollout"); len(f) != 0 {
		t.Fatalf("failures %v", f)
	}

	second, b2 := w.intermediate(t)
	mustCLI(t, "", "bundle", "install", b2, "--pki-dir", w.pki)
	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "canary", "--share", "50")
	tick()
	canary := activate("canary 50%", 40)
	if canary[first] == 0 || canary[second] == 0 {
		t.Fatalf("canary of 50 %% did not split: %v", canary)
	}
	if f := validateAll("during the canary"); len(f) != 0 {
		t.Fatalf("failures %v", f)
	}

	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "active")
	tick()
	if by := activate("after promotion", 10); by[second] != 10 {
		t.Fatalf("after promotion: %v", by)
	}
	if f := validateAll("after promotion"); len(f) != 0 {
		t.Fatalf("failures %v", f)
	}

	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "rolled_back")
	tick()
	if by := activate("after rollback", 10); by[first] != 10 {
		t.Fatalf("after rollback: %v", by)
	}
	rolling, _ := svc.RollingBack(ctx, second)
	if !rolling {
		t.Fatal("the rolled back intermediate's devices are not told to renew")
	}
	if f := validateAll("after rollback"); len(f) != 0 {
		t.Fatalf("failures %v", f)
	}

	// Retiring the rolled-back intermediate takes its certificates out of the handshake: the
	// reload reaches the listener without a restart.
	mustCLI(t, "", "state", "set", "--pki-dir", w.pki, "--id", second, "--state", "retired")
	tick()
	f := validateAll("after retirement")
	want := 0
	for _, d := range devices {
		if d.issuer == second {
			want++
		}
	}
	if f[second] != want || f[first] != 0 || want == 0 {
		t.Fatalf("after retiring %s: failures %v, want %d of it and none of %s", second, f, want, first)
	}
	// A client without a certificate still connects (the device API checks it per route).
	if err := handshake(t, tlsCfg, roots, nil); err != nil {
		t.Fatal(err)
	}
}

// The listener's pool cache follows its clock: a change is seen after refresh, not before.
func TestClientCAsRefresh(t *testing.T) {
	clock := portstest.NewFakeClock(time.Now())
	var mu sync.Mutex
	loads := 0
	cas := &clientCAs{refresh: time.Second, now: clock.Now, load: func(context.Context) (*x509.CertPool, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		return x509.NewCertPool(), nil
	}}
	cas.get()
	cas.get()
	clock.Advance(999 * time.Millisecond)
	cas.get()
	if loads != 1 {
		t.Fatalf("%d loads within the refresh", loads)
	}
	clock.Advance(2 * time.Millisecond)
	cas.get()
	if loads != 2 {
		t.Fatalf("%d loads after the refresh", loads)
	}
}
