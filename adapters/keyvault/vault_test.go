package keyvault_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/adapters/keyvault"
	"github.com/samplero/samplero/core/errs"
)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func newVault(t *testing.T, lookup, enc []byte) *keyvault.Vault {
	t.Helper()
	v, err := keyvault.New(lookup, enc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const key = "VSTABCDEFGHJKLMNPQRSTUVWX"

func TestNewRejectsShortSecrets(t *testing.T) {
	for name, tc := range map[string][2][]byte{
		"short lookup":     {secret(1)[:31], secret(2)},
		"short encryption": {secret(1), secret(2)[:31]},
		"nil":              {nil, nil},
	} {
		if _, err := keyvault.New(tc[0], tc[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := keyvault.New(bytes.Repeat([]byte{1}, 64), secret(2)); err != nil {
		t.Fatalf("64-byte secret refused: %v", err)
	}
}

func TestLookup(t *testing.T) {
	v := newVault(t, secret(1), secret(2))
	a, b := v.Lookup(key), v.Lookup(key)
	if !bytes.Equal(a, b) || len(a) != 32 {
		t.Fatal("lookup is not deterministic")
	}
	m := hmac.New(sha256.New, secret(1))
	m.Write([]byte(key))
	if !bytes.Equal(a, m.Sum(nil)) {
		t.Fatal("lookup is not HMAC-SHA-256 under the lookup secret")
	}
	if bytes.Equal(a, v.Lookup("VSTABCDEFGHJKLMNPQRSTUVWY")) {
		t.Fatal("two keys, one lookup")
	}
	if bytes.Equal(a, newVault(t, secret(3), secret(2)).Lookup(key)) {
		t.Fatal("another lookup secret gives the same lookup")
	}
	// The caller's secret slice is copied: changing it later changes nothing.
	s := secret(1)
	v2 := newVault(t, s, secret(2))
	s[0] ^= 0xFF
	if !bytes.Equal(v2.Lookup(key), a) {
		t.Fatal("vault shares the caller's secret slice")
	}
}

func TestSealOpen(t *testing.T) {
	v := newVault(t, secret(1), secret(2))
	s1, err := v.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := v.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s1, s2) || bytes.Equal(s1[:12], s2[:12]) {
		t.Fatal("sealing twice gave the same output or nonce")
	}
	if bytes.Contains(s1, []byte(key)) || bytes.Contains(s1, []byte("ABCDEFGH")) {
		t.Fatal("plain text in the sealed value")
	}
	if len(s1) != 12+len(key)+16 {
		t.Fatalf("sealed length %d", len(s1))
	}
	for _, s := range [][]byte{s1, s2} {
		got, err := v.Open(s)
		if err != nil || got != key {
			t.Fatalf("Open = %q, %v", got, err)
		}
	}
	// Another vault with the same secrets opens it (the secrets are all that is needed).
	if got, err := newVault(t, secret(9), secret(2)).Open(s1); err != nil || got != key {
		t.Fatalf("same encryption secret, another vault: %q %v", got, err)
	}
}

func TestOpenRejectsTamperingAndWrongKey(t *testing.T) {
	v := newVault(t, secret(1), secret(2))
	sealed, err := v.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := v.Open(bad); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		} else if errs.KindOf(err) != errs.Internal {
			t.Fatalf("kind %s", errs.KindOf(err))
		}
	}
	for _, bad := range [][]byte{nil, sealed[:11], sealed[:27], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if _, err := v.Open(bad); err == nil {
			t.Fatalf("a sealed value of %d bytes opened", len(bad))
		}
	}
	if _, err := newVault(t, secret(1), secret(3)).Open(sealed); err == nil {
		t.Fatal("opened with the wrong encryption secret")
	}
	// The lookup secret is not the encryption key.
	if _, err := newVault(t, secret(2), secret(1)).Open(sealed); err == nil {
		t.Fatal("opened with the secrets swapped")
	}
}

func TestLoadOrCreateSecrets(t *testing.T) {
	dir := t.TempDir()
	l1, e1, err := keyvault.LoadOrCreateSecrets(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l1) != 32 || len(e1) != 32 || bytes.Equal(l1, e1) {
		t.Fatal("secrets are not two distinct 32-byte values")
	}
	sdir := filepath.Join(dir, "secrets")
	if st, _ := os.Stat(sdir); st.Mode().Perm() != 0o700 {
		t.Fatalf("secrets dir mode %v", st.Mode().Perm())
	}
	for name, want := range map[string][]byte{"key-lookup": l1, "key-encryption": e1} {
		p := filepath.Join(sdir, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", name, st.Mode().Perm())
		}
		data, _ := os.ReadFile(p)
		got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s does not hold the secret", name)
		}
	}
	if entries, _ := os.ReadDir(sdir); len(entries) != 2 {
		t.Fatalf("%d files in secrets/, want 2", len(entries))
	}
	l2, e2, err := keyvault.LoadOrCreateSecrets(dir)
	if err != nil || !bytes.Equal(l1, l2) || !bytes.Equal(e1, e2) {
		t.Fatal("secrets changed on the second call")
	}
	// A vault built from them seals and opens across "restarts".
	sealed, _ := newVault(t, l1, e1).Seal(key)
	if got, err := newVault(t, l2, e2).Open(sealed); err != nil || got != key {
		t.Fatal("sealed value unreadable after reload")
	}

	// A damaged file is an error, never silently replaced.
	if err := os.WriteFile(filepath.Join(sdir, "key-lookup"), []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := keyvault.LoadOrCreateSecrets(dir); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestLoadOrCreateSecretsConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 6
	lookups := make([][]byte, n)
	errc := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lookups[i], _, errc[i] = keyvault.LoadOrCreateSecrets(dir)
		}()
	}
	wg.Wait()
	for i := range n {
		if errc[i] != nil || !bytes.Equal(lookups[i], lookups[0]) {
			t.Fatalf("call %d: %v", i, errc[i])
		}
	}
}
