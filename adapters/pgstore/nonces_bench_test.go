package pgstore_test

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
)

// BenchmarkNonceReserveSQLite reserves fresh random pairs in the database replay store on SQLite,
// from concurrent callers (so that reservations are group-committed), on an empty table and on one
// holding 1,000,000 unexpired reservations.
func BenchmarkNonceReserveSQLite(b *testing.B) {
	for _, c := range []struct {
		name string
		live int
	}{{"empty", 0}, {"1M-live", 1_000_000}} {
		// Opened and filled here, once: the testing package runs the sub-benchmark more than once
		// (N=1 first), and closes what it opened after each run.
		s := openSQLiteBench(b, c.live)
		b.Run(c.name, func(b *testing.B) { benchReserveSQLite(b, s) })
	}
}

func openSQLiteBench(b *testing.B, live int) *pgstore.Store {
	b.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatalf("open sqlite: %v", err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Migrator().Up(ctx); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	if live > 0 {
		began := time.Now()
		fillSQLiteNonces(b, s, live)
		b.Logf("filled %d live nonces in %v", live, time.Since(began).Round(time.Millisecond))
	}
	return s
}

// fillSQLiteNonces inserts n random pairs that expire in an hour, in one recursive INSERT.
func fillSQLiteNonces(b *testing.B, s *pgstore.Store, n int) {
	b.Helper()
	ctx := context.Background()
	_, err := s.DB().ExecContext(ctx, `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)
INSERT INTO request_nonces (pair, expires_at) SELECT randomblob(32), ? FROM g`, n, time.Now().Add(time.Hour).UnixMilli())
	if err != nil {
		b.Fatalf("filling nonces: %v", err)
	}
	var count int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM request_nonces`).Scan(&count); err != nil || count != n {
		b.Fatalf("filled %d nonces (%v), want %d", count, err, n)
	}
	if _, err := s.DB().ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatalf("analyze: %v", err)
	}
}

func benchReserveSQLite(b *testing.B, s *pgstore.Store) {
	ctx := context.Background()
	nonces := s.Nonces()
	var seed atomic.Uint64
	seed.Store(uint64(time.Now().UnixNano()))
	// At least 8 concurrent callers, whatever GOMAXPROCS is.
	b.SetParallelism(max(1, (8+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), seed.Add(1)))
		var raw [32 + 24]byte
		for pb.Next() {
			for i := 0; i < len(raw); i += 8 {
				v := rng.Uint64()
				for j := range 8 {
					raw[i+j] = byte(v >> (8 * j))
				}
			}
			keyID := base64.RawURLEncoding.EncodeToString(raw[:32]) // 43 characters
			nonce := base64.RawURLEncoding.EncodeToString(raw[32:]) // 32 characters
			fresh, err := nonces.Reserve(ctx, keyID, nonce, 10*time.Minute)
			if err != nil || !fresh {
				b.Errorf("reserve: fresh=%v err=%v", fresh, err)
				return
			}
		}
	})
}
