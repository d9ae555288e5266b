package samplero

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Reasons VerifyLease refuses a lease; the returned error wraps one of them.
var (
	ErrLeaseMalformed     = errors.New("samplero: lease is malformed")
	ErrLeaseAlg           = errors.New("samplero: lease alg is not EdDSA")
	ErrLeaseType          = errors.New("samplero: lease typ is not samplero-lease+jwt")
	ErrLeaseUnknownKey    = errors.New("samplero: lease signed by an untrusted key")
	ErrLeaseSignature     = errors.New("samplero: lease signature does not verify")
	ErrLeaseIssuer        = errors.New("samplero: lease issuer does not match")
	ErrLeaseFingerprint   = errors.New("samplero: lease is for another device fingerprint")
	ErrLeaseKey           = errors.New("samplero: lease is bound to another device key")
	ErrLeaseProduct       = errors.New("samplero: lease does not cover the product")
	ErrLeaseStatus        = errors.New("samplero: license was not active when the lease was issued")
	ErrLeaseNotYetValid   = errors.New("samplero: lease is not valid yet")
	ErrLeaseExpired       = errors.New("samplero: lease has expired")
	ErrClockRollback      = errors.New("samplero: the clock was set back")
	ErrNoLease            = errors.New("samplero: no lease stored")
	errLeaseNeedsSettings = errors.New("samplero: lease check needs keys, issuer, fingerprint, thumbprint and product")
)

// LeaseTyp is the JOSE typ of a lease.
const LeaseTyp = "samplero-lease+jwt"

// Lease is a verified lease (PROTOCOL.md section 4).
type Lease struct {
	Token            string
	KeyID            string // kid of the server key that signed it
	Issuer           string
	ActivationID     string // sub
	LicenseID        string // lic
	Product          string // prd
	Entitlements     []string
	Fingerprint      string // fpr
	KeyThumbprint    string // cnf.kid
	IssuedAt         time.Time
	NotBefore        time.Time
	HeartbeatDue     time.Time  // hbt
	ExpiresAt        time.Time  // exp: end of offline validity
	LicenseExpiresAt *time.Time // lexp; nil when the license does not expire
	Status           string     // st
}

// LeaseCheck is what a lease is checked against. Every field but NewestSeen and Skew is required.
type LeaseCheck struct {
	Keys        map[string]ed25519.PublicKey // trusted server keys by kid
	Issuer      string
	Fingerprint string
	Thumbprint  string // of this device's key
	Product     string // the product asking
	Now         time.Time
	// NewestSeen is the newest lease iat, server created or check time this device has seen; a
	// Now before it means the clock was set back (ErrClockRollback).
	NewestSeen time.Time
	// Skew tolerates a device clock behind the server's by up to this much, for nbf and the
	// rollback check only (never for exp). Zero is strict.
	Skew time.Duration
}

type leaseHeader struct {
	Alg  string          `json:"alg"`
	Typ  string          `json:"typ"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

type leaseClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Lic string   `json:"lic"`
	Prd string   `json:"prd"`
	Ent []string `json:"ent"`
	Fpr string   `json:"fpr"`
	Cnf struct {
		Kid string `json:"kid"`
	} `json:"cnf"`
	Iat  *json.Number `json:"iat"`
	Nbf  *json.Number `json:"nbf"`
	Hbt  *json.Number `json:"hbt"`
	Exp  *json.Number `json:"exp"`
	Lexp *json.Number `json:"lexp"`
	St   string       `json:"st"`
}

func numericDate(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	if i, err := n.Int64(); err == nil {
		return time.Unix(i, 0).UTC(), true
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e15 || f < -1e15 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0).UTC(), true
}

func decodeSegment(s string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// VerifyLease checks token against every rule of PROTOCOL.md section 4, in this order: shape, alg
// (must be EdDSA: the verifier uses Ed25519 by configuration and only checks the header agrees),
// typ, kid trusted, signature, iss, fpr, cnf.kid, ent covers the product, st active, clock
// rollback, nbf ≤ now < exp.
func VerifyLease(token string, opts LeaseCheck) (*Lease, error) {
	if len(opts.Keys) == 0 || opts.Issuer == "" || opts.Fingerprint == "" || opts.Thumbprint == "" || opts.Product == "" || opts.Now.IsZero() {
		return nil, errLeaseNeedsSettings
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrLeaseMalformed)
	}
	var hdr leaseHeader
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("%w: header", ErrLeaseMalformed)
	}
	if hdr.Alg != "EdDSA" {
		return nil, ErrLeaseAlg
	}
	if hdr.Typ != LeaseTyp {
		return nil, ErrLeaseType
	}
	if len(hdr.Crit) > 0 {
		return nil, fmt.Errorf("%w: crit header", ErrLeaseMalformed)
	}
	pub, ok := opts.Keys[hdr.Kid]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %q", ErrLeaseUnknownKey, hdr.Kid)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding", ErrLeaseMalformed)
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return nil, ErrLeaseSignature
	}
	var c leaseClaims
	if err := decodeSegment(parts[1], &c); err != nil {
		return nil, fmt.Errorf("%w: payload", ErrLeaseMalformed)
	}
	l := &Lease{
		Token: token, KeyID: hdr.Kid, Issuer: c.Iss, ActivationID: c.Sub, LicenseID: c.Lic, Product: c.Prd,
		Entitlements: c.Ent, Fingerprint: c.Fpr, KeyThumbprint: c.Cnf.Kid, Status: c.St,
	}
	var okIat, okNbf, okExp, okHbt bool
	l.IssuedAt, okIat = numericDate(c.Iat)
	l.NotBefore, okNbf = numericDate(c.Nbf)
	l.ExpiresAt, okExp = numericDate(c.Exp)
	l.HeartbeatDue, okHbt = numericDate(c.Hbt)
	if !okIat || !okNbf || !okExp || !okHbt {
		return nil, fmt.Errorf("%w: iat, nbf, hbt and exp are required", ErrLeaseMalformed)
	}
	if c.Lexp != nil {
		t, ok := numericDate(c.Lexp)
		if !ok {
			return nil, fmt.Errorf("%w: lexp", ErrLeaseMalformed)
		}
		l.LicenseExpiresAt = &t
	}
	if l.Issuer != opts.Issuer {
		return nil, ErrLeaseIssuer
	}
	if l.Fingerprint != opts.Fingerprint {
		return nil, ErrLeaseFingerprint
	}
	if l.KeyThumbprint != opts.Thumbprint {
		return nil, ErrLeaseKey
	}
	if !contains(l.Entitlements, opts.Product) {
		return nil, ErrLeaseProduct
	}
	if l.Status != "active" {
		return nil, fmt.Errorf("%w (%q)", ErrLeaseStatus, l.Status)
	}
	now := opts.Now
	// NewestSeen carries the newest iat and server created seen so far (CheckOffline records
	// them); this lease's own iat is judged by nbf, which equals it.
	if now.Add(opts.Skew).Before(opts.NewestSeen) {
		return nil, ErrClockRollback
	}
	if now.Add(opts.Skew).Before(l.NotBefore) {
		return nil, ErrLeaseNotYetValid
	}
	if !now.Before(l.ExpiresAt) {
		return nil, ErrLeaseExpired
	}
	return l, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
