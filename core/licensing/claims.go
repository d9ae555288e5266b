package licensing

import (
	"context"
	"crypto/sha256"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// OwnerActor is the DecidedBy of a claim decided through the owner's e-mail token.
const OwnerActor = "owner"

func claimView(c license.ClaimRecord, status license.ClaimStatus) ports.ClaimView {
	return ports.ClaimView{
		ID:          c.ID,
		LicenseID:   c.LicenseID,
		Status:      string(status),
		DeviceName:  c.DeviceName,
		Platform:    c.Platform,
		Fingerprint: c.Fingerprint,
		RequestAddr: c.RequestAddr,
		CreatedAt:   c.CreatedAt,
		ExpiresAt:   c.ExpiresAt,
	}
}

// decide applies a decision to a claim. A pending claim past its expiry cannot be decided
// (CLAIM_EXPIRED; its status stays derived from ExpiresAt); repeating the decision a claim already has is a no-op,
// the other decision is CONFLICT.
func (s *Service) decide(ctx context.Context, c license.ClaimRecord, approve bool, actor string) (license.ClaimRecord, error) {
	now := s.now()
	want := license.ClaimRejected
	if approve {
		want = license.ClaimApproved
	}
	switch st := license.ClaimStatusAt(c, now); st {
	case license.ClaimExpired:
		return c, claimExpired()
	case license.ClaimPending:
		c.Status = want
		c.DecidedBy = actor
		t := now
		c.DecidedAt = &t
		if err := s.d.Claims.Update(ctx, c); err != nil {
			return c, internal("updating claim", err)
		}
		return c, nil
	case want:
		return c, nil
	default:
		return c, errs.E(errs.Conflict, errs.CodeConflict, "the claim was already "+string(st))
	}
}

// DecideClaim implements ports.Licensing for admins: CLAIM_NOT_FOUND, CLAIM_EXPIRED, CONFLICT.
func (s *Service) DecideClaim(ctx context.Context, claimID string, approve bool, actor string) (ports.ClaimView, error) {
	var v ports.ClaimView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		c, err := s.d.Claims.Get(ctx, claimID)
		if err != nil {
			if isNotFound(err) {
				return claimNotFound()
			}
			return internal("loading claim", err)
		}
		c, err = s.decide(ctx, c, approve, actor)
		if err != nil {
			return err
		}
		v = claimView(c, c.Status)
		return nil
	})
	return v, err
}

// claimByToken finds the claim of an unused token: CLAIM_NOT_FOUND otherwise (an unknown and a
// spent token look the same).
func (s *Service) claimByToken(ctx context.Context, token string) (license.ClaimRecord, error) {
	if token == "" {
		return license.ClaimRecord{}, claimNotFound()
	}
	sum := sha256.Sum256([]byte(token))
	c, err := s.d.Claims.ByTokenHash(ctx, sum[:])
	if err != nil {
		if isNotFound(err) {
			return c, claimNotFound()
		}
		return c, internal("loading claim", err)
	}
	if c.TokenUsed {
		return c, claimNotFound()
	}
	return c, nil
}

// ClaimByToken implements ports.Licensing: what the confirmation page shows. It changes nothing, so
// a mail scanner following the link decides nothing.
func (s *Service) ClaimByToken(ctx context.Context, token string) (ports.ClaimView, error) {
	c, err := s.claimByToken(ctx, token)
	if err != nil {
		return ports.ClaimView{}, err
	}
	return claimView(c, license.ClaimStatusAt(c, s.now())), nil
}

// DecideClaimByToken implements ports.Licensing: the owner's decision, posted from the confirmation
// page. The token is spent by a decision; an expired claim cannot be decided (CLAIM_EXPIRED).
func (s *Service) DecideClaimByToken(ctx context.Context, token string, approve bool) (ports.ClaimView, error) {
	var v ports.ClaimView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		c, err := s.claimByToken(ctx, token)
		if err != nil {
			return err
		}
		c, err = s.decide(ctx, c, approve, OwnerActor)
		if err != nil {
			return err
		}
		c.TokenUsed = true
		if err := s.d.Claims.Update(ctx, c); err != nil {
			return internal("updating claim", err)
		}
		v = claimView(c, c.Status)
		return nil
	})
	return v, err
}
