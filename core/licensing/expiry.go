package licensing

import (
	"context"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// expiryPage is how many licenses SendExpiryNotices reads at a time.
const expiryPage = 200

// expiryEmailID is the deterministic ID of a license's expiry e-mail: the delivery workflow
// (email/<ID>, never started twice) is what makes a retried run send nothing twice.
func expiryEmailID(n license.ExpiryNotice, licenseID string) string {
	return string(n) + "-" + licenseID
}

// SendExpiryNotices implements ports.Licensing for the daily expiry run (workflows/expiry). For
// each license that license.ExpiryNoticeDue says owes a notice at now (read page by page through
// LicenseRepo.ExpiryNoticesDue, expired ones first), it starts the e-mail and then records the
// notice on the license under its row lock.
//
// Starting before recording makes a failure safe in both places: a start that fails returns the
// error (Unavailable, so the activity retries) and nothing is recorded, so the next attempt starts
// it again; a crash between the start and the record makes the next attempt start the same e-mail
// ID again, which the delivery workflow refuses as already started. Either way the owner gets each
// notice once. The count is of the notices this call recorded.
func (s *Service) SendExpiryNotices(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC().Truncate(time.Second)
	sent := 0
	for _, n := range []license.ExpiryNotice{license.ExpiryNoticeExpired, license.ExpiryNoticeExpiring} {
		var after ports.ExpiryCursor
		for {
			page, err := s.d.Licenses.ExpiryNoticesDue(ctx, n, now, after, expiryPage)
			if err != nil {
				return sent, internal("listing licenses due an expiry notice", err)
			}
			for _, l := range page {
				recorded, err := s.sendExpiryNotice(ctx, l, n, now)
				if err != nil {
					return sent, err
				}
				if recorded {
					sent++
				}
			}
			if len(page) < expiryPage {
				break
			}
			last := page[len(page)-1]
			after = ports.ExpiryCursor{ExpiresAt: *last.ExpiresAt, ID: last.ID}
		}
	}
	return sent, nil
}

// sendExpiryNotice starts notice n of l and records it; recorded is false when another run
// recorded it first (its start of the same ID was then refused as a duplicate).
func (s *Service) sendExpiryNotice(ctx context.Context, l license.LicenseRecord, n license.ExpiryNotice, now time.Time) (bool, error) {
	key, err := s.d.Vault.Open(l.KeySealed)
	if err != nil {
		return false, internal("opening license key", err)
	}
	template := ports.TemplateLicenseExpiring
	if n == license.ExpiryNoticeExpired {
		template = ports.TemplateLicenseExpired
	}
	msg, err := s.render(expiryEmailID(n, l.ID), l.OwnerEmail, template, ports.LicenseExpiryEmail{
		Product:    s.productName(ctx, l.Product),
		KeyMasked:  license.MaskKey(key),
		ExpiresAt:  *l.ExpiresAt,
		AccountURL: s.accountURL(),
	})
	if err != nil {
		return false, err
	}
	if err := s.d.Processes.SendEmail(ctx, msg); err != nil {
		return false, internal("starting the expiry e-mail", err)
	}
	recorded := false
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		recorded = false
		cur, err := s.d.Licenses.GetForUpdate(ctx, l.ID)
		if err != nil {
			return internal("locking license", err)
		}
		if license.ExpiryNoticeDue(cur, now) != n {
			return nil
		}
		if err := s.d.Licenses.Update(ctx, license.MarkExpiryNotice(cur, n, now)); err != nil {
			return internal("updating license", err)
		}
		recorded = true
		return nil
	})
	return recorded, err
}
