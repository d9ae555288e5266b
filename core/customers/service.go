// Package customers is the customers context's use cases: sign-in by e-mail link (which creates the
// account on first use), optional passwords (argon2id), sessions for the portal (cookie) and the
// API (bearer), sign-out and sign-out everywhere. The rules live in package account; this package
// applies them through the ports, one transaction per use case.
//
// An account is one verified e-mail address, and that address is the whole link between a customer
// and what they bought: orders (Order.CustomerEmail) and licenses (OwnerEmail) are scoped by the
// verified, normalised e-mail of the signed-in customer (ports.CustomerIdentity.Email). Guest
// orders placed before the account existed therefore belong to it from its first sign-in, with no
// data migration and nothing to attach; an address that never signs in keeps them as a guest.
//
// Every sign-in path answers alike for known and unknown addresses: RequestSignInLink never looks
// the account up, and SignInWithPassword runs one argon2id hash whether or not there is a password
// to compare with. Both are rate limited per address and per client; using a link needs no limit
// of its own, since its token has 256 random bits (the edge's per-client limit still applies).
package customers

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Config is the service's configuration, read by cmd.
type Config struct {
	// PublicURL is the base of the links in e-mails, e.g. https://licenses.example.com; the sign-in
	// link is PublicURL + "/auth/verify?token=…".
	PublicURL string
	// SessionTTL is how long a session lasts; default 30 days.
	SessionTTL time.Duration
	// Argon2 are the password hashing costs; zero fields take account.DefaultPasswordParams
	// (64 MiB, t=3, p=2). Tests use tiny ones. Raising them later is safe: existing hashes keep
	// verifying with their own costs and are re-hashed at the next successful sign-in.
	Argon2 account.PasswordParams
	// MaxConcurrentHashes bounds the argon2id computations running at once, so that a burst of
	// sign-ins cannot take Argon2.MemoryKiB each without limit; default GOMAXPROCS (at least 2).
	MaxConcurrentHashes int
	// Logger receives what is logged rather than returned (failed session touches). Nil discards.
	Logger *slog.Logger
}

// Argon2IDKey is the shape of golang.org/x/crypto/argon2.IDKey, which the composition root passes
// in Deps.Argon2. A core service may import only the standard library (ARCHITECTURE.md's import
// table, enforced by imports_test.go), so the one primitive from outside it arrives like any other
// dependency; everything around it (salts, costs, the PHC string, constant-time comparison, the
// equal work for unknown accounts) stays here.
type Argon2IDKey func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte

// Deps are the driven ports the service calls. Every one is required.
type Deps struct {
	Clock     ports.Clock
	Tx        ports.Tx
	Accounts  ports.AccountRepo
	Links     ports.SignInLinkRepo
	Sessions  ports.SessionRepo
	Limiter   ports.RateLimiter
	Processes ports.Processes
	Emails    ports.EmailRenderer
	// Argon2 is argon2.IDKey (golang.org/x/crypto/argon2).
	Argon2 Argon2IDKey
	Config Config
}

// Rate limits of the sign-in paths (per normalised e-mail and per client address).
var (
	linkPerEmail     = ports.Limit{Max: 5, Window: 15 * time.Minute}
	linkPerAddr      = ports.Limit{Max: 20, Window: 15 * time.Minute}
	passwordPerEmail = ports.Limit{Max: 10, Window: 15 * time.Minute}
	passwordPerAddr  = ports.Limit{Max: 30, Window: 15 * time.Minute}
)

// Service implements ports.Customers.
type Service struct {
	d          Deps
	log        *slog.Logger
	publicURL  string
	sessionTTL time.Duration
	params     account.PasswordParams
	kdf        Argon2IDKey
	hashSlots  chan struct{} // a semaphore over argon2id runs
}

var _ ports.Customers = (*Service)(nil)

// New returns the service. It panics when Deps.Argon2 is missing or Config.Argon2 is outside what
// argon2id can run: wiring and configuration mistakes to find when the process starts, not at the
// first sign-in.
func New(d Deps) *Service {
	if d.Argon2 == nil {
		panic("customers: Deps.Argon2 is required (pass golang.org/x/crypto/argon2.IDKey)")
	}
	log := d.Config.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ttl := d.Config.SessionTTL
	if ttl <= 0 {
		ttl = account.DefaultSessionTTL
	}
	params := d.Config.Argon2.WithDefaults()
	if err := params.Validate(); err != nil {
		panic("customers: " + err.Error())
	}
	slots := d.Config.MaxConcurrentHashes
	if slots <= 0 {
		slots = max(2, runtime.GOMAXPROCS(0))
	}
	return &Service{
		d: d, log: log,
		publicURL:  strings.TrimRight(d.Config.PublicURL, "/"),
		sessionTTL: ttl,
		params:     params,
		kdf:        d.Argon2,
		hashSlots:  make(chan struct{}, slots),
	}
}

// now is the service's time: UTC, whole seconds (like the other contexts; every time a customer
// sees is shown to the second).
func (s *Service) now() time.Time { return s.d.Clock.Now().UTC().Truncate(time.Second) }

// internal wraps an unexpected failure of a port; domain errors pass unchanged.
func internal(what string, err error) error {
	if _, ok := errs.As(err); ok {
		return err
	}
	return errs.Internalf("customers: %s: %w", what, err)
}

func isNotFound(err error) bool { return err != nil && errs.KindOf(err) == errs.NotFound }

func accountNotFound() error {
	return errs.E(errs.NotFound, account.CodeAccountNotFound, "account not found")
}

func invalidCredentials() error {
	return errs.E(errs.Unauthenticated, account.CodeInvalidCredentials, "the e-mail address or the password is wrong")
}

func sessionInvalid() error {
	return errs.E(errs.Unauthenticated, account.CodeSessionInvalid, "the session is not valid; sign in again")
}

func linkInvalid() error {
	return errs.E(errs.Unauthenticated, account.CodeSignInLinkInvalid, "the sign-in link is invalid or has expired")
}

// limit counts one event against each (key, limit) in order and stops at the first refusal. A
// limiter failure refuses too (fail closed): an attacker must not get unlimited guesses by
// knocking the limiter over.
func (s *Service) limit(ctx context.Context, checks ...limitCheck) error {
	for _, c := range checks {
		ok, retry, err := s.d.Limiter.Allow(ctx, c.key, c.limit)
		if err != nil {
			if errs.KindOf(err) == errs.Unavailable {
				return err
			}
			return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "rate limiter unavailable", err)
		}
		if !ok {
			return &errs.Error{Kind: errs.RateLimited, Code: errs.CodeRateLimited,
				Message: "too many attempts; try again later", RetryAfter: retry}
		}
	}
	return nil
}

type limitCheck struct {
	key   string
	limit ports.Limit
}

// clientKey is the rate-limit key part of a client address. Requests whose address the edge did
// not pass share one bucket: a caller that forgets the address is limited, not exempt.
func clientKey(addr string) string {
	if addr = strings.TrimSpace(addr); addr == "" {
		return "-"
	}
	return addr
}
