package serverkeys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/adapters/serverkeys"
)

// fixedClaims is a key with a known public key (the RFC 8032 test 1 key), so the payload can be
// written out byte for byte.
func fixedClaims(t *testing.T) serverkeys.KeyClaims {
	t.Helper()
	seed, _ := base64.StdEncoding.DecodeString("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return serverkeys.KeyClaims{
		KID:       serverkeys.KeyID(pub),
		PublicKey: pub,
		NotBefore: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC),
		NotAfter:  time.Date(2028, 12, 5, 12, 0, 0, 0, time.UTC),
	}
}

func TestEndorsementBytes(t *testing.T) {
	c := fixedClaims(t)
	want := `{"kid":"` + c.KID + `","public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","not_before":"2026-12-06T12:00:00Z","not_after":"2028-12-05T12:00:00Z"}`
	if got := string(c.Payload()); got != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
	root := newRoot(t)
	e, err := serverkeys.Endorse(root.key, root.cert, c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(e, ".")
	if len(parts) != 3 {
		t.Fatalf("not compact: %s", e)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if serverkeys.EndorsementHeader != `{"alg":"ES384","typ":"samplero-key-endorsement"}` || string(header) != serverkeys.EndorsementHeader {
		t.Fatalf("header %s", header)
	}
	if string(payload) != want || len(sig) != 96 {
		t.Fatalf("payload %s, signature %d bytes", payload, len(sig))
	}
	// What the docs say a client does, with the standard library alone: ECDSA P-384 over
	// SHA-384 of the ASCII "<header>.<payload>", r‖s.
	digest := sha384(parts[0] + "." + parts[1])
	r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
	if !ecdsa.Verify(&root.key.PublicKey, digest, r, s) {
		t.Fatal("the endorsement does not verify by the documented recipe")
	}
	got, err := serverkeys.EndorsedClaims(e)
	if err != nil || got.KID != c.KID || !got.NotAfter.Equal(c.NotAfter) || !got.PublicKey.Equal(c.PublicKey) {
		t.Fatalf("EndorsedClaims: %+v %v", got, err)
	}
}

func TestVerifyEndorsement(t *testing.T) {
	c := fixedClaims(t)
	root := newRoot(t)
	e, err := serverkeys.Endorse(root.key, root.cert, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverkeys.VerifyEndorsement(root.cert, e, c); err != nil {
		t.Fatalf("valid: %v", err)
	}
	parts := strings.Split(e, ".")
	enc := base64.RawURLEncoding.EncodeToString

	// Another window (the dates are covered), another key, another kid.
	later := c
	later.NotAfter = c.NotAfter.Add(365 * 24 * time.Hour)
	if err := serverkeys.VerifyEndorsement(root.cert, e, later); !errors.Is(err, serverkeys.ErrEndorsementMismatch) {
		t.Fatalf("other window: %v", err)
	}
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	other := serverkeys.KeyClaims{KID: serverkeys.KeyID(otherPub), PublicKey: otherPub, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
	if err := serverkeys.VerifyEndorsement(root.cert, e, other); !errors.Is(err, serverkeys.ErrEndorsementMismatch) {
		t.Fatalf("other key: %v", err)
	}

	// Tampered: the payload of the later window under the old signature; a flipped signature bit.
	forged := parts[0] + "." + enc(later.Payload()) + "." + parts[2]
	if err := serverkeys.VerifyEndorsement(root.cert, forged, later); !errors.Is(err, serverkeys.ErrEndorsementSignature) {
		t.Fatalf("forged payload: %v", err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[10] ^= 1
	if err := serverkeys.VerifyEndorsement(root.cert, parts[0]+"."+parts[1]+"."+enc(sig), c); !errors.Is(err, serverkeys.ErrEndorsementSignature) {
		t.Fatalf("flipped bit: %v", err)
	}

	// Another root.
	if err := serverkeys.VerifyEndorsement(newRoot(t).cert, e, c); !errors.Is(err, serverkeys.ErrEndorsementSignature) {
		t.Fatalf("wrong root: %v", err)
	}

	// Other headers, even ones a JOSE library would accept, are refused: the header is fixed.
	for _, h := range []string{
		`{"alg":"ES384"}`,
		`{"typ":"samplero-key-endorsement","alg":"ES384"}`,
		`{"alg":"ES384","typ":"samplero-key-endorsement","kid":"x"}`,
		`{"alg":"none","typ":"samplero-key-endorsement"}`,
	} {
		if err := serverkeys.VerifyEndorsement(root.cert, enc([]byte(h))+"."+parts[1]+"."+parts[2], c); !errors.Is(err, serverkeys.ErrEndorsementMalformed) {
			t.Fatalf("header %s: %v", h, err)
		}
	}
	// Padding, white space, a fourth segment.
	for _, bad := range []string{e + "=", " " + e, e + ".x", parts[0] + ".." + parts[2]} {
		if err := serverkeys.VerifyEndorsement(root.cert, bad, c); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestOnlyARootEndorses(t *testing.T) {
	c := fixedClaims(t)
	root := newRoot(t)
	// An intermediate signed by the root, with its own P-384 key: not self-signed, refused both
	// for signing and for verifying.
	ikey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Intermediate"},
		NotBefore: t0, NotAfter: t0.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, ikey.Public(), root.key)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(der)
	if _, err := serverkeys.Endorse(ikey, inter, c); err == nil {
		t.Fatal("an intermediate endorsed a key")
	}
	// A P-256 root is not the root the protocol names.
	k256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.Subject, tmpl.SerialNumber = pkix.Name{CommonName: "P-256 root"}, big.NewInt(3)
	der, _ = x509.CreateCertificate(rand.Reader, tmpl, tmpl, k256.Public(), k256)
	r256, _ := x509.ParseCertificate(der)
	if _, err := serverkeys.Endorse(k256, r256, c); err == nil {
		t.Fatal("a P-256 root endorsed a key")
	}
	// The key must be the certificate's.
	if _, err := serverkeys.Endorse(newRoot(t).key, root.cert, c); err == nil {
		t.Fatal("another key signed for the root certificate")
	}
	// A root key behind crypto.Signer alone (an HSM later) works.
	e, err := serverkeys.Endorse(opaqueSigner{root.key}, root.cert, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverkeys.VerifyEndorsement(root.cert, e, c); err != nil {
		t.Fatal(err)
	}
	// go-jose, given the root key, reads it as what it is.
	jws, err := jose.ParseSignedCompact(e, []jose.SignatureAlgorithm{jose.ES384})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(&root.key.PublicKey); err != nil {
		t.Fatal(err)
	}
}

type opaqueSigner struct{ k *ecdsa.PrivateKey }

func (o opaqueSigner) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, opts)
}

func TestParseRequest(t *testing.T) {
	c := fixedClaims(t)
	got, err := serverkeys.ParseRequest(c.Request())
	if err != nil || got.KID != c.KID || !got.NotBefore.Equal(c.NotBefore) {
		t.Fatalf("%+v %v", got, err)
	}
	good := string(c.Request())
	for name, bad := range map[string]string{
		"kid not the key's": strings.Replace(good, c.KID, "AAAAAAAAAAAAAAAAAAAAAA", 1),
		"version":           strings.Replace(good, `"samplero_endorsement_request": 1`, `"samplero_endorsement_request": 2`, 1),
		"extra member":      strings.Replace(good, `"kid"`, `"x": 1, "kid"`, 1),
		"local time":        strings.Replace(good, "2026-12-06T12:00:00Z", "2026-12-06T13:00:00+01:00", 1),
		"fraction":          strings.Replace(good, "2026-12-06T12:00:00Z", "2026-12-06T12:00:00.5Z", 1),
		"window reversed":   strings.Replace(good, "2028-12-05T12:00:00Z", "2025-12-05T12:00:00Z", 1),
		"window too long":   strings.Replace(good, "2028-12-05T12:00:00Z", "2040-12-05T12:00:00Z", 1),
		"not json":          "kid=x",
	} {
		if _, err := serverkeys.ParseRequest([]byte(bad)); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
}

func sha384(s string) []byte {
	h := sha512.Sum384([]byte(s))
	return h[:]
}
