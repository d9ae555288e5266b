package portstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// MemRolloutEvents is an in-memory ports.RolloutEventRepo. It counts issued certificates and
// reads the last expiry from the certificates of store (as the database adapter reads its
// certificates table); store may be nil (none issued).
type MemRolloutEvents struct {
	store  *MemStore
	mu     sync.Mutex
	events []ports.RolloutEvent
}

var _ ports.RolloutEventRepo = (*MemRolloutEvents)(nil)

// NewMemRolloutEvents returns an empty event repository over store's certificates.
func NewMemRolloutEvents(store *MemStore) *MemRolloutEvents { return &MemRolloutEvents{store: store} }

// RolloutEvents returns the rollout event repository over s's certificates.
func (s *MemStore) RolloutEvents() *MemRolloutEvents { return NewMemRolloutEvents(s) }

// Record appends ev.
func (r *MemRolloutEvents) Record(_ context.Context, ev ports.RolloutEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev.At = ev.At.UTC()
	r.events = append(r.events, ev)
	return nil
}

// Events returns a copy of what was recorded, in order.
func (r *MemRolloutEvents) Events() []ports.RolloutEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ports.RolloutEvent(nil), r.events...)
}

// Figures counts the events and issued certificates of id at or after since.
func (r *MemRolloutEvents) Figures(_ context.Context, id string, since time.Time) (ports.RolloutFigures, error) {
	var f ports.RolloutFigures
	r.mu.Lock()
	for _, ev := range r.events {
		if ev.IntermediateID != id || ev.At.Before(since) {
			continue
		}
		switch ev.Kind {
		case ports.RolloutEventIssueError:
			f.IssuanceErrors++
		case ports.RolloutEventValidationFailure:
			f.ValidationFailures++
		case ports.RolloutEventChainCheck:
			f.ChainChecks++
		case ports.RolloutEventChainFailure:
			f.ChainChecks++
			f.ChainFailures++
		}
	}
	r.mu.Unlock()
	r.eachCertificate(func(c license.CertificateRecord) {
		if c.IssuerID == id && !c.CreatedAt.Before(since) {
			f.Issued++
		}
	})
	return f, nil
}

// LastCertificateExpiry is the latest NotAfter of id's certificates.
func (r *MemRolloutEvents) LastCertificateExpiry(_ context.Context, id string) (time.Time, bool, error) {
	var last time.Time
	ok := false
	r.eachCertificate(func(c license.CertificateRecord) {
		if c.IssuerID == id && (!ok || c.NotAfter.After(last)) {
			last, ok = c.NotAfter.UTC(), true
		}
	})
	return last, ok, nil
}

func (r *MemRolloutEvents) eachCertificate(fn func(license.CertificateRecord)) {
	if r.store == nil {
		return
	}
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	for _, c := range r.store.certs {
		fn(c)
	}
}

// RunRolloutEventsContract checks a ports.RolloutEventRepo. newRepo returns an empty repository
// and the licensing stores whose certificates it reads.
func RunRolloutEventsContract(t *testing.T, newRepo func(t *testing.T) (ports.RolloutEventRepo, Stores)) {
	t.Run("Figures", func(t *testing.T) {
		ctx := t.Context()
		repo, s := newRepo(t)
		f, err := repo.Figures(ctx, "int_new", at(0))
		noErr(t, err)
		same(t, "figures of nothing", ports.RolloutFigures{}, f)

		for _, ev := range []ports.RolloutEvent{
			{IntermediateID: "int_new", Kind: ports.RolloutEventIssueError, At: at(-time.Minute), Detail: "before the canary"},
			{IntermediateID: "int_new", Kind: ports.RolloutEventIssueError, At: at(time.Minute), Detail: "UNAVAILABLE"},
			{IntermediateID: "int_new", Kind: ports.RolloutEventValidationFailure, At: at(0)},
			{IntermediateID: "int_new", Kind: ports.RolloutEventValidationFailure, At: at(2 * time.Minute)},
			{IntermediateID: "int_new", Kind: ports.RolloutEventChainCheck, At: at(3 * time.Minute)},
			{IntermediateID: "int_new", Kind: ports.RolloutEventChainFailure, At: at(4 * time.Minute), Detail: "CHAIN_CHECK_FAILED"},
			{IntermediateID: "int_old", Kind: ports.RolloutEventIssueError, At: at(time.Minute)},
		} {
			noErr(t, repo.Record(ctx, ev))
		}
		insertLicense(t, s, "lic_r")
		noErr(t, s.Activations.Insert(ctx, sampleActivation("act_r", "lic_r", "fp", 1)))
		for i, c := range []struct {
			serial, issuer string
			created        time.Duration
		}{{"0A01", "int_new", -time.Hour}, {"0A02", "int_new", 0}, {"0A03", "int_new", time.Hour}, {"0A04", "int_old", time.Hour}} {
			noErr(t, s.Certificates.Insert(ctx, license.CertificateRecord{Serial: c.serial, ActivationID: "act_r", LicenseID: "lic_r",
				KeyThumbprint: "tp", IssuerID: c.issuer, DER: []byte{0x30}, NotBefore: at(c.created), NotAfter: at(c.created + time.Duration(24+i)*time.Hour),
				Status: license.CertificateCurrent, CreatedAt: at(c.created)}))
		}
		f, err = repo.Figures(ctx, "int_new", at(0))
		noErr(t, err)
		same(t, "figures since the canary", ports.RolloutFigures{Issued: 2, IssuanceErrors: 1, ValidationFailures: 2, ChainChecks: 2, ChainFailures: 1}, f)

		last, ok, err := repo.LastCertificateExpiry(ctx, "int_new")
		noErr(t, err)
		same(t, "has certificates", true, ok)
		same(t, "last expiry", at(time.Hour+26*time.Hour), last.UTC())
		_, ok, err = repo.LastCertificateExpiry(ctx, "int_none")
		noErr(t, err)
		same(t, "an intermediate without certificates", false, ok)
	})
}
