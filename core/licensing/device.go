package licensing

import (
	"context"
	"encoding/pem"

	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Validate implements ports.Licensing (POST /v1/validate). It reads only: the heartbeat clock
// never moves here.
func (s *Service) Validate(ctx context.Context, cmd ports.ValidateCommand) (ports.ValidateResult, error) {
	if cmd.PluginVersion != "" {
		if err := license.ValidatePluginVersion(cmd.PluginVersion); err != nil {
			return ports.ValidateResult{}, err
		}
	}
	a, err := s.d.Activations.Get(ctx, cmd.Identity.ActivationID)
	if err != nil {
		if isNotFound(err) {
			return ports.ValidateResult{}, activationRevoked()
		}
		return ports.ValidateResult{}, internal("loading activation", err)
	}
	if a.Status != license.ActivationActive {
		return ports.ValidateResult{}, activationRevoked()
	}
	l, err := s.d.Licenses.Get(ctx, a.LicenseID)
	if err != nil {
		return ports.ValidateResult{}, internal("loading license", err)
	}
	if cmd.Product != "" && !license.Covers(l.Product, l.Entitlements, cmd.Product) {
		return ports.ValidateResult{}, productMismatch()
	}
	prod, err := s.policyOf(ctx, l)
	if err != nil {
		return ports.ValidateResult{}, err
	}
	now := s.now()
	status, valid, action := license.DeviceStatus(l, a, prod.Policy, now)
	s.recordTrust(ctx, a, license.RequestTrust(cmd.Identity.MTLS))
	return ports.ValidateResult{
		Valid:        valid,
		Status:       status,
		Action:       action,
		ActivationID: a.ID,
		License: ports.LicenseSummary{
			ID:           l.ID,
			Product:      l.Product,
			ExpiresAt:    l.ExpiresAt,
			Entitlements: license.EntitlementsOf(l.Product, l.Entitlements),
		},
		HeartbeatDueAt:       license.HeartbeatDue(a, prod.Policy),
		GracePeriodRemaining: license.GraceRemaining(a, prod.Policy, now),
	}, nil
}

// Heartbeat implements ports.Licensing (POST /v1/heartbeat). The heartbeat moves only when the
// license is valid; a revoked, suspended or expired license answers valid:false and moves nothing.
func (s *Service) Heartbeat(ctx context.Context, cmd ports.HeartbeatCommand) (ports.HeartbeatResult, error) {
	if cmd.PluginVersion != "" {
		if err := license.ValidatePluginVersion(cmd.PluginVersion); err != nil {
			return ports.HeartbeatResult{}, err
		}
	}
	var res ports.HeartbeatResult
	var cert license.CertificateRecord
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		res, cert = ports.HeartbeatResult{}, license.CertificateRecord{}
		l, a, err := s.lockLicenseOf(ctx, cmd.Identity.ActivationID)
		if err != nil {
			return err
		}
		if a.Status != license.ActivationActive {
			return activationRevoked()
		}
		now := s.now()
		if st := license.EffectiveLicenseStatus(l, now); st != license.LicenseActive {
			res = ports.HeartbeatResult{Valid: false, Status: string(st)}
			return nil
		}
		prod, err := s.policyOf(ctx, l)
		if err != nil {
			return err
		}
		policy := prod.Policy
		before := license.GraceStatus(a, policy, now)
		a.LastHeartbeatAt = now
		a.LastTrustLevel = license.RequestTrust(cmd.Identity.MTLS)
		if cmd.PluginVersion != "" {
			a.PluginVersion = cmd.PluginVersion
		}
		lease, err := s.lease(ctx, l, &a, policy, now)
		if err != nil {
			return err
		}
		a.UpdatedAt = now
		if err := s.d.Activations.Update(ctx, a); err != nil {
			return internal("updating activation", err)
		}
		cert, err = s.d.Certificates.BySerial(ctx, a.CertificateSerial)
		if err != nil {
			return internal("loading certificate", err)
		}
		res = ports.HeartbeatResult{
			Valid:                true,
			Status:               license.DeviceActive,
			Lease:                lease,
			HeartbeatDueAt:       license.HeartbeatDue(a, policy),
			GracePeriodRemaining: license.GraceRemaining(a, policy, now),
		}
		if license.IsGraceState(before) {
			res.PreviousStatus = before
			res.Recovered = true
		}
		return nil
	})
	if err != nil {
		return ports.HeartbeatResult{}, err
	}
	if res.Valid {
		res.RenewCertificate = s.renewHint(ctx, cert)
	}
	return res, nil
}

// recordTrust records the trust level of a validate on its activation for the owner's device list.
// Validate holds no lock, so it writes that one column, and only when the level changed (a device
// moving between mTLS and signed-only); a failure is logged, since the answer does not depend on it.
func (s *Service) recordTrust(ctx context.Context, a license.ActivationRecord, level int) {
	if a.LastTrustLevel == level {
		return
	}
	if err := s.d.Activations.SetTrustLevel(ctx, a.ID, level); err != nil {
		s.log.WarnContext(ctx, "licensing: recording the trust level failed", "activation_id", a.ID, "err", err)
	}
}

// renewHint is the renew_certificate of a heartbeat for the activation's current certificate. A
// failure to ask the PKI about a rollback is logged and read as "not rolling back": the hint is
// advisory and the heartbeat itself has already committed.
func (s *Service) renewHint(ctx context.Context, c license.CertificateRecord) bool {
	rolling, err := s.d.Issuer.RollingBack(ctx, c.IssuerID)
	if err != nil {
		s.log.WarnContext(ctx, "licensing: rollback status unknown", "issuer_id", c.IssuerID, "err", err)
		rolling = false
	}
	return license.RenewHint(c.NotBefore, c.NotAfter, s.now(), rolling)
}

// requireCurrent refuses an overlapping old certificate for deactivate and renew (ResolveCertificate
// checks this too; this check holds under the lock, after a concurrent renewal).
func requireCurrent(id ports.DeviceIdentity, a license.ActivationRecord) error {
	if id.MTLS && license.CanonicalSerial(id.CertificateSerial) != a.CertificateSerial {
		return certificateRevoked()
	}
	if !id.MTLS && id.Thumbprint != "" && id.Thumbprint != a.KeyThumbprint {
		return certificateRevoked()
	}
	return nil
}

// Deactivate implements ports.Licensing (POST /v1/deactivate). The owner, when the license has
// one, is e-mailed DeviceRemoved after the commit.
func (s *Service) Deactivate(ctx context.Context, cmd ports.DeactivateCommand) (ports.DeactivateResult, error) {
	var (
		res  ports.DeactivateResult
		mail *ports.DeviceEmail
		to   string
		id   string
	)
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		mail = nil
		l, a, err := s.lockLicenseOf(ctx, cmd.Identity.ActivationID)
		if err != nil {
			return err
		}
		if a.Status != license.ActivationActive {
			return activationRevoked()
		}
		if err := requireCurrent(cmd.Identity, a); err != nil {
			return err
		}
		prod, err := s.policyOf(ctx, l)
		if err != nil {
			return err
		}
		now := s.now()
		released, err := s.endActivation(ctx, l, a, license.ActivationDeactivated, "deactivated by the device", prod.Policy, now)
		if err != nil {
			return err
		}
		used, err := s.seatsUsed(ctx, l.ID, now)
		if err != nil {
			return err
		}
		res = ports.DeactivateResult{SeatsUsed: used, SeatsTotal: l.MaxActivations, SeatReleasedAt: released}
		if l.OwnerEmail != "" {
			m := s.deviceEmail(ctx, l, a, used, now)
			mail, to, id = &m, l.OwnerEmail, removedEmailID(a.ID)
		}
		return nil
	})
	if err != nil {
		return ports.DeactivateResult{}, err
	}
	if mail != nil {
		s.sendTemplate(ctx, id, to, ports.TemplateDeviceRemoved, *mail)
	}
	return res, nil
}

// Renew implements ports.Licensing (POST /v1/certificates/renew). The new certificate may hold a
// new key; the activation then holds that key (the lease's cnf names it), and the old certificate
// keeps working for validate and heartbeat for 24 hours. A license that is not active gets no new
// certificate (LICENSE_REVOKED, LICENSE_SUSPENDED or LICENSE_EXPIRED), as on activate.
func (s *Service) Renew(ctx context.Context, cmd ports.RenewCommand) (ports.RenewResult, error) {
	pub, spki, thumb, err := license.ParseCSR(cmd.CSRPEM)
	if err != nil {
		return ports.RenewResult{}, err
	}
	var res ports.RenewResult
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		l, a, err := s.lockLicenseOf(ctx, cmd.Identity.ActivationID)
		if err != nil {
			return err
		}
		if a.Status != license.ActivationActive {
			return activationRevoked()
		}
		if err := requireCurrent(cmd.Identity, a); err != nil {
			return err
		}
		now := s.now()
		if st := license.EffectiveLicenseStatus(l, now); st != license.LicenseActive {
			return licenseStateError(st)
		}
		prod, err := s.policyOf(ctx, l)
		if err != nil {
			return err
		}
		old, err := s.d.Certificates.BySerial(ctx, a.CertificateSerial)
		if err != nil && !isNotFound(err) {
			return internal("loading certificate", err)
		}
		if err == nil && old.Status == license.CertificateCurrent {
			if err := s.d.Certificates.Update(ctx, license.ReplaceCertificate(old, now)); err != nil {
				return internal("updating certificate", err)
			}
		}
		a.KeyThumbprint = thumb
		a.PublicKeyDER = spki
		nc, ic, err := s.issue(ctx, a, pub, cmd.CSRPEM, prod.Policy, now)
		if err != nil {
			return err
		}
		if err := s.d.Certificates.Insert(ctx, nc); err != nil {
			return internal("inserting certificate", err)
		}
		a.CertificateSerial = nc.Serial
		lease, err := s.lease(ctx, l, &a, prod.Policy, now)
		if err != nil {
			return err
		}
		a.UpdatedAt = now
		if err := s.d.Activations.Update(ctx, a); err != nil {
			return internal("updating activation", err)
		}
		res = ports.RenewResult{
			CertificatePEM:      ic.PEM,
			CertificateSerial:   nc.Serial,
			CertificateNotAfter: nc.NotAfter,
			Lease:               lease,
		}
		return nil
	})
	if err != nil {
		return ports.RenewResult{}, err
	}
	chain, err := s.d.Issuer.CAChainPEM(ctx)
	if err != nil {
		return ports.RenewResult{}, internal("loading CA chain", err)
	}
	res.CAChainPEM = chain
	return res, nil
}

// licenseByKey finds the license of a key as typed; LICENSE_NOT_FOUND for a key of the wrong shape.
func (s *Service) licenseByKey(ctx context.Context, licenseKey string) (license.LicenseRecord, error) {
	canonical, ok := license.NormalizeKey(licenseKey)
	if !ok {
		return license.LicenseRecord{}, licenseNotFound()
	}
	l, err := s.d.Licenses.ByKeyHash(ctx, s.d.Vault.Lookup(canonical))
	if err != nil {
		if isNotFound(err) {
			return l, licenseNotFound()
		}
		return l, internal("looking up license", err)
	}
	return l, nil
}

// Status implements ports.Licensing (POST /v1/status).
func (s *Service) Status(ctx context.Context, licenseKey string) (ports.StatusResult, error) {
	l, err := s.licenseByKey(ctx, licenseKey)
	if err != nil {
		return ports.StatusResult{}, err
	}
	now := s.now()
	used, err := s.seatsUsed(ctx, l.ID, now)
	if err != nil {
		return ports.StatusResult{}, err
	}
	return ports.StatusResult{
		Status:     string(license.EffectiveLicenseStatus(l, now)),
		SeatsUsed:  used,
		SeatsTotal: l.MaxActivations,
		ExpiresAt:  l.ExpiresAt,
	}, nil
}

// LicenseIDForKey implements ports.Licensing.
func (s *Service) LicenseIDForKey(ctx context.Context, licenseKey string) (string, error) {
	l, err := s.licenseByKey(ctx, licenseKey)
	if err != nil {
		return "", err
	}
	return l.ID, nil
}
