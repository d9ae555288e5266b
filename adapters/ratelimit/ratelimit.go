// Package ratelimit is an in-memory ports.RateLimiter for a single server instance (the embedded
// default; several instances share limits through redisstore instead).
//
// Each key has a token bucket holding up to Max tokens that refills at Max per Window: a burst of
// Max events is allowed, then one more every Window/Max. Unlike a fixed window it never lets 2×Max
// through across a window boundary. A bucket that has refilled completely is the same as no
// bucket, so a periodic sweep drops those and memory follows the keys active in the last window.
package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// shards spreads keys over independent locks so that concurrent requests rarely wait on each other.
const shards = 16

// DefaultSweepInterval is how often (on the injected clock) full buckets are dropped.
const DefaultSweepInterval = time.Minute

// Limiter is the in-memory rate limiter. Safe for concurrent use.
type Limiter struct {
	clock ports.Clock
	seed  maphash.Seed
	every time.Duration
	shard [shards]shard
}

type shard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was computed
	full   time.Time // when the bucket will be full again: after that it can be dropped
}

var _ ports.RateLimiter = (*Limiter)(nil)

// Option configures New.
type Option func(*Limiter)

// WithSweepInterval sets how often full buckets are dropped (DefaultSweepInterval by default).
func WithSweepInterval(d time.Duration) Option { return func(l *Limiter) { l.every = d } }

// New returns a limiter that reads time from clock.
func New(clock ports.Clock, opts ...Option) *Limiter {
	l := &Limiter{clock: clock, seed: maphash.MakeSeed(), every: DefaultSweepInterval}
	for _, o := range opts {
		o(l)
	}
	now := clock.Now()
	for i := range l.shard {
		l.shard[i].buckets = map[string]*bucket{}
		l.shard[i].lastSweep = now
	}
	return l
}

// Allow takes one token from key's bucket. When the bucket is empty the event is refused (and not
// counted), and retryAfter is when the next token arrives.
func (l *Limiter) Allow(ctx context.Context, key string, limit ports.Limit) (bool, time.Duration, error) {
	if limit.Max <= 0 || limit.Window <= 0 {
		return false, 0, errs.Internalf("ratelimit: invalid rate limit %+v", limit)
	}
	now := l.clock.Now()
	sh := &l.shard[maphash.String(l.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.lastSweep) >= l.every {
		sh.sweep(now)
	}

	max := float64(limit.Max)
	perToken := limit.Window / time.Duration(limit.Max) // refill time of one token
	b := sh.buckets[key]
	if b == nil {
		b = &bucket{tokens: max, last: now}
		sh.buckets[key] = b
	} else if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += float64(elapsed) / float64(limit.Window) * max
		if b.tokens > max {
			b.tokens = max
		}
		b.last = now
	}
	if b.tokens < 1 {
		retry := time.Duration((1 - b.tokens) * float64(perToken))
		if retry <= 0 {
			retry = time.Nanosecond
		}
		return false, retry, nil
	}
	b.tokens--
	b.full = now.Add(time.Duration((max - b.tokens) / max * float64(limit.Window)))
	return true, 0, nil
}

// sweep drops the buckets that are full by now: they would behave exactly like new ones.
func (sh *shard) sweep(now time.Time) {
	for k, b := range sh.buckets {
		if !b.full.After(now) {
			delete(sh.buckets, k)
		}
	}
	sh.lastSweep = now
}

// Len reports how many buckets are held (for tests of the sweep).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shard {
		l.shard[i].mu.Lock()
		n += len(l.shard[i].buckets)
		l.shard[i].mu.Unlock()
	}
	return n
}
