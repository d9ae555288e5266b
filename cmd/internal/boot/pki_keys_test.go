package boot

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// runPKIKeys parses a `samplero pki …` command line and runs it as main does.
func runPKIKeys(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg, err := config.Parse(append([]string{"pki"}, args...), func(k string) string { return env[k] }, &out)
	if err != nil {
		return out.String(), err
	}
	err = pkiKeys(context.Background(), cfg, strings.NewReader(stdin), &out, io.Discard)
	return out.String(), err
}

// offlineRoot makes a root directory as init-root does (a small PBES2 count keeps the test fast).
func offlineRoot(t *testing.T, dir, passphrase string) *x509.Certificate {
	t.Helper()
	vault := pkifiles.NewRootVault(pkifiles.VaultOptions{PBES2Count: 1000})
	_, err := vault.Create(context.Background(), dir, []byte(passphrase), func(key crypto.Signer) (*x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Samplero Test Offline Root"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(20, 0, 0),
			IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := skReadCert(filepath.Join(dir, pkifiles.RootCertFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestSigningKeyRotationCLI(t *testing.T) {
	tmp := t.TempDir()
	keysDir := filepath.Join(tmp, "server", "keys")
	rootDir := filepath.Join(tmp, "offline", "root")
	work := filepath.Join(tmp, "transfer")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	root := offlineRoot(t, rootDir, "correct horse battery staple")
	// The server has been running: one active key, not endorsed (made before the root existed).
	first, err := serverkeys.Open(keysDir, "samplero", systemClock{})
	if err != nil {
		t.Fatal(err)
	}
	firstKID, _ := first.Active()
	env := map[string]string{"SAMPLERO_SIGNING_KEYS_DIR": keysDir}

	// 1. The first key's request (--kid), endorsed and installed: the deployment now uses
	// endorsements.
	firstReq := filepath.Join(work, "first.request.json")
	out, err := runPKIKeys(t, env, "", "rotate-signing-key", "--kid", firstKID, "--out", firstReq)
	if err != nil || !strings.Contains(out, "signing key "+firstKID) {
		t.Fatalf("rotate --kid: %v\n%s", err, out)
	}
	firstEnd := filepath.Join(work, "first.endorsement")
	if out, err = runPKIKeys(t, nil, "correct horse battery staple\n", "endorse-signing-key", "--root-dir", rootDir, "--in", firstReq, "--out", firstEnd); err != nil {
		t.Fatalf("endorse first: %v\n%s", err, out)
	}
	if out, err = runPKIKeys(t, env, "", "install-endorsement", "--in", firstEnd, "--root-cert", filepath.Join(rootDir, "root.pem")); err != nil || !strings.Contains(out, "installed") {
		t.Fatalf("install first: %v\n%s", err, out)
	}

	// 2. rotate-signing-key: the next key, a day ahead.
	nb := time.Now().UTC().Truncate(time.Second).Add(24 * time.Hour)
	req := filepath.Join(work, "next.request.json")
	out, err = runPKIKeys(t, env, "", "rotate-signing-key", "--not-before", nb.Format(time.RFC3339), "--out", req)
	if err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "next signing key") || !strings.Contains(out, "endorse-signing-key") || !strings.Contains(out, firstKID+"  active") {
		t.Fatalf("rotate output:\n%s", out)
	}
	var request map[string]any
	data, _ := os.ReadFile(req)
	if err := json.Unmarshal(data, &request); err != nil || request["samplero_endorsement_request"] != float64(1) || request["not_before"] != nb.Format(time.RFC3339) {
		t.Fatalf("request file %s", data)
	}
	nextKID := request["kid"].(string)
	// A second rotation while one is pending is refused, and the request file is never overwritten.
	if _, err := runPKIKeys(t, env, "", "rotate-signing-key", "--out", filepath.Join(work, "again.json")); err == nil || !strings.Contains(err.Error(), nextKID) {
		t.Fatalf("second rotation: %v", err)
	}
	if _, err := runPKIKeys(t, env, "", "rotate-signing-key", "--kid", nextKID, "--out", req); err == nil {
		t.Fatal("an existing request file was overwritten")
	}

	// 3. endorse-signing-key on the offline machine: a wrong passphrase fails; the passphrase
	// from a file works.
	end := filepath.Join(work, "next.endorsement")
	if _, err := runPKIKeys(t, nil, "wrong\n", "endorse-signing-key", "--root-dir", rootDir, "--in", req, "--out", end); err == nil {
		t.Fatal("a wrong passphrase endorsed")
	}
	if _, err := os.Stat(end); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed endorsement left a file")
	}
	if _, err := runPKIKeys(t, nil, "", "endorse-signing-key", "--root-dir", rootDir, "--in", req, "--out", end); err == nil {
		t.Fatal("no passphrase endorsed")
	}
	passFile := filepath.Join(tmp, "pass")
	if err := os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runPKIKeys(t, nil, "", "endorse-signing-key", "--root-dir", rootDir, "--in", req, "--out", end, "--passphrase-file", passFile)
	if err != nil || !strings.Contains(out, "endorsed signing key "+nextKID) || !strings.Contains(out, "Samplero Test Offline Root") {
		t.Fatalf("endorse: %v\n%s", err, out)
	}
	// A request whose key was swapped in transit is endorsed as it reads, and refused at install.
	tampered := strings.Replace(string(data), nb.Format(time.RFC3339), nb.Add(time.Hour).Format(time.RFC3339), 1)
	tamperedReq := filepath.Join(work, "tampered.request.json")
	_ = os.WriteFile(tamperedReq, []byte(tampered), 0o600)
	tamperedEnd := filepath.Join(work, "tampered.endorsement")
	if _, err := runPKIKeys(t, nil, "correct horse battery staple\n", "endorse-signing-key", "--root-dir", rootDir, "--in", tamperedReq, "--out", tamperedEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := runPKIKeys(t, env, "", "install-endorsement", "--in", tamperedEnd, "--root-cert", filepath.Join(rootDir, "root.pem")); !errors.Is(err, serverkeys.ErrEndorsementMismatch) {
		t.Fatalf("endorsement of other dates installed: %v", err)
	}

	// 4. install-endorsement: another root's certificate refuses it; the right one installs it,
	// once.
	otherDir := filepath.Join(tmp, "offline", "other")
	offlineRoot(t, otherDir, "pw")
	if _, err := runPKIKeys(t, env, "", "install-endorsement", "--in", end, "--root-cert", filepath.Join(otherDir, "root.pem")); !errors.Is(err, serverkeys.ErrEndorsementSignature) {
		t.Fatalf("wrong root: %v", err)
	}
	pkiEnv := map[string]string{"SAMPLERO_SIGNING_KEYS_DIR": keysDir, "SAMPLERO_PKI_DIR": rootDir} // root.pem is where a server's PKI dir has it
	if out, err = runPKIKeys(t, pkiEnv, "", "install-endorsement", "--in", end); err != nil || !strings.Contains(out, "endorsement of signing key "+nextKID+" installed") {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if out, err = runPKIKeys(t, pkiEnv, "", "install-endorsement", "--in", end); err != nil || !strings.Contains(out, "already installed") {
		t.Fatalf("install again: %v\n%s", err, out)
	}

	// The server, reading the directory, publishes both keys endorsed, and switches at not_before.
	clk := portstest.NewFakeClock(time.Now())
	keys, err := serverkeys.Open(keysDir, "samplero", clk, serverkeys.WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	pub := keys.Published()
	if len(pub) != 2 || pub[0].KID != firstKID || pub[1].KID != nextKID || pub[1].Status != "next" || pub[0].Endorsement == nil || pub[1].Endorsement == nil {
		t.Fatalf("published %+v", pub)
	}
	clk.Set(nb)
	if kid, _ := keys.Active(); kid != nextKID {
		t.Fatalf("active at not_before: %s", kid)
	}
}

func TestPKIKeysFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"no keys dir":          {"rotate-signing-key"},
		"bad time":             {"rotate-signing-key", "--keys-dir", "k", "--not-before", "tomorrow"},
		"fractional time":      {"rotate-signing-key", "--keys-dir", "k", "--not-before", "2026-12-06T12:00:00.5Z"},
		"kid and not-before":   {"rotate-signing-key", "--keys-dir", "k", "--kid", "x", "--not-before", "2026-12-06T12:00:00Z"},
		"short validity":       {"rotate-signing-key", "--keys-dir", "k", "--validity", "1m"},
		"endorse without in":   {"endorse-signing-key", "--root-dir", "d", "--out", "o"},
		"install without root": {"install-endorsement", "--keys-dir", "k", "--in", "e"},
		"passphrase as a flag": {"endorse-signing-key", "--root-dir", "d", "--in", "i", "--out", "o", "--passphrase", "x"},
		"stray argument":       {"install-endorsement", "--keys-dir", "k", "--in", "e", "--root-cert", "r", "extra"},
	} {
		var usage *config.UsageError
		if _, err := config.Parse(append([]string{"pki"}, args...), func(string) string { return "" }, io.Discard); !errors.As(err, &usage) {
			t.Errorf("%s: %v", name, err)
		}
	}
	var help bytes.Buffer
	if _, err := config.Parse([]string{"pki", "rotate-signing-key", "--help"}, func(string) string { return "" }, &help); !errors.Is(err, config.ErrHelp) || !strings.Contains(help.String(), "--not-before") {
		t.Fatalf("--help: %v\n%s", err, help.String())
	}
	cfg, err := config.Parse([]string{"pki", "rotate-signing-key", "--not-before", "2026-12-06T13:00:00+01:00"},
		func(k string) string { return map[string]string{"SAMPLERO_SIGNING_KEYS_DIR": "/srv/keys"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.PKI.Keys; cfg.PKI.Action != "rotate-signing-key" || k.KeysDir != "/srv/keys" || !k.NotBefore.Equal(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)) || k.Validity != config.DefaultSigningKeyValidity {
		t.Fatalf("%+v", cfg.PKI)
	}
}

// Under samplero dev, the keys are endorsed by the dev root at start, and GET /v1/keys carries
// endorsements the SDK verifies against the root of the served ca_chain.
func TestDevEndorsesItsKeys(t *testing.T) {
	s := devServer(t, nil)
	resp, err := s.App.Test(httptest.NewRequest("GET", "/v1/keys", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	var list samplero.KeyList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	roots, err := samplero.RootCertificates([]byte(list.CAChain))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 1 || list.Keys[0].Endorsement == "" {
		t.Fatalf("keys %+v", list.Keys)
	}
	if err := samplero.VerifyEndorsement(roots, list.Keys[0], time.Now()); err != nil {
		t.Fatalf("the SDK refuses dev's endorsement: %v", err)
	}

	// A key added by rotate-signing-key while dev runs is endorsed with the dev root through the
	// same CLI (--root-dir DIR/pki) and published without a restart.
	env := map[string]string{"SAMPLERO_SIGNING_KEYS_DIR": s.Cfg.SigningKeysDir, "SAMPLERO_PKI_DIR": s.Cfg.PKIDir}
	work := t.TempDir()
	req, end := filepath.Join(work, "req.json"), filepath.Join(work, "end")
	if out, err := runPKIKeys(t, env, "", "rotate-signing-key", "--out", req); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runPKIKeys(t, nil, "", "endorse-signing-key", "--root-dir", s.Cfg.PKIDir, "--in", req, "--out", end); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := runPKIKeys(t, env, "", "install-endorsement", "--in", end); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := s.Keys.Reload(); err != nil { // what the once-a-second check does
		t.Fatal(err)
	}
	pub := s.Keys.Published()
	if len(pub) != 2 || pub[1].Status != "next" || pub[1].Endorsement == nil {
		t.Fatalf("published %+v", pub)
	}
}
