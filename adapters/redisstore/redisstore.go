// Package redisstore implements ports.NonceStore and ports.RateLimiter on Redis, shared by every
// server instance. Each operation is a single atomic command or script, so concurrent instances
// never double-spend a nonce or over-count a window. Any Redis failure is errs.Unavailable: the
// callers fail closed.
package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Store holds a Redis client and the prefix of every key it writes.
type Store struct {
	client *redis.Client
	prefix string
}

// New returns a store writing keys under prefix (e.g. "samplero:"), so that one Redis can serve
// several deployments or test runs.
func New(client *redis.Client, prefix string) *Store {
	return &Store{client: client, prefix: prefix}
}

// ParseURL builds a client from a redis:// or rediss:// URL. It does not connect.
func ParseURL(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, "redis URL does not parse", err)
	}
	return redis.NewClient(opts), nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Nonces returns the nonce store.
func (s *Store) Nonces() ports.NonceStore { return nonceStore{s} }

// Limiter returns the rate limiter.
func (s *Store) Limiter() ports.RateLimiter { return limiter{s} }

func unavailable(err error) error {
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "redis unavailable", err)
}

// millis rounds d up to whole milliseconds, at least one: PX and PEXPIRE take milliseconds and
// refuse zero.
func millis(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return int64(ms)
}

// ---- nonces ----

type nonceStore struct{ s *Store }

var _ ports.NonceStore = nonceStore{}

// Reserve is SET key 1 NX PX ttl: Redis sets it for exactly one of concurrent callers, and
// forgets it when the ttl has passed. The key id is length-prefixed so that no (key id, nonce)
// pair can be shifted into another.
func (n nonceStore) Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	key := n.s.prefix + "nonce:" + strconv.Itoa(len(keyID)) + ":" + keyID + ":" + nonce
	err := n.s.client.SetArgs(ctx, key, 1, redis.SetArgs{Mode: "NX", TTL: time.Duration(millis(ttl)) * time.Millisecond}).Err()
	switch {
	case err == nil:
		return true, nil
	case err == redis.Nil:
		return false, nil
	default:
		return false, unavailable(err)
	}
}

// ---- rate limits ----

type limiter struct{ s *Store }

var _ ports.RateLimiter = limiter{}

// windowScript counts one event in a fixed window that opens at the key's first event. It returns
// the count so far and the milliseconds left in the window. Refused events are counted too, but
// never extend the window, so a client that keeps retrying is let in when the window ends.
var windowScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// Allow counts one event for key under limit. The window length is part of the Redis key, so two
// limits with different windows on one key never share a counter.
func (l limiter) Allow(ctx context.Context, key string, limit ports.Limit) (bool, time.Duration, error) {
	if limit.Max <= 0 || limit.Window <= 0 {
		return false, 0, errs.Internalf("redisstore: invalid rate limit %+v", limit)
	}
	window := millis(limit.Window)
	rkey := l.s.prefix + "rl:" + strconv.FormatInt(window, 10) + ":" + key
	res, err := windowScript.Run(ctx, l.s.client, []string{rkey}, window).Int64Slice()
	if err != nil {
		return false, 0, unavailable(err)
	}
	if len(res) != 2 {
		return false, 0, errs.Internalf("redisstore: unexpected script result %v", res)
	}
	if res[0] <= int64(limit.Max) {
		return true, 0, nil
	}
	retry := time.Duration(res[1]) * time.Millisecond
	if retry <= 0 {
		retry = time.Millisecond
	}
	return false, retry, nil
}
