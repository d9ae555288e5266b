package portstest

import (
	"context"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// customersMem holds the customers maps of a MemStore; every write goes through remember so that
// a rollback of the transaction undoes it like the other maps.
type customersMem struct {
	accounts map[string]ports.Account    // by id
	links    map[string]ports.SignInLink // by string(token hash)
	sessions map[string]ports.Session    // by id
}

func newCustomersMem() customersMem {
	return customersMem{
		accounts: map[string]ports.Account{},
		links:    map[string]ports.SignInLink{},
		sessions: map[string]ports.Session{},
	}
}

// Accounts returns the customer account repository.
func (s *MemStore) Accounts() ports.AccountRepo { return memAccounts{s} }

// SignInLinks returns the sign-in link repository.
func (s *MemStore) SignInLinks() ports.SignInLinkRepo { return memSignInLinks{s} }

// Sessions returns the customer session repository.
func (s *MemStore) Sessions() ports.SessionRepo { return memSessions{s} }

var (
	_ ports.AccountRepo    = memAccounts{}
	_ ports.SignInLinkRepo = memSignInLinks{}
	_ ports.SessionRepo    = memSessions{}
)

// ---- copies ----

func copyAccount(a ports.Account) ports.Account {
	a.EmailVerifiedAt = normTime(a.EmailVerifiedAt)
	a.CreatedAt = normTime(a.CreatedAt)
	a.UpdatedAt = normTime(a.UpdatedAt)
	return a
}

func copyLink(l ports.SignInLink) ports.SignInLink {
	l.TokenHash = cloneBytes(l.TokenHash)
	l.CreatedAt = normTime(l.CreatedAt)
	l.ExpiresAt = normTime(l.ExpiresAt)
	l.UsedAt = normTimePtr(l.UsedAt)
	return l
}

func copySession(x ports.Session) ports.Session {
	x.TokenHash = cloneBytes(x.TokenHash)
	x.CreatedAt = normTime(x.CreatedAt)
	x.ExpiresAt = normTime(x.ExpiresAt)
	x.LastSeenAt = normTime(x.LastSeenAt)
	x.RevokedAt = normTimePtr(x.RevokedAt)
	return x
}

// ---- accounts ----

type memAccounts struct{ s *MemStore }

// uniqueEmail enforces the unique index on the e-mail.
func (r memAccounts) uniqueEmail(a ports.Account) error {
	for id, o := range r.s.cust.accounts {
		if id != a.ID && o.Email == a.Email {
			return conflict("an account with this e-mail already exists")
		}
	}
	return nil
}

func (r memAccounts) Insert(ctx context.Context, a ports.Account) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.cust.accounts[a.ID]; ok {
			return conflict("an account with this id already exists")
		}
		if err := r.uniqueEmail(a); err != nil {
			return err
		}
		remember(tx, r.s.cust.accounts, a.ID)
		r.s.cust.accounts[a.ID] = copyAccount(a)
		return nil
	})
}

func (r memAccounts) Get(ctx context.Context, id string) (ports.Account, error) {
	var out ports.Account
	err := r.s.run(ctx, func(*memTx) error {
		a, ok := r.s.cust.accounts[id]
		if !ok {
			return notFound("account")
		}
		out = copyAccount(a)
		return nil
	})
	return out, err
}

func (r memAccounts) ByEmail(ctx context.Context, email string) (ports.Account, error) {
	var out ports.Account
	err := r.s.run(ctx, func(*memTx) error {
		for _, a := range r.s.cust.accounts {
			if a.Email == email {
				out = copyAccount(a)
				return nil
			}
		}
		return notFound("account")
	})
	return out, err
}

func (r memAccounts) Update(ctx context.Context, a ports.Account) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.cust.accounts[a.ID]; !ok {
			return notFound("account")
		}
		if err := r.uniqueEmail(a); err != nil {
			return err
		}
		remember(tx, r.s.cust.accounts, a.ID)
		r.s.cust.accounts[a.ID] = copyAccount(a)
		return nil
	})
}

// ---- sign-in links ----

type memSignInLinks struct{ s *MemStore }

func (r memSignInLinks) Insert(ctx context.Context, l ports.SignInLink) error {
	return r.s.run(ctx, func(tx *memTx) error {
		k := string(l.TokenHash)
		if _, ok := r.s.cust.links[k]; ok {
			return conflict("a sign-in link with this token already exists")
		}
		remember(tx, r.s.cust.links, k)
		r.s.cust.links[k] = copyLink(l)
		return nil
	})
}

// Use checks and marks the link under the store lock: the lock makes the check and the write one
// step, as the conditional UPDATE does in the database.
func (r memSignInLinks) Use(ctx context.Context, tokenHash []byte, now time.Time) (ports.SignInLink, error) {
	var out ports.SignInLink
	err := r.s.run(ctx, func(tx *memTx) error {
		k := string(tokenHash)
		l, ok := r.s.cust.links[k]
		now := normTime(now)
		if !ok || len(tokenHash) == 0 || l.UsedAt != nil || !l.ExpiresAt.After(now) {
			return errs.E(errs.Unauthenticated, account.CodeSignInLinkInvalid, "the sign-in link is invalid or has expired")
		}
		l.UsedAt = &now
		remember(tx, r.s.cust.links, k)
		r.s.cust.links[k] = copyLink(l)
		out = copyLink(l)
		return nil
	})
	return out, err
}

// ---- sessions ----

type memSessions struct{ s *MemStore }

func (r memSessions) Insert(ctx context.Context, x ports.Session) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.cust.sessions[x.ID]; ok {
			return conflict("a session with this id already exists")
		}
		if _, ok := r.s.cust.accounts[x.AccountID]; !ok {
			return missingParent("session", "account", x.AccountID)
		}
		for _, o := range r.s.cust.sessions {
			if string(o.TokenHash) == string(x.TokenHash) {
				return conflict("a session with this token already exists")
			}
		}
		remember(tx, r.s.cust.sessions, x.ID)
		r.s.cust.sessions[x.ID] = copySession(x)
		return nil
	})
}

func (r memSessions) ByTokenHash(ctx context.Context, hash []byte) (ports.Session, error) {
	var out ports.Session
	err := r.s.run(ctx, func(*memTx) error {
		if len(hash) > 0 {
			for _, x := range r.s.cust.sessions {
				if string(x.TokenHash) == string(hash) {
					out = copySession(x)
					return nil
				}
			}
		}
		return notFound("session")
	})
	return out, err
}

// change applies fn to the session id, NOT_FOUND when there is none.
func (r memSessions) change(ctx context.Context, id string, fn func(*ports.Session)) error {
	return r.s.run(ctx, func(tx *memTx) error {
		x, ok := r.s.cust.sessions[id]
		if !ok {
			return notFound("session")
		}
		fn(&x)
		remember(tx, r.s.cust.sessions, id)
		r.s.cust.sessions[id] = copySession(x)
		return nil
	})
}

func (r memSessions) Touch(ctx context.Context, id string, at time.Time) error {
	return r.change(ctx, id, func(x *ports.Session) { x.LastSeenAt = at })
}

// Revoke keeps the first revocation time of a session revoked twice.
func (r memSessions) Revoke(ctx context.Context, id string, at time.Time) error {
	return r.change(ctx, id, func(x *ports.Session) {
		if x.RevokedAt == nil {
			x.RevokedAt = &at
		}
	})
}

func (r memSessions) RevokeAll(ctx context.Context, accountID string, at time.Time) (int, error) {
	n := 0
	err := r.s.run(ctx, func(tx *memTx) error {
		for id, x := range r.s.cust.sessions {
			if x.AccountID != accountID || x.RevokedAt != nil {
				continue
			}
			x.RevokedAt = &at
			remember(tx, r.s.cust.sessions, id)
			r.s.cust.sessions[id] = copySession(x)
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
