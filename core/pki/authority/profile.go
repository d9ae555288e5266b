package authority

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
)

// The device certificate profile of PROTOCOL.md section 7.
const (
	DeviceCommonName = "samplero-device"
	// ActivationURNPrefix starts the URI SAN that names the activation a certificate belongs to.
	ActivationURNPrefix = "urn:samplero:activation:"
	// Backdate is how far notBefore is set before issuance, for devices whose clock runs behind.
	Backdate = 5 * time.Minute
	// maxActivationIDLen bounds the id put in a certificate; ids are short prefixed random strings.
	maxActivationIDLen = 128
)

// CodeInvalidCSR is the code of a device key the protocol does not allow (PROTOCOL.md section 1).
const CodeInvalidCSR = "INVALID_CSR"

// DeviceTemplate builds the device certificate for an activation: subject CN samplero-device, URI
// SAN urn:samplero:activation:<activationID>, CA:false, key usage digitalSignature, extended key
// usage clientAuth, notBefore = now - 5 min, notAfter = now + validity, times in whole seconds as
// the certificate stores them. It carries nothing else: the public key is the only thing taken from
// the device, and the caller passes it to x509.CreateCertificate beside this template.
func DeviceTemplate(serial *big.Int, activationID string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if serial == nil || serial.Sign() <= 0 {
		return nil, errs.Internalf("authority: certificate serial must be positive")
	}
	if validity <= 0 {
		return nil, errs.Validation("certificate validity must be positive")
	}
	uri, err := ActivationURI(activationID)
	if err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	return &x509.Certificate{
		SerialNumber:          new(big.Int).Set(serial),
		Subject:               pkix.Name{CommonName: DeviceCommonName},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{uri},
	}, nil
}

// ActivationURI is the URI SAN naming activationID. The id must be 1 to 128 characters of
// [A-Za-z0-9_-] (every id the server makes is), so the URN needs no escaping and reads back as is.
func ActivationURI(activationID string) (*url.URL, error) {
	if activationID == "" || len(activationID) > maxActivationIDLen {
		return nil, errs.Validation("activation id must be 1 to 128 characters")
	}
	for i := 0; i < len(activationID); i++ {
		c := activationID[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return nil, errs.Validation("activation id has characters outside [A-Za-z0-9_-]")
		}
	}
	return &url.URL{Scheme: "urn", Opaque: strings.TrimPrefix(ActivationURNPrefix, "urn:") + activationID}, nil
}

// ActivationIDOf returns the activation id a device certificate names in its URI SAN, if it names
// exactly one.
func ActivationIDOf(cert *x509.Certificate) (string, bool) {
	var id string
	n := 0
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, ActivationURNPrefix) {
			id = strings.TrimPrefix(s, ActivationURNPrefix)
			n++
		}
	}
	if n != 1 || id == "" {
		return "", false
	}
	return id, true
}

// CheckDeviceKey accepts the device keys of PROTOCOL.md section 1: ECDSA P-256, Ed25519, or RSA of
// 2048 to 4096 bits with public exponent 65537. Anything else is errs.Invalid INVALID_CSR.
func CheckDeviceKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k != nil && k.Curve == elliptic.P256() {
			return nil
		}
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return nil
		}
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			break
		}
		if bits := k.N.BitLen(); bits >= 2048 && bits <= 4096 && k.E == 65537 {
			return nil
		}
	}
	return errs.E(errs.Invalid, CodeInvalidCSR, "device key must be ECDSA P-256, Ed25519 or RSA 2048-4096 with exponent 65537")
}
