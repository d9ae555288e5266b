package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/samplero/samplero/adapters/redisstore"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

// openStore returns a store on the test Redis under a fresh random prefix, whose keys are deleted
// when the test ends. It skips when Redis is not reachable, unless SAMPLERO_REQUIRE_SERVICES=1.
func openStore(t *testing.T) *redisstore.Store {
	t.Helper()
	url := os.Getenv("SAMPLERO_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	client, err := redisstore.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "samplero-test:" + hex.EncodeToString(b) + ":"
	s := redisstore.New(client, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		_ = client.Close()
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis required but not reachable: %v", err)
		}
		t.Skipf("Redis not reachable (%v); set SAMPLERO_REQUIRE_SERVICES=1 to fail instead", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		_ = client.Close()
	})
	return s
}

// Redis expires keys on its own clock, so time passes for real here (about a second per test).
func TestNonceStoreContract(t *testing.T) {
	t.Parallel()
	portstest.RunNonceStoreContract(t, func(t *testing.T) portstest.NonceHarness {
		return portstest.NonceHarness{Store: openStore(t).Nonces(), Advance: time.Sleep}
	})
}

func TestRateLimiterContract(t *testing.T) {
	t.Parallel()
	portstest.RunRateLimiterContract(t, func(t *testing.T) portstest.LimiterHarness {
		return portstest.LimiterHarness{Limiter: openStore(t).Limiter(), Advance: time.Sleep}
	})
}

// A Redis that is down is an error (callers fail closed), never a fresh nonce or an allowed event.
func TestUnavailable(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	s := redisstore.New(client, "x:")
	if _, err := s.Nonces().Reserve(t.Context(), "k", "n", time.Minute); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Reserve: want unavailable, got %v", err)
	}
	if ok, _, err := s.Limiter().Allow(t.Context(), "k", ports.Limit{Max: 1, Window: time.Second}); ok || errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Allow: want unavailable, got ok=%v %v", ok, err)
	}
	if err := s.Ping(t.Context()); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Ping: want unavailable, got %v", err)
	}
	if _, err := redisstore.ParseURL("http://nope"); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("ParseURL: want invalid, got %v", err)
	}
}
