package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports/portstest"
)

// The repositories keep every promise of the ports with the read cache on.
func TestRepositoryContractWithReadCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunRepositoryContract(t, func(t *testing.T) portstest.Stores {
				return stores(b.open(t, pgstore.WithReadCache()))
			})
		})
	}
}

// A cached row never outlives a write: committed writes show at once, rolled-back ones never, a
// transaction reads its own writes, and a caller changing a returned record changes nothing cached.
func TestReadCacheFollowsWrites(t *testing.T) {
	clock := portstest.NewFakeClock(base)
	s := openSQLite(t, pgstore.WithReadCache(), pgstore.WithClock(clock))
	ctx := context.Background()
	lic := license.LicenseRecord{ID: "lic_c", KeyHash: []byte("h"), KeySealed: []byte("s"), KeyPrefix: "VST",
		Product: "synth", MaxActivations: 2, Status: license.LicenseActive, CreatedAt: base, UpdatedAt: base}
	if err := s.Licenses().Insert(ctx, lic); err != nil {
		t.Fatal(err)
	}
	act := license.ActivationRecord{ID: "act_c", LicenseID: "lic_c", Fingerprint: "fp-cache-1", KeyThumbprint: "tp",
		PublicKeyDER: []byte{1, 2, 3}, Status: license.ActivationActive, CertificateSerial: "A1",
		CreatedAt: base, LastHeartbeatAt: base, UpdatedAt: base}
	if err := s.Activations().Insert(ctx, act); err != nil {
		t.Fatal(err)
	}
	status := func() license.ActivationStatus {
		t.Helper()
		got, err := s.Activations().Get(ctx, "act_c")
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	if st := status(); st != license.ActivationActive { // fills the cache
		t.Fatalf("status %s", st)
	}

	// A caller's change to a returned record stays its own.
	got, _ := s.Activations().Get(ctx, "act_c")
	got.PublicKeyDER[0] = 99
	if again, _ := s.Activations().Get(ctx, "act_c"); again.PublicKeyDER[0] != 1 {
		t.Fatal("a returned record shares its bytes with the cache")
	}

	// A rolled-back write leaves the committed row.
	boom := errors.New("boom")
	err := s.Tx().InTx(ctx, func(ctx context.Context) error {
		a := act
		a.Status = license.ActivationRevoked
		if err := s.Activations().Update(ctx, a); err != nil {
			return err
		}
		if inside, err := s.Activations().Get(ctx, "act_c"); err != nil || inside.Status != license.ActivationRevoked {
			t.Errorf("inside the transaction: %v %v, want its own write", inside.Status, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if st := status(); st != license.ActivationActive {
		t.Fatalf("after rollback: %s", st)
	}

	// A committed write shows at once.
	if err := s.Tx().InTx(ctx, func(ctx context.Context) error {
		a := act
		a.Status = license.ActivationDeactivated
		return s.Activations().Update(ctx, a)
	}); err != nil {
		t.Fatal(err)
	}
	if st := status(); st != license.ActivationDeactivated {
		t.Fatalf("after commit: %s", st)
	}

	// So does one outside a transaction, on another cached table.
	if _, err := s.Licenses().Get(ctx, "lic_c"); err != nil {
		t.Fatal(err)
	}
	l := lic
	l.Status = license.LicenseSuspended
	if err := s.Licenses().Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Licenses().Get(ctx, "lic_c"); err != nil || got.Status != license.LicenseSuspended {
		t.Fatalf("license after update: %v %v", got.Status, err)
	}

	// A write the store did not make (another tool on the same file) shows once entries expire.
	if _, err := s.DB().ExecContext(ctx, "UPDATE licenses SET status = 'revoked' WHERE id = 'lic_c'"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if got, err := s.Licenses().Get(ctx, "lic_c"); err != nil || got.Status != license.LicenseRevoked {
		t.Fatalf("license after an outside write: %v %v", got.Status, err)
	}
}
