package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// CodeChainCheckFailed is the code of a chain check that found the published chain or the
// client-CA pool wrong for an intermediate.
const CodeChainCheckFailed = "CHAIN_CHECK_FAILED"

// CodeNotIssuing is the code of a probe certificate asked of an intermediate that does not issue
// (not canary or active).
const CodeNotIssuing = "INTERMEDIATE_NOT_ISSUING"

// probeActivationID names the rollout's self-test certificates: it is no activation the licensing
// core knows, so such a certificate validates nothing but the handshake.
const probeActivationID = "rollout-self-test"

// probeValidity is short: the probe certificate lives for one handshake.
const probeValidity = 10 * time.Minute

// Health is the PKI service as the CA rollout sees it: a ports.CertificateIssuer that records the
// health events of the intermediates in the serve processes (issuance errors, forwarded
// certificates that fail to verify) so that the rollout workflow, in the worker, can read them from
// the database; and the probe issuer of the rollout's self-test and chain checks.
//
// Recording is best effort: a failure to record never changes the answer to the device (the
// figures then miss one event, the device does not lose its activation).
type Health struct {
	*Service
	events ports.RolloutEventRepo
}

var (
	_ ports.CertificateIssuer      = (*Health)(nil)
	_ ports.ProbeCertificateIssuer = (*Health)(nil)
)

// NewHealth wraps s; events may be nil (nothing is recorded, the probe issuer still works).
func NewHealth(s *Service, events ports.RolloutEventRepo) *Health {
	return &Health{Service: s, events: events}
}

// IssueDeviceCertificate issues as the service does and records a failure against the
// intermediate that was chosen for the activation.
func (h *Health) IssueDeviceCertificate(ctx context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	cert, err := h.Service.IssueDeviceCertificate(ctx, req)
	// A refused request (a bad key, a bad activation id) says nothing about the intermediate.
	if err == nil || errs.KindOf(err) == errs.Invalid {
		return cert, err
	}
	if ints, lerr := h.intermediates(ctx); lerr == nil {
		if in, serr := authority.SelectIssuer(ints, req.ActivationID); serr == nil {
			h.record(ctx, in.ID(), ports.RolloutEventIssueError, codeOrUnknown(err))
		}
	}
	return cert, err
}

// VerifyClientCertificate verifies as the service does and records a refused certificate
// against the intermediate that it names as its issuer, when that one is known.
func (h *Health) VerifyClientCertificate(ctx context.Context, cert *x509.Certificate, now time.Time) error {
	err := h.Service.VerifyClientCertificate(ctx, cert, now)
	if err == nil || cert == nil || errs.KindOf(err) != errs.Unauthenticated {
		return err
	}
	if id := h.issuerOf(ctx, cert); id != "" {
		h.record(ctx, id, ports.RolloutEventValidationFailure, "forwarded certificate "+authority.CanonicalSerial(cert.SerialNumber))
	}
	return err
}

// RecordValidationFailure records that a device certificate was refused outside
// VerifyClientCertificate (e.g. by the TLS listener's own verification); a certificate whose
// issuer is not one of the intermediates is not recorded.
func (h *Health) RecordValidationFailure(ctx context.Context, cert *x509.Certificate, detail string) {
	if cert == nil {
		return
	}
	if id := h.issuerOf(ctx, cert); id != "" {
		h.record(ctx, id, ports.RolloutEventValidationFailure, detail)
	}
}

// IssueProbeCertificate signs a short-lived device certificate from intermediateID, which must be
// issuing (canary or active), for the rollout's self-test.
func (h *Health) IssueProbeCertificate(ctx context.Context, intermediateID string, pub crypto.PublicKey) (ports.IssuedCertificate, error) {
	if err := authority.CheckDeviceKey(pub); err != nil {
		return ports.IssuedCertificate{}, err
	}
	in, err := h.find(ctx, intermediateID)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	if !in.State().Issues() {
		return ports.IssuedCertificate{}, errs.E(errs.Conflict, CodeNotIssuing,
			"intermediate "+intermediateID+" is "+string(in.State())+": only a canary or active intermediate issues")
	}
	now := h.clock.Now()
	serial, err := authority.NewSerial(h.rand)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: %w", err)
	}
	tmpl, err := authority.DeviceTemplate(serial, probeActivationID, now, probeValidity)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	signer, err := h.ca.Signer(ctx, in.ID())
	if err != nil {
		return ports.IssuedCertificate{}, storeError("signer", err)
	}
	der, err := x509.CreateCertificate(h.rand, tmpl, in.Certificate(), pub, signer)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: sign probe certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("pki: parse probe certificate: %w", err)
	}
	return ports.IssuedCertificate{
		Serial: authority.CanonicalSerial(cert.SerialNumber), DER: der,
		PEM:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		IssuerID: in.ID(), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
	}, nil
}

// CheckChain checks what devices and proxies are given for intermediateID: the published chain
// (CAChainPEM) holds its certificate, which verifies to the chain's root, and the client-CA pool
// holds it.
func (h *Health) CheckChain(ctx context.Context, intermediateID string) error {
	in, err := h.find(ctx, intermediateID)
	if err != nil {
		return err
	}
	fail := func(reason string) error {
		return errs.E(errs.Conflict, CodeChainCheckFailed, "chain check of "+intermediateID+": "+reason)
	}
	chainPEM, err := h.CAChainPEM(ctx)
	if err != nil {
		return err
	}
	var certs []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fail("the published chain holds an unreadable certificate")
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return fail("the published chain is empty")
	}
	root := certs[len(certs)-1]
	listed := false
	for _, c := range certs[:len(certs)-1] {
		if bytes.Equal(c.Raw, in.Certificate().Raw) {
			listed = true
		}
	}
	if !listed {
		return fail("the published chain does not list it")
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	if _, err := in.Certificate().Verify(x509.VerifyOptions{Roots: roots, CurrentTime: h.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fail(fmt.Sprintf("it does not verify to the published root: %v", err))
	}
	pool, err := h.ClientCAPool(ctx)
	if err != nil {
		return err
	}
	if !poolHolds(pool, in.Certificate()) {
		return fail("the client-CA pool of the device listener does not hold it")
	}
	return nil
}

// poolHolds reports whether pool holds cert (by subject and raw bytes).
func poolHolds(pool *x509.CertPool, cert *x509.Certificate) bool {
	// x509.CertPool has no lookup by certificate; its subjects are listed exactly for a pool built
	// with AddCert, as ClientCAPool builds it.
	for _, subj := range pool.Subjects() { //nolint:staticcheck // deprecated only for system pools
		if bytes.Equal(subj, cert.RawSubject) {
			return true
		}
	}
	return false
}

// find returns intermediate id of the hierarchy.
func (h *Health) find(ctx context.Context, id string) (authority.Intermediate, error) {
	ints, err := h.intermediates(ctx)
	if err != nil {
		return authority.Intermediate{}, err
	}
	for _, in := range ints {
		if in.ID() == id {
			return in, nil
		}
	}
	return authority.Intermediate{}, errs.E(errs.NotFound, authority.CodeIntermediateNotFound, "no intermediate "+id)
}

// issuerOf is the id of the intermediate that signed cert, by key identifier, then by name.
func (h *Health) issuerOf(ctx context.Context, cert *x509.Certificate) string {
	ints, err := h.intermediates(ctx)
	if err != nil {
		return ""
	}
	for _, in := range ints {
		ic := in.Certificate()
		if len(cert.AuthorityKeyId) > 0 && bytes.Equal(cert.AuthorityKeyId, ic.SubjectKeyId) {
			return in.ID()
		}
	}
	for _, in := range ints {
		if len(cert.AuthorityKeyId) == 0 && bytes.Equal(cert.RawIssuer, in.Certificate().RawSubject) {
			return in.ID()
		}
	}
	return ""
}

func (h *Health) record(ctx context.Context, id, kind, detail string) {
	if h.events == nil {
		return
	}
	// The device's request must not wait for, nor fail with, the figures.
	_ = h.events.Record(context.WithoutCancel(ctx), ports.RolloutEvent{IntermediateID: id, Kind: kind, At: h.clock.Now(), Detail: detail})
}

func codeOrUnknown(err error) string {
	if c := errs.CodeOf(err); c != "" {
		return c
	}
	return "UNKNOWN"
}
