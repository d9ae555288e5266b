package samplero

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Server key endorsements (PROTOCOL.md section 6; the exact bytes are in docs/protocol.md,
// "Additions"): the offline root CA signs each server key's kid, public_key, not_before and
// not_after, so that a client that pins only the root can accept a key it has never seen.
//
// An endorsement is a JWS in compact serialization, ES384, whose protected header is exactly
// EndorsementHeader and whose payload is exactly
//
//	{"kid":"<kid>","public_key":"<public_key>","not_before":"<not_before>","not_after":"<not_after>"}
//
// with the values of the GET /v1/keys entry (times as 2026-11-29T12:00:00Z). The client rebuilds
// both from the entry and compares bytes: nothing in the JWS is interpreted.

// EndorsementHeader is the protected header of every endorsement, byte for byte.
const EndorsementHeader = `{"alg":"ES384","typ":"samplero-key-endorsement"}`

// Reasons an endorsement is refused; the returned error wraps one of them.
var (
	ErrEndorsementMissing = errors.New("samplero: server key has no endorsement")
	ErrEndorsementInvalid = errors.New("samplero: server key endorsement does not verify with a pinned root")
	ErrEndorsementExpired = errors.New("samplero: server key endorsement window has ended")
)

const keyTimeLayout = "2006-01-02T15:04:05Z"

// RootCertificates returns the root CA certificates of a PEM bundle (such as the ca_chain of an
// activation, or the vendor's root.pem): the self-signed CA certificates with an ECDSA P-384 key.
// Intermediates are left out on purpose: their keys live on the server, and only the offline root
// may vouch for server keys.
func RootCertificates(pemData []byte) ([]*x509.Certificate, error) {
	var roots []*x509.Certificate
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("samplero: root certificate: %w", err)
		}
		if checkRoot(c) == nil {
			roots = append(roots, c)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("samplero: no self-signed ECDSA P-384 root CA certificate in the PEM data")
	}
	return roots, nil
}

// checkRoot accepts a self-signed CA certificate with an ECDSA P-384 key.
func checkRoot(c *x509.Certificate) error {
	if c == nil || !c.IsCA || !bytes.Equal(c.RawSubject, c.RawIssuer) || c.CheckSignatureFrom(c) != nil {
		return errors.New("samplero: an endorsement root must be a self-signed CA certificate")
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return errors.New("samplero: an endorsement root must have an ECDSA P-384 key")
	}
	return nil
}

// endorsementPayload is the exact payload an endorsement of k signs.
func endorsementPayload(k ServerKey) ([]byte, error) {
	pub, ok := k.ed25519()
	if !ok {
		return nil, errors.New("not an Ed25519 key entry")
	}
	for _, r := range k.KID {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return nil, errors.New("kid is not base64url")
		}
	}
	if k.NotAfter == nil || k.NotBefore.IsZero() {
		return nil, errors.New("not_before and not_after are required")
	}
	if !k.NotBefore.Equal(k.NotBefore.Truncate(time.Second)) || !k.NotAfter.Equal(k.NotAfter.Truncate(time.Second)) {
		return nil, errors.New("not_before and not_after are not whole seconds")
	}
	return []byte(`{"kid":"` + k.KID +
		`","public_key":"` + base64.StdEncoding.EncodeToString(pub) +
		`","not_before":"` + k.NotBefore.UTC().Format(keyTimeLayout) +
		`","not_after":"` + k.NotAfter.UTC().Format(keyTimeLayout) + `"}`), nil
}

// verifyEndorsementSignature checks the form and the signature of k's endorsement against roots,
// not its window.
func verifyEndorsementSignature(roots []*x509.Certificate, k ServerKey) error {
	if k.Endorsement == "" {
		return fmt.Errorf("%w: %q", ErrEndorsementMissing, k.KID)
	}
	payload, err := endorsementPayload(k)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrEndorsementInvalid, k.KID, err)
	}
	parts := strings.Split(k.Endorsement, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: %q: not a compact JWS", ErrEndorsementInvalid, k.KID)
	}
	enc := base64.RawURLEncoding
	if parts[0] != enc.EncodeToString([]byte(EndorsementHeader)) {
		return fmt.Errorf("%w: %q: protected header is not %s", ErrEndorsementInvalid, k.KID, EndorsementHeader)
	}
	if parts[1] != enc.EncodeToString(payload) {
		return fmt.Errorf("%w: %q: payload is not this key's kid, public_key and window", ErrEndorsementInvalid, k.KID)
	}
	sig, err := enc.Strict().DecodeString(parts[2])
	if err != nil || len(sig) != 96 {
		return fmt.Errorf("%w: %q: signature is not 96 bytes of base64url", ErrEndorsementInvalid, k.KID)
	}
	digest := sha512.Sum384([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])
	for _, root := range roots {
		if checkRoot(root) != nil {
			continue
		}
		if ecdsa.Verify(root.PublicKey.(*ecdsa.PublicKey), digest[:], r, s) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrEndorsementInvalid, k.KID)
}

// VerifyEndorsement checks that k carries an endorsement by one of roots (self-signed ECDSA
// P-384 CA certificates; others are ignored) over exactly its kid, public_key, not_before and
// not_after, and that its window has not ended at now (not_after, with MaxSkew of tolerance).
// A window that has not begun is fine: a next key is published ahead of its use.
func VerifyEndorsement(roots []*x509.Certificate, k ServerKey, now time.Time) error {
	if err := verifyEndorsementSignature(roots, k); err != nil {
		return err
	}
	if !now.Before(k.NotAfter.Add(MaxSkew)) {
		return fmt.Errorf("%w: %q ended %s", ErrEndorsementExpired, k.KID, k.NotAfter.UTC().Format(keyTimeLayout))
	}
	return nil
}

// endorsementCache remembers signature checks (not windows), so that the key list, read on every
// call, is verified once per key.
type endorsementCache struct {
	mu sync.Mutex
	m  map[string]error
}

func (e *endorsementCache) verify(roots []*x509.Certificate, k ServerKey, now time.Time) error {
	notAfter := "null"
	if k.NotAfter != nil {
		notAfter = k.NotAfter.UTC().Format(time.RFC3339Nano)
	}
	id := k.KID + "\x00" + k.PublicKey + "\x00" + k.NotBefore.UTC().Format(time.RFC3339Nano) + "\x00" + notAfter + "\x00" + k.Endorsement
	e.mu.Lock()
	err, ok := e.m[id]
	e.mu.Unlock()
	if !ok {
		err = verifyEndorsementSignature(roots, k)
		e.mu.Lock()
		if e.m == nil || len(e.m) > 64 {
			e.m = map[string]error{} // a few keys at a time: a reset is enough of an eviction
		}
		e.m[id] = err
		e.mu.Unlock()
	}
	if err != nil {
		return err
	}
	if !now.Before(k.NotAfter.Add(MaxSkew)) {
		return fmt.Errorf("%w: %q ended %s", ErrEndorsementExpired, k.KID, k.NotAfter.UTC().Format(keyTimeLayout))
	}
	return nil
}
