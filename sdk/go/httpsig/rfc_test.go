package httpsig

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"testing"
)

// Test vectors published in RFC 9530 (Digest Fields) and RFC 9421 Appendix B (HTTP Message
// Signatures). The keys are the RFC's published test keys, B.1.3 and B.1.4.

const rfcEd25519Private = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`

const rfcEd25519Public = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`

const rfcP256Public = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----`

func pemBlock(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatal("bad PEM")
	}
	return b.Bytes
}

func rfcPublic(t *testing.T, s string) crypto.PublicKey {
	t.Helper()
	k, err := x509.ParsePKIXPublicKey(pemBlock(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestContentDigestRFC9530(t *testing.T) {
	// RFC 9530 section 2 / Appendix B: {"hello": "world"}.
	body := []byte(`{"hello": "world"}`)
	if got, want := ContentDigest(body), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"; got != want {
		t.Fatalf("ContentDigest = %s, want %s", got, want)
	}
	// The same example's sha-512 value, to check the parser reads a multi-member field and picks
	// the sha-256 member.
	sum := sha512.Sum512(body)
	sha512v := "sha-512=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	if sha512v != "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:" {
		t.Fatalf("sha-512 example differs: %s", sha512v)
	}
	d, perr := parseDigest(sha512v + ", " + ContentDigest(body))
	if perr != nil {
		t.Fatal(perr)
	}
	p := &ParsedRequest{Digest: d}
	if !p.DigestMatches(body) || p.DigestMatches([]byte(`{"hello":"world"}`)) {
		t.Fatal("DigestMatches wrong")
	}
	// An empty body is hashed as zero bytes (PROTOCOL.md section 2).
	if got := ContentDigest(nil); got != "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:" {
		t.Fatalf("empty digest %s", got)
	}
}

// rfcBase builds the base of an RFC 9421 example with this package's base builder, taking the
// params line from the example's Signature-Input through the parser and serializer.
func rfcBase(t *testing.T, sigInput, lbl string, values map[string]string) string {
	t.Helper()
	dict, err := parseDictionary(sigInput)
	if err != nil || len(dict) != 1 || dict[0].key != lbl || !dict[0].inner {
		t.Fatalf("example Signature-Input does not parse: %v", err)
	}
	var lines []baseLine
	for _, c := range dict[0].list {
		v, ok := values[c.bare.s]
		if !ok {
			t.Fatalf("no value for %s", c.bare.s)
		}
		lines = append(lines, baseLine{c, v})
	}
	params, err := serializeInnerList(dict[0].list, dict[0].params)
	if err != nil {
		t.Fatal(err)
	}
	base, err := buildBase(lines, params)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func rfcSig(t *testing.T, sig, lbl string) []byte {
	t.Helper()
	dict, err := parseDictionary(sig)
	if err != nil || len(dict) != 1 || dict[0].key != lbl || dict[0].item.bare.kind != sfBytes {
		t.Fatalf("example Signature does not parse: %v", err)
	}
	return dict[0].item.bare.b
}

func TestRFC9421B26Ed25519(t *testing.T) {
	sigInput := `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	sigValue := `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`
	base := rfcBase(t, sigInput, "sig-b26", map[string]string{
		"date":           "Tue, 20 Apr 2021 02:07:55 GMT",
		"@method":        "POST",
		"@path":          "/foo",
		"@authority":     "example.com",
		"content-type":   "application/json",
		"content-length": "18",
	})
	wantBase := "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n" +
		"\"@method\": POST\n" +
		"\"@path\": /foo\n" +
		"\"@authority\": example.com\n" +
		"\"content-type\": application/json\n" +
		"\"content-length\": 18\n" +
		"\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
	if base != wantBase {
		t.Fatalf("base differs:\n%s\nwant\n%s", base, wantBase)
	}
	sig := rfcSig(t, sigValue, "sig-b26")
	pub := rfcPublic(t, rfcEd25519Public)
	if err := verifyBase(pub, AlgEd25519, []byte(base), sig); err != nil {
		t.Fatalf("RFC example signature does not verify: %v", err)
	}
	// Ed25519 is deterministic: signing the same base with the RFC's private key through
	// signBase must reproduce the RFC's signature byte for byte.
	priv, err := x509.ParsePKCS8PrivateKey(pemBlock(t, rfcEd25519Private))
	if err != nil {
		t.Fatal(err)
	}
	got, err := signBase(priv.(ed25519.PrivateKey), AlgEd25519, []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(sig) {
		t.Fatal("signing the RFC base does not reproduce the RFC signature")
	}
	if verifyBase(pub, AlgEd25519, []byte(base+" "), sig) == nil {
		t.Fatal("altered base verified")
	}
}

func TestRFC9421B24ECDSAP256(t *testing.T) {
	sigInput := `sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`
	sigValue := `sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:`
	body := []byte(`{"message": "good dog"}`)
	sum := sha512.Sum512(body)
	digest := "sha-512=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	if digest != "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:" {
		t.Fatalf("example digest differs: %s", digest)
	}
	base := rfcBase(t, sigInput, "sig-b24", map[string]string{
		"@status":        "200",
		"content-type":   "application/json",
		"content-digest": digest,
		"content-length": "23",
	})
	sig := rfcSig(t, sigValue, "sig-b24")
	if len(sig) != 64 {
		t.Fatalf("RFC ECDSA signature is %d bytes, want r||s of 64", len(sig))
	}
	pub := rfcPublic(t, rfcP256Public)
	if alg, err := AlgFor(pub); err != nil || alg != AlgECDSAP256 {
		t.Fatalf("AlgFor(test-key-ecc-p256) = %v, %v", alg, err)
	}
	if err := verifyBase(pub, AlgECDSAP256, []byte(base), sig); err != nil {
		t.Fatalf("RFC example signature does not verify: %v", err)
	}
	bad := append([]byte(nil), sig...)
	bad[10] ^= 1
	if verifyBase(pub, AlgECDSAP256, []byte(base), bad) == nil {
		t.Fatal("altered signature verified")
	}
}
