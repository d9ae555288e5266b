package samplero_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

func TestStorages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for name, s := range map[string]samplero.Storage{"file": samplero.FileStorage(dir), "memory": samplero.NewMemoryStorage()} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Load("lease.jwt"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("missing entry: %v", err)
			}
			if err := s.Save("lease.jwt", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := s.Save("lease.jwt", []byte("two")); err != nil {
				t.Fatal(err)
			}
			b, err := s.Load("lease.jwt")
			if err != nil || string(b) != "two" {
				t.Fatalf("%q %v", b, err)
			}
			b[0] = 'X' // the caller's copy is its own
			if b, _ := s.Load("lease.jwt"); string(b) != "two" {
				t.Fatal("storage shares its buffer")
			}
		})
	}
	fs := samplero.FileStorage(dir)
	fi, err := os.Stat(filepath.Join(dir, "lease.jwt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi, err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode: %v %v", di, err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, ".tmp-x"} {
		if fs.Save(bad, []byte("x")) == nil {
			t.Errorf("saved %q", bad)
		}
		if _, err := fs.Load(bad); err == nil {
			t.Errorf("loaded %q", bad)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("unexpected files: %v", entries)
	}
}

func TestKeysCSRAndPEM(t *testing.T) {
	want := map[samplero.KeyType]httpsig.Alg{
		samplero.KeyP256: httpsig.AlgECDSAP256, samplero.KeyEd25519: httpsig.AlgEd25519,
		samplero.KeyRSA2048: httpsig.AlgRSA, samplero.KeyRSA3072: httpsig.AlgRSA, samplero.KeyRSA4096: httpsig.AlgRSA,
	}
	for kt, alg := range want {
		if testing.Short() && kt == samplero.KeyRSA4096 {
			continue
		}
		t.Run(string(kt), func(t *testing.T) {
			key, err := samplero.GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := httpsig.AlgFor(key.Public()); err != nil || got != alg {
				t.Fatalf("alg %v %v", got, err)
			}
			csrPEM, err := samplero.CreateCSR(key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode([]byte(csrPEM))
			if b == nil || b.Type != "CERTIFICATE REQUEST" {
				t.Fatal("CSR is not PEM")
			}
			csr, err := x509.ParseCertificateRequest(b.Bytes)
			if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "samplero-device" {
				t.Fatalf("CSR: %v", err)
			}
			if !csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("CSR carries another key")
			}
			p, err := samplero.MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			back, err := samplero.ParsePrivateKeyPEM(p)
			if err != nil || !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatalf("PEM round trip: %v", err)
			}
		})
	}
	if _, err := samplero.GenerateKey("dsa"); err == nil {
		t.Fatal("unknown key type accepted")
	}
	if _, err := samplero.ParsePrivateKeyPEM([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")); err == nil {
		t.Fatal("non-PKCS#8 PEM accepted")
	}
}
