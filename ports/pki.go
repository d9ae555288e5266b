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
	// ClientCAPool is the pool of intermediates (and root) that device certificates chain to, for
	// verifying client certificates on the TLS listener and behind a proxy.
	ClientCAPool(ctx context.Context) (*x509.CertPool, error)
	// RollingBack reports whether the intermediate issuerID is being rolled back (a renew hint).
	RollingBack(ctx context.Context, issuerID string) (bool, error)
}
