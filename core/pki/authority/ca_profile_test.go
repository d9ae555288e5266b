package authority_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

var tProfile = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func sign(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func makeRoot(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := ecKey(t, elliptic.P384())
	tmpl, err := authority.RootTemplate(big.NewInt(1), authority.CASubject{CommonName: "Test Root", Organization: "Samplero"}, tProfile, authority.RootValidity)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, tmpl, tmpl, key.Public(), key), key
}

func TestRootTemplate(t *testing.T) {
	root, key := makeRoot(t)
	if !root.IsCA || root.MaxPathLen != 1 || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("root profile: CA %v pathlen %d usage %v", root.IsCA, root.MaxPathLen, root.KeyUsage)
	}
	if !root.NotBefore.Equal(tProfile.Add(-time.Hour)) || !root.NotAfter.Equal(tProfile.Add(authority.RootValidity)) {
		t.Fatalf("validity %s to %s", root.NotBefore, root.NotAfter)
	}
	if root.Subject.CommonName != "Test Root" || root.Subject.Organization[0] != "Samplero" {
		t.Fatalf("subject %s", root.Subject)
	}
	if err := authority.CheckRootKey(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := authority.CheckRootKey(ecKey(t, elliptic.P256()).Public()); err == nil {
		t.Fatal("a P-256 root key accepted")
	}
	for name, sub := range map[string]authority.CASubject{"empty": {}, "long": {CommonName: strings.Repeat("x", 65)}} {
		if _, err := authority.RootTemplate(big.NewInt(1), sub, tProfile, time.Hour); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s subject: %v", name, err)
		}
	}
	if _, err := authority.RootTemplate(big.NewInt(1), authority.CASubject{CommonName: "x"}, tProfile, 0); err == nil {
		t.Fatal("zero validity accepted")
	}
}

func TestIntermediateTemplateAndNameConstraints(t *testing.T) {
	root, rootKey := makeRoot(t)
	interKey := ecKey(t, elliptic.P256())
	_, local, _ := net.ParseCIDR("127.0.0.0/8")
	nc := authority.NameConstraints{PermittedDNS: []string{"example.com", "localhost"}, PermittedIPs: []*net.IPNet{local}}
	tmpl, err := authority.IntermediateTemplate(big.NewInt(2), pkix.Name{CommonName: "Test Intermediate"}, tProfile, authority.IntermediateValidity, nc)
	if err != nil {
		t.Fatal(err)
	}
	inter := sign(t, tmpl, root, interKey.Public(), rootKey)
	if err := authority.CheckIntermediate(inter, root); err != nil {
		t.Fatal(err)
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero || inter.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Fatalf("intermediate profile: pathlen %d zero %v usage %v", inter.MaxPathLen, inter.MaxPathLenZero, inter.KeyUsage)
	}
	if !inter.PermittedDNSDomainsCritical || len(inter.PermittedDNSDomains) != 2 || len(inter.PermittedIPRanges) != 1 {
		t.Fatalf("name constraints not set: %v %v", inter.PermittedDNSDomains, inter.PermittedIPRanges)
	}
	if got, want := authority.IntermediateID(inter), must(authority.KeyID(interKey.Public())); got != want {
		t.Fatalf("IntermediateID %s != KeyID %s", got, want)
	}

	roots := x509.NewCertPool()
	roots.AddCert(root)
	inters := x509.NewCertPool()
	inters.AddCert(inter)
	now := tProfile.Add(time.Hour)
	// A device certificate names only its activation, a URN without a host. RFC 5280 says DNS and
	// IP constraints leave it be, but Go's verifier (1.26) refuses any URI without a host below a
	// constrained CA, so every device certificate of such an intermediate would fail the TLS
	// handshake. That is why sign-intermediate refuses name constraints (core/pki); when this
	// starts to verify, the refusal can go.
	devKey := ecKey(t, elliptic.P256())
	dev, err := authority.DeviceTemplate(big.NewInt(3), "act_1", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	devCert := sign(t, dev, inter, devKey.Public(), interKey)
	if _, err := devCert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("Go now verifies a device certificate (URN SAN) below a name-constrained intermediate: sign-intermediate may accept name constraints again")
	}
	// A server certificate must fit them.
	server := func(dns string, ip net.IP) *x509.Certificate {
		return sign(t, &x509.Certificate{
			SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "server"},
			NotBefore: tProfile, NotAfter: tProfile.Add(24 * time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: []string{dns}, IPAddresses: []net.IP{ip},
		}, inter, devKey.Public(), interKey)
	}
	verify := func(c *x509.Certificate) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now})
		return err
	}
	if err := verify(server("api.example.com", net.IPv4(127, 0, 0, 1))); err != nil {
		t.Fatalf("a permitted server name: %v", err)
	}
	if err := verify(server("evil.test", net.IPv4(127, 0, 0, 1))); err == nil {
		t.Fatal("a DNS name outside the constraints verified")
	}
	if err := verify(server("localhost", net.IPv4(192, 0, 2, 1))); err == nil {
		t.Fatal("an IP outside the constraints verified")
	}

	// No constraints: none written.
	plain, err := authority.IntermediateTemplate(big.NewInt(5), pkix.Name{CommonName: "x"}, tProfile, time.Hour, authority.NameConstraints{})
	if err != nil || plain.PermittedDNSDomainsCritical || plain.PermittedDNSDomains != nil {
		t.Fatalf("unconstrained template: %+v, %v", plain.PermittedDNSDomains, err)
	}
	for _, bad := range []string{"", "http://x", "a..b", "-a.com", "*.example.com", "EXAMPLE.com"} {
		if _, err := authority.IntermediateTemplate(big.NewInt(5), pkix.Name{CommonName: "x"}, tProfile, time.Hour, authority.NameConstraints{PermittedDNS: []string{bad}}); errs.KindOf(err) != errs.Invalid {
			t.Errorf("DNS constraint %q: %v", bad, err)
		}
	}
	if _, err := authority.IntermediateTemplate(big.NewInt(5), pkix.Name{CommonName: "x"}, tProfile, time.Hour, authority.NameConstraints{PermittedDNS: []string{".example.com"}}); err != nil {
		t.Errorf("subdomain constraint refused: %v", err)
	}
}

func TestCheckIntermediate(t *testing.T) {
	root, rootKey := makeRoot(t)
	otherRoot, _ := makeRoot(t)
	key := ecKey(t, elliptic.P256())
	good, _ := authority.IntermediateTemplate(big.NewInt(2), pkix.Name{CommonName: "I"}, tProfile, time.Hour, authority.NameConstraints{})
	inter := sign(t, good, root, key.Public(), rootKey)
	if err := authority.CheckIntermediate(inter, root); err != nil {
		t.Fatal(err)
	}
	if err := authority.CheckIntermediate(inter, otherRoot); err == nil {
		t.Fatal("an intermediate of another root passed")
	}
	pathLen1 := *good
	pathLen1.MaxPathLen, pathLen1.MaxPathLenZero = 1, false
	if err := authority.CheckIntermediate(sign(t, &pathLen1, root, key.Public(), rootKey), root); err == nil {
		t.Fatal("path length 1 passed")
	}
	outlives := *good
	outlives.NotAfter = root.NotAfter.Add(time.Hour)
	if err := authority.CheckIntermediate(sign(t, &outlives, root, key.Public(), rootKey), root); err == nil {
		t.Fatal("an intermediate outliving its root passed")
	}
}

func TestCheckIntermediateCSR(t *testing.T) {
	mk := func(key crypto.Signer, cn string) *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			t.Fatal(err)
		}
		return csr
	}
	if err := authority.CheckIntermediateCSR(mk(ecKey(t, elliptic.P256()), "I")); err != nil {
		t.Fatal(err)
	}
	if err := authority.CheckIntermediateCSR(mk(ecKey(t, elliptic.P384()), "I")); errs.Is(err, authority.CodeInvalidCACSR) == false {
		t.Fatalf("P-384 intermediate key: %v", err)
	}
	if err := authority.CheckIntermediateCSR(mk(ecKey(t, elliptic.P256()), "")); err == nil {
		t.Fatal("CSR without a common name accepted")
	}
	tampered := mk(ecKey(t, elliptic.P256()), "I")
	tampered.PublicKey = ecKey(t, elliptic.P256()).Public()
	if err := authority.CheckIntermediateCSR(tampered); err == nil {
		t.Fatal("a CSR whose signature does not match its key accepted")
	}
}

func TestFingerprint(t *testing.T) {
	root, _ := makeRoot(t)
	fp := authority.Fingerprint(root)
	sum := sha256.Sum256(root.Raw)
	if strings.ReplaceAll(fp, ":", "") != strings.ToUpper(hex.EncodeToString(sum[:])) || len(fp) != 32*3-1 {
		t.Fatalf("fingerprint %s", fp)
	}
	if authority.NormalizeFingerprint(fp) != hex.EncodeToString(sum[:]) || authority.NormalizeFingerprint(" "+strings.ToLower(fp)+"\n") != hex.EncodeToString(sum[:]) {
		t.Fatal("NormalizeFingerprint does not accept both formats")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
