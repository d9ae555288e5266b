package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func newHealth(t *testing.T) (*pki.Health, *memCA, *portstest.MemRolloutEvents, string) {
	svc, ca, _, active := newService(t)
	events := portstest.NewMemRolloutEvents(nil)
	return pki.NewHealth(svc, events), ca, events, active
}

// The self-test certificate comes from the intermediate asked for, even a canary the share would
// not pick, and verifies through it to the root as a device certificate.
func TestProbeCertificateFromTheNamedIntermediate(t *testing.T) {
	h, ca, _, _ := newHealth(t)
	canary := ca.addIntermediate(t, "canary", 365*24*time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	got, err := h.IssueProbeCertificate(context.Background(), canary, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cert := must(x509.ParseCertificate(got.DER))
	if got.IssuerID != canary || got.NotAfter.Sub(got.NotBefore) > time.Hour {
		t.Fatalf("probe certificate from %s, valid %s", got.IssuerID, got.NotAfter.Sub(got.NotBefore))
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca.root)
	inters.AddCert(ca.cert(canary))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: t0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("probe certificate does not verify: %v", err)
	}
	if err := h.VerifyClientCertificate(context.Background(), cert, t0); err != nil {
		t.Fatalf("the service refuses the probe certificate: %v", err)
	}

	staged := ca.addIntermediate(t, "staged", 365*24*time.Hour)
	if _, err := h.IssueProbeCertificate(context.Background(), staged, key.Public()); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("probe from a staged intermediate: %v", err)
	}
	if _, err := h.IssueProbeCertificate(context.Background(), "int_none", key.Public()); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("probe from an unknown intermediate: %v", err)
	}
}

func TestCheckChain(t *testing.T) {
	h, ca, _, active := newHealth(t)
	canary := ca.addIntermediate(t, "canary", 365*24*time.Hour)
	for _, id := range []string{active, canary} {
		if err := h.CheckChain(context.Background(), id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	ca.setState(canary, "retired")
	err := h.CheckChain(context.Background(), canary)
	if errs.CodeOf(err) != pki.CodeChainCheckFailed {
		t.Fatalf("a retired intermediate is not in the chain: %v", err)
	}
}

// An issuance failure is recorded against the intermediate the activation was sent to; a refused
// request is not recorded at all.
func TestIssuanceErrorsAreRecorded(t *testing.T) {
	h, ca, events, active := newHealth(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := ports.DeviceCertificateRequest{ActivationID: "act_1", PublicKey: key.Public(), Validity: time.Hour}
	if _, err := h.IssueDeviceCertificate(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	bad := req
	bad.ActivationID = "not valid!"
	if _, err := h.IssueDeviceCertificate(context.Background(), bad); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad request: %v", err)
	}
	if n := len(events.Events()); n != 0 {
		t.Fatalf("%d events after a success and a refused request", n)
	}
	delete(ca.keys, active) // the key store lost the key: issuance fails
	if _, err := h.IssueDeviceCertificate(context.Background(), req); err == nil {
		t.Fatal("issued without a key")
	}
	evs := events.Events()
	if len(evs) != 1 || evs[0].IntermediateID != active || evs[0].Kind != ports.RolloutEventIssueError || !evs[0].At.Equal(t0) {
		t.Fatalf("events %+v", evs)
	}
}

// A forwarded certificate that no longer verifies (its intermediate retired) is recorded against
// that intermediate.
func TestValidationFailuresAreRecorded(t *testing.T) {
	h, ca, events, active := newHealth(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	probe, err := h.IssueProbeCertificate(context.Background(), active, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	cert := must(x509.ParseCertificate(probe.DER))
	next := ca.addIntermediate(t, "active", 365*24*time.Hour)
	ca.setState(active, "retired")
	if err := h.VerifyClientCertificate(context.Background(), cert, t0); errs.KindOf(err) != errs.Unauthenticated {
		t.Fatalf("verify: %v", err)
	}
	evs := events.Events()
	if len(evs) != 1 || evs[0].IntermediateID != active || evs[0].Kind != ports.RolloutEventValidationFailure {
		t.Fatalf("events %+v (active %s, next %s)", evs, active, next)
	}
	h.RecordValidationFailure(context.Background(), cert, "handshake refused")
	if len(events.Events()) != 2 {
		t.Fatal("RecordValidationFailure recorded nothing")
	}
}

// The heartbeat's renew hint: a rolled-back intermediate is "rolling back", the others are not.
func TestRollingBackFollowsRolledBackState(t *testing.T) {
	h, ca, _, active := newHealth(t)
	canary := ca.addIntermediate(t, "canary", 365*24*time.Hour)
	for id, want := range map[string]bool{active: false, canary: false} {
		if got, err := h.RollingBack(context.Background(), id); err != nil || got != want {
			t.Fatalf("%s: %v %v", id, got, err)
		}
	}
	ca.setState(canary, "rolled_back")
	if got, err := h.RollingBack(context.Background(), canary); err != nil || !got {
		t.Fatalf("rolled_back: %v %v", got, err)
	}
	// Its certificates stay trusted meanwhile.
	if err := h.CheckChain(context.Background(), canary); err != nil {
		t.Fatalf("a rolled-back intermediate left the chain: %v", err)
	}
}
