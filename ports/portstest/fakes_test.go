package portstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports/portstest"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestMemStoreContract(t *testing.T) {
	portstest.RunRepositoryContract(t, func(t *testing.T) portstest.Stores {
		return portstest.NewMemStore().Stores()
	})
}

func TestMemNonceStoreContract(t *testing.T) {
	portstest.RunNonceStoreContract(t, func(t *testing.T) portstest.NonceHarness {
		clock := portstest.NewFakeClock(base)
		return portstest.NonceHarness{Store: portstest.NewMemNonceStore(clock), Advance: clock.Advance}
	})
}

func TestMemStoreNoncesFollowItsClock(t *testing.T) {
	portstest.RunNonceStoreContract(t, func(t *testing.T) portstest.NonceHarness {
		clock := portstest.NewFakeClock(base)
		return portstest.NonceHarness{Store: portstest.NewMemStore(portstest.WithClock(clock)).Nonces(), Advance: clock.Advance}
	})
}

func TestMemRateLimiterContract(t *testing.T) {
	portstest.RunRateLimiterContract(t, func(t *testing.T) portstest.LimiterHarness {
		clock := portstest.NewFakeClock(base)
		return portstest.LimiterHarness{Limiter: portstest.NewMemRateLimiter(clock), Advance: clock.Advance}
	})
}

func TestFailingNonceStore(t *testing.T) {
	_, err := portstest.FailingNonceStore{}.Reserve(t.Context(), "k", "n", time.Minute)
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("want unavailable, got %v", err)
	}
}

func TestFakeClock(t *testing.T) {
	c := portstest.NewFakeClock(base)
	c.Advance(time.Hour)
	if !c.Now().Equal(base.Add(time.Hour)) {
		t.Fatalf("Advance: got %v", c.Now())
	}
	c.Set(base)
	if !c.Now().Equal(base) {
		t.Fatalf("Set: got %v", c.Now())
	}
}

// A repository called with a ctx that has lost the running transaction would wait for the store
// lock forever; the fake turns that into an error. Here: a cancelled ctx ends the wait at once.
func TestMemStoreLockWaitHonoursContext(t *testing.T) {
	s := portstest.NewMemStore()
	err := s.Tx().InTx(t.Context(), func(ctx context.Context) error {
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Licenses().Get(cctx, "lic_x")
		return err
	})
	if errs.KindOf(err) != errs.Internal || !errors.Is(err, context.Canceled) {
		t.Fatalf("want an internal error wrapping context.Canceled, got %v", err)
	}
}

func TestMemNonceStoreSweepsExpired(t *testing.T) {
	clock := portstest.NewFakeClock(base)
	s := portstest.NewMemNonceStore(clock)
	for i := range 2000 {
		if _, err := s.Reserve(t.Context(), "k", string(rune('a'+i%26))+time.Duration(i).String(), time.Second); err != nil {
			t.Fatal(err)
		}
		clock.Advance(10 * time.Millisecond)
	}
	if n := s.Len(); n >= 2000 {
		t.Fatalf("expired nonces are never swept: %d held", n)
	}
}
