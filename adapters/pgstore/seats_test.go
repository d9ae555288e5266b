package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// CountSeats agrees with SeatHolders: the active activations and the ended ones still holding
// their seat count, released ones and other licenses' do not.
func TestCountSeatsAgreesWithSeatHolders(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := context.Background()
			now := base.Add(24 * time.Hour)
			for _, id := range []string{"lic_1", "lic_2"} {
				if err := s.Licenses().Insert(ctx, license.LicenseRecord{ID: id, KeyHash: []byte(id), KeySealed: []byte("s"),
					KeyPrefix: "VST", Product: "synth", MaxActivations: 5, Status: license.LicenseActive, CreatedAt: base, UpdatedAt: base}); err != nil {
					t.Fatal(err)
				}
			}
			act := func(id, lic string, status license.ActivationStatus, heldUntil *time.Time) license.ActivationRecord {
				a := license.ActivationRecord{ID: id, LicenseID: lic, Fingerprint: "fp-" + id, KeyThumbprint: "tp-" + id,
					Status: status, CertificateSerial: "A", CreatedAt: base, LastHeartbeatAt: base, UpdatedAt: base, SeatHeldUntil: heldUntil}
				if status != license.ActivationActive {
					a.EndedAt = &base
				}
				return a
			}
			later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
			for _, a := range []license.ActivationRecord{
				act("act_a1", "lic_1", license.ActivationActive, nil),
				act("act_a2", "lic_1", license.ActivationActive, nil),
				act("act_held", "lic_1", license.ActivationDeactivated, &later),
				act("act_released", "lic_1", license.ActivationDeactivated, &earlier),
				act("act_at_now", "lic_1", license.ActivationRevoked, &now),
				act("act_freed", "lic_1", license.ActivationSuperseded, nil),
				act("act_other", "lic_2", license.ActivationDeactivated, &later),
			} {
				if err := s.Activations().Insert(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
			counter, ok := s.Activations().(ports.SeatCounter)
			if !ok {
				t.Fatal("the activation repository does not count seats")
			}
			for _, tc := range []struct {
				lic          string
				held, active int
			}{{"lic_1", 3, 2}, {"lic_2", 1, 0}, {"lic_missing", 0, 0}} {
				held, active, err := counter.CountSeats(ctx, tc.lic, now)
				if err != nil {
					t.Fatal(err)
				}
				holders, err := s.Activations().SeatHolders(ctx, tc.lic, now)
				if err != nil {
					t.Fatal(err)
				}
				got := fmt.Sprint(held, active)
				if want := fmt.Sprint(tc.held, tc.active); got != want || held != license.SeatsUsed(holders, now) {
					t.Errorf("%s: held, active = %s, want %s (seat holders say %d)", tc.lic, got, want, license.SeatsUsed(holders, now))
				}
			}
		})
	}
}
