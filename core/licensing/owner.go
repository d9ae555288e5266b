package licensing

// The owner calls of ports.Licensing: what a signed-in customer does with their own licenses in
// the portal and through /v1/me. The owner is the customer's verified address; a license belongs
// to them when its owner e-mail is that address in any case (license.OwnedBy). Everything of
// another owner answers exactly as a missing object does (LICENSE_NOT_FOUND,
// ACTIVATION_NOT_FOUND, CLAIM_NOT_FOUND), so ids and keys cannot be probed, and the check is made
// before anything changes.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// RevokedByOwnerReason is the StatusReason of an activation its owner revoked (and the revoke
// reason of its certificates).
const RevokedByOwnerReason = "revoked by the owner"

// ownerOf is the form owners are compared in. Callers pass the lower-case verified address; the
// trim and lower-casing are a guard, never a reason to match another owner.
func ownerOf(owner string) string { return strings.ToLower(strings.TrimSpace(owner)) }

func activationNotFound() error {
	return errs.E(errs.NotFound, license.CodeActivationNotFound, "device not found")
}

// ownedLicense loads the license with this id for owner: LICENSE_NOT_FOUND when there is none or
// it is another owner's. lock row-locks it (inside a transaction).
func (s *Service) ownedLicense(ctx context.Context, owner, id string, lock bool) (license.LicenseRecord, error) {
	get := s.d.Licenses.Get
	if lock {
		get = s.d.Licenses.GetForUpdate
	}
	l, err := get(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return l, licenseNotFound()
		}
		return l, internal("loading license", err)
	}
	if !license.OwnedBy(l, ownerOf(owner)) {
		return license.LicenseRecord{}, licenseNotFound()
	}
	return l, nil
}

// lockOwnedActivation loads an activation of owner's, locks its license's row and loads the
// activation again under the lock (as lockLicenseOf does): ACTIVATION_NOT_FOUND when there is none
// or it is on another owner's license.
func (s *Service) lockOwnedActivation(ctx context.Context, owner, activationID string) (license.LicenseRecord, license.ActivationRecord, error) {
	a, err := s.d.Activations.Get(ctx, activationID)
	if err != nil {
		if isNotFound(err) {
			return license.LicenseRecord{}, a, activationNotFound()
		}
		return license.LicenseRecord{}, a, internal("loading activation", err)
	}
	l, err := s.d.Licenses.GetForUpdate(ctx, a.LicenseID)
	if err != nil {
		return l, a, internal("locking license", err)
	}
	if !license.OwnedBy(l, ownerOf(owner)) {
		return license.LicenseRecord{}, license.ActivationRecord{}, activationNotFound()
	}
	if a, err = s.d.Activations.Get(ctx, activationID); err != nil {
		return l, a, internal("loading activation", err)
	}
	return l, a, nil
}

// ownerView renders a license for its owner: the masked key, the status after precedence, the
// devices that hold a seat (active ones, and ended ones whose seat is still held, which the owner
// may release) and the pending claims.
func (s *Service) ownerView(ctx context.Context, l license.LicenseRecord, now time.Time) (ports.OwnerLicenseView, error) {
	key, err := s.d.Vault.Open(l.KeySealed)
	if err != nil {
		return ports.OwnerLicenseView{}, internal("opening license key", err)
	}
	holders, err := s.d.Activations.SeatHolders(ctx, l.ID, now)
	if err != nil {
		return ports.OwnerLicenseView{}, internal("loading devices", err)
	}
	claims, err := s.d.Claims.OpenByLicense(ctx, l.ID, now)
	if err != nil {
		return ports.OwnerLicenseView{}, internal("loading claims", err)
	}
	v := ports.OwnerLicenseView{
		ID:             l.ID,
		MaskedKey:      license.MaskKey(key),
		Status:         string(license.EffectiveLicenseStatus(l, now)),
		Product:        l.Product,
		MaxActivations: l.MaxActivations,
		SeatsUsed:      license.SeatsUsed(holders, now),
		ExpiresAt:      l.ExpiresAt,
		CreatedAt:      l.CreatedAt,
		Devices:        make([]ports.OwnerDevice, 0, len(holders)),
		Claims:         make([]ports.ClaimView, 0, len(claims)),
	}
	for _, a := range holders {
		if !license.HoldsSeat(a, now) {
			continue
		}
		d := ports.OwnerDevice{ActivationView: activationView(a), TrustLevel: a.LastTrustLevel, EndedAt: a.EndedAt}
		if a.Status != license.ActivationActive {
			d.SeatHeldUntil = a.SeatHeldUntil
			d.CanReleaseSeat = true
		}
		v.Devices = append(v.Devices, d)
	}
	for _, c := range claims {
		v.Claims = append(v.Claims, claimView(c, license.ClaimStatusAt(c, now)))
	}
	return v, nil
}

// OwnerLicenses implements ports.Licensing: every license of owner, newest first, whatever its
// status (a revoked license shows as revoked rather than vanishing).
func (s *Service) OwnerLicenses(ctx context.Context, owner string) ([]ports.OwnerLicenseView, error) {
	owner = ownerOf(owner)
	out := []ports.OwnerLicenseView{}
	if owner == "" {
		return out, nil
	}
	ls, err := s.d.Licenses.ListByOwner(ctx, owner)
	if err != nil {
		return nil, internal("listing licenses", err)
	}
	now := s.now()
	for _, l := range ls {
		if !license.OwnedBy(l, owner) { // the repository's match, checked where the rule lives
			continue
		}
		v, err := s.ownerView(ctx, l, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// OwnerLicense implements ports.Licensing. ref is a license id (lic_…) or a license key in any
// accepted format; anything else, a missing license and another owner's are LICENSE_NOT_FOUND.
func (s *Service) OwnerLicense(ctx context.Context, owner, ref string) (ports.OwnerLicenseView, error) {
	ref = strings.TrimSpace(ref)
	var (
		l   license.LicenseRecord
		err error
	)
	if strings.HasPrefix(ref, license.IDPrefixLicense) {
		l, err = s.ownedLicense(ctx, owner, ref, false)
	} else if l, err = s.licenseByKey(ctx, ref); err == nil && !license.OwnedBy(l, ownerOf(owner)) {
		err = licenseNotFound()
	}
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	return s.ownerView(ctx, l, s.now())
}

// RevealKey implements ports.Licensing.
func (s *Service) RevealKey(ctx context.Context, owner, licenseID string) (string, error) {
	l, err := s.ownedLicense(ctx, owner, licenseID, false)
	if err != nil {
		return "", err
	}
	key, err := s.d.Vault.Open(l.KeySealed)
	if err != nil {
		return "", internal("opening license key", err)
	}
	return license.FormatKey(key), nil
}

// RenameDevice implements ports.Licensing: the name is trimmed and must be 1 to 100 characters
// (VALIDATION_FAILED). A device that activates again under its own name takes that name back, as
// it always could.
func (s *Service) RenameDevice(ctx context.Context, owner, activationID, name string) (ports.ActivationView, error) {
	var v ports.ActivationView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		_, a, err := s.lockOwnedActivation(ctx, owner, activationID)
		if err != nil {
			return err
		}
		a, err = license.RenameActivation(a, name, s.now())
		if err != nil {
			return err
		}
		if err := s.d.Activations.Update(ctx, a); err != nil {
			return internal("updating activation", err)
		}
		v = activationView(a)
		return nil
	})
	return v, err
}

// revokeCertificates revokes every certificate of the activation that is not revoked yet.
func (s *Service) revokeCertificates(ctx context.Context, activationID, reason string, now time.Time) error {
	certs, err := s.d.Certificates.ListByActivation(ctx, activationID)
	if err != nil {
		return internal("loading certificates", err)
	}
	for _, c := range certs {
		if c.Status == license.CertificateRevoked {
			continue
		}
		if err := s.d.Certificates.Update(ctx, license.RevokeCertificate(c, reason, now)); err != nil {
			return internal("revoking certificate", err)
		}
	}
	return nil
}

// deviceEmail is the data of a device e-mail about a on l at now, with the seats used after the
// change.
func (s *Service) deviceEmail(ctx context.Context, l license.LicenseRecord, a license.ActivationRecord, used int, now time.Time) ports.DeviceEmail {
	return ports.DeviceEmail{
		Product:     s.productName(ctx, l.Product),
		DeviceName:  a.DeviceName,
		Platform:    a.Platform,
		Fingerprint: a.Fingerprint,
		At:          now,
		SeatsUsed:   used,
		SeatsTotal:  l.MaxActivations,
		AccountURL:  s.accountURL(),
	}
}

// queueActivatedEmail adds the DeviceActivated e-mail of the activation just created (out.grant)
// to the messages sent after the commit (finishActivation), so that a rolled back activation is
// never announced. used is the license's seats with the new device. A rendering failure is logged,
// not returned: the activation is what the device asked for.
func (s *Service) queueActivatedEmail(ctx context.Context, out *activateOutcome, l license.LicenseRecord, prod license.ProductRecord, dev device, used int, now time.Time) {
	if l.OwnerEmail == "" || out.grant == nil || !out.grant.Created {
		return
	}
	name := prod.Name
	if name == "" {
		name = prod.Slug
	}
	id := "activated-" + out.grant.ActivationID
	msg, err := s.render(id, l.OwnerEmail, ports.TemplateDeviceActivated, ports.DeviceEmail{
		Product:     name,
		DeviceName:  dev.DeviceName,
		Platform:    dev.Platform,
		Fingerprint: dev.Fingerprint,
		At:          now,
		SeatsUsed:   used,
		SeatsTotal:  l.MaxActivations,
		AccountURL:  s.accountURL(),
	})
	if err != nil {
		s.log.ErrorContext(ctx, "licensing: rendering e-mail failed", "email_id", id, "template", ports.TemplateDeviceActivated, "err", err)
		return
	}
	out.emails = append(out.emails, msg)
}

// removedEmailID is the ID of the DeviceRemoved e-mail of an activation: it ends once.
func removedEmailID(activationID string) string { return "removed-" + activationID }

// RevokeDevice implements ports.Licensing: the activation becomes revoked, its seat is free at
// once (license.RevokeByOwner: not held, no transfer spent), every certificate it has is revoked,
// and the owner is e-mailed after the commit. A device that is no longer active changes nothing and
// is not e-mailed again, so a retried call is harmless.
func (s *Service) RevokeDevice(ctx context.Context, owner, activationID string) (ports.OwnerLicenseView, error) {
	var (
		v     ports.OwnerLicenseView
		mail  *ports.DeviceEmail
		to    string
		endID string
	)
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		mail = nil
		l, a, err := s.lockOwnedActivation(ctx, owner, activationID)
		if err != nil {
			return err
		}
		now := s.now()
		revoked := a.Status == license.ActivationActive
		if revoked {
			a = license.RevokeByOwner(a, RevokedByOwnerReason, now)
			if err := s.d.Activations.Update(ctx, a); err != nil {
				return internal("updating activation", err)
			}
			if err := s.revokeCertificates(ctx, a.ID, RevokedByOwnerReason, now); err != nil {
				return err
			}
		}
		if v, err = s.ownerView(ctx, l, now); err != nil {
			return err
		}
		if revoked && l.OwnerEmail != "" {
			m := s.deviceEmail(ctx, l, a, v.SeatsUsed, now)
			mail, to, endID = &m, l.OwnerEmail, removedEmailID(a.ID)
		}
		return nil
	})
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	if mail != nil {
		s.sendTemplate(ctx, endID, to, ports.TemplateDeviceRemoved, *mail)
	}
	return v, nil
}

// OwnerReleaseSeat implements ports.Licensing: like ReleaseSeat, for the owner's own devices. An
// active device is CONFLICT (revoke it instead); one whose seat is already free changes nothing.
func (s *Service) OwnerReleaseSeat(ctx context.Context, owner, activationID string) (ports.OwnerLicenseView, error) {
	var v ports.OwnerLicenseView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		l, a, err := s.lockOwnedActivation(ctx, owner, activationID)
		if err != nil {
			return err
		}
		if a.Status == license.ActivationActive {
			return errs.E(errs.Conflict, errs.CodeConflict, "the device is active; revoke it to free its seat")
		}
		now := s.now()
		if released, changed := license.ReleaseSeat(a, now); changed {
			if err := s.d.Activations.Update(ctx, released); err != nil {
				return internal("updating activation", err)
			}
		}
		v, err = s.ownerView(ctx, l, now)
		return err
	})
	return v, err
}

// OwnerDecideClaim implements ports.Licensing: DecideClaim for a claim on one of owner's licenses,
// decided by "owner". It also spends the claim's e-mailed token, so that the link no longer acts
// once the owner has decided in the portal.
func (s *Service) OwnerDecideClaim(ctx context.Context, owner, claimID string, approve bool) (ports.ClaimView, error) {
	var v ports.ClaimView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		c, err := s.d.Claims.Get(ctx, claimID)
		if err != nil {
			if isNotFound(err) {
				return claimNotFound()
			}
			return internal("loading claim", err)
		}
		l, err := s.d.Licenses.Get(ctx, c.LicenseID)
		if err != nil && !isNotFound(err) {
			return internal("loading license", err)
		}
		if err != nil || !license.OwnedBy(l, ownerOf(owner)) {
			return claimNotFound()
		}
		if c, err = s.decide(ctx, c, approve, OwnerActor); err != nil {
			return err
		}
		if !c.TokenUsed {
			c.TokenUsed = true
			if err := s.d.Claims.Update(ctx, c); err != nil {
				return internal("updating claim", err)
			}
		}
		v = claimView(c, c.Status)
		return nil
	})
	return v, err
}

// ReissueKey implements ports.Licensing. Under the license's row lock, a new key with the same
// prefix replaces KeyHash and KeySealed, so from the commit on the old key is LICENSE_NOT_FOUND for
// activate and status; activations are bound to their own keys and certificates, not the license
// key, and keep working. Claims still pending were asked for with the old key (often the reason
// for the reissue): they are rejected with it. A revoked license gets no new key
// (LICENSE_REVOKED). The new key is e-mailed to the owner after the commit and returned.
func (s *Service) ReissueKey(ctx context.Context, owner, licenseID string) (ports.OwnerLicenseView, string, error) {
	var (
		v    ports.OwnerLicenseView
		l    license.LicenseRecord
		key  string
		hash []byte
	)
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		if l, err = s.ownedLicense(ctx, owner, licenseID, true); err != nil {
			return err
		}
		if l.Status == license.LicenseRevoked {
			return licenseStateError(license.LicenseRevoked)
		}
		now := s.now()
		if key, hash, err = s.freshKey(ctx, l.KeyPrefix); err != nil {
			return err
		}
		sealed, err := s.d.Vault.Seal(key)
		if err != nil {
			return internal("sealing license key", err)
		}
		l.KeyHash, l.KeySealed, l.UpdatedAt = hash, sealed, now
		if err := s.d.Licenses.Update(ctx, l); err != nil {
			return internal("updating license", err)
		}
		open, err := s.d.Claims.OpenByLicense(ctx, l.ID, now)
		if err != nil {
			return internal("loading claims", err)
		}
		for _, c := range open {
			c.Status, c.DecidedBy, c.TokenUsed = license.ClaimRejected, OwnerActor, true
			t := now
			c.DecidedAt = &t
			if err := s.d.Claims.Update(ctx, c); err != nil {
				return internal("updating claim", err)
			}
		}
		v, err = s.ownerView(ctx, l, now)
		return err
	})
	if err != nil {
		return ports.OwnerLicenseView{}, "", err
	}
	formatted := license.FormatKey(key)
	if l.OwnerEmail != "" {
		// One message per key: the lookup hash (an HMAC, not the key) tells reissues apart.
		s.sendTemplate(ctx, "key-reissued-"+l.ID+"-"+hex.EncodeToString(hash[:6]), l.OwnerEmail,
			ports.TemplateLicenseKeyReissued, ports.LicenseKeyReissuedEmail{
				Product:    s.productName(ctx, l.Product),
				Key:        formatted,
				AccountURL: s.accountURL(),
			})
	}
	return v, formatted, nil
}

// freshKey draws a key that no license has yet (with 100-bit keys a second draw is beyond
// unlikely; the unique index on key_hash stays the last word).
func (s *Service) freshKey(ctx context.Context, prefix string) (string, []byte, error) {
	for range keyAttempts {
		key, err := license.GenerateKey(prefix, rand.Reader)
		if err != nil {
			return "", nil, errs.Internalf("licensing: drawing a license key: %w", err)
		}
		hash := s.d.Vault.Lookup(key)
		_, err = s.d.Licenses.ByKeyHash(ctx, hash)
		if isNotFound(err) {
			return key, hash, nil
		}
		if err != nil {
			return "", nil, internal("looking up license key", err)
		}
	}
	return "", nil, errs.Internalf("licensing: no unused license key in %d draws", keyAttempts)
}

// recoveryEmailID is one message per address and minute: a burst of requests (which the HTTP layer
// rate-limits anyway) sends one e-mail, a request a minute later another.
func recoveryEmailID(addr string, now time.Time) string {
	sum := sha256.Sum256([]byte(addr))
	return "recovery-" + hex.EncodeToString(sum[:8]) + "-" + strconv.FormatInt(now.Unix()/60, 10)
}

// RecoverLicenses implements ports.Licensing: one e-mail to the address listing every license it
// owns that is not revoked, with full keys; nothing when there is none. An address that is not
// one is VALIDATION_FAILED. The answer is the same whether or not anything was sent: a failure to
// render or start the e-mail, or to open one key, is logged, not returned.
func (s *Service) RecoverLicenses(ctx context.Context, email string) error {
	addr, err := license.OwnerKey(email)
	if err != nil {
		return err
	}
	ls, err := s.d.Licenses.ListByOwner(ctx, addr)
	if err != nil {
		return internal("listing licenses", err)
	}
	var items []ports.EmailLicense
	for _, l := range ls {
		if !license.OwnedBy(l, addr) || l.Status == license.LicenseRevoked {
			continue
		}
		key, err := s.d.Vault.Open(l.KeySealed)
		if err != nil {
			s.log.ErrorContext(ctx, "licensing: opening a license key for recovery failed", "license_id", l.ID, "err", err)
			continue
		}
		items = append(items, ports.EmailLicense{
			Product:        s.productName(ctx, l.Product),
			Key:            license.FormatKey(key),
			MaxActivations: l.MaxActivations,
			ExpiresAt:      l.ExpiresAt,
		})
	}
	if len(items) == 0 {
		return nil
	}
	s.sendTemplate(ctx, recoveryEmailID(addr, s.now()), addr, ports.TemplateLicenseRecovery,
		ports.LicenseRecoveryEmail{Licenses: items, AccountURL: s.accountURL()})
	return nil
}
