// Package licensing is the licensing context's use cases: activation (with first-activation claims),
// validation, heartbeats, deactivation, certificate renewal and the admin calls on products,
// licenses and claims (PROTOCOL.md sections 2 step 5, 4, 5, 6 and 9). The rules themselves live in
// package license; this package loads and stores records through the ports, inside one transaction
// per use case, and calls the PKI, the lease signer and the e-mail process.
package licensing

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// Config is the service's configuration, read by cmd.
type Config struct {
	// PublicURL is the base of links in e-mails (claim confirmation), e.g. http://127.0.0.1:8080.
	PublicURL string
	// MTLSURL is the device base URL with mutual TLS, returned to devices as mtls_url.
	MTLSURL string
	// VendorName names the vendor in e-mails.
	VendorName string
	// Logger receives what is logged rather than returned (failed e-mail starts). Nil discards.
	Logger *slog.Logger
}

// Deps are the driven ports the service calls.
type Deps struct {
	Clock        ports.Clock
	Tx           ports.Tx
	Products     ports.ProductRepo
	Licenses     ports.LicenseRepo
	Activations  ports.ActivationRepo
	Certificates ports.CertificateRepo
	Claims       ports.ClaimRepo
	Issuer       ports.CertificateIssuer
	Vault        ports.KeyVault
	Leases       ports.LeaseSigner
	// LeaseIssuer is the iss of leases, equal to the issuer of GET /v1/keys.
	LeaseIssuer string
	Processes   ports.Processes
	Emails      ports.EmailRenderer
	Config      Config
}

// Service implements ports.Licensing.
type Service struct {
	d   Deps
	log *slog.Logger
	// certKeys caches the public keys of parsed device certificates (see certificateKey).
	certKeys certKeyCache
}

var _ ports.Licensing = (*Service)(nil)

// New returns the service. Every dependency is required.
func New(d Deps) *Service {
	log := d.Config.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{d: d, log: log}
}

// now is the service's time: UTC and whole seconds, because every time a device sees is written in
// whole seconds (RFC 3339 without fractions, NumericDate) and the boundaries of section 5 must be
// the same instants on the wire and in the database.
func (s *Service) now() time.Time { return s.d.Clock.Now().UTC().Truncate(time.Second) }

func licenseNotFound() error {
	return errs.E(errs.NotFound, license.CodeLicenseNotFound, "license not found")
}

// licenseStateError is the error of a device use case that needs an active license.
func licenseStateError(st license.LicenseStatus) error {
	switch st {
	case license.LicenseRevoked:
		return errs.E(errs.Forbidden, license.CodeLicenseRevoked, "the license is revoked")
	case license.LicenseSuspended:
		return errs.E(errs.Forbidden, license.CodeLicenseSuspended, "the license is suspended")
	case license.LicenseExpired:
		return errs.E(errs.Forbidden, license.CodeLicenseExpired, "the license has expired")
	}
	return nil
}

func activationRevoked() error {
	return errs.E(errs.Forbidden, license.CodeActivationRevoked, "the activation is no longer active")
}

func certificateRevoked() error {
	return errs.E(errs.Forbidden, license.CodeCertificateRevoked, "the certificate is no longer valid for this request")
}

func unknownKey() error {
	return errs.E(errs.Unauthenticated, license.CodeUnknownKey, "the signing key is not known")
}

func productMismatch() error {
	return errs.E(errs.Invalid, license.CodeProductMismatch, "the license does not cover this product")
}

// isNotFound reports a repository's NOT_FOUND (and nothing else: an unavailable store must not
// read as "no such row").
func isNotFound(err error) bool {
	return err != nil && errs.KindOf(err) == errs.NotFound
}

// internal wraps an unexpected failure of a port; domain errors pass unchanged.
func internal(what string, err error) error {
	if _, ok := errs.As(err); ok {
		return err
	}
	return errs.Internalf("licensing: %s: %w", what, err)
}

// policyOf loads the policy of a license's product.
func (s *Service) policyOf(ctx context.Context, l license.LicenseRecord) (license.ProductRecord, error) {
	p, err := s.d.Products.Get(ctx, l.Product)
	if err != nil {
		if isNotFound(err) {
			return p, errs.Internalf("licensing: license %s names missing product %q", l.ID, l.Product)
		}
		return p, internal("loading product", err)
	}
	return p, nil
}

// seatsUsed counts the seats a license holds at now.
func (s *Service) seatsUsed(ctx context.Context, licenseID string, now time.Time) (int, error) {
	used, _, err := s.countSeats(ctx, licenseID, now)
	return used, err
}

// countSeats returns the seats a license holds at now and whether any of its activations is
// active: counted by the repository when it can (ports.SeatCounter), else from the seat holders.
func (s *Service) countSeats(ctx context.Context, licenseID string, now time.Time) (used int, anyActive bool, err error) {
	if c, ok := s.d.Activations.(ports.SeatCounter); ok {
		held, active, err := c.CountSeats(ctx, licenseID, now)
		if err != nil {
			return 0, false, internal("counting seats", err)
		}
		return held, active > 0, nil
	}
	holders, err := s.d.Activations.SeatHolders(ctx, licenseID, now)
	if err != nil {
		return 0, false, internal("loading seat holders", err)
	}
	for _, a := range holders {
		if a.Status == license.ActivationActive {
			anyActive = true
			break
		}
	}
	return license.SeatsUsed(holders, now), anyActive, nil
}

// lockLicenseOf loads an activation, locks its license's row and loads the activation again under
// the lock, so that use cases that write an activation (heartbeat, deactivate, renew) never
// overwrite one another's changes.
func (s *Service) lockLicenseOf(ctx context.Context, activationID string) (license.LicenseRecord, license.ActivationRecord, error) {
	a, err := s.d.Activations.Get(ctx, activationID)
	if err != nil {
		if isNotFound(err) {
			return license.LicenseRecord{}, a, activationRevoked()
		}
		return license.LicenseRecord{}, a, internal("loading activation", err)
	}
	l, err := s.d.Licenses.GetForUpdate(ctx, a.LicenseID)
	if err != nil {
		return l, a, internal("locking license", err)
	}
	a, err = s.d.Activations.Get(ctx, activationID)
	if err != nil {
		return l, a, internal("loading activation", err)
	}
	return l, a, nil
}

// sendEmails starts the delivery of each message. It runs after the transaction committed, so a
// message never describes a change that rolled back. A failure to start the workflow is logged and
// not returned: the change it reports has already committed and is what the device asked for, an
// error would make the device retry a use case that succeeded, and every message has a
// deterministic ID so an operator can resend it (the delivery workflow itself retries once started).
func (s *Service) sendEmails(ctx context.Context, msgs []ports.EmailMessage) {
	for _, m := range msgs {
		if err := s.d.Processes.SendEmail(ctx, m); err != nil {
			s.log.ErrorContext(ctx, "licensing: starting e-mail delivery failed", "email_id", m.ID, "template", m.Template, "err", err)
		}
	}
}
