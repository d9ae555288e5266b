package customers

import (
	"context"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/ports"
)

// startSession stores a new session of acc and returns its grant; the token exists only there.
func (s *Service) startSession(ctx context.Context, acc ports.Account, kind ports.SessionKind, meta ports.SessionMeta, now time.Time) (ports.SessionGrant, error) {
	token, hash := account.NewSessionToken()
	addr, ua := account.ClientMeta(meta.Addr, meta.UserAgent)
	sess := ports.Session{
		ID: account.NewID(account.IDPrefixSession), TokenHash: hash, AccountID: acc.ID, Kind: kind,
		CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL), LastSeenAt: now, UserAgent: ua, Addr: addr,
	}
	if err := s.d.Sessions.Insert(ctx, sess); err != nil {
		return ports.SessionGrant{}, internal("storing the session", err)
	}
	return ports.SessionGrant{Token: token, Session: sess, Account: acc, ExpiresAt: sess.ExpiresAt}, nil
}

// Authenticate resolves a session token to the signed-in customer. Unknown, revoked and expired
// sessions, and sessions whose account is gone, are all SESSION_INVALID. LastSeenAt is written at
// most every account.TouchInterval, and a failure to write it does not fail the request.
func (s *Service) Authenticate(ctx context.Context, token string) (ports.CustomerIdentity, error) {
	if !account.WellFormedSessionToken(token) {
		return ports.CustomerIdentity{}, sessionInvalid()
	}
	sess, err := s.d.Sessions.ByTokenHash(ctx, account.HashToken(token))
	if isNotFound(err) {
		return ports.CustomerIdentity{}, sessionInvalid()
	}
	if err != nil {
		return ports.CustomerIdentity{}, internal("loading the session", err)
	}
	now := s.now()
	if !account.SessionActive(sess.RevokedAt, sess.ExpiresAt, now) {
		return ports.CustomerIdentity{}, sessionInvalid()
	}
	acc, err := s.d.Accounts.Get(ctx, sess.AccountID)
	if isNotFound(err) {
		return ports.CustomerIdentity{}, sessionInvalid()
	}
	if err != nil {
		return ports.CustomerIdentity{}, internal("loading the account", err)
	}
	if account.TouchDue(sess.LastSeenAt, now) {
		if err := s.d.Sessions.Touch(ctx, sess.ID, now); err != nil {
			s.log.WarnContext(ctx, "customers: recording a session's last use failed", "session", sess.ID, "err", err)
		}
	}
	return ports.CustomerIdentity{AccountID: acc.ID, Email: acc.Email, SessionID: sess.ID}, nil
}

// SignOut revokes the session of token. It is idempotent: an unknown, expired or already revoked
// session is nothing to do, and the answer is nil all the same.
func (s *Service) SignOut(ctx context.Context, sessionToken string) error {
	if !account.WellFormedSessionToken(sessionToken) {
		return nil
	}
	sess, err := s.d.Sessions.ByTokenHash(ctx, account.HashToken(sessionToken))
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return internal("loading the session", err)
	}
	if sess.RevokedAt != nil {
		return nil
	}
	if err := s.d.Sessions.Revoke(ctx, sess.ID, s.now()); err != nil && !isNotFound(err) {
		return internal("revoking the session", err)
	}
	return nil
}

// SignOutEverywhere revokes every session of the account (the current one included) and returns
// how many were still unrevoked.
func (s *Service) SignOutEverywhere(ctx context.Context, accountID string) (int, error) {
	n, err := s.d.Sessions.RevokeAll(ctx, accountID, s.now())
	if err != nil {
		return 0, internal("revoking the sessions", err)
	}
	return n, nil
}

// Account returns the account; ACCOUNT_NOT_FOUND when there is none. It carries the password hash
// (callers show only whether there is one).
func (s *Service) Account(ctx context.Context, accountID string) (ports.Account, error) {
	a, err := s.d.Accounts.Get(ctx, accountID)
	if isNotFound(err) {
		return ports.Account{}, accountNotFound()
	}
	if err != nil {
		return ports.Account{}, internal("loading the account", err)
	}
	return a, nil
}
