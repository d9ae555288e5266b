// Package keyvault keeps license keys out of the database in readable form (PROTOCOL.md section 1):
// keys are found by an HMAC under one secret and stored encrypted under another, both of which live
// outside the database. It implements ports.KeyVault.
package keyvault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// MinSecretLen is the shortest secret accepted: 256 bits.
const MinSecretLen = 32

const (
	nonceLen = 12
	// hkdfInfo names what the derived key is for, so the encryption secret could serve another
	// purpose under another label without the two keys ever being equal.
	hkdfInfo = "samplero license-key encryption v1"
	// sealAD binds a sealed value to its use: a value sealed by another part of the system under a
	// key derived from the same secret would not open here.
	sealAD = "samplero license key"
)

// Vault implements ports.KeyVault. Safe for concurrent use.
type Vault struct {
	lookup []byte
	aead   cipher.AEAD
}

var _ ports.KeyVault = (*Vault)(nil)

// New builds a vault from the lookup secret (the HMAC key) and the encryption secret (from which
// the AES-256-GCM key is derived with HKDF-SHA-256). Both must be at least 32 bytes.
func New(lookupSecret, encryptionKey []byte) (*Vault, error) {
	if len(lookupSecret) < MinSecretLen || len(encryptionKey) < MinSecretLen {
		return nil, fmt.Errorf("keyvault: secrets must be at least %d bytes", MinSecretLen)
	}
	key, err := hkdf.Key(sha256.New, encryptionKey, nil, hkdfInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("keyvault: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return &Vault{lookup: append([]byte(nil), lookupSecret...), aead: aead}, nil
}

// Lookup returns HMAC-SHA-256 of canonicalKey under the lookup secret: the same key always gives
// the same 32 bytes, which is what the database indexes.
func (v *Vault) Lookup(canonicalKey string) []byte {
	m := hmac.New(sha256.New, v.lookup)
	m.Write([]byte(canonicalKey))
	return m.Sum(nil)
}

// Seal encrypts canonicalKey with AES-256-GCM under a fresh random 12-byte nonce, returned in
// front of the ciphertext: nonce || ciphertext || tag.
func (v *Vault) Seal(canonicalKey string) ([]byte, error) {
	out := make([]byte, nonceLen, nonceLen+len(canonicalKey)+v.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, errs.Internalf("keyvault: nonce: %w", err)
	}
	return v.aead.Seal(out, out, []byte(canonicalKey), []byte(sealAD)), nil
}

// Open decrypts what Seal produced. Anything altered, truncated or sealed under another secret is
// an internal error: stored data is not what this server wrote.
func (v *Vault) Open(sealed []byte) (string, error) {
	if len(sealed) < nonceLen+v.aead.Overhead() {
		return "", errs.Internalf("keyvault: sealed value too short")
	}
	plain, err := v.aead.Open(nil, sealed[:nonceLen], sealed[nonceLen:], []byte(sealAD))
	if err != nil {
		return "", errs.Internalf("keyvault: open: %w", err)
	}
	return string(plain), nil
}
