package license

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/samplero/samplero/core/errs"
)

func invalidCSR(msg string, cause error) error {
	return errs.Wrap(errs.Invalid, CodeInvalidCSR, msg, cause)
}

// ParseCSR parses the PEM PKCS#10 request of a device and checks its self-signature and key
// (PROTOCOL.md section 1: ECDSA P-256, Ed25519, or RSA 2048 to 4096 bits with e = 65537). Every
// failure is INVALID_CSR. Only the public key is used: the certificate's subject, extensions and
// validity come from the server.
func ParseCSR(csrPEM string) (pub crypto.PublicKey, spkiDER []byte, thumbprint string, err error) {
	block, rest := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, nil, "", invalidCSR("csr must be one PEM CERTIFICATE REQUEST", nil)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, "", invalidCSR("csr must be one PEM CERTIFICATE REQUEST", nil)
	}
	req, perr := x509.ParseCertificateRequest(block.Bytes)
	if perr != nil {
		return nil, nil, "", invalidCSR("csr does not parse", perr)
	}
	if serr := req.CheckSignature(); serr != nil {
		return nil, nil, "", invalidCSR("csr self-signature does not verify", serr)
	}
	if kerr := CheckDeviceKey(req.PublicKey); kerr != nil {
		return nil, nil, "", kerr
	}
	spki := bytes.Clone(req.RawSubjectPublicKeyInfo)
	return req.PublicKey, spki, Thumbprint(spki), nil
}

// CheckDeviceKey reports INVALID_CSR for a key a device may not hold.
func CheckDeviceKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return invalidCSR("ECDSA device keys must be P-256", nil)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return invalidCSR("bad Ed25519 key", nil)
		}
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return invalidCSR("RSA device keys must be 2048 to 4096 bits", nil)
		}
		if k.E != 65537 {
			return invalidCSR("RSA device keys must use public exponent 65537", nil)
		}
	default:
		return invalidCSR(fmt.Sprintf("device key type %T is not allowed", pub), nil)
	}
	return nil
}

// Thumbprint is base64url without padding of SHA-256 over the DER SubjectPublicKeyInfo.
func Thumbprint(spkiDER []byte) string {
	sum := sha256.Sum256(spkiDER)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParsePublicKey parses a stored SPKI DER device key.
func ParsePublicKey(spkiDER []byte) (crypto.PublicKey, error) {
	return x509.ParsePKIXPublicKey(spkiDER)
}

// CanonicalSerial writes a certificate serial as stored and looked up: upper-case hex without
// leading zeros ("0a1b" → "A1B"). Separators (":" and spaces) some tools print are dropped.
func CanonicalSerial(s string) string {
	s = strings.ToUpper(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(s)))
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}
