package customers

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// RequestSignInLink e-mails a single-use sign-in link to email. It never looks the account up, so
// a known and an unknown address take the same path, cost the same and get the same answer: nil,
// an e-mail, or the same rate limit (5 per e-mail address and 20 per client in 15 minutes).
func (s *Service) RequestSignInLink(ctx context.Context, email, addr string) error {
	email, err := account.NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := s.limit(ctx,
		limitCheck{"customers:link:addr:" + clientKey(addr), linkPerAddr},
		limitCheck{"customers:link:email:" + email, linkPerEmail},
	); err != nil {
		return err
	}
	now := s.now()
	token, hash := account.NewLinkToken()
	link := ports.SignInLink{TokenHash: hash, Email: email, Purpose: account.PurposeSignIn,
		CreatedAt: now, ExpiresAt: now.Add(account.SignInLinkTTL)}
	if err := s.d.Links.Insert(ctx, link); err != nil {
		return internal("storing the sign-in link", err)
	}
	addr, _ = account.ClientMeta(addr, "")
	subject, text, html, err := s.d.Emails.Render(ports.TemplateSignInLink, ports.SignInLinkEmail{
		URL:       s.publicURL + "/auth/verify?token=" + url.QueryEscape(token),
		ExpiresAt: link.ExpiresAt,
		Addr:      addr,
	})
	if err != nil {
		return internal("rendering the sign-in e-mail", err)
	}
	// Unlike the notices of other contexts, this e-mail is the answer: a failure to start its
	// delivery is returned, so the customer asks again instead of waiting for nothing.
	if err := s.d.Processes.SendEmail(ctx, ports.EmailMessage{
		ID: account.LinkMessageID(hash), To: email, Subject: subject, Text: text, HTML: html,
		Template: ports.TemplateSignInLink,
	}); err != nil {
		return internal("starting the sign-in e-mail", err)
	}
	return nil
}

// maxSignInAttempts bounds the re-runs of a first sign-in that lost the race to create the account.
const maxSignInAttempts = 3

// errAccountRace marks a first sign-in whose account insert met the account another sign-in of the
// same address created meanwhile. The transaction must end (PostgreSQL refuses further statements
// after the unique violation) and run again, which then finds that account.
var errAccountRace = errors.New("customers: account created concurrently")

// SignInWithLink uses the link's token once and starts a session, creating the account of the
// link's address on its first sign-in, all in one transaction: a failure leaves the link unused.
func (s *Service) SignInWithLink(ctx context.Context, token string, kind ports.SessionKind, meta ports.SessionMeta) (ports.SessionGrant, error) {
	if err := account.CheckSessionKind(string(kind)); err != nil {
		return ports.SessionGrant{}, err
	}
	if !account.WellFormedLinkToken(token) {
		return ports.SessionGrant{}, linkInvalid()
	}
	hash := account.HashToken(token)
	for attempt := 1; ; attempt++ {
		now := s.now()
		var grant ports.SessionGrant
		err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
			link, err := s.d.Links.Use(ctx, hash, now)
			if err != nil {
				return internal("using the sign-in link", err)
			}
			if link.Purpose != account.PurposeSignIn {
				return linkInvalid()
			}
			acc, err := s.accountFor(ctx, link.Email, now)
			if err != nil {
				return err
			}
			grant, err = s.startSession(ctx, acc, kind, meta, now)
			return err
		})
		if errors.Is(err, errAccountRace) && attempt < maxSignInAttempts {
			continue
		}
		if errors.Is(err, errAccountRace) {
			return ports.SessionGrant{}, errs.Internalf("customers: account of a sign-in still conflicting after %d attempts: %w", attempt, err)
		}
		if err != nil {
			return ports.SessionGrant{}, err
		}
		return grant, nil
	}
}

// accountFor returns the account of a verified address, creating it on its first sign-in.
func (s *Service) accountFor(ctx context.Context, email string, now time.Time) (ports.Account, error) {
	acc, err := s.d.Accounts.ByEmail(ctx, email)
	if err == nil {
		return acc, nil
	}
	if !isNotFound(err) {
		return ports.Account{}, internal("loading the account", err)
	}
	acc = ports.Account{ID: account.NewID(account.IDPrefixAccount), Email: email,
		EmailVerifiedAt: now, CreatedAt: now, UpdatedAt: now}
	if err := s.d.Accounts.Insert(ctx, acc); err != nil {
		if errs.KindOf(err) == errs.Conflict {
			return ports.Account{}, errs.Wrap(errs.Conflict, errs.CodeConflict, "the account was created concurrently", errAccountRace)
		}
		return ports.Account{}, internal("creating the account", err)
	}
	return acc, nil
}
