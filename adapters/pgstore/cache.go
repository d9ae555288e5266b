package pgstore

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
)

// readCache keeps recently read products, licenses, activations and certificates in memory, so
// that the read-only device path (validate: certificate → activation → license → product) needs
// no database round trip once warm. It is only correct when this process is the only writer of
// those tables, which is why it is opt-in (WithReadCache) and enabled only by `samplero dev`, whose
// SQLite file belongs to that one process; several `serve` instances share their database and run
// without it.
//
// Correctness rests on three rules:
//   - reads inside a transaction never use it (they must see the transaction's own writes and the
//     newest committed rows under its locks);
//   - every write clears it, at the write and again when the write's transaction ends, so that a
//     row a concurrent reader loaded before the commit cannot survive it;
//   - a reader fills it only if no write happened between its snapshot of the generation and the
//     fill (otherwise it could store a row older than the write that cleared it).
//
// Entries also expire after readCacheTTL, bounding how long a write by anything else (a hand
// edit, another tool on the same file) can go unseen.
type readCache struct {
	mu          sync.Mutex
	gen         uint64
	products    map[string]cached[license.ProductRecord]
	licenses    map[string]cached[license.LicenseRecord]
	activations map[string]cached[license.ActivationRecord]
	certs       map[string]cached[license.CertificateRecord]
}

type cached[T any] struct {
	v      T
	loaded time.Time
}

const (
	readCacheTTL = 2 * time.Second
	// readCacheMax bounds each map; a full map is dropped whole (the working set refills it).
	readCacheMax = 50_000
)

func newReadCache() *readCache {
	c := &readCache{}
	c.resetLocked()
	return c
}

func (c *readCache) resetLocked() {
	c.products = map[string]cached[license.ProductRecord]{}
	c.licenses = map[string]cached[license.LicenseRecord]{}
	c.activations = map[string]cached[license.ActivationRecord]{}
	c.certs = map[string]cached[license.CertificateRecord]{}
}

// invalidate forgets everything and makes fills that started before it fail.
func (c *readCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.resetLocked()
	c.mu.Unlock()
}

// cacheable reports whether a read in ctx may use the cache, and the generation to fill with.
func (s *Store) cacheable(ctx context.Context) (uint64, bool) {
	if s.cache == nil || s.inTx(ctx) {
		return 0, false
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.gen, true
}

// wrote is called after every write to a cached table: it clears the cache now and, inside a
// transaction, marks the transaction so that InTx clears it again once it ends.
func (s *Store) wrote(ctx context.Context) {
	if s.cache == nil {
		return
	}
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.store == s && st.dirty != nil {
		*st.dirty = true
	}
	s.cache.invalidate()
}

func cacheGet[T any](s *Store, m func(*readCache) map[string]cached[T], key string) (T, bool) {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m(c)[key]
	if !ok || s.clock.Now().Sub(e.loaded) >= readCacheTTL || s.clock.Now().Before(e.loaded) {
		var zero T
		return zero, false
	}
	return e.v, true
}

func cachePut[T any](s *Store, m func(*readCache) map[string]cached[T], gen uint64, key string, v T) {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	mm := m(c)
	if len(mm) >= readCacheMax {
		clear(mm)
	}
	mm[key] = cached[T]{v: v, loaded: s.clock.Now()}
}

func productsOf(c *readCache) map[string]cached[license.ProductRecord]       { return c.products }
func licensesOf(c *readCache) map[string]cached[license.LicenseRecord]       { return c.licenses }
func activationsOf(c *readCache) map[string]cached[license.ActivationRecord] { return c.activations }
func certsOf(c *readCache) map[string]cached[license.CertificateRecord]      { return c.certs }

// The records handed out are copies: a caller that changes one (they are values, but their
// slices and pointers are shared) must not change the cached row.

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := *t
	return &v
}

func cloneProduct(p license.ProductRecord) license.ProductRecord {
	p.Entitlements = slices.Clone(p.Entitlements)
	return p
}

func cloneLicense(l license.LicenseRecord) license.LicenseRecord {
	l.KeyHash, l.KeySealed = slices.Clone(l.KeyHash), slices.Clone(l.KeySealed)
	l.Entitlements = slices.Clone(l.Entitlements)
	l.ExpiresAt = cloneTime(l.ExpiresAt)
	l.ExpiryWarnedAt, l.ExpiredNoticedAt = cloneTime(l.ExpiryWarnedAt), cloneTime(l.ExpiredNoticedAt)
	return l
}

func cloneActivation(a license.ActivationRecord) license.ActivationRecord {
	a.PublicKeyDER = slices.Clone(a.PublicKeyDER)
	a.LastLeaseExp, a.EndedAt, a.SeatHeldUntil = cloneTime(a.LastLeaseExp), cloneTime(a.EndedAt), cloneTime(a.SeatHeldUntil)
	return a
}

func cloneCertificate(c license.CertificateRecord) license.CertificateRecord {
	c.DER = slices.Clone(c.DER)
	c.OverlapUntil, c.RevokedAt = cloneTime(c.OverlapUntil), cloneTime(c.RevokedAt)
	return c
}
