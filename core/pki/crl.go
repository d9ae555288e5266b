package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Codes of the revocation lists.
const (
	// CodeCRLNotFound: no intermediate still trusted has this id.
	CodeCRLNotFound = ports.CodeCRLNotFound
	// CodeCRLNotConfigured: the service was built without a certificate store to read revocations from.
	CodeCRLNotConfigured = ports.CodeCRLNotConfigured
)

// DefaultCRLValidity is how far nextUpdate is after thisUpdate. It bounds how long a proxy that
// stopped refreshing keeps accepting a certificate revoked since: past nextUpdate OpenSSL (and so
// nginx) refuses every client certificate of that intermediate, which fails closed. A list is
// re-signed once half of it has passed, so a proxy refreshing every few minutes always holds one
// with at least half an hour left.
const DefaultCRLValidity = time.Hour

// RFC 5280 section 5.3.1 reason codes the licensing reasons map to.
const (
	reasonSuperseded           = 4
	reasonCessationOfOperation = 5
)

// crls publishes and caches the revocation lists. The cache is what keeps a CRL request cheap: the
// list of revoked certificates is read on every request (an index scan over revoked rows only) and
// compared by digest with the one the cached list was signed from; only a change, a new
// intermediate certificate under the same id, or the half-life of the cached list costs a signature.
type crls struct {
	revoked  ports.RevokedCertificates
	baseURL  string
	validity time.Duration

	mu     sync.Mutex
	lists  map[string]cachedCRL // by intermediate id
	number map[string]*big.Int  // last cRLNumber handed out, by intermediate id
}

type cachedCRL struct {
	crl    ports.CRL
	digest [sha256.Size]byte
	issuer []byte // Raw of the intermediate certificate it was signed for
}

func newCRLs(d Deps) *crls {
	v := d.CRLValidity
	if v <= 0 {
		v = DefaultCRLValidity
	}
	return &crls{
		revoked:  d.Revocations,
		baseURL:  strings.TrimSuffix(d.CRLBaseURL, "/"),
		validity: v,
		lists:    map[string]cachedCRL{},
		number:   map[string]*big.Int{},
	}
}

// distributionPoints is the CRL Distribution Points of a certificate issuerID signs: the public URL
// of its DER list, or none when no public URL is configured.
func (c *crls) distributionPoints(issuerID string) []string {
	if c == nil || c.baseURL == "" {
		return nil
	}
	return []string{c.baseURL + ports.CRLPath(issuerID)}
}

var _ ports.CRLPublisher = (*Service)(nil)

// CRL implements ports.CRLPublisher: the list of intermediate id, from the cache when nothing it
// depends on has changed (see crls).
func (s *Service) CRL(ctx context.Context, id string) (ports.CRL, error) {
	c := s.crl
	if c == nil || c.revoked == nil {
		return ports.CRL{}, errs.E(errs.Unavailable, CodeCRLNotConfigured, "certificate revocation lists are not configured")
	}
	ints, err := s.intermediates(ctx)
	if err != nil {
		return ports.CRL{}, err
	}
	var issuer *authority.Intermediate
	for i := range ints {
		if ints[i].ID() == id && ints[i].State().Trusted() {
			issuer = &ints[i]
			break
		}
	}
	if issuer == nil {
		// A retired intermediate gets no list: nothing it signed is trusted any more, so a proxy
		// must drop it from its client CAs, not keep checking its revocations.
		return ports.CRL{}, errs.E(errs.NotFound, CodeCRLNotFound, "no trusted intermediate has this id")
	}
	now := s.clock.Now()
	revoked, err := c.revoked.RevokedByIssuer(ctx, id, now)
	if err != nil {
		return ports.CRL{}, storeError("revoked certificates", err)
	}
	digest := revocationDigest(revoked)
	cert := issuer.Certificate()

	c.mu.Lock()
	cached, ok := c.lists[id]
	c.mu.Unlock()
	if ok && cached.digest == digest && bytes.Equal(cached.issuer, cert.Raw) &&
		!now.Before(cached.crl.ThisUpdate) && now.Before(cached.crl.ThisUpdate.Add(c.validity/2)) {
		return cached.crl, nil
	}

	signer, err := s.ca.Signer(ctx, id)
	if err != nil {
		return ports.CRL{}, storeError("signer", err)
	}
	if !samePublicKey(signer.Public(), cert.PublicKey) {
		return ports.CRL{}, errs.Internalf("pki: the key store's signer for %s does not match its certificate", id)
	}
	number := c.nextNumber(id, now)
	crl, err := signCRL(s.rand, cert, signer, revoked, number, now, c.validity)
	if err != nil {
		return ports.CRL{}, err
	}
	crl.IssuerID = id

	c.mu.Lock()
	// Two requests may have rebuilt at once; keep the newer list so that the number never goes
	// back for the next caller.
	if prev, ok := c.lists[id]; !ok || prev.crl.Number.Cmp(crl.Number) < 0 {
		c.lists[id] = cachedCRL{crl: crl, digest: digest, issuer: cert.Raw}
	}
	c.mu.Unlock()
	return crl, nil
}

// nextNumber hands out the cRLNumber of a new list of id: the build time in Unix milliseconds, or
// one more than the last number if that is not greater. The time keeps numbers growing across
// restarts and across server instances (their lists are built from the same records); the counter
// keeps them growing within a process whose clock stands still or steps back.
func (c *crls) nextNumber(id string, now time.Time) *big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := big.NewInt(now.UnixMilli())
	if last := c.number[id]; last != nil && n.Cmp(last) <= 0 {
		n = new(big.Int).Add(last, big.NewInt(1))
	}
	c.number[id] = n
	return new(big.Int).Set(n)
}

// SignCRL signs an X.509 v2 revocation list for issuer: its revoked certificates, CRL number,
// thisUpdate = now (whole seconds) and nextUpdate = now + validity. The service uses it for the
// intermediates' lists; the offline root's list (which nginx needs beside them, docs/crl.md) is the
// same call with the root certificate, its key, and the revoked intermediates, if any. issuer must
// carry key usage cRLSign and a subject key identifier.
func SignCRL(rand io.Reader, issuer *x509.Certificate, signer crypto.Signer, revoked []ports.RevokedCertificate,
	number *big.Int, now time.Time, validity time.Duration) (ports.CRL, error) {
	if issuer == nil || signer == nil || number == nil || number.Sign() < 0 || validity <= 0 {
		return ports.CRL{}, errs.Internalf("pki: SignCRL needs an issuer, a signer, a number >= 0 and a validity > 0")
	}
	return signCRL(rand, issuer, signer, revoked, number, now, validity)
}

// signCRL builds and signs the X.509 v2 list of issuer for the revoked certificates at now.
func signCRL(rand io.Reader, issuer *x509.Certificate, signer crypto.Signer, revoked []ports.RevokedCertificate,
	number *big.Int, now time.Time, validity time.Duration) (ports.CRL, error) {
	this := now.UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                this,
		NextUpdate:                this.Add(validity),
		RevokedCertificateEntries: make([]x509.RevocationListEntry, 0, len(revoked)),
	}
	for _, r := range revoked {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok || serial.Sign() <= 0 {
			return ports.CRL{}, errs.Internalf("pki: revoked certificate serial %q on record is not hex", r.Serial)
		}
		at := r.RevokedAt.UTC().Truncate(time.Second)
		if r.RevokedAt.IsZero() {
			// A revoked record always carries its time; should one not, the list must still name it.
			at = this
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: serial, RevocationTime: at, ReasonCode: reasonCode(r.Reason),
		})
	}
	der, err := x509.CreateRevocationList(rand, tmpl, issuer, signer)
	if err != nil {
		return ports.CRL{}, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "certificate authority unavailable",
			fmt.Errorf("pki: sign revocation list of %s: %w", issuer.Subject, err))
	}
	return ports.CRL{DER: der, Number: number, ThisUpdate: this, NextUpdate: tmpl.NextUpdate, Revoked: len(revoked)}, nil
}

// reasonCode maps the licensing context's revocation reasons (free text on the record) to RFC 5280
// reason codes. Only the reasons that say something to a relying party are mapped; anything else
// is unspecified, which omits the extension (a reason is optional and never changes the verdict).
func reasonCode(reason string) int {
	switch strings.ToLower(strings.TrimSpace(reason)) {
	case "reissued", "superseded", "renewed":
		return reasonSuperseded
	case "deactivated":
		return reasonCessationOfOperation
	default:
		return 0
	}
}

// revocationDigest fingerprints a list of revoked certificates: equal digests sign equal lists.
func revocationDigest(revoked []ports.RevokedCertificate) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	for _, r := range revoked {
		h.Write([]byte(r.Serial))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(b[:], uint64(r.RevokedAt.Unix()))
		h.Write(b[:])
		h.Write([]byte(r.Reason))
		h.Write([]byte{0})
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
