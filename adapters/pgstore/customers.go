package pgstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The customers repositories over the tables of migrations/*/20261129000005_customers.

var (
	_ ports.AccountRepo    = accountRepo{}
	_ ports.SignInLinkRepo = signInLinkRepo{}
	_ ports.SessionRepo    = sessionRepo{}
)

// Accounts returns the customer account repository.
func (s *Store) Accounts() ports.AccountRepo { return accountRepo{s} }

// SignInLinks returns the sign-in link repository.
func (s *Store) SignInLinks() ports.SignInLinkRepo { return signInLinkRepo{s} }

// Sessions returns the customer session repository.
func (s *Store) Sessions() ports.SessionRepo { return sessionRepo{s} }

// ---- rows ----

type accountRow struct {
	bun.BaseModel `bun:"table:customer_accounts,alias:ca"`

	ID              string    `bun:"id,pk"`
	Email           string    `bun:"email"`
	PasswordHash    string    `bun:"password_hash"`
	EmailVerifiedAt time.Time `bun:"email_verified_at"`
	CreatedAt       time.Time `bun:"created_at"`
	UpdatedAt       time.Time `bun:"updated_at"`
}

func toAccountRow(a ports.Account) accountRow {
	return accountRow{
		ID: a.ID, Email: a.Email, PasswordHash: a.PasswordHash, EmailVerifiedAt: dbTime(a.EmailVerifiedAt),
		CreatedAt: dbTime(a.CreatedAt), UpdatedAt: dbTime(a.UpdatedAt),
	}
}

func (r accountRow) record() ports.Account {
	return ports.Account{
		ID: r.ID, Email: r.Email, PasswordHash: r.PasswordHash, EmailVerifiedAt: recTime(r.EmailVerifiedAt),
		CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}
}

type signInLinkRow struct {
	bun.BaseModel `bun:"table:customer_sign_in_links,alias:sl"`

	TokenHash []byte     `bun:"token_hash,pk"`
	Email     string     `bun:"email"`
	Purpose   string     `bun:"purpose"`
	CreatedAt time.Time  `bun:"created_at"`
	ExpiresAt time.Time  `bun:"expires_at"`
	UsedAt    *time.Time `bun:"used_at"`
}

func toSignInLinkRow(l ports.SignInLink) signInLinkRow {
	return signInLinkRow{
		TokenHash: dbBytes(l.TokenHash), Email: l.Email, Purpose: l.Purpose,
		CreatedAt: dbTime(l.CreatedAt), ExpiresAt: dbTime(l.ExpiresAt), UsedAt: dbTimePtr(l.UsedAt),
	}
}

func (r signInLinkRow) record() ports.SignInLink {
	return ports.SignInLink{
		TokenHash: recBytes(r.TokenHash), Email: r.Email, Purpose: r.Purpose,
		CreatedAt: recTime(r.CreatedAt), ExpiresAt: recTime(r.ExpiresAt), UsedAt: recTimePtr(r.UsedAt),
	}
}

type sessionRow struct {
	bun.BaseModel `bun:"table:customer_sessions,alias:cs"`

	ID         string     `bun:"id,pk"`
	TokenHash  []byte     `bun:"token_hash"`
	AccountID  string     `bun:"account_id"`
	Kind       string     `bun:"kind"`
	CreatedAt  time.Time  `bun:"created_at"`
	ExpiresAt  time.Time  `bun:"expires_at"`
	LastSeenAt time.Time  `bun:"last_seen_at"`
	RevokedAt  *time.Time `bun:"revoked_at"`
	UserAgent  string     `bun:"user_agent"`
	Addr       string     `bun:"addr"`
}

func toSessionRow(x ports.Session) sessionRow {
	return sessionRow{
		ID: x.ID, TokenHash: dbBytes(x.TokenHash), AccountID: x.AccountID, Kind: string(x.Kind),
		CreatedAt: dbTime(x.CreatedAt), ExpiresAt: dbTime(x.ExpiresAt), LastSeenAt: dbTime(x.LastSeenAt),
		RevokedAt: dbTimePtr(x.RevokedAt), UserAgent: x.UserAgent, Addr: x.Addr,
	}
}

func (r sessionRow) record() ports.Session {
	return ports.Session{
		ID: r.ID, TokenHash: recBytes(r.TokenHash), AccountID: r.AccountID, Kind: ports.SessionKind(r.Kind),
		CreatedAt: recTime(r.CreatedAt), ExpiresAt: recTime(r.ExpiresAt), LastSeenAt: recTime(r.LastSeenAt),
		RevokedAt: recTimePtr(r.RevokedAt), UserAgent: r.UserAgent, Addr: r.Addr,
	}
}

// ---- accounts ----

type accountRepo struct{ s *Store }

func (r accountRepo) Insert(ctx context.Context, a ports.Account) error {
	row := toAccountRow(a)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "account")
}

func (r accountRepo) one(ctx context.Context, where string, arg any) (ports.Account, error) {
	var row accountRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where(where, arg).Limit(1).Scan(ctx); err != nil {
		return ports.Account{}, r.s.mapErr(err, "account")
	}
	return row.record(), nil
}

func (r accountRepo) Get(ctx context.Context, id string) (ports.Account, error) {
	return r.one(ctx, "id = ?", id)
}

func (r accountRepo) ByEmail(ctx context.Context, email string) (ports.Account, error) {
	return r.one(ctx, "email = ?", email)
}

func (r accountRepo) Update(ctx context.Context, a ports.Account) error {
	row := toAccountRow(a)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	return r.s.updated(res, err, "account")
}

// ---- sign-in links ----

type signInLinkRepo struct{ s *Store }

func (r signInLinkRepo) Insert(ctx context.Context, l ports.SignInLink) error {
	row := toSignInLinkRow(l)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "sign-in link")
}

// Use is one conditional UPDATE … RETURNING: the database decides which of concurrent uses wins
// (PostgreSQL re-checks used_at IS NULL on the row version it waited for; SQLite runs one writer at
// a time), and the loser, like a used, expired or unknown link, changes no row. No second query
// tells these apart: the caller must not learn which it was.
func (r signInLinkRepo) Use(ctx context.Context, tokenHash []byte, now time.Time) (ports.SignInLink, error) {
	invalid := errs.E(errs.Unauthenticated, account.CodeSignInLinkInvalid, "the sign-in link is invalid or has expired")
	if len(tokenHash) == 0 {
		return ports.SignInLink{}, invalid
	}
	now = dbTime(now)
	var rows []signInLinkRow
	err := r.s.idb(ctx).NewUpdate().Model((*signInLinkRow)(nil)).
		Set("used_at = ?", now).
		Where("token_hash = ?", tokenHash).
		Where("used_at IS NULL").
		Where("expires_at > ?", now).
		Returning("token_hash, email, purpose, created_at, expires_at, used_at").
		Scan(ctx, &rows)
	if err != nil {
		return ports.SignInLink{}, r.s.mapErr(err, "sign-in link")
	}
	if len(rows) != 1 {
		return ports.SignInLink{}, invalid
	}
	return rows[0].record(), nil
}

// ---- sessions ----

type sessionRepo struct{ s *Store }

func (r sessionRepo) Insert(ctx context.Context, x ports.Session) error {
	row := toSessionRow(x)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "session")
}

func (r sessionRepo) ByTokenHash(ctx context.Context, hash []byte) (ports.Session, error) {
	if len(hash) == 0 {
		return ports.Session{}, notFound("session")
	}
	var row sessionRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("token_hash = ?", hash).Limit(1).Scan(ctx); err != nil {
		return ports.Session{}, r.s.mapErr(err, "session")
	}
	return row.record(), nil
}

func (r sessionRepo) Touch(ctx context.Context, id string, at time.Time) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*sessionRow)(nil)).
		Set("last_seen_at = ?", dbTime(at)).Where("id = ?", id).Exec(ctx)
	return r.s.updated(res, err, "session")
}

// Revoke keeps the first revocation time of a session revoked twice (COALESCE), in one statement.
func (r sessionRepo) Revoke(ctx context.Context, id string, at time.Time) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*sessionRow)(nil)).
		Set("revoked_at = COALESCE(revoked_at, ?)", dbTime(at)).Where("id = ?", id).Exec(ctx)
	return r.s.updated(res, err, "session")
}

func (r sessionRepo) RevokeAll(ctx context.Context, accountID string, at time.Time) (int, error) {
	res, err := r.s.idb(ctx).NewUpdate().Model((*sessionRow)(nil)).
		Set("revoked_at = ?", dbTime(at)).
		Where("account_id = ? AND revoked_at IS NULL", accountID).
		Exec(ctx)
	n, err := r.s.affected(res, err, "session")
	return int(n), err
}
