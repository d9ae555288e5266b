package samplero

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// KeyType selects the kind of device key the client generates.
type KeyType string

// Device key types (PROTOCOL.md section 1). KeyP256 is recommended: the TLS stacks of Windows and
// macOS do not offer Ed25519 client certificates. RSA exists for legacy clients.
const (
	KeyP256    KeyType = "p256"
	KeyEd25519 KeyType = "ed25519"
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA3072 KeyType = "rsa3072"
	KeyRSA4096 KeyType = "rsa4096"
)

// GenerateKey creates a new device key of type t.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("samplero: unknown key type %q", t)
}

// CreateCSR returns a PEM PKCS#10 certificate request for key with subject CN samplero-device.
// The server takes only the public key from it (PROTOCOL.md section 6).
func CreateCSR(key crypto.Signer) (string, error) {
	if key == nil {
		return "", errors.New("samplero: no key")
	}
	if _, err := httpsig.AlgFor(key.Public()); err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "samplero-device"},
	}, key)
	if err != nil {
		return "", fmt.Errorf("samplero: create CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("samplero: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes a PKCS#8 "PRIVATE KEY" PEM block holding a key the protocol allows.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("samplero: no PKCS#8 PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("samplero: parse key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("samplero: key of type %T cannot sign", k)
	}
	if _, err := httpsig.AlgFor(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}
