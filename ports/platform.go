package ports

import (
	"context"
	"crypto"
	"time"
)

// Clock is the only source of time for the cores.
type Clock interface {
	Now() time.Time
}

// Tx runs fn in one database transaction. The transaction travels in the context: every repository
// method called with the ctx handed to fn takes part in it. fn's error (or a panic) rolls back;
// nil commits. Nested calls join the outer transaction. On a serialization failure or deadlock the
// implementation may run fn again, so fn must not have effects outside the database.
type Tx interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// NonceStore remembers (keyid, nonce) pairs for replay protection (PROTOCOL.md section 2 step 7).
// It is shared by every server instance.
type NonceStore interface {
	// Reserve records the pair for ttl. It returns fresh=false when the pair was already recorded
	// and has not expired. It is atomic: of two concurrent calls with the same pair exactly one
	// gets fresh=true. Any failure to read or write the store is an error (the caller fails closed).
	Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (fresh bool, err error)
}

// Limit is a rate limit: at most Max events per Window.
type Limit struct {
	Max    int
	Window time.Duration
}

// RateLimiter counts events per key across every instance that shares its backend.
type RateLimiter interface {
	// Allow counts one event for key and reports whether it stays within limit; when it does not,
	// retryAfter says when the next event would be allowed. An error means the backend failed.
	Allow(ctx context.Context, key string, limit Limit) (ok bool, retryAfter time.Duration, err error)
}

// KeyVault holds the two license-key secrets, which live outside the database (PROTOCOL.md section 1).
type KeyVault interface {
	// Lookup returns HMAC-SHA-256 of the canonical key under the lookup secret.
	Lookup(canonicalKey string) []byte
	// Seal encrypts the canonical key (authenticated encryption, random nonce).
	Seal(canonicalKey string) ([]byte, error)
	// Open decrypts what Seal produced.
	Open(sealed []byte) (string, error)
}

// ServerKey is one published response/lease signing key (PROTOCOL.md section 6, GET /v1/keys).
type ServerKey struct {
	KID         string
	PublicKey   []byte // raw 32-byte Ed25519 public key
	NotBefore   time.Time
	NotAfter    time.Time
	Status      string  // active | next | retired
	Endorsement *string // the offline root's endorsement; nil until the PKI issue defines it
}

// ServerKeys holds the server's Ed25519 signing keys.
type ServerKeys interface {
	// Issuer is the issuer name put in leases and GET /v1/keys.
	Issuer() string
	// Active returns the one key that signs now.
	Active() (kid string, signer crypto.Signer)
	// Published lists every key clients should know (active, next and retired).
	Published() []ServerKey
}

// LeaseClaims is the payload of a lease (PROTOCOL.md section 4). Times are unix seconds.
type LeaseClaims struct {
	Issuer       string   `json:"iss"`
	Subject      string   `json:"sub"`
	License      string   `json:"lic"`
	Product      string   `json:"prd"`
	Entitlements []string `json:"ent"`
	Fingerprint  string   `json:"fpr"`
	Confirmation struct {
		KID string `json:"kid"`
	} `json:"cnf"`
	IssuedAt      int64  `json:"iat"`
	NotBefore     int64  `json:"nbf"`
	HeartbeatDue  int64  `json:"hbt"`
	Expires       int64  `json:"exp"`
	LicenseExpiry *int64 `json:"lexp,omitempty"`
	Status        string `json:"st"`
}

// LeaseSigner signs leases as compact JWS with the active server key.
type LeaseSigner interface {
	SignLease(ctx context.Context, claims LeaseClaims) (string, error)
}

// EmailMessage is one outgoing e-mail, already rendered.
type EmailMessage struct {
	ID       string // idempotency key: the same ID is never delivered twice where the provider allows it
	To       string
	Subject  string
	Text     string
	HTML     string
	Template string // template name, for logs and metrics
}

// Mailer delivers one e-mail.
type Mailer interface {
	// Send delivers msg and returns the provider's message id. A permanent rejection is an
	// errs.Invalid error (do not retry); anything else may be retried. Sending the same msg.ID
	// twice delivers at most once where the provider supports idempotency (the file outbox does).
	Send(ctx context.Context, msg EmailMessage) (providerID string, err error)
}

// Processes starts durable processes (Temporal workflows). IDs are deterministic, so starting the
// same process twice is a no-op that returns the existing one.
type Processes interface {
	// SendEmail starts the e-mail delivery workflow for msg (workflow ID email/<msg.ID>).
	SendEmail(ctx context.Context, msg EmailMessage) error
	// StartFulfillment starts the fulfilment of a paid order (workflow ID fulfillment/<orderID>).
	// Starting it again, while it runs or after it finished, is a no-op.
	StartFulfillment(ctx context.Context, orderID string) error
	// StartRevocation starts the revocation of an order's licenses and entitlements after a refund
	// or dispute (workflow ID revocation/<orderID>); status is "refunded" or "disputed". Starting
	// it again is a no-op.
	StartRevocation(ctx context.Context, orderID, status, reason string) error
}
