package customers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// maxPasswordBytes bounds what a sign-in hashes: MaxPasswordLen characters of at most 4 bytes.
// Longer input cannot be a password this service set.
const maxPasswordBytes = 4 * account.MaxPasswordLen

// derive runs argon2id once, waiting for one of the hash slots.
func (s *Service) derive(ctx context.Context, password string, salt []byte, p account.PasswordParams, keyLen int) ([]byte, error) {
	select {
	case s.hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the request was cancelled", ctx.Err())
	}
	defer func() { <-s.hashSlots }()
	return s.kdf([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(keyLen)), nil
}

// hashPassword returns the PHC string of password under the current costs and a fresh salt.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, account.SaltLen)
	_, _ = rand.Read(salt) // never fails (Go 1.24+)
	key, err := s.derive(ctx, password, salt, s.params, account.KeyLen)
	if err != nil {
		return "", err
	}
	return account.PasswordHash{Params: s.params, Salt: salt, Key: key}.String(), nil
}

// verifyPassword compares password with a stored PHC string in constant time, and reports whether
// the stored hash used other costs than the current ones.
func (s *Service) verifyPassword(ctx context.Context, stored, password string) (ok, rehash bool, err error) {
	h, err := account.ParsePasswordHash(stored)
	if err != nil {
		return false, false, err
	}
	key, err := s.derive(ctx, password, h.Salt, h.Params, len(h.Key))
	if err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(key, h.Key) != 1 {
		return false, false, nil
	}
	return true, h.NeedsRehash(s.params), nil
}

// burnHash spends what a verification costs on a password there is nothing to compare with (an
// unknown address, an account without a password), so that the answer takes as long as a wrong
// password and does not tell which it was.
func (s *Service) burnHash(ctx context.Context, password string) error {
	salt := make([]byte, account.SaltLen)
	_, _ = rand.Read(salt)
	_, err := s.derive(ctx, password, salt, s.params, account.KeyLen)
	return err
}

// SignInWithPassword checks the password of the account of email and starts a session. A wrong
// password, an unknown address and an account without a password are all INVALID_CREDENTIALS,
// after one argon2id computation each. Rate limited per address and per client.
func (s *Service) SignInWithPassword(ctx context.Context, email, password string, kind ports.SessionKind, meta ports.SessionMeta) (ports.SessionGrant, error) {
	if err := account.CheckSessionKind(string(kind)); err != nil {
		return ports.SessionGrant{}, err
	}
	email, err := account.NormalizeEmail(email)
	if err != nil {
		return ports.SessionGrant{}, err
	}
	if err := s.limit(ctx,
		limitCheck{"customers:password:addr:" + clientKey(meta.Addr), passwordPerAddr},
		limitCheck{"customers:password:email:" + email, passwordPerEmail},
	); err != nil {
		return ports.SessionGrant{}, err
	}
	if len(password) > maxPasswordBytes {
		return ports.SessionGrant{}, invalidCredentials()
	}
	acc, err := s.d.Accounts.ByEmail(ctx, email)
	if err != nil && !isNotFound(err) {
		return ports.SessionGrant{}, internal("loading the account", err)
	}
	if err != nil || acc.PasswordHash == "" {
		if err := s.burnHash(ctx, password); err != nil {
			return ports.SessionGrant{}, err
		}
		return ports.SessionGrant{}, invalidCredentials()
	}
	ok, rehash, err := s.verifyPassword(ctx, acc.PasswordHash, password)
	if err != nil {
		return ports.SessionGrant{}, err
	}
	if !ok {
		return ports.SessionGrant{}, invalidCredentials()
	}
	// Costs raised since the password was set: store a hash with the current ones, computed here
	// and not inside the transaction (argon2id is slow and the row would stay locked meanwhile).
	fresh := ""
	if rehash {
		if fresh, err = s.hashPassword(ctx, password); err != nil {
			return ports.SessionGrant{}, err
		}
	}
	now := s.now()
	var grant ports.SessionGrant
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		cur, err := s.d.Accounts.Get(ctx, acc.ID)
		if err != nil {
			return internal("loading the account", err)
		}
		// Only replace the hash that was verified: a password changed meanwhile stays.
		if fresh != "" && cur.PasswordHash == acc.PasswordHash {
			cur.PasswordHash, cur.UpdatedAt = fresh, now
			if err := s.d.Accounts.Update(ctx, cur); err != nil {
				return internal("storing the re-hashed password", err)
			}
		}
		grant, err = s.startSession(ctx, cur, kind, meta, now)
		return err
	})
	if err != nil {
		return ports.SessionGrant{}, err
	}
	return grant, nil
}

// SetPassword sets or replaces the account's password after checking the policy. Sessions stay
// signed in; SignOutEverywhere is the customer's separate choice.
func (s *Service) SetPassword(ctx context.Context, accountID, password string) error {
	if err := account.CheckPassword(password); err != nil {
		return err
	}
	if _, err := s.Account(ctx, accountID); err != nil {
		return err // before the costly hash: an unknown account gets its answer at once
	}
	phc, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	now := s.now()
	return s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		a, err := s.d.Accounts.Get(ctx, accountID)
		if isNotFound(err) {
			return accountNotFound()
		}
		if err != nil {
			return internal("loading the account", err)
		}
		a.PasswordHash, a.UpdatedAt = phc, now
		if err := s.d.Accounts.Update(ctx, a); err != nil {
			return internal("storing the password", err)
		}
		return nil
	})
}
