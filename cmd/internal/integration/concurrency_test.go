package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/sdk/go/samplero"
)

const (
	seatLimit        = 3
	contendingDevice = 100
)

func TestSeatConcurrencyPostgres(t *testing.T) { seatConcurrency(t, postgresBackend, 20) }

func TestSeatConcurrencySQLite(t *testing.T) { seatConcurrency(t, sqliteBackend, 5) }

// seatConcurrency races 100 distinct devices for the 3 seats of a fresh license, rounds times:
// the license row lock must let exactly 3 through, and every other device must be told
// ACTIVATION_LIMIT_EXCEEDED, not a transaction error.
func seatConcurrency(t *testing.T, b backend, rounds int) {
	h := newHarness(t, b.open(t))
	ctx := context.Background()
	putProduct(t, h, "seats", seatLimit, string(license.FirstInstant))

	var spent time.Duration
	for round := 1; round <= rounds; round++ {
		lic := createLicense(t, h, "seats", "", nil)
		devs := newDevices(t, fmt.Sprintf("r%02d-device", round), contendingDevice)

		start := make(chan struct{})
		errsOut := make([]error, len(devs))
		created := make([]bool, len(devs))
		var wg sync.WaitGroup
		for i, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := activate(ctx, h, lic.Key, d)
				errsOut[i] = err
				created[i] = err == nil && res.Grant != nil && res.Grant.Created
			}()
		}
		began := time.Now()
		close(start)
		wg.Wait()
		spent += time.Since(began)

		var ok, refused int
		for i, err := range errsOut {
			switch {
			case err == nil:
				if !created[i] {
					t.Errorf("round %d: device %d: activation succeeded without a new activation (201)", round, i)
				}
				ok++
			case errs.CodeOf(err) == license.CodeActivationLimitExceeded:
				refused++
			default:
				t.Errorf("round %d: device %d: unexpected error (%s): %v", round, i, errs.CodeOf(err), err)
			}
		}
		t.Logf("round %d: %d activated, %d refused", round, ok, refused)
		if ok != seatLimit || refused != contendingDevice-seatLimit {
			t.Errorf("round %d: %d activated and %d refused, want %d and %d", round, ok, refused, seatLimit, contendingDevice-seatLimit)
		}
		counts := activationsByStatus(t, h, lic.ID)
		if counts[license.ActivationActive] != seatLimit || len(counts) != 1 {
			t.Errorf("round %d: activations in the database by status = %v, want exactly %d active", round, counts, seatLimit)
		}
		// Only the winners may have certificates on record: a refused device must leave nothing.
		if n := certificatesOf(t, h, lic.ID); n != seatLimit {
			t.Errorf("round %d: %d certificates on record for the license, want %d", round, n, seatLimit)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%s: %d rounds of %d concurrent activations in %v (key generation excluded)", b.name, rounds, contendingDevice, spent.Round(time.Millisecond))
}

// TestSameDeviceConcurrentPostgres sends one device's activation 20 times at once, then the same
// device with 20 different keys (20 reinstalls at once).
func TestSameDeviceConcurrentPostgres(t *testing.T) { sameDeviceConcurrent(t, postgresBackend) }

func TestSameDeviceConcurrentSQLite(t *testing.T) { sameDeviceConcurrent(t, sqliteBackend) }

func sameDeviceConcurrent(t *testing.T, b backend) {
	h := newHarness(t, b.open(t))
	ctx := context.Background()
	putProduct(t, h, "same", seatLimit, string(license.FirstInstant))
	lic := createLicense(t, h, "same", "", nil)
	const n = 20
	const fp = "same-device-fingerprint"

	// retrySafe is the only error a device may see besides the answer: UNAVAILABLE ("retry")
	// from the unique index, should two writers ever get past the license lock.
	retrySafe := func(err error) bool { return errs.KindOf(err) == errs.Unavailable }

	// Phase 1: the same device, the same key, 20 times at once. One activation, one 201.
	dev, err := newDevice(fp)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		created bool
		id      string
		err     error
	}
	race := func(devs []device) []outcome {
		out := make([]outcome, len(devs))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := activate(ctx, h, lic.Key, d)
				out[i].err = err
				if err == nil {
					if res.Grant == nil {
						out[i].err = fmt.Errorf("no grant (pending=%v)", res.Pending != nil)
						return
					}
					out[i].created, out[i].id = res.Grant.Created, res.Grant.ActivationID
				}
			}()
		}
		close(start)
		wg.Wait()
		return out
	}
	same := make([]device, n)
	for i := range same {
		same[i] = dev
	}
	var created, again, retry int
	ids := map[string]bool{}
	for i, o := range race(same) {
		switch {
		case o.err == nil && o.created:
			created++
			ids[o.id] = true
		case o.err == nil:
			again++
			ids[o.id] = true
		case retrySafe(o.err):
			retry++
		default:
			t.Errorf("same key, call %d: unexpected error (%s): %v", i, errs.CodeOf(o.err), o.err)
		}
	}
	t.Logf("%s: same device, same key ×%d: %d created (201), %d same activation (200), %d retry", b.name, n, created, again, retry)
	if created != 1 {
		t.Errorf("same key: %d calls created an activation, want exactly 1", created)
	}
	if len(ids) != 1 {
		t.Errorf("same key: answers name %d activations, want 1: %v", len(ids), ids)
	}
	counts := activationsByStatus(t, h, lic.ID)
	if counts[license.ActivationActive] != 1 || len(counts) != 1 {
		t.Fatalf("same key: activations by status = %v, want exactly 1 active", counts)
	}

	// Phase 2: the same fingerprint with 20 new keys at once (20 reinstalls racing). Whatever the
	// order, one activation of the device stays active, every other one is superseded, and the
	// seats held never pass the license's limit.
	reinstalls := make([]device, n)
	for i := range reinstalls {
		key, err := samplero.GenerateKey(samplero.KeyP256)
		if err != nil {
			t.Fatal(err)
		}
		if reinstalls[i], err = deviceWithKey(fp, key); err != nil {
			t.Fatal(err)
		}
	}
	var superseding, refused int
	retry = 0
	for i, o := range race(reinstalls) {
		switch {
		case o.err == nil && o.created:
			superseding++
		case o.err == nil:
			t.Errorf("new key, call %d: answered 200 with activation %s; a new key must never reuse an activation", i, o.id)
		case errs.CodeOf(o.err) == license.CodeActivationLimitExceeded:
			refused++
		case retrySafe(o.err):
			retry++
		default:
			t.Errorf("new key, call %d: unexpected error (%s): %v", i, errs.CodeOf(o.err), o.err)
		}
	}
	t.Logf("%s: same device, %d new keys: %d superseded the previous one, %d refused (seats held), %d retry", b.name, n, superseding, refused, retry)
	if superseding < 1 {
		t.Errorf("new keys: no reinstall succeeded, want at least one (a transfer is available)")
	}
	counts = activationsByStatus(t, h, lic.ID)
	if counts[license.ActivationActive] != 1 {
		t.Errorf("new keys: %d active activations, want exactly 1 (by status: %v)", counts[license.ActivationActive], counts)
	}
	if counts[license.ActivationSuperseded] != superseding {
		t.Errorf("new keys: %d superseded activations, want one per successful reinstall (%d)", counts[license.ActivationSuperseded], superseding)
	}
	active, _, err := h.Store.Activations().List(ctx, activationFilterActive(lic.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(active) == 1 && active[0].Fingerprint != fp {
		t.Errorf("the active activation is of device %q, want %q", active[0].Fingerprint, fp)
	}
	view, err := h.Service.GetLicense(ctx, lic.ID)
	if err != nil {
		t.Fatal(err)
	}
	if view.SeatsUsed > view.MaxActivations {
		t.Errorf("seats used %d > max %d", view.SeatsUsed, view.MaxActivations)
	}
	t.Logf("%s: seats used %d of %d after the reinstalls", b.name, view.SeatsUsed, view.MaxActivations)
}
