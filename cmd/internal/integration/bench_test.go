package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/licensing/license"
)

// Benchmarks for docs/performance.md. Run them with
//
//	go test -run '^$' -bench . -benchtime 3s ./cmd/internal/integration/
//
// They need PostgreSQL for the postgres variants (same skip rule as the tests).

// rotateEvery is how many devices a benchmark activates before it moves to a fresh license
// (BenchmarkActivateFresh) or ends the ones it activated (BenchmarkActivateWith1500).
const rotateEvery = 10

// BenchmarkActivateFresh activates new devices, one after another, on a license that has at most
// rotateEvery-1 activations. Each op is the whole use case: CSR parse, license lookup and row lock, seat count, certificate
// issuance, lease signature, inserts, commit. Device keys and CSRs are made before the timer.
func BenchmarkActivateFresh(b *testing.B) { benchActivateBackends(b, 0) }

// BenchmarkActivateWith1500 does the same on a license with 1,500 earlier activations: 1,450 ended
// long ago (deactivated, superseded, revoked) and 50 still active; the devices it activates are
// ended every rotateEvery activations, so the ended ones keep growing past 1,500 and the active
// ones stay at 50 to 59. The seat count must not grow with the ended ones.
func BenchmarkActivateWith1500(b *testing.B) { benchActivateBackends(b, 1500) }

func benchActivateBackends(b *testing.B, earlier int) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		store := be.open(b)
		h := newHarness(b, store)
		putProduct(b, h, "bench", 100000, string(license.FirstInstant))
		var runs atomic.Int64
		b.Run(be.name, func(b *testing.B) {
			// A fresh license for every b.N the framework tries, so each measurement starts from
			// the same state.
			run := runs.Add(1)
			lic := createLicense(b, h, "bench", "", nil)
			if earlier > 0 {
				fillActivations(b, h, lic.ID, earlier, 50)
			}
			devs := newDevices(b, fmt.Sprintf("bench-%d-%d", earlier, run), b.N)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%rotateEvery == 0 {
					// Keep the license's active seats bounded, as on a real license, so that the
					// measurement is of the state named and not of b.N active devices.
					b.StopTimer()
					if earlier == 0 {
						lic = createLicense(b, h, "bench", "", nil)
					} else {
						endActivations(b, h, lic.ID, "bench-")
					}
					b.StartTimer()
				}
				res, err := activate(ctx, h, lic.Key, devs[i])
				if err != nil || res.Grant == nil || !res.Grant.Created {
					b.Fatalf("activation %d: %+v, %v", i, res, err)
				}
			}
		})
	}
}

// fillActivations writes n earlier activations of licenseID straight through the repository, in
// one transaction: active of them active, the rest ended 31 to 400 days ago, as a busy license
// would carry.
func fillActivations(tb testing.TB, h *Harness, licenseID string, n, active int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	spki := []byte("not a key: filler rows are never resolved")
	ended := []license.ActivationStatus{license.ActivationDeactivated, license.ActivationSuperseded, license.ActivationRevoked}
	err := h.Store.Tx().InTx(ctx, func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			created := now.Add(-time.Duration(400-i%369) * 24 * time.Hour)
			a := license.ActivationRecord{
				ID:                license.NewID(license.IDPrefixActivation),
				LicenseID:         licenseID,
				Fingerprint:       fmt.Sprintf("earlier-device-%05d", i),
				Platform:          license.PlatformWin,
				PluginVersion:     "0.9.0",
				KeyThumbprint:     fmt.Sprintf("earlier-thumbprint-%05d", i),
				PublicKeyDER:      spki,
				Status:            license.ActivationActive,
				CertificateSerial: fmt.Sprintf("%X", 0x1000000+i),
				CreatedAt:         created,
				LastHeartbeatAt:   now,
				UpdatedAt:         now,
			}
			if i >= active {
				end := created.Add(24 * time.Hour)
				if end.After(now.Add(-31 * 24 * time.Hour)) {
					end = now.Add(-31 * 24 * time.Hour)
				}
				a.Status = ended[i%len(ended)]
				a.StatusReason = "filler"
				a.EndedAt = &end
				a.LastHeartbeatAt = end
				a.UpdatedAt = end
				switch i % 3 {
				case 0:
					a.FreedByTransfer = true
				case 1:
					held := end.Add(7 * 24 * time.Hour) // a hold that ran out long ago
					a.SeatHeldUntil = &held
				}
			}
			if err := h.Store.Activations().Insert(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("filling %d activations: %v", n, err)
	}
}

// endActivations deactivates the active activations of licenseID whose fingerprint starts with
// prefix, through the repository, freeing their seats at once.
func endActivations(tb testing.TB, h *Harness, licenseID, prefix string) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	err := h.Store.Tx().InTx(ctx, func(ctx context.Context) error {
		as, _, err := h.Store.Activations().List(ctx, activationFilterActive(licenseID))
		if err != nil {
			return err
		}
		for _, a := range as {
			if !strings.HasPrefix(a.Fingerprint, prefix) {
				continue
			}
			a.Status, a.StatusReason = license.ActivationDeactivated, "benchmark"
			a.EndedAt, a.FreedByTransfer, a.UpdatedAt = &now, true, now
			if err := h.Store.Activations().Update(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("ending activations: %v", err)
	}
}

// BenchmarkNonceReserve reserves fresh nonces in the database-backed replay store on PostgreSQL,
// with an empty table and with 1,000,000 unexpired rows in it.
func BenchmarkNonceReserve(b *testing.B) {
	empty := openPostgres(b)
	full := openPostgres(b)
	fillNonces(b, full, 1_000_000)
	b.Run("empty", func(b *testing.B) { benchReserve(b, empty) })
	b.Run("1M-unexpired", func(b *testing.B) { benchReserve(b, full) })
}

func fillNonces(tb testing.TB, store *pgstore.Store, n int) {
	tb.Helper()
	ctx := context.Background()
	began := time.Now()
	// Rows are stored as a 32-byte pair digest and an expiry in unix milliseconds; the filler rows
	// are distinct 32-byte digests that expire in an hour.
	// In chunks, so that no statement runs into the driver's read timeout on a busy machine.
	expires := time.Now().Add(time.Hour).UnixMilli()
	const chunk = 100_000
	for from := 1; from <= n; from += chunk {
		to := min(from+chunk-1, n)
		_, err := store.DB().ExecContext(ctx, `INSERT INTO request_nonces (pair, expires_at)
SELECT sha256(convert_to('fill-key-' || (g % 5000) || '/' || md5(g::text), 'UTF8')), ?::bigint
FROM generate_series(?::bigint, ?::bigint) AS g`, expires, from, to)
		if err != nil {
			tb.Fatalf("filling nonces %d to %d: %v", from, to, err)
		}
	}
	var count int
	if err := store.DB().QueryRowContext(ctx, `SELECT count(*) FROM request_nonces WHERE expires_at > ?`, time.Now().UnixMilli()).Scan(&count); err != nil || count != n {
		tb.Fatalf("filled %d unexpired nonces (%v), want %d", count, err, n)
	}
	if _, err := store.DB().ExecContext(ctx, `ANALYZE request_nonces`); err != nil {
		tb.Fatalf("analyze: %v", err)
	}
	tb.Logf("filled %d nonces in %v", n, time.Since(began).Round(time.Millisecond))
}

func benchReserve(b *testing.B, store *pgstore.Store) {
	ctx := context.Background()
	nonces := store.Nonces()
	prefix := randomHex(b, 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := fmt.Sprintf("fill-key-%d", i%5000)
		ok, err := nonces.Reserve(ctx, key, fmt.Sprintf("%s-%010d", prefix, i), 5*time.Minute)
		if err != nil || !ok {
			b.Fatalf("reserve %d: %v, %v", i, ok, err)
		}
	}
}

// BenchmarkSeatHolders isolates the seat count query of every activation (no crypto, no commit):
// 3 active activations alone, and 3 active beside 1,500 earlier ones of which 1,450 ended long ago.
func BenchmarkSeatHolders(b *testing.B) {
	for _, be := range []backend{sqliteBackend, postgresBackend} {
		store := be.open(b)
		h := newHarness(b, store)
		putProduct(b, h, "bench", 100000, string(license.FirstInstant))
		small := createLicense(b, h, "bench", "", nil)
		fillActivations(b, h, small.ID, 3, 3)
		busy := createLicense(b, h, "bench", "", nil)
		fillActivations(b, h, busy.ID, 1500, 3)
		for _, c := range []struct {
			name   string
			id     string
			active int
		}{{"3-active", small.ID, 3}, {"3-active-1500-earlier", busy.ID, 3}} {
			b.Run(be.name+"/"+c.name, func(b *testing.B) {
				ctx := context.Background()
				for i := 0; i < b.N; i++ {
					hs, err := store.Activations().SeatHolders(ctx, c.id, time.Now())
					if err != nil || len(hs) != c.active {
						b.Fatalf("seat holders: %d, %v; want %d", len(hs), err, c.active)
					}
				}
			})
		}
	}
}
