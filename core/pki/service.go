// Package pki is the PKI use cases: issuing device certificates from the intermediate the CA
// rollout selects, publishing the chain devices and proxies trust, and checking client
// certificates that arrive outside the server's own TLS handshake. Keys stay in a ports.CAKeyStore;
// the hierarchy's rules live in package authority.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// CodeCertificateUntrusted is the code of a client certificate that does not chain to a trusted
// intermediate, is outside its validity, or is not for client authentication.
const CodeCertificateUntrusted = "CERTIFICATE_UNTRUSTED"

// Deps are what the service needs.
type Deps struct {
	CA ports.CAKeyStore
	// Shares gives the canary intermediates their share of new certificates. Nil means: the CA key
	// store's own, when it implements ports.CAShares; else no canary issues.
	Shares ports.CAShares
	Clock  ports.Clock
	// Rand is the source of serials and signature randomness; nil means crypto/rand.
	Rand io.Reader

	// Revocations is where the revocation lists (crl.go) read revoked certificates from: the
	// licensing certificate store. Nil: CRL answers CRL_NOT_CONFIGURED.
	Revocations ports.RevokedCertificates
	// CRLBaseURL is the public base URL (e.g. https://licenses.example.com) that new device
	// certificates name in their CRL Distribution Points; "" adds no such extension.
	CRLBaseURL string
	// CRLValidity is nextUpdate - thisUpdate of the lists; 0 means DefaultCRLValidity.
	CRLValidity time.Duration
}

// Service implements ports.CertificateIssuer and ports.CRLPublisher. Apart from the CRL cache it
// holds no state of its own: every call reads the hierarchy from the key store, so a rollout's
// state change is seen by the next call.
type Service struct {
	ca     ports.CAKeyStore
	shares ports.CAShares
	clock  ports.Clock
	rand   io.Reader
	crl    *crls // revocation lists and their cache (crl.go)
}

var _ ports.CertificateIssuer = (*Service)(nil)

// New builds the service.
func New(d Deps) *Service {
	r := d.Rand
	if r == nil {
		r = rand.Reader
	}
	shares := d.Shares
	if shares == nil {
		shares, _ = d.CA.(ports.CAShares)
	}
	return &Service{ca: d.CA, shares: shares, clock: d.Clock, rand: r, crl: newCRLs(d)}
}

// IssueDeviceCertificate signs the device certificate of PROTOCOL.md section 7 for req.PublicKey
// with the intermediate authority.SelectIssuer picks. Errors: errs.Invalid INVALID_CSR for a key
// the protocol does not allow, VALIDATION_FAILED for a bad activation id or validity,
// errs.Unavailable when no intermediate can issue now or the key store is down.
func (s *Service) IssueDeviceCertificate(ctx context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	if err := authority.CheckDeviceKey(req.PublicKey); err != nil {
		return ports.IssuedCertificate{}, err
	}
	now := s.clock.Now()
	ints, err := s.intermediates(ctx)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	issuer, err := authority.SelectIssuer(ints, req.ActivationID)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	if !issuer.ValidAt(now) {
		return ports.IssuedCertificate{}, errs.Wrap(errs.Unavailable, authority.CodeNoActiveIntermediate,
			"no intermediate CA can issue now", fmt.Errorf("pki: the active intermediate %s is outside its validity at %s", issuer.ID(), now.UTC().Format(time.RFC3339)))
	}
	serial, err := authority.NewSerial(s.rand)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: %w", err)
	}
	tmpl, err := authority.DeviceTemplate(serial, req.ActivationID, now, req.Validity)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	tmpl.CRLDistributionPoints = s.crl.distributionPoints(issuer.ID())
	issuerCert := issuer.Certificate()
	// A certificate cannot outlive the intermediate that vouches for it: it would stop verifying
	// early anyway, so say so in notAfter and let the heartbeat's renew hint replace it in time.
	if tmpl.NotAfter.After(issuerCert.NotAfter) {
		tmpl.NotAfter = issuerCert.NotAfter
	}
	signer, err := s.ca.Signer(ctx, issuer.ID())
	if err != nil {
		return ports.IssuedCertificate{}, storeError("signer", err)
	}
	if !samePublicKey(signer.Public(), issuerCert.PublicKey) {
		return ports.IssuedCertificate{}, errs.Internalf("pki: the key store's signer for %s does not match its certificate", issuer.ID())
	}
	der, err := x509.CreateCertificate(s.rand, tmpl, issuerCert, req.PublicKey, signer)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: sign device certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: parse issued certificate: %w", err)
	}
	return ports.IssuedCertificate{
		Serial:    authority.CanonicalSerial(cert.SerialNumber),
		DER:       der,
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		IssuerID:  issuer.ID(),
		NotBefore: cert.NotBefore.UTC(),
		NotAfter:  cert.NotAfter.UTC(),
	}, nil
}

// CAChainPEM is every intermediate still trusted, the issuing ones first, then the root.
func (s *Service) CAChainPEM(ctx context.Context) (string, error) {
	trusted, root, err := s.trusted(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, in := range trusted {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: in.Certificate().Raw}))
	}
	b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
	return b.String(), nil
}

// ClientCAPool holds every intermediate still trusted, and not the root (see the port's doc).
//
// The TLS listener uses it as tls.Config.ClientCAs with ClientAuth tls.VerifyClientCertIfGiven:
// Go then accepts a client certificate only when it was signed by one of these intermediates, with
// extended key usage clientAuth, inside its dates. Build a fresh tls.Config through
// GetConfigForClient (or rebuild the pool after a rollout step) so that retiring an intermediate
// takes effect without a restart. Certificates forwarded by a TLS proxy go through
// VerifyClientCertificate.
func (s *Service) ClientCAPool(ctx context.Context) (*x509.CertPool, error) {
	trusted, _, err := s.trusted(ctx)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, in := range trusted {
		pool.AddCert(in.Certificate())
	}
	return pool, nil
}

// VerifyClientCertificate checks cert as the TLS handshake would, for a certificate forwarded by a
// trusted proxy: it must chain through one of the intermediates still trusted (never through one
// the sender supplies) to the root, be valid at now, and allow clientAuth. It does not look the
// certificate up on record; the licensing core does that by serial.
func (s *Service) VerifyClientCertificate(ctx context.Context, cert *x509.Certificate, now time.Time) error {
	if cert == nil {
		return errs.Validation("client certificate is missing")
	}
	trusted, root, err := s.trusted(ctx)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inters := x509.NewCertPool()
	for _, in := range trusted {
		inters.AddCert(in.Certificate())
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return errs.Wrap(errs.Unauthenticated, CodeCertificateUntrusted, "client certificate is not trusted", err)
	}
	// The root is a trust anchor for intermediates only: a leaf it signed directly, or a CA
	// certificate presented as a client certificate, is not a device certificate.
	if !cert.IsCA {
		for _, ch := range chains {
			if len(ch) == 3 && slices.ContainsFunc(trusted, func(in authority.Intermediate) bool { return in.Certificate().Equal(ch[1]) }) {
				return nil
			}
		}
	}
	return errs.E(errs.Unauthenticated, CodeCertificateUntrusted, "client certificate is not trusted")
}

// RollingBack reports whether intermediate issuerID is rolled back. An id the store does not know
// (or no longer knows) is not being rolled back.
func (s *Service) RollingBack(ctx context.Context, issuerID string) (bool, error) {
	ints, err := s.intermediates(ctx)
	if err != nil {
		return false, err
	}
	for _, in := range ints {
		if in.ID() == issuerID {
			return in.State() == authority.StateRolledBack, nil
		}
	}
	return false, nil
}

// intermediates reads the hierarchy from the store into aggregates, with the canary shares.
func (s *Service) intermediates(ctx context.Context) ([]authority.Intermediate, error) {
	raw, err := s.ca.Intermediates(ctx)
	if err != nil {
		return nil, storeError("intermediates", err)
	}
	var shares map[string]int
	if s.shares != nil {
		if shares, err = s.shares.Shares(ctx); err != nil {
			return nil, storeError("shares", err)
		}
	}
	out := make([]authority.Intermediate, 0, len(raw))
	for _, r := range raw {
		in, err := authority.NewIntermediate(r.ID, r.Cert, r.State)
		if err == nil && shares[r.ID] != 0 {
			in, err = in.WithShare(shares[r.ID])
		}
		if err != nil {
			return nil, errs.Internalf("pki: intermediate %q in the key store: %w", r.ID, err)
		}
		out = append(out, in)
	}
	return out, nil
}

// trusted returns the intermediates still trusted, ordered by chainOrder, and the root.
func (s *Service) trusted(ctx context.Context) ([]authority.Intermediate, *x509.Certificate, error) {
	ints, err := s.intermediates(ctx)
	if err != nil {
		return nil, nil, err
	}
	root, err := s.ca.Root(ctx)
	if err != nil {
		return nil, nil, storeError("root", err)
	}
	if root == nil {
		return nil, nil, errs.Internalf("pki: the key store has no root")
	}
	ints = slices.DeleteFunc(ints, func(in authority.Intermediate) bool { return !in.State().Trusted() })
	slices.SortStableFunc(ints, func(a, b authority.Intermediate) int {
		return chainOrder(a.State()) - chainOrder(b.State())
	})
	return ints, root, nil
}

// chainOrder puts the intermediates that issue first in ca_chain, the ones being phased in next,
// and the ones on their way out last.
func chainOrder(s authority.State) int { return authority.ChainOrder(s) }

// storeError keeps a key store's domain errors and makes anything else Unavailable: the store is a
// backend (files, an HSM, a remote signer) whose failure a retry may cure.
func storeError(what string, err error) error {
	if _, ok := errs.As(err); ok {
		return err
	}
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "certificate authority unavailable", fmt.Errorf("pki: key store %s: %w", what, err))
}

// samePublicKey compares two public keys by their SubjectPublicKeyInfo encoding.
func samePublicKey(a, b crypto.PublicKey) bool {
	da, errA := x509.MarshalPKIXPublicKey(a)
	db, errB := x509.MarshalPKIXPublicKey(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}
