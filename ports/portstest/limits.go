package portstest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// sweepEvery is how many calls pass between sweeps of expired entries, so the fakes' memory stays
// bounded in long-running tests at a cost amortised to O(1) per call.
const sweepEvery = 1024

// MemNonceStore is an in-memory ports.NonceStore whose expiry follows an injected clock.
type MemNonceStore struct {
	clock ports.Clock
	mu    sync.Mutex
	seen  map[nonceKey]time.Time // expiry
	calls int
}

type nonceKey struct{ keyID, nonce string }

var _ ports.NonceStore = (*MemNonceStore)(nil)

// NewMemNonceStore returns an empty nonce store.
func NewMemNonceStore(clock ports.Clock) *MemNonceStore {
	return &MemNonceStore{clock: clock, seen: map[nonceKey]time.Time{}}
}

// Reserve records (keyID, nonce) until now+ttl; fresh is false while an earlier record is alive.
func (s *MemNonceStore) Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", err)
	}
	now := s.clock.Now()
	k := nonceKey{keyID, nonce}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%sweepEvery == 0 {
		for k, exp := range s.seen {
			if !exp.After(now) {
				delete(s.seen, k)
			}
		}
	}
	if exp, ok := s.seen[k]; ok && exp.After(now) {
		return false, nil
	}
	s.seen[k] = now.Add(ttl)
	return true, nil
}

// Len reports how many pairs are held, expired ones not yet swept included (for tests of cleanup).
func (s *MemNonceStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// FailingNonceStore is a ports.NonceStore whose backend is always down, to test that callers fail
// closed.
type FailingNonceStore struct{}

var _ ports.NonceStore = FailingNonceStore{}

// Reserve always fails with errs.Unavailable.
func (FailingNonceStore) Reserve(context.Context, string, string, time.Duration) (bool, error) {
	return false, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", errors.New("portstest: failing nonce store"))
}

// MemRateLimiter is an in-memory ports.RateLimiter: a fixed window per key that opens at the key's
// first event, following an injected clock.
type MemRateLimiter struct {
	clock   ports.Clock
	mu      sync.Mutex
	windows map[string]*window
	calls   int
}

type window struct {
	end   time.Time
	count int
}

var _ ports.RateLimiter = (*MemRateLimiter)(nil)

// NewMemRateLimiter returns a limiter with no events counted.
func NewMemRateLimiter(clock ports.Clock) *MemRateLimiter {
	return &MemRateLimiter{clock: clock, windows: map[string]*window{}}
}

// Allow counts one event for key. Refused events are not counted, so a client that keeps retrying
// is let in again as soon as its window ends.
func (l *MemRateLimiter) Allow(ctx context.Context, key string, limit ports.Limit) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "rate limiter unavailable", err)
	}
	if limit.Max <= 0 || limit.Window <= 0 {
		return false, 0, errs.Internalf("portstest: invalid rate limit %+v", limit)
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%sweepEvery == 0 {
		for k, w := range l.windows {
			if !w.end.After(now) {
				delete(l.windows, k)
			}
		}
	}
	w := l.windows[key]
	if w == nil || !w.end.After(now) {
		w = &window{end: now.Add(limit.Window)}
		l.windows[key] = w
	}
	if w.count >= limit.Max {
		return false, w.end.Sub(now), nil
	}
	w.count++
	return true, 0, nil
}

// FailingRateLimiter is a ports.RateLimiter whose backend is always down.
type FailingRateLimiter struct{}

var _ ports.RateLimiter = FailingRateLimiter{}

// Allow always fails with errs.Unavailable.
func (FailingRateLimiter) Allow(context.Context, string, ports.Limit) (bool, time.Duration, error) {
	return false, 0, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "rate limiter unavailable", errors.New("portstest: failing rate limiter"))
}
