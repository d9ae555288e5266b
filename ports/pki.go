package ports

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"
)

// DeviceCertificateRequest asks the PKI for a device certificate. The certificate is built from
// PublicKey alone (PROTOCOL.md section 7): subject, extensions and validity come from the server.
type DeviceCertificateRequest struct {
	ActivationID string
	PublicKey    crypto.PublicKey
	Validity     time.Duration
	// CSR is the device's PKCS#10 request (DER) whose key is PublicKey, already checked by the
	// caller (self-signature, allowed key). Issuers that sign locally ignore it; a backend that
	// only signs requests (step-ca) needs it, because PublicKey alone cannot prove possession of
	// the private key to that CA. Its subject and extensions never reach the certificate.
	CSR []byte
}

// IssuedCertificate is a device certificate just issued.
type IssuedCertificate struct {
	Serial    string // canonical upper-case hex
	DER       []byte
	PEM       string // the leaf alone
	IssuerID  string
	NotBefore time.Time
	NotAfter  time.Time
}

// CertificateIssuer issues device certificates from the intermediate the rollout selects.
type CertificateIssuer interface {
	// IssueDeviceCertificate signs a certificate for req. Never returns a CA key.
	IssueDeviceCertificate(ctx context.Context, req DeviceCertificateRequest) (IssuedCertificate, error)
	// CAChainPEM is every intermediate still trusted, then the root (PROTOCOL.md section 1).
	CAChainPEM(ctx context.Context) (string, error)
	// ClientCAPool is the pool of intermediates that device certificates chain to, for verifying
	// client certificates on the TLS listener (tls.Config.ClientCAs). It holds every intermediate
	// still trusted, as trust anchors, and deliberately not the root: with the root in the pool a
	// client could present a retired intermediate beside its leaf and pass the handshake.
	// Certificates forwarded by a proxy go through VerifyClientCertificate instead.
	ClientCAPool(ctx context.Context) (*x509.CertPool, error)
	// RollingBack reports whether the intermediate issuerID is being rolled back (a renew hint).
	RollingBack(ctx context.Context, issuerID string) (bool, error)
	// VerifyClientCertificate checks that cert chains through an intermediate still trusted to the
	// root, is valid at now and allows extended key usage clientAuth. It is for certificates that
	// did not come through this server's own TLS handshake (forwarded by a trusted TLS proxy,
	// PROTOCOL.md section 7); it does not look the certificate up on record. A certificate that
	// fails is errs.Unauthenticated with code CERTIFICATE_UNTRUSTED; nil cert is errs.Invalid.
	VerifyClientCertificate(ctx context.Context, cert *x509.Certificate, now time.Time) error
}

// CAIntermediate is an intermediate CA certificate as a CAKeyStore holds it.
type CAIntermediate struct {
	// ID is stable for the life of the intermediate; it is the IssuerID of the certificates it signs.
	ID   string
	Cert *x509.Certificate
	// State is one of staged, canary, active, retiring, retired, rolled_back
	// (core/pki/authority.State).
	State string
}

// CAKeyStore is where the CA hierarchy lives (local files, an HSM, a remote signer). Private keys
// never leave it except as a crypto.Signer, whose Sign may be a call into the backend.
type CAKeyStore interface {
	// Intermediates lists every intermediate the store knows, retired ones included. Errors are
	// errs.Unavailable when the backend cannot be reached.
	Intermediates(ctx context.Context) ([]CAIntermediate, error)
	// Root returns the root certificate every intermediate chains to.
	Root(ctx context.Context) (*x509.Certificate, error)
	// Signer returns the signing key of intermediate id; errs.NotFound when the store has no such
	// intermediate. The signer's public key is the one in that intermediate's certificate.
	Signer(ctx context.Context, intermediateID string) (crypto.Signer, error)
}
