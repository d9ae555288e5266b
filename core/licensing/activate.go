package licensing

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// device is a device asking for an activation, from an activate request or an approved claim.
type device struct {
	Fingerprint   string
	DeviceName    string
	Platform      string
	PluginVersion string
	Product       string // "" = not asked
	RequestAddr   string
	CSRPEM        string
	Thumbprint    string
	PublicKey     crypto.PublicKey
	SPKI          []byte
}

// activateOutcome collects what a transaction decided, to act on after it committed.
type activateOutcome struct {
	grant   *ports.ActivationGrant // without CAChainPEM
	pending *ports.PendingClaim
	emails  []ports.EmailMessage
	// deferred is a domain error whose transaction must still commit (the attempt count of an
	// open claim): the use case returns it after the commit.
	deferred error
}

// Activate implements ports.Licensing (POST /v1/activate).
func (s *Service) Activate(ctx context.Context, cmd ports.ActivateCommand) (ports.ActivateResult, error) {
	canonical, ok := license.NormalizeKey(cmd.LicenseKey)
	if !ok {
		return ports.ActivateResult{}, licenseNotFound()
	}
	pub, spki, thumb, err := license.ParseCSR(cmd.CSRPEM)
	if err != nil {
		return ports.ActivateResult{}, err
	}
	// The request was verified with the key ResolveCSR found; a command carrying another key
	// would activate a key that never signed anything.
	if cmd.Identity.Thumbprint != "" && cmd.Identity.Thumbprint != thumb {
		return ports.ActivateResult{}, unknownKey()
	}
	dev := device{
		Fingerprint:   cmd.Fingerprint,
		DeviceName:    cmd.DeviceName,
		Platform:      cmd.Platform,
		PluginVersion: cmd.PluginVersion,
		Product:       cmd.Product,
		RequestAddr:   cmd.RequestAddr,
		CSRPEM:        cmd.CSRPEM,
		Thumbprint:    thumb,
		PublicKey:     pub,
		SPKI:          spki,
	}
	if err := license.ValidateDevice(license.DeviceInput{Fingerprint: dev.Fingerprint, DeviceName: dev.DeviceName, Platform: dev.Platform, PluginVersion: dev.PluginVersion}); err != nil {
		return ports.ActivateResult{}, err
	}
	hash := s.d.Vault.Lookup(canonical)
	var out activateOutcome
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		out = activateOutcome{}
		found, err := s.d.Licenses.ByKeyHash(ctx, hash)
		if err != nil {
			if isNotFound(err) {
				return licenseNotFound()
			}
			return internal("looking up license", err)
		}
		l, err := s.d.Licenses.GetForUpdate(ctx, found.ID)
		if err != nil {
			return internal("locking license", err)
		}
		return s.activateLocked(ctx, &out, l, dev, false)
	})
	if err != nil {
		return ports.ActivateResult{}, err
	}
	return s.finishActivation(ctx, out)
}

// finishActivation sends the outcome's e-mails and builds the result, after the commit.
func (s *Service) finishActivation(ctx context.Context, out activateOutcome) (ports.ActivateResult, error) {
	s.sendEmails(ctx, out.emails)
	if out.deferred != nil {
		return ports.ActivateResult{}, out.deferred
	}
	if out.pending != nil {
		return ports.ActivateResult{Pending: out.pending}, nil
	}
	chain, err := s.d.Issuer.CAChainPEM(ctx)
	if err != nil {
		return ports.ActivateResult{}, internal("loading CA chain", err)
	}
	g := *out.grant
	g.CAChainPEM = chain
	g.MTLSURL = s.d.Config.MTLSURL
	return ports.ActivateResult{Grant: &g}, nil
}

// activateLocked runs under the license's row lock. approved is true for a device whose claim an
// owner or admin approved: it skips the first-activation rule (it already went through it).
func (s *Service) activateLocked(ctx context.Context, out *activateOutcome, l license.LicenseRecord, dev device, approved bool) error {
	now := s.now()
	if st := license.EffectiveLicenseStatus(l, now); st != license.LicenseActive {
		return licenseStateError(st)
	}
	prod, err := s.policyOf(ctx, l)
	if err != nil {
		return err
	}
	policy := prod.Policy
	if dev.Product != "" && !license.Covers(l.Product, l.Entitlements, dev.Product) {
		return productMismatch()
	}

	// A claim is for a license with no active activation; a device superseding its own activation
	// had one when it asked, so it never needs a claim.
	needsClaim := !approved && policy.FirstActivation == license.FirstOwnerApproval
	superseded := false
	existing, err := s.d.Activations.ActiveByFingerprint(ctx, l.ID, dev.Fingerprint)
	switch {
	case err == nil && existing.KeyThumbprint == dev.Thumbprint:
		return s.reissue(ctx, out, l, existing, dev, policy, now)
	case err == nil:
		// Same device, new key (a reinstall): supersede the old activation. Its seat is freed by
		// the transfer rules before the seat check below, so a supersede past the limit on a full
		// license is refused (and rolled back) like any other activation.
		if err := s.supersede(ctx, out, l, existing, dev, policy, now); err != nil {
			return err
		}
		needsClaim, superseded = false, true
	case !isNotFound(err):
		return internal("loading activation", err)
	}

	used, active, err := s.countSeats(ctx, l.ID, now)
	if err != nil {
		return err
	}
	if used >= l.MaxActivations {
		return errs.E(errs.Conflict, license.CodeActivationLimitExceeded, "every seat of this license is in use")
	}
	if needsClaim && !active {
		return s.claim(ctx, out, l, dev, now)
	}
	if err := s.create(ctx, out, l, dev, policy, now); err != nil {
		return err
	}
	if !superseded { // a supersede tells the owner with its own e-mail, and only that one
		s.queueActivatedEmail(ctx, out, l, prod, dev, used+1, now)
	}
	return nil
}

// lease signs a lease for a at now and records its exp as the activation's LastLeaseExp.
func (s *Service) lease(ctx context.Context, l license.LicenseRecord, a *license.ActivationRecord, policy license.Policy, now time.Time) (string, error) {
	exp := license.LeaseExpiry(l, *a, policy)
	var c ports.LeaseClaims
	c.Issuer = s.d.LeaseIssuer
	c.Subject = a.ID
	c.License = l.ID
	c.Product = l.Product
	c.Entitlements = license.EntitlementsOf(l.Product, l.Entitlements)
	c.Fingerprint = a.Fingerprint
	c.Confirmation.KID = a.KeyThumbprint
	c.IssuedAt = now.Unix()
	c.NotBefore = now.Unix()
	c.HeartbeatDue = license.HeartbeatDue(*a, policy).Unix()
	c.Expires = exp.Unix()
	if l.ExpiresAt != nil {
		lexp := l.ExpiresAt.Unix()
		c.LicenseExpiry = &lexp
	}
	c.Status = string(license.EffectiveLicenseStatus(l, now))
	jws, err := s.d.Leases.SignLease(ctx, c)
	if err != nil {
		return "", internal("signing lease", err)
	}
	a.LastLeaseExp = &exp
	return jws, nil
}

// issue gets a certificate for the activation's key and records it as current. csrPEM is the
// request (already checked by license.ParseCSR) that pub came from: an issuer backend that only
// signs requests, such as step-ca, needs it as proof of possession.
func (s *Service) issue(ctx context.Context, a license.ActivationRecord, pub crypto.PublicKey, csrPEM string, policy license.Policy, now time.Time) (license.CertificateRecord, ports.IssuedCertificate, error) {
	var csrDER []byte
	if block, _ := pem.Decode([]byte(csrPEM)); block != nil {
		csrDER = block.Bytes
	}
	ic, err := s.d.Issuer.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{
		ActivationID: a.ID,
		PublicKey:    pub,
		Validity:     policy.CertificateValidity,
		CSR:          csrDER,
	})
	if err != nil {
		return license.CertificateRecord{}, ic, internal("issuing device certificate", err)
	}
	rec := license.CertificateRecord{
		Serial:        license.CanonicalSerial(ic.Serial),
		ActivationID:  a.ID,
		LicenseID:     a.LicenseID,
		KeyThumbprint: a.KeyThumbprint,
		IssuerID:      ic.IssuerID,
		DER:           ic.DER,
		NotBefore:     ic.NotBefore,
		NotAfter:      ic.NotAfter,
		Status:        license.CertificateCurrent,
		CreatedAt:     now,
	}
	return rec, ic, nil
}

func grantOf(created bool, a license.ActivationRecord, cert license.CertificateRecord, certPEM, lease string, policy license.Policy) *ports.ActivationGrant {
	return &ports.ActivationGrant{
		Created:             created,
		ActivationID:        a.ID,
		CertificatePEM:      certPEM,
		CertificateSerial:   cert.Serial,
		CertificateNotAfter: cert.NotAfter,
		Lease:               lease,
		HeartbeatInterval:   policy.HeartbeatInterval,
		GracePeriod:         policy.GracePeriod,
	}
}

// create inserts a new activation with its certificate and first lease. Activation counts as the
// first heartbeat.
func (s *Service) create(ctx context.Context, out *activateOutcome, l license.LicenseRecord, dev device, policy license.Policy, now time.Time) error {
	a := license.ActivationRecord{
		ID:              license.NewID(license.IDPrefixActivation),
		LicenseID:       l.ID,
		Fingerprint:     dev.Fingerprint,
		DeviceName:      dev.DeviceName,
		Platform:        dev.Platform,
		PluginVersion:   dev.PluginVersion,
		KeyThumbprint:   dev.Thumbprint,
		PublicKeyDER:    dev.SPKI,
		Status:          license.ActivationActive,
		CreatedAt:       now,
		LastHeartbeatAt: now,
		UpdatedAt:       now,
	}
	cert, ic, err := s.issue(ctx, a, dev.PublicKey, dev.CSRPEM, policy, now)
	if err != nil {
		return err
	}
	a.CertificateSerial = cert.Serial
	lease, err := s.lease(ctx, l, &a, policy, now)
	if err != nil {
		return err
	}
	if err := s.d.Activations.Insert(ctx, a); err != nil {
		if errs.CodeOf(err) == license.CodeActivationExists {
			// Only possible if another writer got past the license row lock. The transaction is
			// rolled back (on PostgreSQL it is aborted anyway); the device's retry finds the other
			// activation and takes the same-device path, so "try again" is the safe answer.
			return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "a concurrent activation of this device is in progress; retry", err)
		}
		return internal("inserting activation", err)
	}
	if err := s.d.Certificates.Insert(ctx, cert); err != nil {
		return internal("inserting certificate", err)
	}
	out.grant = grantOf(true, a, cert, ic.PEM, lease, policy)
	return nil
}

// reissue answers the same device with the same key again: the same activation, its current
// certificate (a new one when it has expired or is no longer current) and a fresh lease; the
// heartbeat clock does not move.
func (s *Service) reissue(ctx context.Context, out *activateOutcome, l license.LicenseRecord, a license.ActivationRecord, dev device, policy license.Policy, now time.Time) error {
	cert, err := s.d.Certificates.BySerial(ctx, a.CertificateSerial)
	if err != nil && !isNotFound(err) {
		return internal("loading certificate", err)
	}
	var certPEM string
	if err != nil || cert.Status != license.CertificateCurrent || !now.Before(cert.NotAfter) {
		if err == nil {
			if err := s.d.Certificates.Update(ctx, license.RevokeCertificate(cert, "reissued", now)); err != nil {
				return internal("updating certificate", err)
			}
		}
		nc, ic, err := s.issue(ctx, a, dev.PublicKey, dev.CSRPEM, policy, now)
		if err != nil {
			return err
		}
		if err := s.d.Certificates.Insert(ctx, nc); err != nil {
			return internal("inserting certificate", err)
		}
		cert, certPEM = nc, ic.PEM
		a.CertificateSerial = nc.Serial
	} else {
		certPEM = pemOf(cert.DER)
	}
	if dev.DeviceName != "" {
		a.DeviceName = dev.DeviceName
	}
	if dev.PluginVersion != "" {
		a.PluginVersion = dev.PluginVersion
	}
	lease, err := s.lease(ctx, l, &a, policy, now)
	if err != nil {
		return err
	}
	a.UpdatedAt = now
	if err := s.d.Activations.Update(ctx, a); err != nil {
		return internal("updating activation", err)
	}
	out.grant = grantOf(false, a, cert, certPEM, lease, policy)
	return nil
}

// endActivation ends an active activation under the license lock with the seat rules and revokes
// every certificate it still has. It returns when its seat stops counting.
func (s *Service) endActivation(ctx context.Context, l license.LicenseRecord, a license.ActivationRecord, to license.ActivationStatus, reason string, policy license.Policy, now time.Time) (time.Time, error) {
	used, err := s.d.Activations.TransfersSince(ctx, l.ID, license.TransferWindowStart(now))
	if err != nil {
		return time.Time{}, internal("counting transfers", err)
	}
	ended, released := license.EndActivation(a, to, reason, used, policy, now)
	if err := s.d.Activations.Update(ctx, ended); err != nil {
		return time.Time{}, internal("updating activation", err)
	}
	certs, err := s.d.Certificates.ListByActivation(ctx, a.ID)
	if err != nil {
		return time.Time{}, internal("loading certificates", err)
	}
	for _, c := range certs {
		if c.Status == license.CertificateRevoked {
			continue
		}
		if err := s.d.Certificates.Update(ctx, license.RevokeCertificate(c, string(to), now)); err != nil {
			return time.Time{}, internal("revoking certificate", err)
		}
	}
	return released, nil
}

// supersede replaces the activation of a device that came back with a new key, and tells the owner.
func (s *Service) supersede(ctx context.Context, out *activateOutcome, l license.LicenseRecord, old license.ActivationRecord, dev device, policy license.Policy, now time.Time) error {
	if _, err := s.endActivation(ctx, l, old, license.ActivationSuperseded, "re-activated with a new key", policy, now); err != nil {
		return err
	}
	if l.OwnerEmail == "" {
		return nil
	}
	used, err := s.seatsUsed(ctx, l.ID, now)
	if err != nil {
		return err
	}
	// The new activation takes the seat the old one gave back (the message is sent only if it does:
	// a refused activation rolls back and its messages are dropped).
	msg, err := s.render("supersede-"+old.ID, l.OwnerEmail, ports.TemplateDeviceSuperseded, ports.DeviceEmail{
		Product:     s.productName(ctx, l.Product),
		DeviceName:  dev.DeviceName,
		Platform:    dev.Platform,
		Fingerprint: dev.Fingerprint,
		At:          now,
		SeatsUsed:   used + 1,
		SeatsTotal:  l.MaxActivations,
		AccountURL:  s.accountURL(),
	})
	if err != nil {
		return err
	}
	out.emails = append(out.emails, msg)
	return nil
}

// claim opens (or returns) the first-activation claim of this device, or counts the attempt of
// another device while one is open.
func (s *Service) claim(ctx context.Context, out *activateOutcome, l license.LicenseRecord, dev device, now time.Time) error {
	open, err := s.d.Claims.OpenByLicense(ctx, l.ID, now)
	if err != nil {
		return internal("loading claims", err)
	}
	for _, c := range open {
		if c.Fingerprint == dev.Fingerprint && c.KeyThumbprint == dev.Thumbprint {
			out.pending = &ports.PendingClaim{ClaimID: c.ID, ExpiresAt: c.ExpiresAt}
			return nil
		}
	}
	if len(open) > 0 {
		c := open[0]
		c.AttemptCount++
		if err := s.d.Claims.Update(ctx, c); err != nil {
			return internal("updating claim", err)
		}
		// Committed, then returned: the owner sees how many other devices tried.
		out.deferred = errs.E(errs.Conflict, license.CodeFirstActivationPendingConfirmation,
			"another device is waiting for the owner's confirmation")
		return nil
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read always fills raw
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	c := license.ClaimRecord{
		ID:            license.NewID(license.IDPrefixClaim),
		LicenseID:     l.ID,
		Fingerprint:   dev.Fingerprint,
		DeviceName:    dev.DeviceName,
		Platform:      dev.Platform,
		PluginVersion: dev.PluginVersion,
		Product:       dev.Product,
		CSRPEM:        dev.CSRPEM,
		KeyThumbprint: dev.Thumbprint,
		PublicKeyDER:  dev.SPKI,
		RequestAddr:   dev.RequestAddr,
		Status:        license.ClaimPending,
		TokenHash:     sum[:],
		CreatedAt:     now,
		ExpiresAt:     now.Add(license.ClaimTTL),
	}
	if err := s.d.Claims.Insert(ctx, c); err != nil {
		return internal("inserting claim", err)
	}
	out.pending = &ports.PendingClaim{ClaimID: c.ID, ExpiresAt: c.ExpiresAt}
	if l.OwnerEmail == "" {
		return nil // only an admin can decide
	}
	msg, err := s.render("claim-"+c.ID, l.OwnerEmail, ports.TemplateDeviceApproval, ports.DeviceApprovalEmail{
		Product:     s.productName(ctx, l.Product),
		DeviceName:  dev.DeviceName,
		Platform:    dev.Platform,
		Fingerprint: dev.Fingerprint,
		RequestAddr: dev.RequestAddr,
		RequestedAt: now,
		ExpiresAt:   c.ExpiresAt,
		ConfirmURL:  s.confirmURL(token),
	})
	if err != nil {
		return err
	}
	out.emails = append(out.emails, msg)
	return nil
}

// Bootstrap implements ports.Licensing (POST /v1/bootstrap).
func (s *Service) Bootstrap(ctx context.Context, id ports.DeviceIdentity) (ports.ActivateResult, error) {
	var out activateOutcome
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		out = activateOutcome{}
		c, err := s.d.Claims.Get(ctx, id.ClaimID)
		if err != nil {
			if isNotFound(err) {
				return claimNotFound()
			}
			return internal("loading claim", err)
		}
		if id.Thumbprint != "" && id.Thumbprint != c.KeyThumbprint {
			return unknownKey()
		}
		now := s.now()
		switch license.ClaimStatusAt(c, now) {
		case license.ClaimPending:
			out.pending = &ports.PendingClaim{ClaimID: c.ID, ExpiresAt: c.ExpiresAt}
			return nil
		case license.ClaimRejected:
			return errs.E(errs.Gone, license.CodeClaimRejected, "the owner rejected this device")
		case license.ClaimExpired:
			return claimExpired()
		}
		l, err := s.d.Licenses.GetForUpdate(ctx, c.LicenseID)
		if err != nil {
			return internal("locking license", err)
		}
		c, err = s.d.Claims.Get(ctx, c.ID) // again, under the lock: two bootstraps activate once
		if err != nil {
			return internal("loading claim", err)
		}
		if c.ActivationID != "" {
			a, err := s.d.Activations.Get(ctx, c.ActivationID)
			if err != nil && !isNotFound(err) {
				return internal("loading activation", err)
			}
			if err != nil || a.Status != license.ActivationActive || a.KeyThumbprint != c.KeyThumbprint {
				return activationRevoked()
			}
		}
		pub, err := license.ParsePublicKey(c.PublicKeyDER)
		if err != nil {
			return errs.Internalf("licensing: claim %s holds an unreadable key: %w", c.ID, err)
		}
		dev := device{
			Fingerprint:   c.Fingerprint,
			DeviceName:    c.DeviceName,
			Platform:      c.Platform,
			PluginVersion: c.PluginVersion,
			Product:       c.Product,
			RequestAddr:   c.RequestAddr,
			CSRPEM:        c.CSRPEM,
			Thumbprint:    c.KeyThumbprint,
			PublicKey:     pub,
			SPKI:          c.PublicKeyDER,
		}
		if err := s.activateLocked(ctx, &out, l, dev, true); err != nil {
			return err
		}
		if out.grant != nil && c.ActivationID == "" {
			c.ActivationID = out.grant.ActivationID
			if err := s.d.Claims.Update(ctx, c); err != nil {
				return internal("updating claim", err)
			}
		}
		return nil
	})
	if err != nil {
		return ports.ActivateResult{}, err
	}
	return s.finishActivation(ctx, out)
}

func claimExpired() error {
	return errs.E(errs.Gone, license.CodeClaimExpired, "the claim has expired")
}
