package ports

import (
	"context"
	"time"
)

// ---------------------------------------------------------------------------------------------
// The customers context: accounts, e-mail link sign-in, optional passwords, sessions.

// Account is a customer account as stored. Email is lower case and unique; an account exists only
// once its address was verified (a sign-in link was used), so every account's e-mail is verified.
type Account struct {
	ID              string // cus_…
	Email           string
	PasswordHash    string // argon2id PHC string; "" = no password set
	EmailVerifiedAt time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// SignInLink is a single-use sign-in token as stored: only its hash.
type SignInLink struct {
	TokenHash []byte // SHA-256 of the token
	Email     string
	Purpose   string // sign_in
	CreatedAt time.Time
	ExpiresAt time.Time // 15 minutes after creation
	UsedAt    *time.Time
}

// SessionKind says how a session token travels.
type SessionKind string

const (
	SessionCookie SessionKind = "cookie" // the portal: HttpOnly, Secure, SameSite cookie
	SessionBearer SessionKind = "bearer" // the API: Authorization: Bearer
)

// Session is a signed-in session as stored: only the token's hash.
type Session struct {
	ID         string // ses_…
	TokenHash  []byte
	AccountID  string
	Kind       SessionKind
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
	UserAgent  string
	Addr       string
}

// AccountRepo stores accounts.
type AccountRepo interface {
	// Insert adds an account; a duplicate e-mail is errs.Conflict code CONFLICT.
	Insert(ctx context.Context, a Account) error
	Get(ctx context.Context, id string) (Account, error)
	ByEmail(ctx context.Context, email string) (Account, error)
	Update(ctx context.Context, a Account) error
}

// SignInLinkRepo stores sign-in tokens.
type SignInLinkRepo interface {
	Insert(ctx context.Context, l SignInLink) error
	// Use marks the unused, unexpired link with this hash used at now and returns it, in one
	// conditional update: of two concurrent uses exactly one succeeds; the other, a used, an
	// expired or an unknown link is errs.Unauthenticated code SIGN_IN_LINK_INVALID.
	Use(ctx context.Context, tokenHash []byte, now time.Time) (SignInLink, error)
}

// SessionRepo stores sessions.
type SessionRepo interface {
	Insert(ctx context.Context, s Session) error
	// ByTokenHash returns the session; NOT_FOUND when there is none.
	ByTokenHash(ctx context.Context, hash []byte) (Session, error)
	// Touch sets LastSeenAt (best effort; callers may skip it when it was set recently).
	Touch(ctx context.Context, id string, at time.Time) error
	Revoke(ctx context.Context, id string, at time.Time) error
	// RevokeAll revokes every unrevoked session of the account and returns how many.
	RevokeAll(ctx context.Context, accountID string, at time.Time) (int, error)
}

// SessionMeta describes where a sign-in comes from (kept on the session, for the customer's list).
type SessionMeta struct {
	Addr      string
	UserAgent string
}

// SessionGrant is a new session: the token is shown once and never stored.
type SessionGrant struct {
	Token     string
	Session   Session
	Account   Account
	ExpiresAt time.Time
}

// CustomerIdentity is the signed-in customer of a request.
type CustomerIdentity struct {
	AccountID string
	Email     string // verified, lower case: the owner e-mail licenses and orders are scoped by
	SessionID string
}

// Customers is the driving port of the customers context. Sign-in and recovery calls answer the
// same whether an address is known or not, and are rate limited per address and per client
// (errs.RateLimited code RATE_LIMITED with RetryAfter).
type Customers interface {
	// RequestSignInLink e-mails a single-use link (15 minutes) to email. It returns nil for any
	// well-formed address, known or not (an unknown address gets a link that creates its account).
	RequestSignInLink(ctx context.Context, email, addr string) error
	// SignInWithLink uses the link's token once: the account is created if it does not exist yet,
	// and a session of kind starts. A used, expired or unknown token is errs.Unauthenticated code
	// SIGN_IN_LINK_INVALID.
	SignInWithLink(ctx context.Context, token string, kind SessionKind, meta SessionMeta) (SessionGrant, error)
	// SignInWithPassword checks the password (argon2id); a wrong password, an unknown address or
	// an account without a password are the same errs.Unauthenticated code INVALID_CREDENTIALS.
	SignInWithPassword(ctx context.Context, email, password string, kind SessionKind, meta SessionMeta) (SessionGrant, error)
	// Authenticate resolves a session token: errs.Unauthenticated code SESSION_INVALID when it is
	// unknown, revoked or expired.
	Authenticate(ctx context.Context, token string) (CustomerIdentity, error)
	// SetPassword sets or replaces the account's password (at least 10 characters).
	SetPassword(ctx context.Context, accountID, password string) error
	Account(ctx context.Context, accountID string) (Account, error)
	SignOut(ctx context.Context, sessionToken string) error
	// SignOutEverywhere revokes every session of the account.
	SignOutEverywhere(ctx context.Context, accountID string) (int, error)
}
