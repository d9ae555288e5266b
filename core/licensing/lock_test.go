package licensing

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// The MemStore serialises whole transactions, so it cannot show that a use case takes the license
// row lock before counting seats or writing an activation. These spies record the order of the
// calls, so that the order PostgreSQL relies on (GetForUpdate first) is checked.

type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(c string) { l.mu.Lock(); l.calls = append(l.calls, c); l.mu.Unlock() }
func (l *callLog) reset()       { l.mu.Lock(); l.calls = nil; l.mu.Unlock() }
func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

type spyLicenses struct {
	ports.LicenseRepo
	log *callLog
}

func (s spyLicenses) GetForUpdate(ctx context.Context, id string) (license.LicenseRecord, error) {
	s.log.add("lock")
	return s.LicenseRepo.GetForUpdate(ctx, id)
}

type spyActivations struct {
	ports.ActivationRepo
	log *callLog
}

func (s spyActivations) SeatHolders(ctx context.Context, id string, now time.Time) ([]license.ActivationRecord, error) {
	s.log.add("seats")
	return s.ActivationRepo.SeatHolders(ctx, id, now)
}
func (s spyActivations) TransfersSince(ctx context.Context, id string, since time.Time) (int, error) {
	s.log.add("transfers")
	return s.ActivationRepo.TransfersSince(ctx, id, since)
}
func (s spyActivations) Insert(ctx context.Context, a license.ActivationRecord) error {
	s.log.add("insert")
	return s.ActivationRepo.Insert(ctx, a)
}
func (s spyActivations) Update(ctx context.Context, a license.ActivationRecord) error {
	s.log.add("update")
	return s.ActivationRepo.Update(ctx, a)
}

type spyClaims struct {
	ports.ClaimRepo
	log *callLog
}

func (s spyClaims) Update(ctx context.Context, c license.ClaimRecord) error {
	s.log.add("claim-update")
	return s.ClaimRepo.Update(ctx, c)
}

// lockedFirst reports whether "lock" comes before every write or seat count in calls.
func lockedFirst(calls []string) bool {
	locked := false
	for _, c := range calls {
		switch c {
		case "lock":
			locked = true
		default:
			if !locked {
				return false
			}
		}
	}
	return locked
}

func TestUseCasesLockTheLicenseFirst(t *testing.T) {
	f := newFixture(t)
	log := &callLog{}
	d := f.svc.d
	d.Licenses = spyLicenses{d.Licenses, log}
	d.Activations = spyActivations{d.Activations, log}
	d.Claims = spyClaims{d.Claims, log}
	f.svc = New(d)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.MaxActivations = 3 })
	f.product("gated", ownerApproval)
	lic := f.license("synth", nil)
	gated := f.license("gated", nil)

	check := func(name string, run func()) {
		t.Helper()
		log.reset()
		run()
		if calls := log.get(); !lockedFirst(calls) {
			t.Errorf("%s: calls %v", name, calls)
		}
	}
	dv := newDev(t, "fingerprint-1")
	var g *ports.ActivationGrant
	check("activate", func() { g = f.mustGrant(lic.Key, dv) })
	check("activate again", func() { f.mustGrant(lic.Key, dv) })
	nd := dv.rekey(t)
	check("supersede", func() { g = f.mustGrant(lic.Key, nd) })
	check("heartbeat", func() {
		must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: f.mustCertID(g.CertificateSerial, nd, ports.OpHeartbeat)}))
	})
	var r ports.RenewResult
	check("renew", func() {
		r = must[ports.RenewResult](t)(f.svc.Renew(f.ctx, ports.RenewCommand{Identity: f.mustCertID(g.CertificateSerial, nd, ports.OpRenew), CSRPEM: nd.csr}))
	})
	check("deactivate", func() {
		must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(r.CertificateSerial, nd, ports.OpDeactivate)}))
	})
	check("release seat", func() { must[ports.LicenseView](t)(f.svc.ReleaseSeat(f.ctx, g.ActivationID)) })
	gd := newDev(t, "fingerprint-2")
	var claimID string
	check("claim", func() {
		res, err := f.activate(gated.Key, gd)
		if err != nil || res.Pending == nil {
			t.Fatalf("%+v %v", res, err)
		}
		claimID = res.Pending.ClaimID
	})
	check("claim attempt", func() { _, _ = f.activate(gated.Key, newDev(t, "fingerprint-3")) })
	must[ports.ClaimView](t)(f.svc.DecideClaim(f.ctx, claimID, true, "admin"))
	check("bootstrap", func() {
		must[ports.ActivateResult](t)(f.svc.Bootstrap(f.ctx, must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, claimID, gd.thumb))))
	})
	check("change status", func() {
		must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", ""))
	})
}

// existsActivations answers every Insert as the unique index would when another writer got past
// the row lock.
type existsActivations struct{ ports.ActivationRepo }

func (existsActivations) Insert(context.Context, license.ActivationRecord) error {
	return errs.E(errs.Conflict, license.CodeActivationExists, "exists")
}

func TestActivationExistsIsRetrySafe(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.license("synth", nil)
	d := f.svc.d
	d.Activations = existsActivations{d.Activations}
	f.svc = New(d)
	_, err := f.activate(lic.Key, newDev(t, "fingerprint-1"))
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
}
