package pki_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// revokedStore is a ports.RevokedCertificates over a slice, filtering as the contract says (issuer,
// NotAfter after now, serial order); the filter itself is covered by the repository contract.
type revokedStore struct {
	mu    sync.Mutex
	certs map[string][]ports.RevokedCertificate // by issuer
	calls int
	err   error
}

func (r *revokedStore) revoke(issuer string, c *x509.Certificate, at time.Time, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.certs == nil {
		r.certs = map[string][]ports.RevokedCertificate{}
	}
	r.certs[issuer] = append(r.certs[issuer], ports.RevokedCertificate{
		Serial: authority.CanonicalSerial(c.SerialNumber), RevokedAt: at, NotAfter: c.NotAfter, Reason: reason})
}

func (r *revokedStore) RevokedByIssuer(_ context.Context, issuer string, now time.Time) ([]ports.RevokedCertificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.err != nil {
		return nil, r.err
	}
	var out []ports.RevokedCertificate
	for _, c := range r.certs[issuer] {
		if c.NotAfter.After(now) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b ports.RevokedCertificate) int { return strings.Compare(a.Serial, b.Serial) })
	return out, nil
}

func (c *fixedClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

type crlFixture struct {
	svc     *pki.Service
	ca      *memCA
	clk     *fixedClock
	revoked *revokedStore
	active  string // id of the active intermediate
}

func newCRLFixture(t *testing.T, baseURL string) crlFixture {
	t.Helper()
	ca := newMemCA(t)
	id := ca.addIntermediate(t, "active", 5*365*24*time.Hour)
	clk := &fixedClock{now: t0}
	rs := &revokedStore{}
	svc := pki.New(pki.Deps{CA: ca, Clock: clk, Revocations: rs, CRLBaseURL: baseURL})
	return crlFixture{svc: svc, ca: ca, clk: clk, revoked: rs, active: id}
}

func (f crlFixture) issue(t *testing.T, validity time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_1", PublicKey: key.Public(), Validity: validity})
	if err != nil {
		t.Fatal(err)
	}
	return must(x509.ParseCertificate(got.DER))
}

func (f crlFixture) crl(t *testing.T, id string) (ports.CRL, *x509.RevocationList) {
	t.Helper()
	c, err := f.svc.CRL(context.Background(), id)
	if err != nil {
		t.Fatalf("CRL(%s): %v", id, err)
	}
	rl, err := x509.ParseRevocationList(c.DER)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	return c, rl
}

func serialsOf(rl *x509.RevocationList) []string {
	var out []string
	for _, e := range rl.RevokedCertificateEntries {
		out = append(out, authority.CanonicalSerial(e.SerialNumber))
	}
	slices.Sort(out)
	return out
}

func TestCRLListsRevokedCertificatesSignedByTheirIntermediate(t *testing.T) {
	f := newCRLFixture(t, "")
	other := f.ca.addIntermediate(t, "canary", 5*365*24*time.Hour)
	kept := f.issue(t, 24*time.Hour)
	gone := f.issue(t, 24*time.Hour)
	f.revoked.revoke(f.active, gone, t0.Add(-time.Minute), "deactivated")

	c, rl := f.crl(t, f.active)
	inter := f.ca.cert(f.active)
	if err := rl.CheckSignatureFrom(inter); err != nil {
		t.Fatalf("the list does not verify with its intermediate: %v", err)
	}
	if err := rl.CheckSignatureFrom(f.ca.cert(other)); err == nil {
		t.Fatal("the list verifies with another intermediate")
	}
	if !bytes.Equal(rl.RawIssuer, inter.RawSubject) || !bytes.Equal(rl.AuthorityKeyId, inter.SubjectKeyId) {
		t.Fatal("issuer name or authority key id is not the intermediate's")
	}
	if got := serialsOf(rl); !slices.Equal(got, []string{authority.CanonicalSerial(gone.SerialNumber)}) {
		t.Fatalf("entries %v, want only the revoked certificate (not %s)", got, authority.CanonicalSerial(kept.SerialNumber))
	}
	e := rl.RevokedCertificateEntries[0]
	if !e.RevocationTime.Equal(t0.Add(-time.Minute)) || e.ReasonCode != 5 {
		t.Fatalf("entry time %s reason %d, want %s cessationOfOperation(5)", e.RevocationTime, e.ReasonCode, t0.Add(-time.Minute))
	}
	if !rl.ThisUpdate.Equal(t0) || !rl.NextUpdate.Equal(t0.Add(pki.DefaultCRLValidity)) {
		t.Fatalf("thisUpdate %s nextUpdate %s", rl.ThisUpdate, rl.NextUpdate)
	}
	if rl.Number == nil || rl.Number.Cmp(c.Number) != 0 || c.Number.Sign() <= 0 {
		t.Fatalf("CRL number %v, answer says %v", rl.Number, c.Number)
	}
	if c.IssuerID != f.active || c.Revoked != 1 || !c.ThisUpdate.Equal(t0) {
		t.Fatalf("answer %+v", c)
	}

	// The other intermediate has its own, empty list signed with its own key.
	_, orl := f.crl(t, other)
	if err := orl.CheckSignatureFrom(f.ca.cert(other)); err != nil || len(orl.RevokedCertificateEntries) != 0 {
		t.Fatalf("other intermediate's list: %v, %d entries", err, len(orl.RevokedCertificateEntries))
	}
}

func TestCRLFollowsRevocationsExpiryAndTime(t *testing.T) {
	f := newCRLFixture(t, "")
	short := f.issue(t, 2*time.Hour)
	long := f.issue(t, 48*time.Hour)
	f.revoked.revoke(f.active, short, t0, "reissued")

	first, rl := f.crl(t, f.active)
	if got := serialsOf(rl); len(got) != 1 || rl.RevokedCertificateEntries[0].ReasonCode != 4 {
		t.Fatalf("first list %v (reason %d), want the short certificate, superseded(4)", got, rl.RevokedCertificateEntries[0].ReasonCode)
	}

	// Nothing changed: the same signed list, not a new signature.
	f.clk.set(t0.Add(10 * time.Minute))
	again, _ := f.crl(t, f.active)
	if !bytes.Equal(again.DER, first.DER) || again.Number.Cmp(first.Number) != 0 {
		t.Fatal("an unchanged list was signed again")
	}

	// A revocation shows in the next list, with a greater number.
	f.revoked.revoke(f.active, long, t0.Add(10*time.Minute), "revoked")
	second, rl := f.crl(t, f.active)
	want := []string{authority.CanonicalSerial(short.SerialNumber), authority.CanonicalSerial(long.SerialNumber)}
	slices.Sort(want)
	if got := serialsOf(rl); !slices.Equal(got, want) {
		t.Fatalf("after a revocation: %v, want %v", got, want)
	}
	if second.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("number %v after %v", second.Number, first.Number)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(long.SerialNumber) == 0 && e.ReasonCode != 0 {
			t.Fatalf("an admin revocation carries reason %d, want unspecified (omitted)", e.ReasonCode)
		}
	}

	// Half of the list's validity has passed: re-signed with the same entries and later dates.
	f.clk.set(t0.Add(10*time.Minute + pki.DefaultCRLValidity/2))
	third, rl := f.crl(t, f.active)
	if third.Number.Cmp(second.Number) <= 0 || !rl.ThisUpdate.Equal(t0.Add(10*time.Minute+pki.DefaultCRLValidity/2)) || len(rl.RevokedCertificateEntries) != 2 {
		t.Fatalf("refresh: number %v after %v, thisUpdate %s, %d entries", third.Number, second.Number, rl.ThisUpdate, len(rl.RevokedCertificateEntries))
	}

	// The short certificate expires: it drops out, the long one stays.
	f.clk.set(short.NotAfter.Add(time.Second))
	fourth, rl := f.crl(t, f.active)
	if got := serialsOf(rl); !slices.Equal(got, []string{authority.CanonicalSerial(long.SerialNumber)}) {
		t.Fatalf("after expiry: %v", got)
	}
	if fourth.Number.Cmp(third.Number) <= 0 {
		t.Fatal("number did not grow")
	}

	// A clock stepping back never makes the number go back.
	f.clk.set(t0)
	f.revoked.revoke(f.active, f.issue(t, time.Hour), t0, "deactivated")
	fifth, _ := f.crl(t, f.active)
	if fifth.Number.Cmp(fourth.Number) <= 0 {
		t.Fatalf("number %v after %v with the clock stepped back", fifth.Number, fourth.Number)
	}
}

func TestCRLOnlyForTrustedIntermediates(t *testing.T) {
	f := newCRLFixture(t, "")
	ctx := context.Background()
	if _, err := f.svc.CRL(ctx, "int-unknown"); errs.KindOf(err) != errs.NotFound || errs.CodeOf(err) != pki.CodeCRLNotFound {
		t.Fatalf("unknown intermediate: %v", err)
	}
	retired := f.ca.addIntermediate(t, "retired", 5*365*24*time.Hour)
	if _, err := f.svc.CRL(ctx, retired); errs.CodeOf(err) != pki.CodeCRLNotFound {
		t.Fatalf("retired intermediate: %v", err)
	}
	// A rolled-back intermediate's certificates stay trusted until renewed, so they can be revoked.
	rolled := f.ca.addIntermediate(t, "rolled_back", 5*365*24*time.Hour)
	if _, err := f.svc.CRL(ctx, rolled); err != nil {
		t.Fatalf("rolled back intermediate: %v", err)
	}

	f.revoked.err = errors.New("database gone")
	if _, err := f.svc.CRL(ctx, f.active); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("store down: %v", err)
	}
	f.revoked.err = nil
	f.ca.err = errors.New("signer gone")
	if _, err := f.svc.CRL(ctx, f.active); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("key store down: %v", err)
	}

	if _, err := pki.SignCRL(rand.Reader, f.ca.root, f.ca.rootKey, nil, big.NewInt(1), t0, 0); errs.KindOf(err) != errs.Internal {
		t.Fatalf("SignCRL without a validity: %v", err)
	}

	bare := pki.New(pki.Deps{CA: f.ca, Clock: f.clk})
	if _, err := bare.CRL(ctx, f.active); errs.KindOf(err) != errs.Unavailable || errs.CodeOf(err) != pki.CodeCRLNotConfigured {
		t.Fatalf("without a store: %v", err)
	}
}

func TestNewCertificatesNameTheirCRL(t *testing.T) {
	f := newCRLFixture(t, "https://licenses.example.com/")
	c := f.issue(t, time.Hour)
	want := "https://licenses.example.com/v1/pki/crl/" + f.active + ".crl"
	if !slices.Equal(c.CRLDistributionPoints, []string{want}) {
		t.Fatalf("distribution points %v, want %s", c.CRLDistributionPoints, want)
	}
	if f.active != authority.IntermediateID(f.ca.cert(f.active)) || strings.ContainsAny(f.active, "/?#") {
		t.Fatalf("intermediate id %q is not URL-safe", f.active)
	}

	plain := newCRLFixture(t, "")
	if c := plain.issue(t, time.Hour); len(c.CRLDistributionPoints) != 0 {
		t.Fatalf("no public URL, yet distribution points %v", c.CRLDistributionPoints)
	}
}

// TestCRLWithOpenSSL checks the lists the way nginx does (OpenSSL with CRL checks on every level of
// the chain, X509_V_FLAG_CRL_CHECK_ALL): a revoked certificate is refused, the others pass, and the
// root needs a list of its own (docs/crl.md). Skipped where openssl is not installed.
func TestCRLWithOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	f := newCRLFixture(t, "")
	// OpenSSL checks dates against the real clock: issue around now, not t0.
	now := time.Now().UTC().Truncate(time.Second)
	f.clk.set(now)
	f.ca = newMemCAAt(t, now)
	f.active = f.ca.addIntermediateAt(t, "active", now)
	f.svc = pki.New(pki.Deps{CA: f.ca, Clock: f.clk, Revocations: f.revoked})
	kept := f.issue(t, time.Hour)
	gone := f.issue(t, time.Hour)
	f.revoked.revoke(f.active, gone, now, "deactivated")
	c, _ := f.crl(t, f.active)

	root, err := pki.SignCRL(rand.Reader, f.ca.root, f.ca.rootKey, nil, big.NewInt(1), now.Add(-time.Minute), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootCRL := root.DER
	dir := t.TempDir()
	write := func(name, typ string, ders ...[]byte) string {
		var b bytes.Buffer
		for _, d := range ders {
			_ = pem.Encode(&b, &pem.Block{Type: typ, Bytes: d})
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootPEM := write("root.pem", "CERTIFICATE", f.ca.root.Raw)
	inter := write("inter.pem", "CERTIFICATE", f.ca.cert(f.active).Raw)
	crls := write("crls.pem", "X509 CRL", c.DER, rootCRL) // what nginx's ssl_crl file holds
	verify := func(leaf *x509.Certificate) (string, error) {
		out, err := exec.Command(bin, "verify", "-crl_check_all", "-CAfile", rootPEM, "-untrusted", inter,
			"-CRLfile", crls, write("leaf.pem", "CERTIFICATE", leaf.Raw)).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(kept); err != nil {
		t.Fatalf("certificate not revoked refused: %v\n%s", err, out)
	}
	out, err := verify(gone)
	if err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked certificate: err %v\n%s", err, out)
	}
	// Without the root's list OpenSSL cannot check the intermediate and refuses everything.
	crls = write("crls.pem", "X509 CRL", c.DER)
	if out, err := verify(kept); err == nil || !strings.Contains(out, "CRL") {
		t.Fatalf("without a root list: err %v\n%s", err, out)
	}
}

// newMemCAAt is newMemCA with the root valid around now (OpenSSL uses the real clock).
func newMemCAAt(t *testing.T, now time.Time) *memCA {
	t.Helper()
	m := newMemCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *m.root
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.AddDate(20, 0, 0)
	tmpl.PublicKey, tmpl.Raw, tmpl.SubjectKeyId, tmpl.AuthorityKeyId = nil, nil, nil, nil
	m.root, m.rootKey = mustCert(t, &tmpl, &tmpl, key.Public(), key), key
	return m
}

// addIntermediateAt adds an intermediate valid around now, in state, and returns its id.
func (m *memCA) addIntermediateAt(t *testing.T, state string, now time.Time) string {
	t.Helper()
	id := m.addIntermediate(t, state, time.Hour) // a key and an id; re-signed below with real dates
	last := &m.ints[len(m.ints)-1]
	tmpl := *last.Cert
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.AddDate(1, 0, 0)
	tmpl.Raw, tmpl.AuthorityKeyId = nil, nil
	last.Cert = mustCert(t, &tmpl, m.root, m.keys[id].Public(), m.rootKey)
	last.ID = authority.IntermediateID(last.Cert)
	m.keys[last.ID] = m.keys[id]
	return last.ID
}
