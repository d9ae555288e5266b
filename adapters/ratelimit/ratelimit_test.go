package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/ratelimit"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestContract(t *testing.T) {
	portstest.RunRateLimiterContract(t, func(t *testing.T) portstest.LimiterHarness {
		clock := portstest.NewFakeClock(base)
		return portstest.LimiterHarness{Limiter: ratelimit.New(clock), Advance: clock.Advance}
	})
}

// After the burst, tokens come back one per Window/Max: no 2×Max across a window boundary.
func TestRefillIsGradual(t *testing.T) {
	clock := portstest.NewFakeClock(base)
	l := ratelimit.New(clock)
	limit := ports.Limit{Max: 4, Window: 4 * time.Second}
	allow := func() (bool, time.Duration) {
		ok, retry, err := l.Allow(t.Context(), "k", limit)
		if err != nil {
			t.Fatal(err)
		}
		return ok, retry
	}
	for i := range 4 {
		if ok, _ := allow(); !ok {
			t.Fatalf("burst event %d refused", i)
		}
	}
	ok, retry := allow()
	if ok || retry != time.Second {
		t.Fatalf("over the burst: ok=%v retry=%v, want refused with 1s", ok, retry)
	}
	clock.Advance(500 * time.Millisecond)
	if ok, retry := allow(); ok || retry != 500*time.Millisecond {
		t.Fatalf("half a token later: ok=%v retry=%v", ok, retry)
	}
	clock.Advance(500 * time.Millisecond)
	if ok, _ := allow(); !ok {
		t.Fatal("a token should have come back")
	}
	if ok, _ := allow(); ok {
		t.Fatal("only one token should have come back")
	}
}

func TestSweepDropsFullBuckets(t *testing.T) {
	clock := portstest.NewFakeClock(base)
	l := ratelimit.New(clock, ratelimit.WithSweepInterval(time.Minute))
	limit := ports.Limit{Max: 5, Window: 10 * time.Second}
	for i := range 1000 {
		if _, _, err := l.Allow(t.Context(), fmt.Sprint("key-", i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("%d buckets, want 1000", n)
	}
	clock.Advance(2 * time.Minute)
	// A call sweeps the shard its key lands in: 500 fresh keys reach all 16 shards (the odds of
	// missing one are about 1e-13).
	const fresh = 500
	for i := range fresh {
		if _, _, err := l.Allow(t.Context(), fmt.Sprint("fresh-", i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.Len(); n != fresh {
		t.Fatalf("%d buckets after the sweep, want only the %d fresh ones", n, fresh)
	}
}

func TestInvalidLimit(t *testing.T) {
	l := ratelimit.New(portstest.NewFakeClock(base))
	if _, _, err := l.Allow(t.Context(), "k", ports.Limit{}); err == nil {
		t.Fatal("a zero limit must be an error")
	}
}
