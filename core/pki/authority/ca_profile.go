package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
)

// The CA profiles of the hierarchy: an offline ECDSA P-384 root (path length 1) and ECDSA P-256
// intermediates (path length 0) that sign device and server certificates.
const (
	// RootValidity is 20 years.
	RootValidity = 20 * 365 * 24 * time.Hour
	// IntermediateValidity is 5 years (43800h).
	IntermediateValidity = 5 * 365 * 24 * time.Hour
	// CABackdate lets clients whose clock runs a little behind accept a CA certificate made just now.
	CABackdate = time.Hour
)

// Codes of the CA profiles.
const (
	CodeInvalidCACSR   = "INVALID_INTERMEDIATE_CSR"
	CodeInvalidProfile = "INVALID_CA_PROFILE"
)

// CASubject names a CA.
type CASubject struct {
	CommonName   string
	Organization string
}

func (s CASubject) name() (pkix.Name, error) {
	cn := strings.TrimSpace(s.CommonName)
	if cn == "" || len(cn) > 64 {
		return pkix.Name{}, errs.E(errs.Invalid, CodeInvalidProfile, "a CA common name needs 1 to 64 characters")
	}
	n := pkix.Name{CommonName: cn}
	if o := strings.TrimSpace(s.Organization); o != "" {
		if len(o) > 64 {
			return pkix.Name{}, errs.E(errs.Invalid, CodeInvalidProfile, "an organization name has at most 64 characters")
		}
		n.Organization = []string{o}
	}
	return n, nil
}

// CheckRootKey accepts the root's key type: ECDSA P-384 only.
func CheckRootKey(pub crypto.PublicKey) error {
	if k, ok := pub.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P384() {
		return nil
	}
	return errs.E(errs.Invalid, CodeInvalidProfile, "the root key must be ECDSA P-384")
}

// RootTemplate is the self-signed root certificate: CA, path length 1, key usage certSign and
// CRLSign, notBefore an hour back, times in whole seconds.
func RootTemplate(serial *big.Int, subject CASubject, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if serial == nil || serial.Sign() <= 0 {
		return nil, errs.Internalf("authority: certificate serial must be positive")
	}
	if validity <= 0 {
		return nil, errs.E(errs.Invalid, CodeInvalidProfile, "the root validity must be positive")
	}
	name, err := subject.name()
	if err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	return &x509.Certificate{
		SerialNumber:          new(big.Int).Set(serial),
		Subject:               name,
		NotBefore:             now.Add(-CABackdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil
}

// NameConstraints restrict the names an intermediate may certify. DNS constraints follow RFC 5280
// (a name, or ".example.com" for its subdomains only); IP constraints are networks.
type NameConstraints struct {
	PermittedDNS []string
	ExcludedDNS  []string
	PermittedIPs []*net.IPNet
	ExcludedIPs  []*net.IPNet
}

// Empty reports whether there is no constraint.
func (c NameConstraints) Empty() bool {
	return len(c.PermittedDNS)+len(c.ExcludedDNS)+len(c.PermittedIPs)+len(c.ExcludedIPs) == 0
}

func (c NameConstraints) check() error {
	for _, list := range [][]string{c.PermittedDNS, c.ExcludedDNS} {
		for _, d := range list {
			if !validDNSConstraint(d) {
				return errs.E(errs.Invalid, CodeInvalidProfile, "name constraint "+quote(d)+" is not a DNS name")
			}
		}
	}
	for _, list := range [][]*net.IPNet{c.PermittedIPs, c.ExcludedIPs} {
		for _, n := range list {
			if n == nil || (len(n.IP) != net.IPv4len && len(n.IP) != net.IPv6len) || len(n.IP) != len(n.Mask) {
				return errs.E(errs.Invalid, CodeInvalidProfile, "an IP name constraint is not a network")
			}
		}
	}
	return nil
}

func validDNSConstraint(d string) bool {
	d = strings.TrimPrefix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func quote(s string) string { return "\"" + s + "\"" }

// IntermediateTemplate is an intermediate CA certificate: CA, path length 0, key usage certSign and
// CRLSign, extended key usage clientAuth and serverAuth (the only certificates it signs: devices
// and the device listener), the name constraints (critical, when any), notBefore an hour back.
// The subject is the CSR's; nothing else is taken from the CSR.
func IntermediateTemplate(serial *big.Int, subject pkix.Name, now time.Time, validity time.Duration, nc NameConstraints) (*x509.Certificate, error) {
	if serial == nil || serial.Sign() <= 0 {
		return nil, errs.Internalf("authority: certificate serial must be positive")
	}
	if validity <= 0 {
		return nil, errs.E(errs.Invalid, CodeInvalidProfile, "the intermediate validity must be positive")
	}
	if strings.TrimSpace(subject.CommonName) == "" {
		return nil, errs.E(errs.Invalid, CodeInvalidCACSR, "the CSR has no common name")
	}
	if err := nc.check(); err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	t := &x509.Certificate{
		SerialNumber:          new(big.Int).Set(serial),
		Subject:               pkix.Name{CommonName: subject.CommonName, Organization: subject.Organization},
		NotBefore:             now.Add(-CABackdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	if !nc.Empty() {
		t.PermittedDNSDomainsCritical = true
		t.PermittedDNSDomains = append([]string(nil), nc.PermittedDNS...)
		t.ExcludedDNSDomains = append([]string(nil), nc.ExcludedDNS...)
		t.PermittedIPRanges = append([]*net.IPNet(nil), nc.PermittedIPs...)
		t.ExcludedIPRanges = append([]*net.IPNet(nil), nc.ExcludedIPs...)
	}
	return t, nil
}

// CheckIntermediateCSR checks a CSR for an intermediate: its self-signature, an ECDSA P-256 key,
// and a common name.
func CheckIntermediateCSR(csr *x509.CertificateRequest) error {
	if csr == nil {
		return errs.E(errs.Invalid, CodeInvalidCACSR, "no CSR")
	}
	if err := csr.CheckSignature(); err != nil {
		return errs.Wrap(errs.Invalid, CodeInvalidCACSR, "the CSR's signature does not verify", err)
	}
	if k, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return errs.E(errs.Invalid, CodeInvalidCACSR, "an intermediate key must be ECDSA P-256")
	}
	if strings.TrimSpace(csr.Subject.CommonName) == "" {
		return errs.E(errs.Invalid, CodeInvalidCACSR, "the CSR has no common name")
	}
	return nil
}

// CheckIntermediate checks that cert is an intermediate of this profile signed by root: a CA with
// path length 0 that may sign certificates, whose signature verifies with the root's key, and
// whose validity lies within the root's.
func CheckIntermediate(cert, root *x509.Certificate) error {
	if cert == nil || root == nil {
		return errs.E(errs.Invalid, CodeInvalidIntermediate, "certificate missing")
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errs.E(errs.Invalid, CodeInvalidIntermediate, "the intermediate certificate is not a signing CA")
	}
	if cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		return errs.E(errs.Invalid, CodeInvalidIntermediate, "the intermediate certificate must have path length 0")
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return errs.E(errs.Invalid, CodeInvalidIntermediate, "the root is not a self-signed CA certificate")
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return errs.Wrap(errs.Invalid, CodeInvalidIntermediate, "the intermediate is not signed by the root", err)
	}
	if cert.NotAfter.After(root.NotAfter) {
		return errs.E(errs.Invalid, CodeInvalidIntermediate, "the intermediate outlives the root")
	}
	return nil
}

// KeyID is the intermediate id of a public key: "int_" and the first 8 bytes of SHA-256 over its
// SubjectPublicKeyInfo, in hex (IntermediateID of a certificate for that key).
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", errs.E(errs.Invalid, CodeInvalidIntermediate, "unsupported public key")
	}
	sum := sha256.Sum256(der)
	return "int_" + hex.EncodeToString(sum[:8]), nil
}

// Fingerprint is SHA-256 over a certificate's DER as upper-case hex pairs joined by ':', the way
// `openssl x509 -noout -fingerprint -sha256` prints it, so that an operator can compare the two.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// NormalizeFingerprint drops ':' separators and case, so that a fingerprint pasted from either
// format compares equal.
func NormalizeFingerprint(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
}
