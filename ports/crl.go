package ports

import (
	"context"
	"math/big"
	"time"
)

// CRLPath is the path, relative to the server's public URL, of the revocation list of
// intermediate id in DER; replace the ".crl" suffix by ".pem" for the PEM form. Device certificates
// name the DER URL in their CRL Distribution Points extension.
func CRLPath(intermediateID string) string { return "/v1/pki/crl/" + intermediateID + ".crl" }

// Codes of the revocation lists, shared by the publisher and the HTTP adapter.
const (
	// CodeCRLNotFound: no intermediate still trusted has this id (or the file type is not .crl/.pem).
	CodeCRLNotFound = "CRL_NOT_FOUND"
	// CodeCRLNotConfigured: the server was built without revocation lists.
	CodeCRLNotConfigured = "CRL_NOT_CONFIGURED"
)

// CRL is a signed X.509 v2 certificate revocation list of one intermediate.
type CRL struct {
	IssuerID   string
	DER        []byte   // the signed list (RFC 5280 CertificateList)
	Number     *big.Int // the cRLNumber extension: grows with every new list of this issuer
	ThisUpdate time.Time
	NextUpdate time.Time
	Revoked    int // entries in the list
}

// RevokedCertificates is the slice of ports.CertificateRepo the CRL publisher needs.
type RevokedCertificates interface {
	// RevokedByIssuer: see CertificateRepo.
	RevokedByIssuer(ctx context.Context, issuerID string, now time.Time) ([]RevokedCertificate, error)
}

// CRLPublisher publishes the revocation lists of device certificates, one per intermediate still
// trusted, for TLS proxies that check revocation themselves (an nginx edge with ssl_crl).
type CRLPublisher interface {
	// CRL returns the current list of intermediate id, signed by that intermediate's key: every
	// revoked device certificate it issued that has not expired. A list is rebuilt when a
	// revocation is recorded, when a certificate in it expires, and when half of its validity has
	// passed; between those the same signed list (same number) is returned, so calls are cheap and
	// safe to make on every request. Errors: errs.NotFound CRL_NOT_FOUND for an id that is not an
	// intermediate still trusted (unknown or retired); errs.Unavailable when the key store or the
	// certificate store cannot be reached; errs.Unavailable CRL_NOT_CONFIGURED when the publisher
	// has no certificate store.
	CRL(ctx context.Context, intermediateID string) (CRL, error)
}
