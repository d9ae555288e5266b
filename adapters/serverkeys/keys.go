// Package serverkeys keeps the server's Ed25519 signing keys, the ones that sign device responses
// and leases (PROTOCOL.md sections 3 and 4), in a directory of files. It implements
// ports.ServerKeys and ports.LeaseSigner.
package serverkeys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Key statuses (PROTOCOL.md section 3): only the active key signs; a next key is published ahead
// of its use; a retired key is never used again but stays published so that what it signed can
// still be checked.
const (
	StatusActive  = "active"
	StatusNext    = "next"
	StatusRetired = "retired"
)

// LeaseType is the typ header of a lease (PROTOCOL.md section 4).
const LeaseType = "samplero-lease+jwt"

const (
	dirMode       = 0o700
	keyMode       = 0o600
	firstValidity = 2 // years
	fileSuffix    = ".json"
)

// keyFile is one key on disk, <kid>.json, mode 0600:
//
//	{"kid": "…", "status": "active|next|retired", "not_before": "2026-11-29T12:00:00Z",
//	 "not_after": "2028-11-29T12:00:00Z", "private_key": "-----BEGIN PRIVATE KEY-----\n…"}
//
// private_key is the Ed25519 key as PKCS#8 PEM. An operator rotates keys by editing statuses (one
// active) and adding files; the kid is checked against the key on load.
type keyFile struct {
	KID        string    `json:"kid"`
	Status     string    `json:"status"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	PrivateKey string    `json:"private_key"`
}

type key struct {
	kid       string
	priv      ed25519.PrivateKey
	status    string
	notBefore time.Time
	notAfter  time.Time
}

// Keys is the set of server keys read from a directory at Open. It does not change afterwards;
// a rotation takes effect at the next start, so every instance started from the same files signs
// with the same key. Safe for concurrent use.
type Keys struct {
	issuer string
	keys   []key // active first, then next, then retired
}

var (
	_ ports.ServerKeys  = (*Keys)(nil)
	_ ports.LeaseSigner = (*Keys)(nil)
)

// KeyID is the kid of an Ed25519 public key: base64url without padding of the first 16 bytes of
// SHA-256 over the raw 32-byte key. It depends on the key alone, so a client can recompute it from
// public_key in GET /v1/keys.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Open reads the keys in dir. On first start (dir missing or empty) it makes dir (0700) with one
// active key valid for two years from now. It fails unless exactly one key is active.
func Open(dir, issuer string, clock ports.Clock) (*Keys, error) {
	if strings.TrimSpace(issuer) == "" {
		return nil, errors.New("serverkeys: issuer is empty")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0:
		if err := create(dir, clock.Now()); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	keys, err := load(dir)
	if err != nil {
		return nil, err
	}
	return &Keys{issuer: issuer, keys: keys}, nil
}

// create writes the first key into a temporary sibling directory and renames it to dir, so that
// two processes starting at once do not both make an active key: the second rename fails and that
// process reads the first one's key.
func create(dir string, now time.Time) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-*")
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, dirMode); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	kf := keyFile{
		KID:        KeyID(pub),
		Status:     StatusActive,
		NotBefore:  now,
		NotAfter:   now.AddDate(firstValidity, 0, 0),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, kf.KID+fileSuffix), append(data, '\n'), keyMode); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	// os.Rename refuses to replace a directory: remove an empty one first (never a full one).
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if entries, rerr := os.ReadDir(dir); rerr == nil && len(entries) > 0 {
			return nil // another process created the keys meanwhile
		}
		return fmt.Errorf("serverkeys: %w", err)
	}
	return nil
}

func load(dir string) ([]key, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: %w", err)
	}
	var keys []key
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		k, err := loadKey(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("serverkeys: %s: %w", name, err)
		}
		if name != k.kid+fileSuffix {
			return nil, fmt.Errorf("serverkeys: %s holds key %s", name, k.kid)
		}
		keys = append(keys, k)
	}
	active := 0
	for _, k := range keys {
		if k.status == StatusActive {
			active++
		}
	}
	if active != 1 {
		return nil, fmt.Errorf("serverkeys: %s has %d active keys, want exactly one", dir, active)
	}
	slices.SortStableFunc(keys, func(a, b key) int {
		if d := statusOrder(a.status) - statusOrder(b.status); d != 0 {
			return d
		}
		return a.notBefore.Compare(b.notBefore)
	})
	return keys, nil
}

func statusOrder(s string) int {
	switch s {
	case StatusActive:
		return 0
	case StatusNext:
		return 1
	default:
		return 2
	}
}

func loadKey(path string) (key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return key{}, err
	}
	var kf keyFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return key{}, err
	}
	switch kf.Status {
	case StatusActive, StatusNext, StatusRetired:
	default:
		return key{}, fmt.Errorf("unknown status %q", kf.Status)
	}
	if kf.NotBefore.IsZero() || !kf.NotAfter.After(kf.NotBefore) {
		return key{}, errors.New("not_after must be after not_before")
	}
	b, _ := pem.Decode([]byte(kf.PrivateKey))
	if b == nil || b.Type != "PRIVATE KEY" {
		return key{}, errors.New("private_key is not a PKCS#8 PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return key{}, err
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return key{}, fmt.Errorf("private_key is %T, want Ed25519", parsed)
	}
	if kid := KeyID(priv.Public().(ed25519.PublicKey)); kid != kf.KID {
		return key{}, fmt.Errorf("kid %q does not match the key (%s)", kf.KID, kid)
	}
	return key{kid: kf.KID, priv: priv, status: kf.Status, notBefore: kf.NotBefore.UTC(), notAfter: kf.NotAfter.UTC()}, nil
}

// Issuer is the issuer name put in leases and GET /v1/keys.
func (k *Keys) Issuer() string { return k.issuer }

// Active returns the one active key (Open guarantees there is exactly one).
func (k *Keys) Active() (string, crypto.Signer) {
	return k.keys[0].kid, k.keys[0].priv
}

// Published lists every key, active first, then next, then retired. Endorsement is nil until the
// offline root's endorsement is defined.
func (k *Keys) Published() []ports.ServerKey {
	out := make([]ports.ServerKey, 0, len(k.keys))
	for _, key := range k.keys {
		out = append(out, ports.ServerKey{
			KID:       key.kid,
			PublicKey: slices.Clone([]byte(key.priv.Public().(ed25519.PublicKey))),
			NotBefore: key.notBefore,
			NotAfter:  key.notAfter,
			Status:    key.status,
		})
	}
	return out
}

// SignLease signs claims as a compact JWS with the active key, protected header exactly
// {"alg":"EdDSA","typ":"samplero-lease+jwt","kid":"<kid>"}. An empty claims.Issuer is filled in with
// this server's issuer; a different one is refused, as a lease a client cannot match to
// GET /v1/keys would be useless.
func (k *Keys) SignLease(_ context.Context, claims ports.LeaseClaims) (string, error) {
	if claims.Issuer == "" {
		claims.Issuer = k.issuer
	}
	if claims.Issuer != k.issuer {
		return "", errs.Internalf("serverkeys: lease issuer %q is not this server's %q", claims.Issuer, k.issuer)
	}
	if claims.Entitlements == nil {
		claims.Entitlements = []string{} // "ent" is a list, never null
	}
	kid, _ := k.Active()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: k.keys[0].priv},
		(&jose.SignerOptions{}).WithType(LeaseType).WithHeader("kid", kid),
	)
	if err != nil {
		return "", errs.Internalf("serverkeys: lease signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", errs.Internalf("serverkeys: encode lease: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", errs.Internalf("serverkeys: sign lease: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", errs.Internalf("serverkeys: serialize lease: %w", err)
	}
	return token, nil
}
