package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

const pass = "correct horse battery staple"

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

type adminEnv struct {
	admin   *pki.Admin
	vault   *memVault
	bundles *memBundles
	keys    *memKeys
	dir     *memDir
	clock   *fixedClock
	counter *memCounter
}

func newAdmin(t *testing.T) *adminEnv {
	t.Helper()
	e := &adminEnv{vault: newMemVault(), bundles: newMemBundles(), keys: newMemKeys(), dir: newMemDir(), clock: &fixedClock{now: t0}}
	e.admin = pki.NewAdmin(pki.AdminDeps{Roots: e.vault, Bundles: e.bundles, Dir: e.dir, Keys: e.keys, Clock: e.clock})
	return e
}

func (e *adminEnv) withCounter(c memCounter) {
	e.counter = &c
	e.admin = pki.NewAdmin(pki.AdminDeps{Roots: e.vault, Bundles: e.bundles, Dir: e.dir, Keys: e.keys, Clock: e.clock, Counter: c})
}

// rootAndIntermediate runs init-root, new-intermediate, sign-intermediate and bundle build, and
// returns the root info and the bundle's path.
func (e *adminEnv) rootAndIntermediate(t *testing.T, rootDir string) (ports.RootInfo, string, string) {
	t.Helper()
	ctx := context.Background()
	if e.vault.roots[rootDir] == nil {
		if _, err := e.admin.InitRoot(ctx, ports.InitRootRequest{Dir: rootDir, Passphrase: []byte(pass)}); err != nil {
			t.Fatal(err)
		}
	}
	root := e.vault.roots[rootDir].cert
	p, err := e.admin.NewIntermediate(ctx, ports.NewIntermediateRequest{Organization: "Samplero"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := e.admin.SignIntermediate(ctx, ports.SignIntermediateRequest{RootDir: rootDir, Passphrase: []byte(pass), CSRPEM: p.CSRPEM})
	if err != nil {
		t.Fatal(err)
	}
	out := "bundle-" + p.ID + ".tar.gz"
	if _, err := e.admin.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: signed.CertPEM, RootPEM: pemCert(root), Out: out}); err != nil {
		t.Fatal(err)
	}
	info := ports.RootInfo{FingerprintSHA256: authority.Fingerprint(root)}
	return info, out, p.ID
}

func TestInitRoot(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	if _, err := e.admin.InitRoot(ctx, ports.InitRootRequest{Dir: "r", Passphrase: []byte("short")}); errs.CodeOf(err) != pki.CodeWeakPassphrase {
		t.Fatalf("weak passphrase: %v", err)
	}
	info, err := e.admin.InitRoot(ctx, ports.InitRootRequest{Dir: "r", Passphrase: []byte(pass), Organization: "Vendor"})
	if err != nil {
		t.Fatal(err)
	}
	root := e.vault.roots["r"].cert
	if info.FingerprintSHA256 != authority.Fingerprint(root) || info.CertLocation == "" || info.KeyLocation == "" {
		t.Fatalf("info %+v", info)
	}
	if root.Subject.CommonName != "Samplero Root CA" || root.Subject.Organization[0] != "Vendor" || root.MaxPathLen != 1 {
		t.Fatalf("root %s pathlen %d", root.Subject, root.MaxPathLen)
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
		t.Fatal("root key is not P-384")
	}
	if got := root.NotAfter.Sub(root.NotBefore); got != authority.RootValidity+authority.CABackdate {
		t.Fatalf("root lifetime %s", got)
	}
	if _, err := e.admin.InitRoot(ctx, ports.InitRootRequest{Dir: "r", Passphrase: []byte(pass)}); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("second root in the same directory: %v", err)
	}
}

func TestSignIntermediate(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	if _, err := e.admin.InitRoot(ctx, ports.InitRootRequest{Dir: "r", Passphrase: []byte(pass)}); err != nil {
		t.Fatal(err)
	}
	root := e.vault.roots["r"].cert
	p, err := e.admin.NewIntermediate(ctx, ports.NewIntermediateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(e.dir.csrs[p.ID]), "CERTIFICATE REQUEST") || !strings.HasPrefix(p.ID, "int_") {
		t.Fatalf("pending %+v", p)
	}
	req := ports.SignIntermediateRequest{RootDir: "r", Passphrase: []byte(pass), CSRPEM: p.CSRPEM}

	bad := req
	bad.Passphrase = []byte("not the passphrase")
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("wrong passphrase: %v", err)
	}
	bad = req
	bad.Constraints = ports.NameConstraints{PermittedDNS: []string{"example.com"}}
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.CodeOf(err) != pki.CodeConstraintsUnsupported {
		t.Fatalf("name constraints: %v", err)
	}
	_, lan, _ := net.ParseCIDR("10.0.0.0/8")
	bad.Constraints = ports.NameConstraints{ExcludedIPs: []*net.IPNet{lan}}
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.CodeOf(err) != pki.CodeConstraintsUnsupported {
		t.Fatalf("excluded IP constraint: %v", err)
	}
	bad = req
	bad.Validity = 30 * 365 * 24 * time.Hour
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.CodeOf(err) != pki.CodeValidityTooLong {
		t.Fatalf("validity beyond the root: %v", err)
	}
	bad = req
	bad.CSRPEM = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("not a CSR: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, p384)
	bad.CSRPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := e.admin.SignIntermediate(ctx, bad); errs.CodeOf(err) != authority.CodeInvalidCACSR {
		t.Fatalf("P-384 intermediate CSR: %v", err)
	}
	if n := len(e.vault.roots["r"].issued); n != 0 {
		t.Fatalf("%d certificates recorded by refused requests", n)
	}

	signed, err := e.admin.SignIntermediate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParsePEM(t, signed.CertPEM)
	if signed.ID != p.ID || authority.IntermediateID(cert) != p.ID {
		t.Fatalf("signed %s for key %s", signed.ID, p.ID)
	}
	if err := authority.CheckIntermediate(cert, root); err != nil {
		t.Fatal(err)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got != authority.IntermediateValidity+authority.CABackdate {
		t.Fatalf("default lifetime %s, want 5 years", got)
	}
	key, _ := e.keys.Key(ctx, p.ID)
	if !key.Public().(*ecdsa.PublicKey).Equal(cert.PublicKey) {
		t.Fatal("certificate not for the CSR's key")
	}
	if n := len(e.vault.roots["r"].issued); n != 1 {
		t.Fatalf("issued log has %d entries", n)
	}
	// A shorter validity is honoured.
	req.Validity = 48 * time.Hour
	short, err := e.admin.SignIntermediate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if c := mustParsePEM(t, short.CertPEM); c.NotAfter.Sub(t0) != 48*time.Hour {
		t.Fatalf("validity %s", c.NotAfter.Sub(t0))
	}
}

func mustParsePEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBundleBuildAndVerify(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	root, path, id := e.rootAndIntermediate(t, "r")
	info, err := e.admin.VerifyBundle(ctx, ports.VerifyBundleRequest{Path: path, RootFingerprint: strings.ToLower(strings.ReplaceAll(root.FingerprintSHA256, ":", ""))})
	if err != nil {
		t.Fatal(err)
	}
	if info.IntermediateID != id || info.RootFingerprint != root.FingerprintSHA256 || len(info.Files) != 3 {
		t.Fatalf("info %+v", info)
	}
	files, _ := e.bundles.Read(ctx, path)
	for _, f := range files {
		for _, s := range info.Files {
			if s.Name == f.Name {
				sum := sha256.Sum256(f.Data)
				if s.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("sum of %s", f.Name)
				}
			}
		}
	}
	if _, err := e.admin.VerifyBundle(ctx, ports.VerifyBundleRequest{Path: path, RootFingerprint: "AB:CD"}); errs.CodeOf(err) != pki.CodeBundleRejected {
		t.Fatalf("pinned fingerprint of another root: %v", err)
	}
	// Building refuses a certificate that does not chain to the root given.
	other := newAdmin(t)
	other.rootAndIntermediate(t, "other")
	otherRoot := other.vault.roots["other"].cert
	inter := files[0].Data
	if _, err := e.admin.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: inter, RootPEM: pemCert(otherRoot), Out: "x"}); err == nil {
		t.Fatal("built a bundle whose chain does not verify")
	}
	if _, err := e.admin.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: inter, RootPEM: pemCert(e.vault.roots["r"].cert), Out: path}); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("overwrote a bundle: %v", err)
	}
}

// fileMap edits a bundle's files by name.
type fileMap map[string][]byte

func filesOf(t *testing.T, b *memBundles, path string) fileMap {
	t.Helper()
	fs, err := b.Read(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	m := fileMap{}
	for _, f := range fs {
		m[f.Name] = f.Data
	}
	return m
}

func (m fileMap) list() []ports.BundleFile {
	var out []ports.BundleFile
	for _, n := range []string{"intermediate.pem", "ca-chain.pem", "root.pem", "MANIFEST.json"} {
		if d, ok := m[n]; ok {
			out = append(out, ports.BundleFile{Name: n, Data: d})
		}
	}
	for n, d := range m {
		switch n {
		case "intermediate.pem", "ca-chain.pem", "root.pem", "MANIFEST.json":
		default:
			out = append(out, ports.BundleFile{Name: n, Data: d})
		}
	}
	return out
}

// resum rewrites the manifest's sums so that only the change under test is wrong.
func (m fileMap) resum(t *testing.T) {
	t.Helper()
	var man map[string]any
	if err := json.Unmarshal(m["MANIFEST.json"], &man); err != nil {
		t.Fatal(err)
	}
	var files []map[string]string
	for _, n := range []string{"intermediate.pem", "ca-chain.pem", "root.pem"} {
		s := sha256.Sum256(m[n])
		files = append(files, map[string]string{"name": n, "sha256": hex.EncodeToString(s[:])})
	}
	man["files"] = files
	data, _ := json.Marshal(man)
	m["MANIFEST.json"] = data
}

func TestVerifyBundleRejects(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	_, path, _ := e.rootAndIntermediate(t, "r")
	rootKey := e.vault.roots["r"].key
	rootKeyDER, _ := x509.MarshalPKCS8PrivateKey(rootKey)
	rootKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rootKeyDER})
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(otherKey)
	jweHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"PBES2-HS512+A256KW","enc":"A256GCM","p2c":600000}`))

	// A second, well-formed intermediate of another root, for a chain that does not verify.
	other := newAdmin(t)
	_, otherPath, _ := other.rootAndIntermediate(t, "other")
	foreign := filesOf(t, other.bundles, otherPath)

	tests := []struct {
		name   string
		mutate func(m fileMap)
		want   string // substring of the message
	}{
		{"root key as an extra file", func(m fileMap) { m["root-ca.key"] = rootKeyPEM }, "private key"},
		{"root key under an innocent name", func(m fileMap) { m["notes.txt"] = rootKeyPEM }, "private key"},
		{"key appended to the chain", func(m fileMap) { m["ca-chain.pem"] = append(m["ca-chain.pem"], rootKeyPEM...); m.resum(t) }, "private key"},
		{"SEC 1 key in DER", func(m fileMap) { m["extra.der"] = ecDER }, "private key"},
		{"PKCS#8 key in DER", func(m fileMap) { m["extra.bin"] = rootKeyDER }, "private key"},
		{"an encrypted root key (JWE)", func(m fileMap) { m["blob"] = []byte(jweHeader + ".a.b.c.d") }, "private key"},
		{"a JWK with its private part", func(m fileMap) { m["k.json"] = []byte(`{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}`) }, "private key"},
		{"a file named like a key", func(m fileMap) { m["intermediate_ca_key"] = []byte("nothing") }, "private key"},
		{"an unexpected file", func(m fileMap) { m["README"] = []byte("hello") }, "unexpected file"},
		{"no manifest", func(m fileMap) { delete(m, "MANIFEST.json") }, "missing MANIFEST.json"},
		{"no chain", func(m fileMap) { delete(m, "ca-chain.pem") }, "missing ca-chain.pem"},
		{"a changed file", func(m fileMap) { m["root.pem"] = append(m["root.pem"], '\n') }, "SHA-256 of root.pem"},
		{"chain not intermediate then root", func(m fileMap) {
			m["ca-chain.pem"] = append(append([]byte(nil), m["root.pem"]...), m["intermediate.pem"]...)
			m.resum(t)
		}, "ca-chain.pem is not"},
		{"an intermediate of another root", func(m fileMap) {
			m["intermediate.pem"] = foreign["intermediate.pem"]
			m["ca-chain.pem"] = append(append([]byte(nil), m["intermediate.pem"]...), m["root.pem"]...)
			m.resum(t)
		}, "chain does not verify"},
		{"manifest claims a root key", func(m fileMap) {
			m["MANIFEST.json"] = bytes.Replace(m["MANIFEST.json"], []byte(`"root_key_included": false`), []byte(`"root_key_included": true`), 1)
		}, "root key"},
		{"manifest with an unknown field", func(m fileMap) {
			m["MANIFEST.json"] = bytes.Replace(m["MANIFEST.json"], []byte(`{`), []byte(`{"extra": 1,`), 1)
		}, "does not parse"},
		{"two certificates as the intermediate", func(m fileMap) {
			m["intermediate.pem"] = append(append([]byte(nil), m["intermediate.pem"]...), m["root.pem"]...)
			m["ca-chain.pem"] = append(append([]byte(nil), m["intermediate.pem"]...), m["root.pem"]...)
			m.resum(t)
		}, "2 certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filesOf(t, e.bundles, path)
			tt.mutate(m)
			p := "bad-" + tt.name
			if err := e.bundles.Write(ctx, p, m.list()); err != nil {
				t.Fatal(err)
			}
			_, err := e.admin.VerifyBundle(ctx, ports.VerifyBundleRequest{Path: p})
			if errs.CodeOf(err) != pki.CodeBundleRejected || !strings.Contains(errMsg(err), tt.want) {
				t.Fatalf("err = %v, want BUNDLE_REJECTED mentioning %q", err, tt.want)
			}
			// Install runs the same verification: nothing reaches the directory.
			if _, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: p}); errs.CodeOf(err) != pki.CodeBundleRejected {
				t.Fatalf("install: %v", err)
			}
			if len(e.dir.certs) != 0 {
				t.Fatal("a rejected bundle was installed")
			}
		})
	}

	// An intermediate that expired (the clock moved past it) no longer verifies.
	e.clock.now = t0.Add(6 * 365 * 24 * time.Hour)
	if _, err := e.admin.VerifyBundle(ctx, ports.VerifyBundleRequest{Path: path}); errs.CodeOf(err) != pki.CodeBundleRejected {
		t.Fatalf("expired intermediate: %v", err)
	}
}

func errMsg(err error) string {
	if e, ok := errs.As(err); ok {
		return e.Message
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestInstallBundle(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	root, path, id := e.rootAndIntermediate(t, "r")
	res, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: path, RootFingerprint: root.FingerprintSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != id || res.State != "staged" || !res.RootInstalled || res.AlreadyInstalled {
		t.Fatalf("install %+v", res)
	}
	if e.dir.root == nil || e.dir.certs[id] == nil {
		t.Fatal("nothing installed")
	}
	// The same bundle again changes nothing.
	again, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: path})
	if err != nil || !again.AlreadyInstalled {
		t.Fatalf("reinstall %+v, %v", again, err)
	}

	// Another certificate for the same key needs --force.
	signed, err := e.admin.SignIntermediate(ctx, ports.SignIntermediateRequest{RootDir: "r", Passphrase: []byte(pass), CSRPEM: e.dir.csrs[id], Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: signed.CertPEM, RootPEM: pemCert(e.dir.root), Out: "reissue"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: "reissue"}); errs.CodeOf(err) != pki.CodeAlreadyInstalled {
		t.Fatalf("overwrite without force: %v", err)
	}
	forced, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: "reissue", Force: true})
	if err != nil || forced.BackupLocation == "" {
		t.Fatalf("forced %+v, %v", forced, err)
	}

	// A bundle for a key this server does not have.
	foreignKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "elsewhere"}}, foreignKey)
	s2, err := e.admin.SignIntermediate(ctx, ports.SignIntermediateRequest{RootDir: "r", Passphrase: []byte(pass), CSRPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: s2.CertPEM, RootPEM: pemCert(e.dir.root), Out: "foreign"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: "foreign"}); errs.CodeOf(err) != pki.CodeKeyMissing {
		t.Fatalf("bundle without a key here: %v", err)
	}

	// A bundle of another root.
	other := newAdmin(t)
	other.keys = e.keys // the same server key store, so only the root differs
	other.admin = pki.NewAdmin(pki.AdminDeps{Roots: other.vault, Bundles: e.bundles, Dir: other.dir, Keys: e.keys, Clock: e.clock})
	_, otherPath, _ := other.rootAndIntermediate(t, "other")
	if _, err := e.admin.InstallBundle(ctx, ports.InstallBundleRequest{Path: otherPath}); errs.CodeOf(err) != pki.CodeRootMismatch {
		t.Fatalf("bundle of another root: %v", err)
	}
}

// install puts a fresh intermediate from root dir "r" into the directory and returns its id.
func (e *adminEnv) install(t *testing.T) string {
	t.Helper()
	_, path, id := e.rootAndIntermediate(t, "r")
	if _, err := e.admin.InstallBundle(context.Background(), ports.InstallBundleRequest{Path: path}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *adminEnv) set(t *testing.T, id, state string, share int) ports.StateChangeResult {
	t.Helper()
	res, err := e.admin.SetIntermediateState(context.Background(), ports.SetIntermediateStateRequest{ID: id, State: state, Share: share})
	if err != nil {
		t.Fatalf("%s -> %s: %v", id, state, err)
	}
	return res
}

func (e *adminEnv) states(t *testing.T) map[string]string {
	t.Helper()
	st, err := e.admin.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range st.Intermediates {
		out[in.ID] = in.State
		if in.Share > 0 {
			out[in.ID] += "/" + string(rune('0'+in.Share/10)) + string(rune('0'+in.Share%10))
		}
	}
	return out
}

func TestSetIntermediateStateRollout(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	first := e.install(t)
	e.set(t, first, "active", 0)
	second := e.install(t)
	if got := e.states(t); got[first] != "active" || got[second] != "staged" {
		t.Fatalf("after install %v", got)
	}
	e.set(t, second, "canary", 5)
	if got := e.states(t); got[second] != "canary/05" {
		t.Fatalf("canary %v", got)
	}
	// The canary's share as the issuing service sees it.
	res := e.set(t, second, "active", 0)
	if len(res.Changes) != 2 || res.Changes[0].ID != first || res.Changes[0].To != "retiring" || res.Changes[1].To != "active" {
		t.Fatalf("promotion changes %+v", res.Changes)
	}
	// Asking again is harmless.
	if res := e.set(t, second, "active", 0); len(res.Changes) != 0 {
		t.Fatalf("repeated promotion changed %+v", res.Changes)
	}
	// Roll the promotion back: the first comes back.
	e.set(t, second, "rolled_back", 0)
	if got := e.states(t); got[first] != "active" || got[second] != "rolled_back" {
		t.Fatalf("after rollback %v", got)
	}
	// rolled_back is final but for retirement.
	if _, err := e.admin.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: second, State: "canary", Share: 5}); errs.CodeOf(err) != authority.CodeIllegalTransition {
		t.Fatalf("rolled_back -> canary: %v", err)
	}
	if _, err := e.admin.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: "int_0000000000000000", State: "retired"}); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := e.admin.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: first, State: "live"}); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("unknown state: %v", err)
	}
	e.set(t, second, "retired", 0)

	// Every change is in the history, with the intermediate moved along noted.
	var lines []string
	for _, h := range e.dir.history {
		lines = append(lines, h.ID[:8]+":"+h.From+">"+h.To)
	}
	want := 2 /* installs */ + 1 /* first active */ + 1 /* canary */ + 2 /* promotion */ + 2 /* rollback */ + 1 /* retired */
	if len(e.dir.history) != want {
		t.Fatalf("history %v, want %d entries", lines, want)
	}
	moved := 0
	for _, h := range e.dir.history {
		if strings.HasPrefix(h.Note, "moved with") {
			moved++
		}
	}
	if moved != 2 {
		t.Fatalf("%d entries note a companion move, want 2 (promotion, rollback)", moved)
	}
	// The published chain follows: the retired intermediate is gone from it.
	if bytes.Contains(e.dir.chain, pemCert(e.dir.certs[second])) || !bytes.Contains(e.dir.chain, pemCert(e.dir.certs[first])) {
		t.Fatal("chain does not follow the states")
	}
}

func TestSetIntermediateStateRefusalsWriteNothing(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	id := e.install(t)
	before := e.dir.updates
	for _, tc := range []struct {
		state string
		share int
		code  string
	}{
		{"canary", 5, authority.CodeNoActiveIntermediate}, // no active intermediate yet
		{"retiring", 0, authority.CodeIllegalTransition},
		{"rolled_back", 0, authority.CodeIllegalTransition},
	} {
		_, err := e.admin.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: id, State: tc.state, Share: tc.share})
		if errs.CodeOf(err) != tc.code {
			t.Fatalf("%s: %v, want %s", tc.state, err, tc.code)
		}
	}
	if e.dir.updates != before {
		t.Fatal("a refused change wrote the state file")
	}
	// An expired intermediate cannot become active.
	e.clock.now = t0.Add(6 * 365 * 24 * time.Hour)
	if _, err := e.admin.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: id, State: "active"}); errs.CodeOf(err) != authority.CodeIntermediateNotValid {
		t.Fatalf("expired -> active: %v", err)
	}
}

func TestStatus(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	first := e.install(t)
	e.set(t, first, "active", 0)
	second := e.install(t)
	e.set(t, second, "canary", 10)
	pending, err := e.admin.NewIntermediate(ctx, ports.NewIntermediateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.admin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Root == nil || st.Root.FingerprintSHA256 != authority.Fingerprint(e.dir.root) || st.CountsAvailable {
		t.Fatalf("status %+v", st)
	}
	if len(st.Intermediates) != 2 || len(st.Pending) != 1 || st.Pending[0].ID != pending.ID {
		t.Fatalf("intermediates %+v pending %+v", st.Intermediates, st.Pending)
	}
	for _, in := range st.Intermediates {
		if in.ID == second && (in.State != "canary" || in.Share != 10 || in.NotAfter.IsZero() || in.FingerprintSHA256 == "") {
			t.Fatalf("canary %+v", in)
		}
	}
	e.withCounter(memCounter{counts: map[string]int{first: 40, second: 3}})
	st, _ = e.admin.Status(ctx)
	if !st.CountsAvailable {
		t.Fatal("counts not used")
	}
	for _, in := range st.Intermediates {
		if want := map[string]int{first: 40, second: 3}[in.ID]; in.IssuedValid != want {
			t.Fatalf("%s counts %d, want %d", in.ID, in.IssuedValid, want)
		}
	}
	e.withCounter(memCounter{err: errors.New("database down")})
	st, err = e.admin.Status(ctx)
	if err != nil || st.CountsAvailable || st.CountsError == "" || strings.Contains(st.CountsError, "database down") {
		t.Fatalf("status with a failing counter: %+v, %v (the cause stays out of the output)", st, err)
	}
}

func TestAudit(t *testing.T) {
	e := newAdmin(t)
	ctx := context.Background()
	first := e.install(t)
	e.set(t, first, "active", 0)
	codes := func() []string {
		t.Helper()
		r, err := e.admin.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range r.Findings {
			out = append(out, f.Code)
		}
		return out
	}
	if got := codes(); len(got) != 0 {
		t.Fatalf("a healthy directory has findings %v", got)
	}
	// The file checks' findings are passed on.
	e.dir.findings = []ports.AuditFinding{{Code: "ROOT_KEY_PRESENT", Location: "root/root-key.pem"}}
	if got := codes(); len(got) != 1 || got[0] != "ROOT_KEY_PRESENT" {
		t.Fatalf("findings %v", got)
	}
	e.dir.findings = nil
	// A stale chain.
	e.dir.chain = pemCert(e.dir.root)
	if got := codes(); len(got) != 1 || got[0] != "CHAIN_FILE_STALE" {
		t.Fatalf("stale chain: %v", got)
	}
	e.dir.publish()
	// A key that is gone, or another key.
	saved := e.keys.keys[first]
	delete(e.keys.keys, first)
	if got := codes(); len(got) != 1 || got[0] != "KEY_MISSING" {
		t.Fatalf("missing key: %v", got)
	}
	e.keys.keys[first], _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if got := codes(); len(got) != 1 || got[0] != "KEY_MISMATCH" {
		t.Fatalf("mismatched key: %v", got)
	}
	e.keys.keys[first] = saved
	// An intermediate of another root.
	other := newAdmin(t)
	other.install(t)
	for id, c := range other.dir.certs {
		e.dir.certs[id] = c
		e.keys.keys[id] = other.keys.keys[id]
	}
	e.dir.publish()
	if got := codes(); len(got) != 1 || got[0] != "CHAIN_BROKEN" {
		t.Fatalf("foreign intermediate: %v", got)
	}
	for id := range other.dir.certs {
		delete(e.dir.certs, id)
	}
	e.dir.publish()
	// Two active intermediates (a hand-edited state file).
	second := e.install(t)
	e.dir.records[second] = ports.IntermediateRecord{ID: second, State: "active"}
	e.dir.publish()
	if got := codes(); len(got) != 1 || got[0] != "HIERARCHY_INVALID" {
		t.Fatalf("two active: %v", got)
	}
	// Time passes: the active intermediates expire.
	e.clock.now = t0.Add(6 * 365 * 24 * time.Hour)
	if got := codes(); !containsAll(got, "INTERMEDIATE_EXPIRED") {
		t.Fatalf("expired: %v", got)
	}
	// No root at all.
	empty := newAdmin(t)
	if got := func() []string {
		r, _ := empty.admin.Audit(ctx)
		var out []string
		for _, f := range r.Findings {
			out = append(out, f.Code)
		}
		return out
	}(); len(got) != 1 || got[0] != "ROOT_CERT_MISSING" {
		t.Fatalf("empty directory: %v", got)
	}
}

func containsAll(got []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestAdminWithoutItsPorts(t *testing.T) {
	a := pki.NewAdmin(pki.AdminDeps{Clock: &fixedClock{now: t0}})
	ctx := context.Background()
	if _, err := a.Status(ctx); errs.KindOf(err) != errs.Internal {
		t.Fatalf("status without a directory: %v", err)
	}
	if _, err := a.InitRoot(ctx, ports.InitRootRequest{Dir: "x", Passphrase: []byte(pass)}); errs.KindOf(err) != errs.Internal {
		t.Fatalf("init-root without a vault: %v", err)
	}
}
