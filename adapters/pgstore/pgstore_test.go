package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

var base = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func stores(s *pgstore.Store) portstest.Stores {
	return portstest.Stores{
		Tx: s.Tx(), Products: s.Products(), Licenses: s.Licenses(), Activations: s.Activations(),
		Certificates: s.Certificates(), Claims: s.Claims(), AdminTokens: s.AdminTokens(),
	}
}

// openSQLite opens a migrated SQLite store in a fresh temporary file.
func openSQLite(t *testing.T, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "samplero.db"), opts...)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrator().Up(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

func postgresURL() string {
	if u := os.Getenv("SAMPLERO_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// openPostgresRaw opens a PostgreSQL store in a fresh schema, dropped when the test ends. It skips
// when PostgreSQL is not reachable, unless SAMPLERO_REQUIRE_SERVICES=1.
func openPostgresRaw(t *testing.T, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	schema := "samplero_test_" + randomSuffix(t)
	s, err := pgstore.Open(ctx, postgresURL(), append(opts, pgstore.WithSchema(schema))...)
	if err != nil {
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL required but not reachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable (%v); set SAMPLERO_REQUIRE_SERVICES=1 to fail instead", err)
	}
	t.Cleanup(func() {
		_, err := s.DB().ExecContext(context.Background(), fmt.Sprintf("DROP SCHEMA %s CASCADE", schema))
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		_ = s.Close()
	})
	return s
}

func openPostgres(t *testing.T, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s := openPostgresRaw(t, opts...)
	if err := s.Migrator().Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

type opener func(t *testing.T, opts ...pgstore.Option) *pgstore.Store

var backends = []struct {
	name string
	open opener
	raw  opener
}{
	{"SQLite", openSQLite, func(t *testing.T, opts ...pgstore.Option) *pgstore.Store {
		s, err := pgstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "raw.db"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"Postgres", openPostgres, openPostgresRaw},
}

func TestRepositoryContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunRepositoryContract(t, func(t *testing.T) portstest.Stores { return stores(b.open(t)) })
		})
	}
}

func TestNonceStoreContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunNonceStoreContract(t, func(t *testing.T) portstest.NonceHarness {
				clock := portstest.NewFakeClock(base)
				return portstest.NonceHarness{Store: b.open(t, pgstore.WithClock(clock)).Nonces(), Advance: clock.Advance}
			})
		})
	}
}

func TestPurgeExpired(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clock := portstest.NewFakeClock(base)
			s := b.open(t, pgstore.WithClock(clock))
			ctx := t.Context()
			for i := range 5 {
				if _, err := s.Nonces().Reserve(ctx, "k", fmt.Sprint(i), time.Duration(i+1)*time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.PurgeExpired(ctx, base.Add(2*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Fatalf("purged %d, want 2 (expired at or before now)", n)
			}
			// The survivors are still reserved; the purged ones are fresh again.
			for i, want := range []bool{true, true, false, false, false} {
				fresh, err := s.Nonces().Reserve(ctx, "k", fmt.Sprint(i), time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if fresh != want {
					t.Fatalf("nonce %d: fresh=%v, want %v", i, fresh, want)
				}
			}
		})
	}
}

func TestMigrateUpDownUp(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.raw(t)
			ctx := t.Context()
			m := s.Migrator()
			st, err := m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(st, "pending 20261129000001_licensing") || strings.Contains(st, "applied") {
				t.Fatalf("status before up:\n%s", st)
			}
			if err := m.Up(ctx); err != nil {
				t.Fatal(err)
			}
			if err := m.Up(ctx); err != nil { // nothing pending: a no-op
				t.Fatal(err)
			}
			st, err = m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(st, "applied 20261129000001_licensing (group 1)") || strings.Contains(st, "pending") {
				t.Fatalf("status after up:\n%s", st)
			}
			if err := s.Licenses().Insert(ctx, license.LicenseRecord{ID: "lic_1", KeyHash: []byte{1}, Status: license.LicenseActive, CreatedAt: base, UpdatedAt: base}); err != nil {
				t.Fatal(err)
			}
			if err := m.Down(ctx); err != nil {
				t.Fatal(err)
			}
			st, err = m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(st, "applied") {
				t.Fatalf("status after down:\n%s", st)
			}
			if _, err := s.Licenses().Get(ctx, "lic_1"); errs.KindOf(err) != errs.Internal {
				t.Fatalf("tables should be gone after down, got %v", err)
			}
			if err := m.Up(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Licenses().Get(ctx, "lic_1"); !errs.Is(err, errs.CodeNotFound) {
				t.Fatalf("after up again: want NOT_FOUND, got %v", err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"SQLite": pgstore.DialectSQLite, "Postgres": pgstore.DialectPostgres}[b.name]
			if s.Dialect() != want {
				t.Fatalf("dialect %q, want %q", s.Dialect(), want)
			}
		})
	}
}

// Many use cases writing at once on SQLite queue on the write lock instead of failing with
// SQLITE_BUSY, while readers outside transactions keep going.
func TestConcurrentWritersDoNotFail(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := t.Context()
			if err := s.Licenses().Insert(ctx, license.LicenseRecord{ID: "lic_1", KeyHash: []byte{1}, Status: license.LicenseActive, CreatedAt: base, UpdatedAt: base}); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errc := make(chan error, 8*10*3)
			for w := range 8 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					for i := range 10 {
						errc <- s.Tx().InTx(ctx, func(ctx context.Context) error {
							if _, err := s.Licenses().GetForUpdate(ctx, "lic_1"); err != nil {
								return err
							}
							return s.Activations().Insert(ctx, license.ActivationRecord{
								ID: fmt.Sprintf("act_%d_%d", w, i), LicenseID: "lic_1", Fingerprint: fmt.Sprintf("fp_%d_%d", w, i),
								KeyThumbprint: "tp", Status: license.ActivationActive, CreatedAt: base, LastHeartbeatAt: base, UpdatedAt: base,
							})
						})
					}
				}()
				go func() {
					defer wg.Done()
					for range 10 {
						_, _, err := s.Activations().List(ctx, ports.ActivationFilter{LicenseID: "lic_1"})
						errc <- err
						_, err = s.Nonces().Reserve(ctx, "k", randomSuffix(t), time.Minute)
						errc <- err
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				if err != nil {
					t.Fatal(err)
				}
			}
			rows, _, err := s.Activations().List(ctx, ports.ActivationFilter{LicenseID: "lic_1", Page: ports.Page{Limit: 200}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 80 {
				t.Fatalf("%d activations, want 80", len(rows))
			}
		})
	}
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	for _, dsn := range []string{"mysql://x", "", "sqlite:", "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent"} {
		if _, err := pgstore.Open(t.Context(), dsn); errs.KindOf(err) != errs.Invalid {
			t.Errorf("Open(%q): want an invalid error, got %v", dsn, err)
		}
	}
	if _, err := pgstore.Open(t.Context(), postgresURL(), pgstore.WithSchema("bad; DROP")); errs.KindOf(err) != errs.Invalid {
		t.Errorf("bad schema name: want an invalid error, got %v", err)
	}
}

func TestSQLiteInMemory(t *testing.T) {
	s, err := pgstore.Open(t.Context(), "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Products().List(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Two use cases locking two licenses in opposite orders deadlock; PostgreSQL aborts one of them
// (40P01) and InTx runs it again, so both succeed.
func TestDeadlockIsRetried(t *testing.T) {
	t.Parallel()
	s := openPostgres(t)
	ctx := t.Context()
	for _, id := range []string{"lic_a", "lic_b"} {
		if err := s.Licenses().Insert(ctx, license.LicenseRecord{ID: id, KeyHash: []byte(id), Status: license.LicenseActive, CreatedAt: base, UpdatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	var barrier sync.WaitGroup
	barrier.Add(2)
	var attempts [2]int
	run := func(w int, first, second string) error {
		return s.Tx().InTx(ctx, func(ctx context.Context) error {
			attempts[w]++
			l, err := s.Licenses().GetForUpdate(ctx, first)
			if err != nil {
				return err
			}
			if attempts[w] == 1 {
				barrier.Done()
				barrier.Wait() // both hold their first lock: the second lock closes the cycle
			}
			if _, err := s.Licenses().GetForUpdate(ctx, second); err != nil {
				return err
			}
			l.MaxActivations++
			return s.Licenses().Update(ctx, l)
		})
	}
	errc := make(chan error, 2)
	go func() { errc <- run(0, "lic_a", "lic_b") }()
	go func() { errc <- run(1, "lic_b", "lic_a") }()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("a deadlocked transaction was not retried: %v", err)
		}
	}
	if attempts[0]+attempts[1] < 3 {
		t.Fatalf("attempts %v: expected one transaction to run twice", attempts)
	}
	for _, id := range []string{"lic_a", "lic_b"} {
		l, err := s.Licenses().Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if l.MaxActivations != 1 {
			t.Fatalf("%s: MaxActivations %d, want 1", id, l.MaxActivations)
		}
	}
}

// Without any periodic job, reservations themselves clear expired rows in bounded batches.
func TestReservePurgesExpiredInBatches(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clock := portstest.NewFakeClock(base)
			s := b.open(t, pgstore.WithClock(clock))
			ctx := t.Context()
			count := func() int {
				n, err := s.DB().NewSelect().TableExpr("request_nonces").Count(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return int(n)
			}
			for i := range 255 {
				if _, err := s.Nonces().Reserve(ctx, "k", fmt.Sprint("old-", i), time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if n := count(); n != 255 {
				t.Fatalf("%d rows, want 255", n)
			}
			clock.Advance(2 * time.Second)
			if _, err := s.Nonces().Reserve(ctx, "k", "new", time.Minute); err != nil { // the 256th
				t.Fatal(err)
			}
			if n := count(); n != 1 {
				t.Fatalf("%d rows after the purge, want only the fresh one", n)
			}
		})
	}
}
