package boot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports/portstest"
)

// readPEMCert reads the first certificate of a PEM file.
func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(firstPEM(t, path))
	if b == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readRootCRL reads a PEM list root-crl wrote and checks it is signed by the root.
func readRootCRL(t *testing.T, path string, root *x509.Certificate) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "X509 CRL" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s is not one PEM X509 CRL:\n%s", path, data)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		t.Fatalf("the root list does not verify with the root's key: %v", err)
	}
	return crl
}

func revokedSerials(crl *x509.RevocationList) map[string]time.Time {
	out := map[string]time.Time{}
	for _, e := range crl.RevokedCertificateEntries {
		out[authority.CanonicalSerial(e.SerialNumber)] = e.RevocationTime
	}
	return out
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRootCRL(t *testing.T) {
	w := newPKIWorld(t)
	idA, _ := w.intermediate(t)
	idB, _ := w.intermediate(t)
	root := readPEMCert(t, filepath.Join(w.root, "root.pem"))
	certB := readPEMCert(t, filepath.Join(w.media, idB+".pem"))
	out := filepath.Join(w.media, "root.crl.pem")
	numberFile := filepath.Join(w.root, "crl-number")

	// A first list: no intermediate revoked, number 1, a year long, PEM 0644.
	msg := mustCLI(t, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", out)
	crl := readRootCRL(t, out, root)
	if crl.Number.Cmp(big.NewInt(1)) != 0 || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("first list: number %v, %d entries", crl.Number, len(crl.RevokedCertificateEntries))
	}
	if got := crl.NextUpdate.Sub(crl.ThisUpdate); got != 8760*time.Hour {
		t.Fatalf("validity %v, want a year", got)
	}
	if fileMode(t, out) != 0o644 || fileMode(t, numberFile) != 0o600 {
		t.Fatalf("modes: list %v, crl-number %v", fileMode(t, out), fileMode(t, numberFile))
	}
	if !strings.Contains(msg, "revoked intermediates  none") || !strings.Contains(msg, "CRL number") {
		t.Fatalf("output:\n%s", msg)
	}

	// A wrong passphrase is refused and changes nothing.
	before := readFileString(t, out)
	if o, err := pkiCLI(t, nil, "not the passphrase\n", "root-crl", "--root-dir", w.root, "--out", out); err == nil || !strings.Contains(err.Error(), "ROOT_PASSPHRASE_WRONG") {
		t.Fatalf("wrong passphrase: %v\n%s", err, o)
	}
	if readFileString(t, out) != before || strings.TrimSpace(readFileString(t, numberFile)) != "1" {
		t.Fatal("a refused passphrase changed the list or the number")
	}
	// An id the root never signed is refused, and takes no number.
	if o, err := pkiCLI(t, nil, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", out, "--revoke-intermediate", "int_0123456789abcdef"); err == nil || !strings.Contains(err.Error(), CodeRootCRLUnknownIntermediate) {
		t.Fatalf("unknown intermediate: %v\n%s", err, o)
	}
	if strings.TrimSpace(readFileString(t, numberFile)) != "1" {
		t.Fatal("a refused run took a number")
	}

	// Revoking B (passphrase from a file this time): listed by its serial, with the next number.
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte(testPassphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg = mustCLI(t, "", "root-crl", "--root-dir", w.root, "--out", out, "--passphrase-file", pf, "--revoke-intermediate", idB, "--validity", "720h")
	crl = readRootCRL(t, out, root)
	got := revokedSerials(crl)
	at, ok := got[authority.CanonicalSerial(certB.SerialNumber)]
	if crl.Number.Cmp(big.NewInt(2)) != 0 || len(got) != 1 || !ok {
		t.Fatalf("after revoking %s: number %v, revoked %v (want serial %X)", idB, crl.Number, got, certB.SerialNumber)
	}
	if crl.NextUpdate.Sub(crl.ThisUpdate) != 720*time.Hour || !strings.Contains(msg, idB) {
		t.Fatalf("validity %v, output:\n%s", crl.NextUpdate.Sub(crl.ThisUpdate), msg)
	}
	if fileMode(t, filepath.Join(w.root, "crl-revoked.log")) != 0o600 {
		t.Fatal("crl-revoked.log is not 0600")
	}

	// The next list, B not named again, still lists it with its first revocation time; the number
	// keeps growing. A is never listed.
	mustCLI(t, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", out, "--revoke-intermediate", idB)
	mustCLI(t, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", out)
	crl = readRootCRL(t, out, root)
	got = revokedSerials(crl)
	if crl.Number.Cmp(big.NewInt(4)) != 0 || len(got) != 1 || !got[authority.CanonicalSerial(certB.SerialNumber)].Equal(at) {
		t.Fatalf("fourth list: number %v, revoked %v (B revoked at %v)", crl.Number, got, at)
	}
	certA := readPEMCert(t, filepath.Join(w.media, idA+".pem"))
	if _, listed := got[authority.CanonicalSerial(certA.SerialNumber)]; listed {
		t.Fatal("A is listed without being revoked")
	}

	// A crl-number that does not hold a number stops the command: restarting from 1 would go back.
	if err := os.WriteFile(numberFile, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := pkiCLI(t, nil, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", out); err == nil || !strings.Contains(err.Error(), CodeRootCRLState) {
		t.Fatalf("corrupt crl-number: %v\n%s", err, o)
	}
}

// The revocation time is the time of the run that first named the intermediate, on the injected
// clock, and stays so in later lists signed a year later.
func TestRootCRLRevocationTimeKept(t *testing.T) {
	w := newPKIWorld(t)
	_, _ = w.intermediate(t)
	id, _ := w.intermediate(t)
	root := readPEMCert(t, filepath.Join(w.root, "root.pem"))
	clk := portstest.NewFakeClock(time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC))
	deps := rootCRLDeps{vault: pkifiles.NewRootVault(pkifiles.VaultOptions{}), clock: clk, rand: rand.Reader}
	out := filepath.Join(w.media, "root.crl.pem")
	run := func(revoke ...string) *x509.RevocationList {
		t.Helper()
		c := config.PKI{Action: "root-crl", RootDir: w.root, Out: out, Validity: config.DefaultRootCRLValidity,
			RootCRL: config.PKIRootCRL{RevokeIntermediates: revoke}}
		var so, se bytes.Buffer
		if err := pkiRootCRL(context.Background(), c, deps, strings.NewReader(testPassphrase+"\n"), &so, &se); err != nil {
			t.Fatalf("%v\n%s%s", err, so.String(), se.String())
		}
		return readRootCRL(t, out, root)
	}
	first := run(id)
	clk.Advance(360 * 24 * time.Hour)
	second := run()
	if len(second.RevokedCertificateEntries) != 1 || !second.RevokedCertificateEntries[0].RevocationTime.Equal(time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("revocation entries %+v", second.RevokedCertificateEntries)
	}
	if !second.ThisUpdate.Equal(first.ThisUpdate.Add(360*24*time.Hour)) || second.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("thisUpdate %v -> %v, number %v -> %v", first.ThisUpdate, second.ThisUpdate, first.Number, second.Number)
	}
}

// The documented runbook step (a console block: the passphrase is typed) runs as written.
func TestRootCRLRunbookStep(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "pki-runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	w := newPKIWorld(t)
	id, _ := w.intermediate(t)
	vars := map[string]string{"ROOT": w.root, "MEDIA": w.media, "INT1": id}
	ran := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "samplero pki root-crl ") {
			continue
		}
		args := words(t, os.Expand(line, func(k string) string { return vars[k] }))
		mustCLI(t, testPassphrase+"\n", args[2:]...)
		ran++
	}
	if ran == 0 {
		t.Fatal("docs/pki-runbook.md has no samplero pki root-crl step")
	}
	readRootCRL(t, filepath.Join(w.media, "root.crl.pem"), readPEMCert(t, filepath.Join(w.root, "root.pem")))
}

// TestRootCRLWithOpenSSL checks the root list this command makes the way nginx uses it (OpenSSL,
// -crl_check_all, as core/pki's TestCRLWithOpenSSL): with it a device certificate of a trusted
// intermediate passes; once the root revokes that intermediate, the device is refused; without
// the root's list every device is refused. Skipped where openssl is not installed.
func TestRootCRLWithOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	w := newPKIWorld(t)
	id, _ := w.intermediate(t)
	inter := filepath.Join(w.media, id+".pem")
	interCert := readPEMCert(t, inter)
	interKey, err := casigner.NewFileKeyStore(w.pki).Key(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}

	// A device certificate of the intermediate, valid around now (OpenSSL uses the real clock).
	now := time.Now().UTC().Truncate(time.Second)
	devKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "device"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, interCert, devKey.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	leaf := filepath.Join(dir, "device.pem")
	if err := os.WriteFile(leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// The intermediate's own list (what GET /v1/pki/crl/<id>.pem serves), revoking nothing.
	interCRL, err := pki.SignCRL(rand.Reader, interCert, interKey, nil, big.NewInt(1), now.Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootCRL := filepath.Join(w.media, "root.crl.pem")
	verify := func(withRoot bool) (string, error) {
		t.Helper()
		lists := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: interCRL.DER})
		if withRoot {
			lists = append(lists, []byte(readFileString(t, rootCRL))...) // as refresh-crl.sh appends ROOT_CRL
		}
		crls := filepath.Join(dir, "crls.pem")
		if err := os.WriteFile(crls, lists, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "verify", "-crl_check_all", "-CAfile", filepath.Join(w.root, "root.pem"),
			"-untrusted", inter, "-CRLfile", crls, leaf).CombinedOutput()
		return string(out), err
	}

	mustCLI(t, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", rootCRL)
	if out, err := verify(true); err != nil {
		t.Fatalf("with the root's list, a good device is refused: %v\n%s", err, out)
	}
	if out, err := verify(false); err == nil || !strings.Contains(out, "CRL") {
		t.Fatalf("without the root's list: err %v\n%s", err, out)
	}
	mustCLI(t, testPassphrase+"\n", "root-crl", "--root-dir", w.root, "--out", rootCRL, "--revoke-intermediate", id)
	if out, err := verify(true); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("intermediate revoked by the root: err %v\n%s", err, out)
	}
}
