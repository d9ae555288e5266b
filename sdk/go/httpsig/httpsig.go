// Package httpsig implements the Samplero profile of HTTP Message Signatures (RFC 9421) and
// Content-Digest (RFC 9530) described in PROTOCOL.md sections 2 and 3: devices sign requests with
// their own key, the server signs every answer with its Ed25519 key and binds it to the request by
// echoing the request's nonce and path.
//
// The package is shared by the server (parsing and verifying device requests, signing answers) and
// the client SDK (the reverse), so both sides build the very same signature bases. It uses the
// standard library only and never panics on header input.
package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
)

// MaxBodyBytes is the largest request body a device may send (PROTOCOL.md section 2).
const MaxBodyBytes = 64 << 10

// Alg names a signature algorithm as written in the alg parameter of Signature-Input.
type Alg string

// The three request algorithms of PROTOCOL.md section 2. Responses always use AlgEd25519.
const (
	AlgECDSAP256 Alg = "ecdsa-p256-sha256"
	AlgEd25519   Alg = "ed25519"
	AlgRSA       Alg = "rsa-v1_5-sha256"
)

// OfflineTag is the value of the fifth Signature-Input parameter, tag, of an air-gapped request
// (PROTOCOL.md section 8).
const OfflineTag = "samplero-offline"

// Header names used by the protocol.
const (
	HeaderContentDigest  = "Content-Digest"
	HeaderSignatureInput = "Signature-Input"
	HeaderSignature      = "Signature"
)

// Codes of Error.
const (
	CodeSignatureRequired  = "SIGNATURE_REQUIRED"
	CodeMalformedSignature = "MALFORMED_SIGNATURE"
)

// label is the only signature label the protocol allows.
const label = "sig1"

// Error is a classified failure of step 1 of PROTOCOL.md section 2. Code is SIGNATURE_REQUIRED
// (a header is missing) or MALFORMED_SIGNATURE. Detail says what was wrong; it never contains key
// material and may be shown to the client.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Code
	}
	return e.Code + ": " + e.Detail
}

func malformed(format string, args ...any) *Error {
	return &Error{Code: CodeMalformedSignature, Detail: fmt.Sprintf(format, args...)}
}

// ContentDigest returns the Content-Digest field value for body: "sha-256=:<std base64>:" (RFC 9530).
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// Thumbprint returns the key thumbprint of PROTOCOL.md section 1: base64url without padding of
// SHA-256 over the DER SubjectPublicKeyInfo of pub.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("httpsig: thumbprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// AlgFor returns the algorithm that fits pub: ECDSA P-256, Ed25519, or RSA of 2048 to 4096 bits
// with public exponent 65537. Any other key is an error (the server answers INVALID_CSR for it).
func AlgFor(pub crypto.PublicKey) (Alg, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return "", errors.New("httpsig: ECDSA key is not on P-256")
		}
		return AlgECDSAP256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("httpsig: Ed25519 key has the wrong size")
		}
		return AlgEd25519, nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", errors.New("httpsig: empty RSA key")
		}
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return "", fmt.Errorf("httpsig: RSA key of %d bits (2048 to 4096 allowed)", bits)
		}
		if k.E != 65537 {
			return "", errors.New("httpsig: RSA public exponent is not 65537")
		}
		return AlgRSA, nil
	}
	return "", fmt.Errorf("httpsig: unsupported key type %T", pub)
}

// knownAlg reports whether a is one of the request algorithms.
func knownAlg(a Alg) bool {
	return a == AlgECDSAP256 || a == AlgEd25519 || a == AlgRSA
}

// ValidNonce reports whether s has the nonce syntax: 22 to 64 characters of [A-Za-z0-9_-].
func ValidNonce(s string) bool {
	if len(s) < 22 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// NewNonce returns a fresh nonce: 32 base64url characters carrying 192 bits from crypto/rand.
func NewNonce() string {
	var b [24]byte
	// crypto/rand.Read never returns an error on supported platforms (it aborts the program
	// instead), so there is nothing to handle here.
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
