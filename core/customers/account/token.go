package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
	"unicode"

	"github.com/samplero/samplero/core/errs"
)

// Lifetimes and intervals.
const (
	// SignInLinkTTL is how long a sign-in link works (ports.SignInLink).
	SignInLinkTTL = 15 * time.Minute
	// DefaultSessionTTL is how long a session lasts unless configured otherwise.
	DefaultSessionTTL = 30 * 24 * time.Hour
	// TouchInterval is the least time between two writes of a session's LastSeenAt: a busy portal
	// page must not turn every request into a write.
	TouchInterval = 5 * time.Minute
)

// PurposeSignIn is the purpose of a sign-in link.
const PurposeSignIn = "sign_in"

// Id and token prefixes.
const (
	IDPrefixAccount    = "cus_"
	IDPrefixSession    = "ses_"
	SessionTokenPrefix = "sps_" // Samplero portal session: recognisable by secret scanners
)

// tokenBytes is the entropy of every token: 256 bits, beyond any guessing, so the lookup by hash
// needs no rate limit of its own.
const tokenBytes = 32

// tokenLen is the length of tokenBytes in unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix followed by 26 lower-case base32 characters of 128 random bits.
func NewID(prefix string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error and always fills b (Go 1.24+).
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

func randomToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is what is stored of a token: SHA-256 of its text. A fast hash is right here (unlike
// passwords): the token has 256 random bits, so the hash cannot be reversed by guessing.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewLinkToken returns a fresh sign-in link token (32 random bytes, base64url) and its hash.
func NewLinkToken() (token string, hash []byte) {
	t := randomToken()
	return t, HashToken(t)
}

// NewSessionToken returns a fresh session token ("sps_" + 32 random bytes, base64url) and its hash.
func NewSessionToken() (token string, hash []byte) {
	t := SessionTokenPrefix + randomToken()
	return t, HashToken(t)
}

// WellFormedLinkToken reports whether token has the shape NewLinkToken gives, so that junk is
// refused without a database round trip.
func WellFormedLinkToken(token string) bool { return wellFormed(token) }

// WellFormedSessionToken reports whether token has the shape NewSessionToken gives.
func WellFormedSessionToken(token string) bool {
	rest, ok := strings.CutPrefix(token, SessionTokenPrefix)
	return ok && wellFormed(rest)
}

func wellFormed(t string) bool {
	if len(t) != tokenLen {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(t)
	return err == nil && len(b) == tokenBytes
}

// LinkMessageID is the e-mail idempotency key of a sign-in link: "signin-" and the first 16 hex
// digits of the token's hash. It names the link without revealing it.
func LinkMessageID(tokenHash []byte) string {
	h := hex.EncodeToString(tokenHash)
	if len(h) > 16 {
		h = h[:16]
	}
	return "signin-" + h
}

// Session kinds, as ports.SessionKind spells them.
const (
	SessionKindCookie = "cookie"
	SessionKindBearer = "bearer"
)

// CheckSessionKind accepts the two session kinds.
func CheckSessionKind(kind string) error {
	if kind != SessionKindCookie && kind != SessionKindBearer {
		return errs.E(errs.Invalid, CodeSessionKindInvalid, "the session kind must be cookie or bearer")
	}
	return nil
}

// SessionActive reports whether a session authenticates at now: not revoked and not yet expired
// (it expires at ExpiresAt exactly).
func SessionActive(revokedAt *time.Time, expiresAt, now time.Time) bool {
	return revokedAt == nil && now.Before(expiresAt)
}

// TouchDue reports whether LastSeenAt is old enough to be written again.
func TouchDue(lastSeen, now time.Time) bool { return now.Sub(lastSeen) >= TouchInterval }

// Bounds of what a session keeps about its client (shown in the customer's list of sessions).
const (
	maxUserAgentLen = 256
	maxAddrLen      = 64
)

// ClientMeta cleans what a client says about itself before it is stored: valid UTF-8, no control
// characters, bounded lengths.
func ClientMeta(addr, userAgent string) (string, string) {
	return clean(addr, maxAddrLen), clean(userAgent, maxUserAgentLen)
}

func clean(s string, limit int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > limit {
		s = s[:limit]
		s = strings.ToValidUTF8(s, "") // a cut through a multi-byte character
	}
	return strings.TrimSpace(s)
}
