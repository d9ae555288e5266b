package serverkeys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"

	"github.com/samplero/samplero/ports"
)

// An endorsement is the offline root's signature over a server key's kid, public_key, not_before
// and not_after (PROTOCOL.md section 6; exact bytes in docs/protocol.md, "Additions"): a JWS in
// compact serialization, ES384 (the root is ECDSA P-384), whose protected header is exactly
// EndorsementHeader and whose payload is exactly KeyClaims.Payload. Nothing else is in it, so a
// client in any language can rebuild both from the GET /v1/keys entry and compare bytes.
const (
	// EndorsementType is the typ of an endorsement's protected header.
	EndorsementType = "samplero-key-endorsement"
	// EndorsementHeader is the protected header, byte for byte.
	EndorsementHeader = `{"alg":"ES384","typ":"samplero-key-endorsement"}`
	// endorsementSigLen is an ES384 signature: r‖s, 48 bytes each (RFC 7518 section 3.4).
	endorsementSigLen = 96
	// requestVersion is the samplero_endorsement_request member of a request file.
	requestVersion = 1
	// maxKeyWindow bounds not_after - not_before of a key the root endorses.
	maxKeyWindow = 10 * 366 * 24 * time.Hour
)

// Errors of endorsements; returned errors wrap them.
var (
	ErrEndorsementMalformed = errors.New("serverkeys: endorsement is malformed")
	ErrEndorsementMismatch  = errors.New("serverkeys: endorsement is for another key or window")
	ErrEndorsementSignature = errors.New("serverkeys: endorsement does not verify with the root")
)

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

// timeLayout is how times appear in GET /v1/keys and in endorsements.
const timeLayout = "2006-01-02T15:04:05Z"

// KeyClaims are the fields of a server key an endorsement covers.
type KeyClaims struct {
	KID       string
	PublicKey ed25519.PublicKey
	NotBefore time.Time
	NotAfter  time.Time
}

func (k *key) claims() KeyClaims {
	return KeyClaims{KID: k.kid, PublicKey: k.public(), NotBefore: k.notBefore, NotAfter: k.notAfter}
}

// ClaimsOf returns the covered fields of a published key.
func ClaimsOf(k ports.ServerKey) KeyClaims {
	return KeyClaims{KID: k.KID, PublicKey: ed25519.PublicKey(k.PublicKey), NotBefore: k.NotBefore, NotAfter: k.NotAfter}
}

// check validates the claims: a kid that is the key's, whole-second UTC times, a window of at
// most ten years.
func (c KeyClaims) check() error {
	switch {
	case len(c.PublicKey) != ed25519.PublicKeySize:
		return errors.New("public_key is not 32 bytes")
	case !kidPattern.MatchString(c.KID) || c.KID != KeyID(c.PublicKey):
		return fmt.Errorf("kid %q is not the kid of public_key (%s)", c.KID, KeyID(c.PublicKey))
	case c.NotBefore.IsZero() || !c.NotBefore.Equal(c.NotBefore.Truncate(time.Second)) || !c.NotAfter.Equal(c.NotAfter.Truncate(time.Second)):
		return errors.New("not_before and not_after must be whole seconds")
	case !c.NotAfter.After(c.NotBefore):
		return errors.New("not_after must be after not_before")
	case c.NotAfter.Sub(c.NotBefore) > maxKeyWindow:
		return errors.New("not_after is more than ten years after not_before")
	}
	return nil
}

// Payload is the exact payload an endorsement signs: a JSON object with these four members in
// this order, no white space, times as in GET /v1/keys, public_key in standard base64 with
// padding. Every character is ASCII and none needs escaping (kid is base64url).
func (c KeyClaims) Payload() []byte {
	return []byte(`{"kid":"` + c.KID +
		`","public_key":"` + base64.StdEncoding.EncodeToString(c.PublicKey) +
		`","not_before":"` + c.NotBefore.UTC().Format(timeLayout) +
		`","not_after":"` + c.NotAfter.UTC().Format(timeLayout) + `"}`)
}

// endorsementRequest is the file `samplero pki rotate-signing-key` writes for the offline machine.
type endorsementRequest struct {
	Version   int    `json:"samplero_endorsement_request"`
	KID       string `json:"kid"`
	PublicKey string `json:"public_key"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
}

// Request is the endorsement request file for these claims (JSON, one member per line).
func (c KeyClaims) Request() []byte {
	data, _ := json.MarshalIndent(endorsementRequest{
		Version:   requestVersion,
		KID:       c.KID,
		PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey),
		NotBefore: c.NotBefore.UTC().Format(timeLayout),
		NotAfter:  c.NotAfter.UTC().Format(timeLayout),
	}, "", "  ")
	return append(data, '\n')
}

// ParseRequest reads an endorsement request file and checks what it asks for.
func ParseRequest(data []byte) (KeyClaims, error) {
	var r endorsementRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return KeyClaims{}, fmt.Errorf("serverkeys: not an endorsement request: %w", err)
	}
	if r.Version != requestVersion {
		return KeyClaims{}, fmt.Errorf("serverkeys: not an endorsement request (samplero_endorsement_request is %d, want %d)", r.Version, requestVersion)
	}
	c, err := claimsFromStrings(r.KID, r.PublicKey, r.NotBefore, r.NotAfter)
	if err != nil {
		return KeyClaims{}, fmt.Errorf("serverkeys: endorsement request: %w", err)
	}
	return c, nil
}

func claimsFromStrings(kid, pub, nb, na string) (KeyClaims, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(pub)
	if err != nil {
		return KeyClaims{}, errors.New("public_key is not standard base64")
	}
	c := KeyClaims{KID: kid, PublicKey: ed25519.PublicKey(raw)}
	if c.NotBefore, err = parseTime(nb); err != nil {
		return KeyClaims{}, fmt.Errorf("not_before: %w", err)
	}
	if c.NotAfter, err = parseTime(na); err != nil {
		return KeyClaims{}, fmt.Errorf("not_after: %w", err)
	}
	if err := c.check(); err != nil {
		return KeyClaims{}, err
	}
	return c, nil
}

// parseTime accepts exactly the layout of GET /v1/keys, so that a time reads back to the same bytes.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("%q is not a UTC time like 2026-11-29T12:00:00Z", s)
	}
	return t, nil
}

// rootPublicKey returns the P-384 key of a self-signed CA certificate: only the root endorses
// (an intermediate's key lives on the server and must never vouch for server keys).
func rootPublicKey(root *x509.Certificate) (*ecdsa.PublicKey, error) {
	if root == nil {
		return nil, errors.New("serverkeys: no root certificate")
	}
	if !root.IsCA || !bytes.Equal(root.RawSubject, root.RawIssuer) || root.CheckSignatureFrom(root) != nil {
		return nil, errors.New("serverkeys: the endorsing certificate is not a self-signed root CA")
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, errors.New("serverkeys: the root key is not ECDSA P-384")
	}
	return pub, nil
}

// Endorse signs c with the root key. rootCert is the root's certificate: the key must be its
// key, and the endorsement is verified against it before it is returned.
func Endorse(rootKey crypto.Signer, rootCert *x509.Certificate, c KeyClaims) (string, error) {
	if err := c.check(); err != nil {
		return "", fmt.Errorf("serverkeys: %w", err)
	}
	pub, err := rootPublicKey(rootCert)
	if err != nil {
		return "", err
	}
	if rootKey == nil || !pub.Equal(rootKey.Public()) {
		return "", errors.New("serverkeys: the root key is not the key of the root certificate")
	}
	var signingKey any = cryptosigner.Opaque(rootKey)
	if k, ok := rootKey.(*ecdsa.PrivateKey); ok {
		signingKey = k
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: signingKey}, (&jose.SignerOptions{}).WithType(EndorsementType))
	if err != nil {
		return "", fmt.Errorf("serverkeys: endorsement signer: %w", err)
	}
	jws, err := signer.Sign(c.Payload())
	if err != nil {
		return "", fmt.Errorf("serverkeys: sign endorsement: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("serverkeys: serialize endorsement: %w", err)
	}
	if err := VerifyEndorsement(rootCert, out, c); err != nil {
		return "", fmt.Errorf("serverkeys: the new endorsement does not verify: %w", err)
	}
	return out, nil
}

// checkForm checks everything but the signature: three segments, the exact header, the exact
// payload of c, a signature of the right length.
func checkForm(endorsement string, c KeyClaims) error {
	parts := strings.Split(endorsement, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: not a compact JWS", ErrEndorsementMalformed)
	}
	header, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil || string(header) != EndorsementHeader {
		return fmt.Errorf("%w: protected header is not %s", ErrEndorsementMalformed, EndorsementHeader)
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("%w: payload is not base64url", ErrEndorsementMalformed)
	}
	if !bytes.Equal(payload, c.Payload()) {
		return fmt.Errorf("%w: %s", ErrEndorsementMismatch, payload)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(sig) != endorsementSigLen {
		return fmt.Errorf("%w: signature is not 96 bytes of base64url", ErrEndorsementMalformed)
	}
	return nil
}

// VerifyEndorsement checks that endorsement is the root's endorsement of exactly c.
func VerifyEndorsement(root *x509.Certificate, endorsement string, c KeyClaims) error {
	pub, err := rootPublicKey(root)
	if err != nil {
		return err
	}
	if err := checkForm(endorsement, c); err != nil {
		return err
	}
	jws, err := jose.ParseSignedCompact(endorsement, []jose.SignatureAlgorithm{jose.ES384})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEndorsementMalformed, err)
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return ErrEndorsementSignature
	}
	if !bytes.Equal(payload, c.Payload()) {
		return ErrEndorsementMismatch
	}
	return nil
}

// EndorsedClaims reads the claims an endorsement carries, without verifying it (to find which
// key it is for).
func EndorsedClaims(endorsement string) (KeyClaims, error) {
	parts := strings.Split(strings.TrimSpace(endorsement), ".")
	if len(parts) != 3 {
		return KeyClaims{}, fmt.Errorf("%w: not a compact JWS", ErrEndorsementMalformed)
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return KeyClaims{}, fmt.Errorf("%w: payload is not base64url", ErrEndorsementMalformed)
	}
	var p struct {
		KID       string `json:"kid"`
		PublicKey string `json:"public_key"`
		NotBefore string `json:"not_before"`
		NotAfter  string `json:"not_after"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return KeyClaims{}, fmt.Errorf("%w: payload: %v", ErrEndorsementMalformed, err)
	}
	c, err := claimsFromStrings(p.KID, p.PublicKey, p.NotBefore, p.NotAfter)
	if err != nil {
		return KeyClaims{}, fmt.Errorf("%w: %v", ErrEndorsementMalformed, err)
	}
	if !bytes.Equal(payload, c.Payload()) {
		return KeyClaims{}, fmt.Errorf("%w: payload is not in canonical form", ErrEndorsementMalformed)
	}
	return c, nil
}

// endorsementFile is <kid>.endorsement in the key directory. installed_at is when
// `samplero pki install-endorsement` put it there: with the endorsement gate, a successor cannot
// take over before it (see the package doc).
type endorsementFile struct {
	KID         string    `json:"kid"`
	Endorsement string    `json:"endorsement"`
	InstalledAt time.Time `json:"installed_at"`
}

// loadEndorsement reads k's endorsement file, if any. One that does not parse is an error; one
// that does not verify (or, without a root, does not match the key) is left out and reported in
// the returned warning.
func loadEndorsement(dir string, k *key, root *x509.Certificate) (warning string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, k.kid+endorseSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var f endorsementFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return "", err
	}
	if f.KID != k.kid || f.InstalledAt.IsZero() {
		return "", fmt.Errorf("holds kid %q and installed_at %v, want kid %q and a time", f.KID, f.InstalledAt, k.kid)
	}
	if root != nil {
		err = VerifyEndorsement(root, f.Endorsement, k.claims())
	} else {
		err = checkForm(f.Endorsement, k.claims())
	}
	if err != nil {
		return fmt.Sprintf("%s: %v", k.kid, err), nil
	}
	k.endorsement, k.endorsedAt = f.Endorsement, f.InstalledAt.UTC().Truncate(time.Second)
	return "", nil
}

// writeEndorsement installs endorsement for k (already verified) unless the same one is there.
func writeEndorsement(dir string, k *key, endorsement string, now time.Time) (changed bool, err error) {
	path := filepath.Join(dir, k.kid+endorseSuffix)
	if data, err := os.ReadFile(path); err == nil {
		var f endorsementFile
		if json.Unmarshal(data, &f) == nil && f.KID == k.kid && f.Endorsement == endorsement && !f.InstalledAt.IsZero() {
			return false, nil
		}
	}
	data, err := json.MarshalIndent(endorsementFile{KID: k.kid, Endorsement: endorsement, InstalledAt: now.UTC().Truncate(time.Second)}, "", "  ")
	if err != nil {
		return false, err
	}
	if err := writeFileAtomic(path, append(data, '\n'), keyMode); err != nil {
		return false, err
	}
	return true, nil
}
