package casigner_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// devRootKey reads the root key `samplero dev` keeps in its PKI directory.
func devRootKey(t *testing.T, dir string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "root", "root-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

// newIntermediate makes a key in the directory's key store and signs it with the root, the way
// new-intermediate and sign-intermediate do, and returns its certificate.
func newIntermediate(t *testing.T, dir string, root *x509.Certificate, rootKey crypto.Signer, now time.Time, life time.Duration) *x509.Certificate {
	t.Helper()
	id, key, err := casigner.NewFileKeyStore(dir).NewKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := authority.NewSerial(rand.Reader)
	tmpl, err := authority.IntermediateTemplate(serial, pkix.Name{CommonName: "Intermediate " + id}, now, life, authority.NameConstraints{})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if authority.IntermediateID(cert) != id {
		t.Fatalf("key store id %s, certificate id %s", id, authority.IntermediateID(cert))
	}
	return cert
}

func setState(t *testing.T, d *casigner.Directory, id, state string, share int) {
	t.Helper()
	err := d.UpdateStates(context.Background(), func(st *ports.HierarchyStates) error {
		for i := range st.Intermediates {
			if st.Intermediates[i].ID == id {
				st.Intermediates[i].State, st.Intermediates[i].Share = state, share
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func byID(ints []ports.CAIntermediate) map[string]string {
	out := map[string]string{}
	for _, in := range ints {
		out[in.ID] = in.State
	}
	return out
}

// A second intermediate installed, canaried, promoted, and the first retired, all while a LocalCA
// serves from the directory: it picks each step up without a restart, at most a second later.
func TestLocalCAReloadsWithoutRestart(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	clk := newClock(t0)
	ca, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := ca.Root(ctx)
	ints, _ := ca.Intermediates(ctx)
	first := ints[0].ID
	d := casigner.NewDirectory(dir, clk)

	second := newIntermediate(t, dir, root, devRootKey(t, dir), t0, 24*time.Hour)
	newID := authority.IntermediateID(second)
	// A key waiting for its certificate is not an intermediate yet.
	clk.set(t0.Add(time.Second))
	if ints, _ := ca.Intermediates(ctx); len(ints) != 1 {
		t.Fatalf("a pending key was loaded: %v", byID(ints))
	}

	res, err := d.Install(ctx, ports.InstallRequest{ID: newID, Root: root, Intermediate: second, Note: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != "staged" || res.AlreadyInstalled || res.RootInstalled {
		t.Fatalf("install %+v", res)
	}
	// Within the second since the last look: the old hierarchy still serves.
	if ints, _ := ca.Intermediates(ctx); len(ints) != 1 {
		t.Fatalf("reloaded before a second passed: %v", byID(ints))
	}
	clk.set(t0.Add(2 * time.Second))
	ints, _ = ca.Intermediates(ctx)
	if got := byID(ints); got[first] != "active" || got[newID] != "staged" {
		t.Fatalf("after install %v", got)
	}
	if chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem")); len(chain) != 3 || !chain[1].Equal(second) {
		t.Fatalf("ca-chain.pem has %d certificates; the staged one second", len(chain))
	}

	setState(t, d, newID, "canary", 20)
	clk.set(t0.Add(3 * time.Second))
	shares, _ := ca.Shares(ctx)
	if shares[newID] != 20 || len(shares) != 1 {
		t.Fatalf("shares %v", shares)
	}
	if s, err := ca.Signer(ctx, newID); err != nil || !s.Public().(*ecdsa.PublicKey).Equal(second.PublicKey) {
		t.Fatalf("signer of the canary: %v", err)
	}

	setState(t, d, newID, "active", 0)
	setState(t, d, first, "retired", 0)
	clk.set(t0.Add(4 * time.Second))
	ints, _ = ca.Intermediates(ctx)
	if got := byID(ints); got[first] != "retired" || got[newID] != "active" {
		t.Fatalf("after promotion %v", got)
	}
	if shares, _ := ca.Shares(ctx); len(shares) != 0 {
		t.Fatalf("an active intermediate kept a share: %v", shares)
	}
	if chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem")); len(chain) != 2 || !chain[0].Equal(second) {
		t.Fatalf("ca-chain.pem after retirement has %d certificates", len(chain))
	}
	if err := ca.ReloadError(); err != nil {
		t.Fatal(err)
	}
}

func TestLocalCAKeepsLastGoodHierarchy(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	clk := newClock(t0)
	ca, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	good, _ := os.ReadFile(state)
	if err := os.WriteFile(state, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(time.Second))
	ints, err := ca.Intermediates(ctx)
	if err != nil || len(ints) != 1 || ints[0].State != "active" {
		t.Fatalf("a broken state file took the hierarchy down: %v %v", ints, err)
	}
	if ca.ReloadError() == nil {
		t.Fatal("the failed reload is not reported")
	}
	// Mended: the next look (a second later) loads it again.
	if err := os.WriteFile(state, good, 0o644); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(2 * time.Second))
	if err := ca.ReloadError(); err != nil {
		t.Fatalf("still failing after the fix: %v", err)
	}
}

// PKI directories made before state.json keep working: the per-intermediate state files are read,
// and the first state change moves them into state.json.
func TestEnsureLocalCAReadsLegacyStateFiles(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	ca, err := casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	ints, _ := ca.Intermediates(ctx)
	id := ints[0].ID
	os.Remove(filepath.Join(dir, "state.json"))
	legacy := filepath.Join(dir, "intermediates", id, "state")
	if err := os.WriteFile(legacy, []byte("active\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err = casigner.EnsureLocalCA(dir, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	if ints, _ := ca.Intermediates(ctx); ints[0].State != "active" {
		t.Fatalf("legacy state not read: %v", ints)
	}
	d := casigner.NewDirectory(dir, newClock(t0))
	if err := d.UpdateStates(ctx, func(*ports.HierarchyStates) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatal("the legacy state file survived the move to state.json")
	}
	snap, _ := d.Snapshot(ctx)
	if snap.Intermediates[0].Record.State != "active" {
		t.Fatalf("state.json says %q", snap.Intermediates[0].Record.State)
	}
}

func TestRetiredIntermediateWithoutKey(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	clk := newClock(t0)
	ca, _ := casigner.EnsureLocalCA(dir, clk)
	root, _ := ca.Root(ctx)
	d := casigner.NewDirectory(dir, clk)
	second := newIntermediate(t, dir, root, devRootKey(t, dir), t0, 24*time.Hour)
	id := authority.IntermediateID(second)
	if _, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: second}); err != nil {
		t.Fatal(err)
	}
	setState(t, d, id, "retired", 0)
	// Its key destroyed after retirement, as custody asks.
	if err := os.Remove(filepath.Join(dir, "intermediates", id, "key.pem")); err != nil {
		t.Fatal(err)
	}
	ca, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatalf("a retired intermediate without its key stops the CA: %v", err)
	}
	if _, err := ca.Signer(ctx, id); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("signer of a destroyed key: %v", err)
	}
	// An active one without its key is an error.
	setState(t, d, id, "staged", 0)
	if _, err := casigner.EnsureLocalCA(dir, clk); err == nil {
		t.Fatal("an intermediate in service without its key was loaded")
	}
}

func TestDirectoryInstall(t *testing.T) {
	ctx := context.Background()
	// A production-like directory: no dev root in it, only what the steps put there.
	dev := pkiDir(t)
	devCA, _ := casigner.EnsureLocalCA(dev, newClock(t0))
	root, _ := devCA.Root(ctx)
	rootKey := devRootKey(t, dev)

	dir := filepath.Join(t.TempDir(), "pki")
	clk := newClock(t0)
	d := casigner.NewDirectory(dir, clk)
	if _, err := d.Snapshot(ctx); errs.CodeOf(err) != casigner.CodeNoPKIDir {
		t.Fatalf("missing directory: %v", err)
	}
	inter := newIntermediate(t, dir, root, rootKey, t0, 24*time.Hour)
	id := authority.IntermediateID(inter)
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("PKI directory mode %v", m)
	}
	if m := mode(t, filepath.Join(dir, "intermediates", id, "key.pem")); m != 0o600 {
		t.Fatalf("key mode %v", m)
	}
	loc, err := d.SaveCSR(ctx, id, []byte("CSR"))
	if err != nil || !strings.HasSuffix(loc, filepath.Join(id, "csr.pem")) {
		t.Fatalf("csr at %s: %v", loc, err)
	}
	snap, err := d.Snapshot(ctx)
	if err != nil || snap.Root != nil || len(snap.Pending) != 1 || snap.Pending[0].ID != id || string(snap.Pending[0].CSRPEM) != "CSR" {
		t.Fatalf("snapshot before install %+v, %v", snap, err)
	}

	res, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: inter, Note: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RootInstalled || res.State != "staged" || res.BackupLocation != "" {
		t.Fatalf("first install %+v", res)
	}
	snap, _ = d.Snapshot(ctx)
	if !snap.Root.Equal(root) || len(snap.Intermediates) != 1 || snap.Intermediates[0].Record.State != "staged" || len(snap.Pending) != 0 {
		t.Fatalf("snapshot after install %+v", snap)
	}
	if !bytes.Equal(snap.ChainPEM, append(pemOf(inter), pemOf(root)...)) {
		t.Fatal("chain not published at install")
	}
	// Same certificate: nothing changes, no backup.
	again, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: inter})
	if err != nil || !again.AlreadyInstalled || again.BackupLocation != "" {
		t.Fatalf("reinstall %+v, %v", again, err)
	}
	// Another certificate for the key: refused without force; with force the old one is backed up.
	key, _ := casigner.NewFileKeyStore(dir).Key(ctx, id)
	reissued := signWith(t, inter, root, rootKey, key.Public())
	if _, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: reissued}); errs.CodeOf(err) != casigner.CodeAlreadyInstalled {
		t.Fatalf("overwrite without force: %v", err)
	}
	setState(t, d, id, "active", 0)
	forced, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: reissued, Force: true})
	if err != nil || forced.BackupLocation == "" || forced.State != "active" {
		t.Fatalf("forced install %+v, %v", forced, err)
	}
	backed, err := os.ReadFile(filepath.Join(forced.BackupLocation, "cert.pem"))
	if err != nil || !bytes.Equal(backed, pemOf(inter)) {
		t.Fatalf("backup does not hold the replaced certificate: %v", err)
	}
	for _, f := range []string{"state.json", "ca-chain.pem", "root.pem"} {
		if _, err := os.Stat(filepath.Join(forced.BackupLocation, f)); err != nil {
			t.Errorf("backup misses %s", f)
		}
	}
	var doc struct {
		Intermediates []struct{ ID, State string }
		History       []struct{ ID, To, Note string }
	}
	data, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Intermediates) != 1 || doc.Intermediates[0].State != "active" || len(doc.History) != 2 || doc.History[0].Note != "first" || doc.History[1].To != "active" {
		t.Fatalf("state.json %s", data)
	}

	// Another root is refused, and a certificate without its key here.
	otherDir := pkiDir(t)
	otherCA, _ := casigner.EnsureLocalCA(otherDir, clk)
	otherRoot, _ := otherCA.Root(ctx)
	otherInter := newIntermediate(t, dir, otherRoot, devRootKey(t, otherDir), t0, time.Hour)
	if _, err := d.Install(ctx, ports.InstallRequest{ID: authority.IntermediateID(otherInter), Root: otherRoot, Intermediate: otherInter}); errs.CodeOf(err) != casigner.CodeRootMismatch {
		t.Fatalf("another root: %v", err)
	}
	stray, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyless := signWith(t, inter, root, rootKey, stray.Public())
	if _, err := d.Install(ctx, ports.InstallRequest{ID: authority.IntermediateID(keyless), Root: root, Intermediate: keyless}); errs.CodeOf(err) != casigner.CodeKeyMissing {
		t.Fatalf("no key here: %v", err)
	}

	// The directory now serves: a LocalCA loads it (no root key in it, never loaded anyway).
	ca, err := casigner.EnsureLocalCA(dir, clk)
	if err != nil {
		t.Fatal(err)
	}
	if ints, _ := ca.Intermediates(ctx); len(ints) != 1 || ints[0].State != "active" || !ints[0].Cert.Equal(reissued) {
		t.Fatalf("served %+v", ints)
	}
	if _, err := os.Stat(filepath.Join(dir, "root")); !os.IsNotExist(err) {
		t.Fatal("a root directory appeared in a production PKI directory")
	}
}

func signWith(t *testing.T, like, root *x509.Certificate, rootKey crypto.Signer, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	tmpl := *like
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, root, pub, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// The chain lists active, canary, staged, retiring, rolled back, by id within a state; the same
// order the PKI service uses.
func TestChainOrder(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	clk := newClock(t0)
	ca, _ := casigner.EnsureLocalCA(dir, clk)
	root, _ := ca.Root(ctx)
	rootKey := devRootKey(t, dir)
	d := casigner.NewDirectory(dir, clk)
	states := []string{"staged", "staged", "rolled_back", "canary", "retiring", "retired"}
	ids := map[string]*x509.Certificate{}
	for _, st := range states {
		c := newIntermediate(t, dir, root, rootKey, t0, time.Hour)
		id := authority.IntermediateID(c)
		ids[id] = c
		if _, err := d.Install(ctx, ports.InstallRequest{ID: id, Root: root, Intermediate: c}); err != nil {
			t.Fatal(err)
		}
		share := 0
		if st == "canary" {
			share = 5
		}
		if st != "staged" {
			setState(t, d, id, st, share)
		}
	}
	snap, _ := d.Snapshot(ctx)
	var want []string
	for _, st := range []string{"active", "canary", "staged", "retiring", "rolled_back"} {
		var group []string
		for _, in := range snap.Intermediates {
			if in.Record.State == st {
				group = append(group, in.ID)
			}
		}
		slices.Sort(group)
		want = append(want, group...)
	}
	chain := readPEMCerts(t, filepath.Join(dir, "ca-chain.pem"))
	if len(chain) != len(want)+1 {
		t.Fatalf("chain has %d certificates, want %d", len(chain), len(want)+1)
	}
	for i, id := range want {
		if authority.IntermediateID(chain[i]) != id {
			t.Fatalf("chain[%d] = %s, want %s", i, authority.IntermediateID(chain[i]), id)
		}
	}
}

func TestUpdateStatesSerialises(t *testing.T) {
	ctx := context.Background()
	dir := pkiDir(t)
	if _, err := casigner.EnsureLocalCA(dir, newClock(t0)); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer is its own Directory, as separate commands would be.
			d := casigner.NewDirectory(dir, newClock(t0))
			err := d.UpdateStates(ctx, func(st *ports.HierarchyStates) error {
				st.History = append(st.History, ports.StateChange{At: t0, ID: "x", To: "staged", Note: string(rune('a' + i))})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var doc struct{ History []json.RawMessage }
	data, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	json.Unmarshal(data, &doc)
	if len(doc.History) != 1+n {
		t.Fatalf("%d history entries, want %d: concurrent updates lost some", len(doc.History), 1+n)
	}
}
