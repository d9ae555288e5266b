package licensing

import (
	"context"
	"crypto"
	"crypto/x509"
	"sync"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// ResolveCSR implements ports.Licensing.
func (s *Service) ResolveCSR(_ context.Context, csrPEM, keyID string) (ports.DeviceIdentity, error) {
	pub, _, thumb, err := license.ParseCSR(csrPEM)
	if err != nil {
		return ports.DeviceIdentity{}, err
	}
	if keyID != thumb {
		return ports.DeviceIdentity{}, unknownKey()
	}
	return ports.DeviceIdentity{Thumbprint: thumb, PublicKey: pub}, nil
}

// ResolveClaim implements ports.Licensing.
func (s *Service) ResolveClaim(ctx context.Context, claimID, keyID string) (ports.DeviceIdentity, error) {
	c, err := s.d.Claims.Get(ctx, claimID)
	if err != nil {
		if isNotFound(err) {
			return ports.DeviceIdentity{}, claimNotFound()
		}
		return ports.DeviceIdentity{}, internal("loading claim", err)
	}
	if keyID != c.KeyThumbprint {
		return ports.DeviceIdentity{}, unknownKey()
	}
	pub, err := license.ParsePublicKey(c.PublicKeyDER)
	if err != nil {
		return ports.DeviceIdentity{}, errs.Internalf("licensing: claim %s holds an unreadable key: %w", c.ID, err)
	}
	return ports.DeviceIdentity{ClaimID: c.ID, LicenseID: c.LicenseID, Thumbprint: c.KeyThumbprint, PublicKey: pub}, nil
}

// ResolveStatusKey implements ports.Licensing.
func (s *Service) ResolveStatusKey(ctx context.Context, keyID string) (ports.DeviceIdentity, bool, error) {
	if keyID == "" {
		return ports.DeviceIdentity{}, false, nil
	}
	a, err := s.d.Activations.ActiveByThumbprint(ctx, keyID)
	if err == nil {
		pub, perr := license.ParsePublicKey(a.PublicKeyDER)
		if perr != nil {
			return ports.DeviceIdentity{}, false, errs.Internalf("licensing: activation %s holds an unreadable key: %w", a.ID, perr)
		}
		return ports.DeviceIdentity{ActivationID: a.ID, LicenseID: a.LicenseID, Thumbprint: a.KeyThumbprint, PublicKey: pub}, true, nil
	}
	if !isNotFound(err) {
		return ports.DeviceIdentity{}, false, internal("loading activation", err)
	}
	c, err := s.d.Claims.OpenByThumbprint(ctx, keyID, s.now())
	if err != nil {
		if isNotFound(err) {
			return ports.DeviceIdentity{}, false, nil
		}
		return ports.DeviceIdentity{}, false, internal("loading claim", err)
	}
	pub, err := license.ParsePublicKey(c.PublicKeyDER)
	if err != nil {
		return ports.DeviceIdentity{}, false, errs.Internalf("licensing: claim %s holds an unreadable key: %w", c.ID, err)
	}
	return ports.DeviceIdentity{ClaimID: c.ID, LicenseID: c.LicenseID, Thumbprint: c.KeyThumbprint, PublicKey: pub}, true, nil
}

// mutating reports whether op may only use the activation's current certificate.
func mutating(op ports.DeviceOp) bool {
	return op == ports.OpRenew || op == ports.OpDeactivate
}

// ResolveCertificate implements ports.Licensing. The checks run in the order of PROTOCOL.md
// section 2 step 5, and the identity carries the public key of the certificate itself (not the
// activation's, which differs after a renewal with a new key while the old certificate overlaps).
func (s *Service) ResolveCertificate(ctx context.Context, serial, keyID string, op ports.DeviceOp) (ports.DeviceIdentity, error) {
	c, err := s.d.Certificates.BySerial(ctx, license.CanonicalSerial(serial))
	if err != nil {
		if isNotFound(err) {
			return ports.DeviceIdentity{}, errs.E(errs.Forbidden, license.CodeCertificateUnknown, "the certificate is not on record")
		}
		return ports.DeviceIdentity{}, internal("loading certificate", err)
	}
	a, err := s.d.Activations.Get(ctx, c.ActivationID)
	if err != nil {
		if isNotFound(err) {
			return ports.DeviceIdentity{}, activationRevoked()
		}
		return ports.DeviceIdentity{}, internal("loading activation", err)
	}
	if a.Status != license.ActivationActive {
		return ports.DeviceIdentity{}, activationRevoked()
	}
	if !license.CertificateAccepted(c, mutating(op), s.now()) ||
		(c.Status == license.CertificateCurrent && c.Serial != a.CertificateSerial) {
		return ports.DeviceIdentity{}, certificateRevoked()
	}
	if keyID != c.KeyThumbprint {
		return ports.DeviceIdentity{}, errs.E(errs.Forbidden, license.CodeKeyMismatch, "the signing key is not the certificate's key")
	}
	pub, err := s.certKeys.key(c.DER)
	if err != nil {
		return ports.DeviceIdentity{}, errs.Internalf("licensing: certificate %s on record does not parse: %w", c.Serial, err)
	}
	return ports.DeviceIdentity{
		ActivationID:      a.ID,
		LicenseID:         a.LicenseID,
		Thumbprint:        c.KeyThumbprint,
		PublicKey:         pub,
		MTLS:              true,
		CertificateSerial: c.Serial,
	}, nil
}

// ResolveKey implements ports.Licensing. Only the activation's current key is known this way: an
// old key that still overlaps after a renewal is usable only with its certificate.
func (s *Service) ResolveKey(ctx context.Context, keyID string, _ ports.DeviceOp) (ports.DeviceIdentity, error) {
	if keyID == "" {
		return ports.DeviceIdentity{}, unknownKey()
	}
	a, err := s.d.Activations.ActiveByThumbprint(ctx, keyID)
	if err != nil {
		if isNotFound(err) {
			return ports.DeviceIdentity{}, unknownKey()
		}
		return ports.DeviceIdentity{}, internal("loading activation", err)
	}
	if a.Status != license.ActivationActive {
		return ports.DeviceIdentity{}, activationRevoked()
	}
	pub, err := license.ParsePublicKey(a.PublicKeyDER)
	if err != nil {
		return ports.DeviceIdentity{}, errs.Internalf("licensing: activation %s holds an unreadable key: %w", a.ID, err)
	}
	return ports.DeviceIdentity{ActivationID: a.ID, LicenseID: a.LicenseID, Thumbprint: a.KeyThumbprint, PublicKey: pub}, nil
}

func claimNotFound() error {
	return errs.E(errs.NotFound, license.CodeClaimNotFound, "claim not found")
}

// certKeyCache remembers the public key of each certificate DER it parsed: every certificate-bound
// request names its certificate, and parsing it again on each one cost more than the lookup. The
// key is the DER itself (as a string), so a hit is the very certificate, whatever its serial.
type certKeyCache struct {
	mu   sync.Mutex
	keys map[string]crypto.PublicKey
}

// certKeyCacheMax bounds the cache; when full it is dropped whole and refills with the working set.
const certKeyCacheMax = 10_000

func (c *certKeyCache) key(der []byte) (crypto.PublicKey, error) {
	c.mu.Lock()
	pub, ok := c.keys[string(der)]
	c.mu.Unlock()
	if ok {
		return pub, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= certKeyCacheMax {
		c.keys = map[string]crypto.PublicKey{}
	}
	c.keys[string(der)] = cert.PublicKey
	c.mu.Unlock()
	return cert.PublicKey, nil
}
