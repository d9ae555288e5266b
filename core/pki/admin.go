package pki

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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

// Codes of the administration use cases.
const (
	CodeWeakPassphrase     = "WEAK_PASSPHRASE"
	CodeInvalidPEM         = "INVALID_PEM"
	CodeRootMismatch       = "ROOT_MISMATCH"
	CodeKeyMissing         = "INTERMEDIATE_KEY_MISSING"
	CodeKeyMismatch        = "INTERMEDIATE_KEY_MISMATCH"
	CodeAlreadyInstalled   = "INTERMEDIATE_INSTALLED"
	CodeValidityTooLong    = "VALIDITY_EXCEEDS_ROOT"
	CodeIntermediateBroken = "INTERMEDIATE_UNREADABLE"
	// CodeConstraintsUnsupported: sign-intermediate was asked for name constraints (see there).
	CodeConstraintsUnsupported = "NAME_CONSTRAINTS_UNSUPPORTED"
)

// MinPassphraseLen is the shortest passphrase the root key is encrypted under. PBES2 slows a guess
// down; it cannot make a short passphrase strong.
const MinPassphraseLen = 12

// AdminDeps are what the administration needs. The offline steps need Roots and Bundles; the
// server steps need Dir and Keys (and Bundles to install). Counter is optional: without it Status
// does not count certificates.
type AdminDeps struct {
	Roots   ports.RootVault
	Bundles ports.BundleArchive
	Dir     ports.PKIDirectory
	Keys    ports.KeyStore
	Counter ports.IssuedCertificateCounter
	Clock   ports.Clock
	// Rand is the source of serials and signature randomness; nil means crypto/rand.
	Rand io.Reader
}

// Admin implements ports.PKI: the CA hierarchy's offline and server-side steps. The rules (profiles,
// transitions, shares) are package authority's; Admin reads and writes through the ports.
type Admin struct {
	d AdminDeps
}

var _ ports.PKI = (*Admin)(nil)

// NewAdmin builds the administration.
func NewAdmin(d AdminDeps) *Admin {
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	return &Admin{d: d}
}

func missing(what string) error {
	return errs.Internalf("pki: %s is not configured for this step", what)
}

// InitRoot creates the offline root (see ports.PKI).
func (a *Admin) InitRoot(ctx context.Context, req ports.InitRootRequest) (ports.RootInfo, error) {
	if a.d.Roots == nil {
		return ports.RootInfo{}, missing("the root vault")
	}
	if len(req.Passphrase) < MinPassphraseLen {
		return ports.RootInfo{}, errs.E(errs.Invalid, CodeWeakPassphrase, fmt.Sprintf("the root passphrase needs at least %d characters", MinPassphraseLen))
	}
	subject := authority.CASubject{CommonName: req.CommonName, Organization: req.Organization}
	if subject.CommonName == "" {
		subject.CommonName = "Samplero Root CA"
	}
	validity := req.Validity
	if validity == 0 {
		validity = authority.RootValidity
	}
	now := a.d.Clock.Now()
	var root *x509.Certificate
	locs, err := a.d.Roots.Create(ctx, req.Dir, req.Passphrase, func(key crypto.Signer) (*x509.Certificate, error) {
		if err := authority.CheckRootKey(key.Public()); err != nil {
			return nil, err
		}
		serial, err := authority.NewSerial(a.d.Rand)
		if err != nil {
			return nil, errs.Internalf("pki: %w", err)
		}
		tmpl, err := authority.RootTemplate(serial, subject, now, validity)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(a.d.Rand, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, errs.Internalf("pki: sign root: %w", err)
		}
		root, err = x509.ParseCertificate(der)
		if err != nil {
			return nil, errs.Internalf("pki: parse root: %w", err)
		}
		return root, nil
	})
	if err != nil {
		return ports.RootInfo{}, err
	}
	info := rootInfo(root)
	info.CertLocation, info.KeyLocation = locs.Cert, locs.Key
	return info, nil
}

func rootInfo(root *x509.Certificate) ports.RootInfo {
	return ports.RootInfo{
		Subject:           root.Subject.String(),
		NotBefore:         root.NotBefore.UTC(),
		NotAfter:          root.NotAfter.UTC(),
		FingerprintSHA256: authority.Fingerprint(root),
	}
}

// SignIntermediate signs an intermediate's CSR with the offline root (see ports.PKI).
func (a *Admin) SignIntermediate(ctx context.Context, req ports.SignIntermediateRequest) (ports.SignedIntermediate, error) {
	if a.d.Roots == nil {
		return ports.SignedIntermediate{}, missing("the root vault")
	}
	csr, err := parseCSR(req.CSRPEM)
	if err != nil {
		return ports.SignedIntermediate{}, err
	}
	if err := authority.CheckIntermediateCSR(csr); err != nil {
		return ports.SignedIntermediate{}, err
	}
	if !authority.NameConstraints(req.Constraints).Empty() {
		// Device certificates name their activation by a URN (PROTOCOL.md section 7), a URI without
		// a host, and Go's verifier refuses such a URI below any name-constrained CA: every device
		// certificate of the intermediate would fail the server's own TLS handshake
		// (authority's TestIntermediateTemplateAndNameConstraints shows it).
		return ports.SignedIntermediate{}, errs.E(errs.Invalid, CodeConstraintsUnsupported,
			"name constraints are refused: the TLS verifier of this server rejects every device certificate (urn:samplero:activation:…) below a name-constrained intermediate")
	}
	validity := req.Validity
	if validity == 0 {
		validity = authority.IntermediateValidity
	}
	root, key, err := a.d.Roots.Open(ctx, req.RootDir, req.Passphrase)
	if err != nil {
		return ports.SignedIntermediate{}, err
	}
	if !samePublicKey(key.Public(), root.PublicKey) {
		return ports.SignedIntermediate{}, errs.Internalf("pki: the root key does not match the root certificate")
	}
	now := a.d.Clock.Now()
	serial, err := authority.NewSerial(a.d.Rand)
	if err != nil {
		return ports.SignedIntermediate{}, errs.Internalf("pki: %w", err)
	}
	tmpl, err := authority.IntermediateTemplate(serial, csr.Subject, now, validity, authority.NameConstraints(req.Constraints))
	if err != nil {
		return ports.SignedIntermediate{}, err
	}
	if tmpl.NotAfter.After(root.NotAfter) {
		return ports.SignedIntermediate{}, errs.E(errs.Invalid, CodeValidityTooLong,
			"the intermediate would outlive the root (root valid until "+root.NotAfter.UTC().Format(time.RFC3339)+"): choose a shorter validity")
	}
	der, err := x509.CreateCertificate(a.d.Rand, tmpl, root, csr.PublicKey, key)
	if err != nil {
		return ports.SignedIntermediate{}, errs.Internalf("pki: sign intermediate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ports.SignedIntermediate{}, errs.Internalf("pki: parse intermediate: %w", err)
	}
	if err := authority.CheckIntermediate(cert, root); err != nil {
		return ports.SignedIntermediate{}, errs.Internalf("pki: the signed intermediate fails its own profile: %w", err)
	}
	if err := a.d.Roots.RecordIssued(ctx, req.RootDir, cert); err != nil {
		return ports.SignedIntermediate{}, err
	}
	return ports.SignedIntermediate{
		ID:                authority.IntermediateID(cert),
		CertPEM:           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Subject:           cert.Subject.String(),
		NotBefore:         cert.NotBefore.UTC(),
		NotAfter:          cert.NotAfter.UTC(),
		FingerprintSHA256: authority.Fingerprint(cert),
	}, nil
}

// NewIntermediate creates a key in the KeyStore and its CSR (see ports.PKI).
func (a *Admin) NewIntermediate(ctx context.Context, req ports.NewIntermediateRequest) (ports.PendingIntermediate, error) {
	if a.d.Keys == nil || a.d.Dir == nil {
		return ports.PendingIntermediate{}, missing("the PKI directory")
	}
	now := a.d.Clock.Now().UTC()
	cn := strings.TrimSpace(req.CommonName)
	if cn == "" {
		cn = "Samplero Intermediate CA " + now.Format("2006-01-02")
	}
	org := strings.TrimSpace(req.Organization)
	if len(cn) > 64 || len(org) > 64 {
		return ports.PendingIntermediate{}, errs.E(errs.Invalid, authority.CodeInvalidProfile, "common name and organization have at most 64 characters")
	}
	name := pkix.Name{CommonName: cn}
	if org != "" {
		name.Organization = []string{org}
	}
	ref, signer, err := a.d.Keys.NewKey(ctx)
	if err != nil {
		return ports.PendingIntermediate{}, err
	}
	id, err := authority.KeyID(signer.Public())
	if err != nil {
		return ports.PendingIntermediate{}, err
	}
	if ref != id {
		return ports.PendingIntermediate{}, errs.Internalf("pki: the key store named key %s, want the intermediate id %s", ref, id)
	}
	der, err := x509.CreateCertificateRequest(a.d.Rand, &x509.CertificateRequest{Subject: name}, signer)
	if err != nil {
		return ports.PendingIntermediate{}, errs.Internalf("pki: make CSR: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	loc, err := a.d.Dir.SaveCSR(ctx, id, csrPEM)
	if err != nil {
		return ports.PendingIntermediate{}, err
	}
	return ports.PendingIntermediate{ID: id, CSRLocation: loc, CSRPEM: csrPEM, CreatedAt: now}, nil
}

// InstallBundle verifies and installs a bundle's intermediate as staged (see ports.PKI).
func (a *Admin) InstallBundle(ctx context.Context, req ports.InstallBundleRequest) (ports.InstalledIntermediate, error) {
	if a.d.Keys == nil || a.d.Dir == nil || a.d.Bundles == nil {
		return ports.InstalledIntermediate{}, missing("the PKI directory")
	}
	b, err := a.readBundle(ctx, req.Path, req.RootFingerprint)
	if err != nil {
		return ports.InstalledIntermediate{}, err
	}
	snap, err := a.d.Dir.Snapshot(ctx)
	if err != nil {
		return ports.InstalledIntermediate{}, err
	}
	if snap.Root != nil && !snap.Root.Equal(b.root) {
		return ports.InstalledIntermediate{}, errs.E(errs.Conflict, CodeRootMismatch, "the bundle's root ("+authority.Fingerprint(b.root)+
			") is not the installed root ("+authority.Fingerprint(snap.Root)+"): a new root is a new trust anchor for every device, not an intermediate install")
	}
	id := b.info.IntermediateID
	key, err := a.d.Keys.Key(ctx, id)
	if errs.KindOf(err) == errs.NotFound {
		return ports.InstalledIntermediate{}, errs.E(errs.Conflict, CodeKeyMissing, "no key for intermediate "+id+
			" in this PKI directory: run `samplero pki new-intermediate` here and have the root sign that CSR (a bundle never carries a key)")
	}
	if err != nil {
		return ports.InstalledIntermediate{}, err
	}
	if !samePublicKey(key.Public(), b.inter.PublicKey) {
		return ports.InstalledIntermediate{}, errs.E(errs.Conflict, CodeKeyMismatch, "the key of "+id+" does not match the bundle's certificate")
	}
	for _, in := range snap.Intermediates {
		if in.ID == id && in.Cert != nil && !in.Cert.Equal(b.inter) && !req.Force {
			return ports.InstalledIntermediate{}, errs.E(errs.Conflict, CodeAlreadyInstalled, "intermediate "+id+
				" already has another certificate; use --force to replace it (the old one is kept in a backup)")
		}
	}
	res, err := a.d.Dir.Install(ctx, ports.InstallRequest{
		ID: id, Root: b.root, Intermediate: b.inter, Force: req.Force,
		Note: "installed from bundle (intermediate " + b.info.IntermediateFingerprint + ")",
	})
	if err != nil {
		return ports.InstalledIntermediate{}, err
	}
	return ports.InstalledIntermediate{
		ID: id, State: res.State, CertLocation: res.CertLocation, BackupLocation: res.BackupLocation,
		RootInstalled: res.RootInstalled, AlreadyInstalled: res.AlreadyInstalled, Bundle: b.info,
	}, nil
}

// Status lists the hierarchy (see ports.PKI).
func (a *Admin) Status(ctx context.Context) (ports.PKIStatus, error) {
	if a.d.Dir == nil {
		return ports.PKIStatus{}, missing("the PKI directory")
	}
	snap, err := a.d.Dir.Snapshot(ctx)
	if err != nil {
		return ports.PKIStatus{}, err
	}
	var out ports.PKIStatus
	if snap.Root != nil {
		ri := rootInfo(snap.Root)
		out.Root = &ri
	}
	var counts map[string]int
	if a.d.Counter != nil {
		if counts, err = a.d.Counter.CountValidByIssuer(ctx, a.d.Clock.Now()); err != nil {
			out.CountsError = errs.CodeOf(err)
			if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
				out.CountsError = e.Message
			}
		} else {
			out.CountsAvailable = true
		}
	}
	for _, in := range snap.Intermediates {
		st := ports.IntermediateStatus{
			ID: in.ID, State: in.Record.State, Share: in.Record.Share, Since: in.Record.Since,
			Replaces: in.Record.Replaces, Problem: in.Problem, IssuedValid: counts[in.ID],
		}
		if in.Cert != nil {
			st.Subject = in.Cert.Subject.String()
			st.NotBefore, st.NotAfter = in.Cert.NotBefore.UTC(), in.Cert.NotAfter.UTC()
			st.FingerprintSHA256 = authority.Fingerprint(in.Cert)
		}
		out.Intermediates = append(out.Intermediates, st)
	}
	out.Pending = snap.Pending
	return out, nil
}

// SetIntermediateState changes an intermediate's state under the hierarchy's rules (see ports.PKI).
func (a *Admin) SetIntermediateState(ctx context.Context, req ports.SetIntermediateStateRequest) (ports.StateChangeResult, error) {
	if a.d.Dir == nil {
		return ports.StateChangeResult{}, missing("the PKI directory")
	}
	to, err := authority.ParseState(req.State)
	if err != nil {
		return ports.StateChangeResult{}, err
	}
	now := a.d.Clock.Now().UTC()
	var result ports.StateChangeResult
	err = a.d.Dir.UpdateStates(ctx, func(st *ports.HierarchyStates) error {
		result = ports.StateChangeResult{}
		// The certificates are read under the state file's lock, so an install running at the
		// same moment is either wholly seen or not at all.
		snap, err := a.d.Dir.Snapshot(ctx)
		if err != nil {
			return err
		}
		certs := map[string]ports.InstalledCert{}
		for _, in := range snap.Intermediates {
			certs[in.ID] = in
		}
		ints := make([]authority.Intermediate, 0, len(st.Intermediates))
		replaces := map[string]string{}
		for _, r := range st.Intermediates {
			c, ok := certs[r.ID]
			if !ok || c.Cert == nil {
				problem := "its certificate is missing"
				if ok {
					problem = c.Problem
				}
				return errs.E(errs.Conflict, CodeIntermediateBroken, "intermediate "+r.ID+" cannot be read ("+problem+"): fix the PKI directory first")
			}
			in, err := authority.NewIntermediate(r.ID, c.Cert, r.State)
			if err == nil {
				in, err = in.WithShare(r.Share)
			}
			if err != nil {
				return err
			}
			ints = append(ints, in)
			replaces[r.ID] = r.Replaces
		}
		h, err := authority.NewHierarchy(ints, replaces)
		if err != nil {
			return err
		}
		changes, err := h.Change(req.ID, to, req.Share, now)
		if err != nil {
			return err
		}
		for _, c := range changes {
			i := slices.IndexFunc(st.Intermediates, func(r ports.IntermediateRecord) bool { return r.ID == c.ID })
			r := &st.Intermediates[i]
			r.State, r.Share, r.Since = string(c.To), c.Share, now
			if c.To == authority.StateActive {
				r.Replaces = c.Replaces
			}
			sc := ports.StateChange{At: now, ID: c.ID, From: string(c.From), To: string(c.To), Share: c.Share}
			if c.ID != req.ID {
				sc.Note = "moved with " + req.ID
			}
			st.History = append(st.History, sc)
			result.Changes = append(result.Changes, sc)
		}
		return nil
	})
	if err != nil {
		return ports.StateChangeResult{}, err
	}
	return result, nil
}

// parseCSR reads exactly one PEM certificate request.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	var csr *x509.CertificateRequest
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, errs.E(errs.Invalid, CodeInvalidPEM, "the CSR file holds a "+b.Type+" block")
		}
		if csr != nil {
			return nil, errs.E(errs.Invalid, CodeInvalidPEM, "the CSR file holds more than one request")
		}
		c, err := x509.ParseCertificateRequest(b.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, CodeInvalidPEM, "the CSR does not parse", err)
		}
		csr = c
	}
	if csr == nil {
		return nil, errs.E(errs.Invalid, CodeInvalidPEM, "no PEM CERTIFICATE REQUEST found")
	}
	return csr, nil
}

// parseOneCert reads exactly one PEM certificate and nothing else.
func parseOneCert(what string, data []byte) (*x509.Certificate, error) {
	certs, err := parseCerts(what, data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, errs.E(errs.Invalid, CodeInvalidPEM, fmt.Sprintf("%s holds %d certificates, want one", what, len(certs)))
	}
	return certs[0], nil
}

// parseCerts reads PEM certificates; any other block or trailing text is refused.
func parseCerts(what string, data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, errs.E(errs.Invalid, CodeInvalidPEM, what+" holds a "+b.Type+" block")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, CodeInvalidPEM, what+" holds a certificate that does not parse", err)
		}
		out = append(out, c)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errs.E(errs.Invalid, CodeInvalidPEM, what+" holds text that is not PEM")
	}
	if len(out) == 0 {
		return nil, errs.E(errs.Invalid, CodeInvalidPEM, what+" holds no certificate")
	}
	return out, nil
}
