package license

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/errs"
)

func csrPEM(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

var (
	rsaOnce sync.Once
	rsa2048 *rsa.PrivateKey
)

func rsaKey(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsa2048 = k
	})
	return rsa2048
}

func TestParseCSRAllowedKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"p256": p256, "ed25519": edPriv, "rsa2048": rsaKey(t)} {
		pub, spki, thumb, err := ParseCSR(csrPEM(t, key))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := x509.MarshalPKIXPublicKey(key.Public())
		if string(spki) != string(want) {
			t.Fatalf("%s: spki differs", name)
		}
		sum := sha256.Sum256(want)
		if thumb != base64.RawURLEncoding.EncodeToString(sum[:]) || len(thumb) != 43 {
			t.Fatalf("%s: thumbprint %q", name, thumb)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatalf("%s: public key differs", name)
		}
		back, err := ParsePublicKey(spki)
		if err != nil || !back.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatalf("%s: ParsePublicKey: %v", name, err)
		}
	}
}

func TestParseCSRRejects(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	good := csrPEM(t, mustP256(t))
	block, _ := pem.Decode([]byte(good))
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-3] ^= 0x01 // inside the signature
	cases := map[string]string{
		"p384":           csrPEM(t, p384),
		"not pem":        "hello",
		"wrong type":     string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})),
		"garbage der":    string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x01, 0x00}})),
		"bad signature":  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})),
		"trailing block": good + good,
	}
	for name, in := range cases {
		_, _, _, err := ParseCSR(in)
		if errs.CodeOf(err) != CodeInvalidCSR || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheckDeviceKeyRSA(t *testing.T) {
	k := rsaKey(t)
	if err := CheckDeviceKey(&k.PublicKey); err != nil {
		t.Fatal(err)
	}
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2046), E: 65537} // 2047 bits
	big4097 := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 4096), E: 65537}
	ok4096 := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 4095), E: 65537}
	badE := &rsa.PublicKey{N: k.N, E: 3}
	for name, c := range map[string]struct {
		k  crypto.PublicKey
		ok bool
	}{"2047": {small, false}, "4097": {big4097, false}, "4096": {ok4096, true}, "e=3": {badE, false}, "string": {"x", false}} {
		if err := CheckDeviceKey(c.k); (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCanonicalSerial(t *testing.T) {
	for in, want := range map[string]string{"0a1b": "A1B", "A1B": "A1B", "00:0a:1b": "A1B", "0": "0", "": "0", " ff ": "FF"} {
		if got := CanonicalSerial(in); got != want {
			t.Errorf("%q → %q want %q", in, got, want)
		}
	}
}
