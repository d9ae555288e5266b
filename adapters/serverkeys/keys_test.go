package serverkeys_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/ports"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type clock struct{ now time.Time }

func (c clock) Now() time.Time { return c.now }

func keysDir(t *testing.T) string { return filepath.Join(t.TempDir(), "data", "keys") }

func TestOpenCreatesOneActiveKey(t *testing.T) {
	dir := keysDir(t)
	k, err := serverkeys.Open(dir, "https://licenses.example.test", clock{t0.Add(123 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if k.Issuer() != "https://licenses.example.test" {
		t.Fatal("issuer")
	}
	pub := k.Published()
	if len(pub) != 1 {
		t.Fatalf("%d keys", len(pub))
	}
	p := pub[0]
	if p.Status != "active" || p.Endorsement != nil || len(p.PublicKey) != ed25519.PublicKeySize {
		t.Fatalf("%+v", p)
	}
	if !p.NotBefore.Equal(t0) || !p.NotAfter.Equal(t0.Add(serverkeys.DefaultValidity)) {
		t.Fatalf("validity %v .. %v", p.NotBefore, p.NotAfter)
	}
	sum := sha256.Sum256(p.PublicKey)
	if want := base64.RawURLEncoding.EncodeToString(sum[:16]); p.KID != want || len(p.KID) != 22 {
		t.Fatalf("kid %q, want %q", p.KID, want)
	}
	kid, signer := k.Active()
	if kid != p.KID {
		t.Fatal("Active and Published disagree")
	}
	msg := []byte("hello")
	sig, err := signer.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(ed25519.PublicKey(p.PublicKey), msg, sig) {
		t.Fatal("active key signature does not verify with the published key")
	}

	// Files: dir 0700, one file named <kid>.json, 0600, with the documented fields.
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode().Perm())
	}
	file := filepath.Join(dir, p.KID+".json")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	var onDisk map[string]string
	data, _ := os.ReadFile(file)
	if err := json.Unmarshal(data, &onDisk); err != nil {
		t.Fatal(err)
	}
	// No status: a key's state follows from its dates and the clock.
	if onDisk["kid"] != p.KID || onDisk["not_before"] != "2026-11-29T12:00:00Z" || onDisk["not_after"] != "2028-11-28T12:00:00Z" ||
		!strings.HasPrefix(onDisk["private_key"], "-----BEGIN PRIVATE KEY-----") || len(onDisk) != 4 {
		t.Fatalf("file %s", data)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("stray files beside the key directory: %d entries", len(entries))
	}

	// Reopened: the same key.
	again, err := serverkeys.Open(dir, "https://licenses.example.test", clock{t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Published(), pub) {
		t.Fatal("keys changed on reopen")
	}
}

func TestOpenConcurrentFirstStart(t *testing.T) {
	dir := keysDir(t)
	const n = 4
	kids := make([]string, n)
	errc := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := serverkeys.Open(dir, "iss", clock{t0})
			errc[i] = err
			if err == nil {
				kids[i], _ = k.Active()
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if errc[i] != nil || kids[i] != kids[0] {
			t.Fatalf("start %d: kid %q err %v (first %q)", i, kids[i], errc[i], kids[0])
		}
	}
}

// writeKey adds a key file the way an operator of an earlier version would (with a status).
func writeKey(t *testing.T, dir, status string, nb time.Time) string {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	kid := serverkeys.KeyID(pub)
	data, _ := json.Marshal(map[string]any{
		"kid": kid, "status": status, "not_before": nb, "not_after": nb.AddDate(2, 0, 0),
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err := os.WriteFile(filepath.Join(dir, kid+".json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return kid
}

func TestOpenReadsRotatedKeys(t *testing.T) {
	dir := keysDir(t)
	k, err := serverkeys.Open(dir, "iss", clock{t0})
	if err != nil {
		t.Fatal(err)
	}
	active, _ := k.Active()
	retired := writeKey(t, dir, "retired", t0.AddDate(-2, 0, 0))
	next := writeKey(t, dir, "next", t0.AddDate(1, 0, 0))
	k, err = serverkeys.Open(dir, "iss", clock{t0})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range k.Published() {
		got = append(got, p.KID+":"+p.Status)
	}
	want := []string{active + ":active", next + ":next", retired + ":retired"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if kid, _ := k.Active(); kid != active {
		t.Fatal("active key changed")
	}

	// A stored status other than retired is a hint of older versions, not the truth: a "next"
	// key whose not_before has come is active, and the one before it retired.
	newer := writeKey(t, dir, "next", t0.Add(time.Hour))
	k, err = serverkeys.Open(dir, "iss", clock{t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := k.Active(); kid != newer {
		t.Fatalf("active %s, want %s", kid, newer)
	}
	got = nil
	for _, p := range k.Published() {
		got = append(got, p.KID+":"+p.Status)
	}
	want = []string{newer + ":active", next + ":next", active + ":retired", retired + ":retired"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	for name, mutate := range map[string]func(t *testing.T, dir, kid string){
		"no active key": func(t *testing.T, dir, kid string) {
			rewrite(t, dir, kid, func(m map[string]any) { m["status"] = "retired" })
		},
		"unknown status": func(t *testing.T, dir, kid string) {
			rewrite(t, dir, kid, func(m map[string]any) { m["status"] = "spare" })
		},
		"kid does not match key": func(t *testing.T, dir, kid string) {
			rewrite(t, dir, kid, func(m map[string]any) { m["kid"] = "AAAAAAAAAAAAAAAAAAAAAA" })
		},
		"file named after another kid": func(t *testing.T, dir, kid string) {
			if err := os.Rename(filepath.Join(dir, kid+".json"), filepath.Join(dir, "other.json")); err != nil {
				t.Fatal(err)
			}
		},
		"not after before not before": func(t *testing.T, dir, kid string) {
			rewrite(t, dir, kid, func(m map[string]any) { m["not_after"] = "2020-01-01T00:00:00Z" })
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := keysDir(t)
			k, err := serverkeys.Open(dir, "iss", clock{t0})
			if err != nil {
				t.Fatal(err)
			}
			kid, _ := k.Active()
			mutate(t, dir, kid)
			if _, err := serverkeys.Open(dir, "iss", clock{t0}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := serverkeys.Open(keysDir(t), " ", clock{t0}); err == nil {
		t.Fatal("empty issuer accepted")
	}
}

func rewrite(t *testing.T, dir, kid string, f func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, kid+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sampleClaims() ports.LeaseClaims {
	lexp := t0.AddDate(1, 0, 0).Unix()
	c := ports.LeaseClaims{
		Subject: "act_1", License: "lic_1", Product: "synth", Entitlements: []string{"synth", "pads"},
		Fingerprint: "fp-12345678", IssuedAt: t0.Unix(), NotBefore: t0.Unix(),
		HeartbeatDue: t0.Add(24 * time.Hour).Unix(), Expires: t0.Add(7 * 24 * time.Hour).Unix(),
		LicenseExpiry: &lexp, Status: "active",
	}
	c.Confirmation.KID = "thumb"
	return c
}

func TestSignLease(t *testing.T) {
	k, err := serverkeys.Open(keysDir(t), "https://licenses.example.test", clock{t0})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := k.Active()
	pub := ed25519.PublicKey(k.Published()[0].PublicKey)

	token, err := k.SignLease(context.Background(), sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not compact JWS: %q", token)
	}
	// The protected header, exactly.
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(rawHeader, &header); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"alg": "EdDSA", "typ": "samplero-lease+jwt", "kid": kid}; !reflect.DeepEqual(header, want) {
		t.Fatalf("header %v, want %v", header, want)
	}

	// Parsed back with go-jose, EdDSA only, verified with the published key.
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if h := jws.Signatures[0].Protected; h.KeyID != kid || h.Algorithm != "EdDSA" || h.ExtraHeaders["typ"] != "samplero-lease+jwt" {
		t.Fatalf("protected header %+v", h)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		t.Fatal(err)
	}
	var got ports.LeaseClaims
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	want := sampleClaims()
	want.Issuer = "https://licenses.example.test"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claims %+v, want %+v", got, want)
	}
	var raw map[string]any
	_ = json.Unmarshal(payload, &raw)
	if raw["cnf"].(map[string]any)["kid"] != "thumb" || raw["iat"] != float64(t0.Unix()) {
		t.Fatalf("payload %s", payload)
	}

	// Tampered: another payload under the same signature, or a flipped signature bit.
	forged := sampleClaims()
	forged.Expires += 365 * 24 * 3600
	forged.Issuer = "https://licenses.example.test"
	fp, _ := json.Marshal(forged)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(fp) + "." + parts[2]
	if j, err := jose.ParseSignedCompact(tampered, []jose.SignatureAlgorithm{jose.EdDSA}); err == nil {
		if _, err := j.Verify(pub); err == nil {
			t.Fatal("tampered payload verified")
		}
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	if j, err := jose.ParseSignedCompact(badSig, []jose.SignatureAlgorithm{jose.EdDSA}); err == nil {
		if _, err := j.Verify(pub); err == nil {
			t.Fatal("tampered signature verified")
		}
	}
	// Another key does not verify it.
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := jws.Verify(otherPub); err == nil {
		t.Fatal("verified with another key")
	}
}

func TestSignLeaseIssuerAndEntitlements(t *testing.T) {
	k, err := serverkeys.Open(keysDir(t), "iss-a", clock{t0})
	if err != nil {
		t.Fatal(err)
	}
	c := sampleClaims()
	c.Issuer = "iss-b"
	if _, err := k.SignLease(context.Background(), c); err == nil {
		t.Fatal("a foreign issuer was signed")
	}
	c = sampleClaims()
	c.Entitlements = nil
	c.LicenseExpiry = nil
	token, err := k.SignLease(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var raw map[string]any
	_ = json.Unmarshal(payload, &raw)
	if ent, ok := raw["ent"].([]any); !ok || len(ent) != 0 {
		t.Fatalf("ent = %v, want []", raw["ent"])
	}
	if _, ok := raw["lexp"]; ok {
		t.Fatal("lexp present for a license without expiry")
	}
	if raw["iss"] != "iss-a" {
		t.Fatalf("iss = %v", raw["iss"])
	}
}
