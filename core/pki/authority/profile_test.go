package authority_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

func TestDeviceTemplate(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	serial := big.NewInt(0xA1B)
	tmpl, err := authority.DeviceTemplate(serial, "act_Abc-1_2", now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nowSec := now.UTC().Truncate(time.Second)
	if tmpl.SerialNumber.Cmp(serial) != 0 || tmpl.SerialNumber == serial {
		t.Fatal("serial not copied")
	}
	if tmpl.Subject.CommonName != "samplero-device" || len(tmpl.Subject.Organization) != 0 {
		t.Fatalf("subject %v", tmpl.Subject)
	}
	if !tmpl.NotBefore.Equal(nowSec.Add(-5*time.Minute)) || !tmpl.NotAfter.Equal(nowSec.Add(365*24*time.Hour)) {
		t.Fatalf("validity %v .. %v", tmpl.NotBefore, tmpl.NotAfter)
	}
	if tmpl.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("key usage %v", tmpl.KeyUsage)
	}
	if len(tmpl.ExtKeyUsage) != 1 || tmpl.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(tmpl.UnknownExtKeyUsage) != 0 {
		t.Fatalf("ext key usage %v", tmpl.ExtKeyUsage)
	}
	if !tmpl.BasicConstraintsValid || tmpl.IsCA {
		t.Fatal("basic constraints")
	}
	if len(tmpl.URIs) != 1 || tmpl.URIs[0].String() != "urn:samplero:activation:act_Abc-1_2" {
		t.Fatalf("URIs %v", tmpl.URIs)
	}
	if len(tmpl.DNSNames)+len(tmpl.IPAddresses)+len(tmpl.EmailAddresses)+len(tmpl.ExtraExtensions) != 0 {
		t.Fatal("extra names or extensions")
	}
}

func TestDeviceTemplateRejects(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		serial   *big.Int
		id       string
		validity time.Duration
	}{
		"nil serial":      {nil, "act_1", time.Hour},
		"zero serial":     {big.NewInt(0), "act_1", time.Hour},
		"negative serial": {big.NewInt(-5), "act_1", time.Hour},
		"empty id":        {big.NewInt(1), "", time.Hour},
		"id with colon":   {big.NewInt(1), "act:1", time.Hour},
		"id with slash":   {big.NewInt(1), "act/1", time.Hour},
		"id with space":   {big.NewInt(1), "act 1", time.Hour},
		"long id":         {big.NewInt(1), strings.Repeat("a", 129), time.Hour},
		"zero validity":   {big.NewInt(1), "act_1", 0},
	} {
		if _, err := authority.DeviceTemplate(tc.serial, tc.id, now, tc.validity); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestActivationIDOf(t *testing.T) {
	u, err := authority.ActivationURI("act_42")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := authority.ActivationURI("act_43")
	if id, ok := authority.ActivationIDOf(&x509.Certificate{URIs: []*url.URL{u}}); !ok || id != "act_42" {
		t.Fatalf("got %q %v", id, ok)
	}
	if _, ok := authority.ActivationIDOf(&x509.Certificate{}); ok {
		t.Fatal("no URI gave an id")
	}
	if _, ok := authority.ActivationIDOf(&x509.Certificate{URIs: []*url.URL{u, other}}); ok {
		t.Fatal("two activation URIs gave an id")
	}
}

func TestCheckDeviceKey(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaE3 := &rsa.PublicKey{N: rsa2048.N, E: 3}
	rsa8192 := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 8191), E: 65537}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		ok   bool
	}{
		{"P-256", p256.Public(), true},
		{"Ed25519", edPub, true},
		{"RSA 2048", rsa2048.Public(), true},
		{"P-384", p384.Public(), false},
		{"RSA 1024", rsa1024.Public(), false},
		{"RSA e=3", rsaE3, false},
		{"RSA 8192", rsa8192, false},
		{"short Ed25519", ed25519.PublicKey(edPub[:16]), false},
		{"nil ECDSA", (*ecdsa.PublicKey)(nil), false},
		{"nil RSA", (*rsa.PublicKey)(nil), false},
		{"private key", p256, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		err := authority.CheckDeviceKey(tt.pub)
		if tt.ok != (err == nil) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if err != nil && (errs.CodeOf(err) != authority.CodeInvalidCSR || errs.KindOf(err) != errs.Invalid) {
			t.Errorf("%s: err = %v, want INVALID_CSR", tt.name, err)
		}
	}
}
