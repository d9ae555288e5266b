package remotesigner

import (
	"sync"
	"time"
)

// nonceCache remembers the nonces of authenticated requests until their timestamp leaves the
// window, so a captured request cannot be replayed. It is bounded: when full of live nonces it
// refuses new ones (the request fails with 503) rather than forget a live one, which would open a
// replay. It lives in memory: a restart forgets it, so a request captured less than a window before
// a restart could be replayed once after it; TLS (which keeps requests from being captured) and the
// bearer token are what guard that gap (docs/remote-signer.md).
type nonceCache struct {
	mu      sync.Mutex
	max     int
	expires map[string]time.Time
	// lastSweep is when expired entries were last dropped.
	lastSweep time.Time
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, expires: make(map[string]time.Time)}
}

// reserve records nonce until expiry. It returns seen when the nonce is already live, full when
// the cache holds max live nonces.
func (c *nonceCache) reserve(nonce string, now, expiry time.Time) (seen, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.expires[nonce]; ok {
		if now.Before(exp) {
			return true, false
		}
		delete(c.expires, nonce)
	}
	// Sweep expired entries at most once a second, and always when full.
	if len(c.expires) >= c.max || now.Sub(c.lastSweep) >= time.Second || now.Before(c.lastSweep) {
		c.sweep(now)
	}
	if len(c.expires) >= c.max {
		return false, true
	}
	c.expires[nonce] = expiry
	return false, false
}

func (c *nonceCache) sweep(now time.Time) {
	c.lastSweep = now
	for n, exp := range c.expires {
		if !now.Before(exp) {
			delete(c.expires, n)
		}
	}
}

func (c *nonceCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.expires)
}
