package pkifiles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type clock struct{ now time.Time }

func (c clock) Now() time.Time { return c.now }

const pass = "correct horse battery staple"

func selfSign(key crypto.Signer) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: t0, NotAfter: t0.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestRootVault(t *testing.T) {
	ctx := context.Background()
	v := pkifiles.NewRootVault(pkifiles.VaultOptions{PBES2Count: 1000, Clock: clock{t0}})
	dir := filepath.Join(t.TempDir(), "offline", "root")
	var made *x509.Certificate
	locs, err := v.Create(ctx, dir, []byte(pass), func(k crypto.Signer) (*x509.Certificate, error) {
		if pub, ok := k.Public().(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
			t.Fatalf("root key %T", k.Public())
		}
		c, err := selfSign(k)
		made = c
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if perm(t, dir) != 0o700 {
		t.Fatalf("dir mode %v", perm(t, dir))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Fatalf("%d files in the root directory", len(entries))
	}
	for _, e := range entries {
		if m := perm(t, filepath.Join(dir, e.Name())); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), m)
		}
	}
	if locs.Key != filepath.Join(dir, pkifiles.RootKeyFile) || locs.Cert != filepath.Join(dir, pkifiles.RootCertFile) {
		t.Fatalf("locations %+v", locs)
	}

	// The key file is a compact JWE with PBES2-HS512+A256KW and A256GCM, and no plaintext key.
	sealed, _ := os.ReadFile(locs.Key)
	parts := strings.Split(strings.TrimSpace(string(sealed)), ".")
	if len(parts) != 5 || strings.Contains(string(sealed), "PRIVATE KEY") {
		t.Fatalf("root-key.jwe is not a compact JWE: %q", sealed[:40])
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	if err := json.Unmarshal(hdr, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "PBES2-HS512+A256KW" || h["enc"] != "A256GCM" || h["p2c"] != float64(1000) {
		t.Fatalf("JWE header %v", h)
	}

	cert, key, err := v.Open(ctx, dir, []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(made) || !key.Public().(*ecdsa.PublicKey).Equal(made.PublicKey) {
		t.Fatal("opened root is not the one made")
	}
	if _, _, err := v.Open(ctx, dir, []byte("wrong passphrase!")); errs.CodeOf(err) != pkifiles.CodeWrongPassphrase || errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, _, err := v.Open(ctx, t.TempDir(), []byte(pass)); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("no root: %v", err)
	}
	// A flipped byte in the ciphertext: AES-GCM refuses it.
	tampered := []byte(strings.TrimSpace(string(sealed)))
	i := len(parts[0]) + len(parts[1]) + len(parts[2]) + 4
	tampered[i] ^= 1
	if tampered[i] == '.' || tampered[i] == '-' {
		tampered[i] = 'A'
	}
	tdir := t.TempDir()
	copyFile(t, locs.Cert, filepath.Join(tdir, pkifiles.RootCertFile))
	os.WriteFile(filepath.Join(tdir, pkifiles.RootKeyFile), tampered, 0o600)
	if _, _, err := v.Open(ctx, tdir, []byte(pass)); err == nil {
		t.Fatal("a tampered key file opened")
	}

	// A second root in the same directory is refused.
	if _, err := v.Create(ctx, dir, []byte(pass), selfSign); errs.CodeOf(err) != pkifiles.CodeRootExists {
		t.Fatalf("second root: %v", err)
	}
	// An empty existing directory is fine.
	empty := t.TempDir()
	if _, err := v.Create(ctx, empty, []byte(pass), selfSign); err != nil {
		t.Fatal(err)
	}
	// A failing build leaves nothing behind, not even a temporary directory.
	parent := t.TempDir()
	if _, err := v.Create(ctx, filepath.Join(parent, "r"), []byte(pass), func(crypto.Signer) (*x509.Certificate, error) {
		return nil, errors.New("boom")
	}); err == nil {
		t.Fatal("build error ignored")
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}

	// The issued log.
	if err := v.RecordIssued(ctx, dir, made); err != nil {
		t.Fatal(err)
	}
	if err := v.RecordIssued(ctx, dir, made); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, pkifiles.IssuedLogFile))
	if n := strings.Count(string(log), "\n"); n != 2 || !strings.Contains(string(log), "serial=1 ") || !strings.HasPrefix(string(log), "2026-11-29T12:00:00Z ") {
		t.Fatalf("issued.log %q", log)
	}
}

func TestRootVaultDefaultCount(t *testing.T) {
	v := pkifiles.NewRootVault(pkifiles.VaultOptions{})
	dir := filepath.Join(t.TempDir(), "r")
	if _, err := v.Create(context.Background(), dir, []byte(pass), selfSign); err != nil {
		t.Fatal(err)
	}
	sealed, _ := os.ReadFile(filepath.Join(dir, pkifiles.RootKeyFile))
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(sealed), ".")[0])
	if !strings.Contains(string(hdr), `"p2c":600000`) {
		t.Fatalf("header %s", hdr)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBundleRoundTrip(t *testing.T) {
	ctx := context.Background()
	b := pkifiles.NewBundles(clock{t0})
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	files := []ports.BundleFile{{Name: "a.pem", Data: []byte("A")}, {Name: "MANIFEST.json", Data: []byte("{}")}}
	if err := b.Write(ctx, p, files); err != nil {
		t.Fatal(err)
	}
	got, err := b.Read(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a.pem" || string(got[0].Data) != "A" || string(got[1].Data) != "{}" {
		t.Fatalf("read back %+v", got)
	}
	if err := b.Write(ctx, p, files); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("overwrite: %v", err)
	}
	if _, err := b.Read(ctx, filepath.Join(t.TempDir(), "none")); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("missing bundle: %v", err)
	}
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func reg(name, data string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data: []byte(data)}
}

func writeTarGz(t *testing.T, entries ...entry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBundleReadRejects(t *testing.T) {
	ctx := context.Background()
	b := pkifiles.NewBundles(nil)
	big := strings.Repeat("x", 300<<10)
	many := make([]entry, 20)
	for i := range many {
		many[i] = reg("f"+string(rune('a'+i)), "x")
	}
	tests := map[string][]entry{
		"symlink":        {reg("a.pem", "A"), {hdr: tar.Header{Name: "root-key.pem", Typeflag: tar.TypeSymlink, Linkname: "/srv/pki/root/root-key.pem"}}},
		"hard link":      {reg("a.pem", "A"), {hdr: tar.Header{Name: "b.pem", Typeflag: tar.TypeLink, Linkname: "a.pem"}}},
		"directory":      {{hdr: tar.Header{Name: "certs/", Typeflag: tar.TypeDir, Mode: 0o755}}},
		"device":         {{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar}}},
		"traversal":      {reg("../../etc/cron.d/x", "A")},
		"absolute":       {reg("/etc/passwd", "A")},
		"nested":         {reg("certs/a.pem", "A")},
		"dot slash":      {reg("./a.pem", "A")},
		"backslash":      {reg(`..\evil`, "A")},
		"duplicate":      {reg("a.pem", "A"), reg("a.pem", "B")},
		"too large":      {reg("a.pem", big)},
		"too many files": many,
	}
	for name, entries := range tests {
		t.Run(name, func(t *testing.T) {
			p := writeTarGz(t, entries...)
			if _, err := b.Read(ctx, p); errs.CodeOf(err) != pkifiles.CodeBundleRejected {
				t.Fatalf("err = %v, want BUNDLE_REJECTED", err)
			}
		})
	}
	// Not gzip, not tar.
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("plain text"), 0o644)
	if _, err := b.Read(ctx, p); errs.CodeOf(err) != pkifiles.CodeBundleRejected {
		t.Fatalf("not gzip: %v", err)
	}
	// The bundle itself given as a symlink.
	good := writeTarGz(t, reg("a.pem", "A"))
	link := filepath.Join(t.TempDir(), "link.tar.gz")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(ctx, link); errs.CodeOf(err) != pkifiles.CodeBundleRejected {
		t.Fatalf("symlinked bundle: %v", err)
	}
	if files, err := b.Read(ctx, good); err != nil || len(files) != 1 {
		t.Fatalf("good bundle: %v %v", files, err)
	}
}
