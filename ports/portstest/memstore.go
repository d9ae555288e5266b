package portstest

import (
	"context"
	"encoding/base64"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// CodeActivationExists is the code of the unique (license, fingerprint) violation among active
// activations (see ports.ActivationRepo.Insert).
const CodeActivationExists = license.CodeActivationExists

// lockWait bounds how long an operation waits for the store lock. A wait this long means a
// repository was called with a ctx that does not carry the transaction running on the same
// goroutine (a bug that a database would turn into a lock timeout or a deadlock): failing beats
// hanging the test binary.
const lockWait = 10 * time.Second

// MemStore is an in-memory implementation of every licensing and commerce repository and of
// ports.Tx.
//
// One store-wide lock serialises transactions (the strongest form of the row lock that
// GetForUpdate promises); an operation outside a transaction takes the lock for itself alone, so it
// never sees another transaction's uncommitted writes. A transaction keeps an undo log and rolls
// back when fn fails or panics, so a failed use case changes nothing. Records go in and out as deep
// copies, times in UTC at microsecond precision like PostgreSQL.
type MemStore struct {
	sem   chan struct{} // capacity 1: the store lock
	mu    sync.Mutex    // guards the maps during one operation (goroutines may share a transaction)
	clock ports.Clock

	products    map[string]license.ProductRecord
	licenses    map[string]license.LicenseRecord
	activations map[string]license.ActivationRecord
	certs       map[string]license.CertificateRecord
	claims      map[string]license.ClaimRecord
	tokens      map[string]ports.AdminToken
	nonces      *MemNonceStore

	com commerceMem // the commerce repositories (commerce_mem.go)

	cust customersMem // the customers repositories (customers_mem.go)
}

// MemOption configures a MemStore.
type MemOption func(*MemStore)

// WithClock sets the clock of the store's nonce store (the system clock by default).
func WithClock(c ports.Clock) MemOption { return func(s *MemStore) { s.clock = c } }

// NewMemStore returns an empty store.
func NewMemStore(opts ...MemOption) *MemStore {
	s := &MemStore{
		sem:         make(chan struct{}, 1),
		clock:       systemClock{},
		products:    map[string]license.ProductRecord{},
		licenses:    map[string]license.LicenseRecord{},
		activations: map[string]license.ActivationRecord{},
		certs:       map[string]license.CertificateRecord{},
		claims:      map[string]license.ClaimRecord{},
		tokens:      map[string]ports.AdminToken{},
		com:         newCommerceMem(),
		cust:        newCustomersMem(),
	}
	for _, o := range opts {
		o(s)
	}
	s.nonces = NewMemNonceStore(s.clock)
	return s
}

// Tx returns the transaction port.
func (s *MemStore) Tx() ports.Tx { return memTxPort{s} }

// Products returns the product repository.
func (s *MemStore) Products() ports.ProductRepo { return memProducts{s} }

// Licenses returns the license repository.
func (s *MemStore) Licenses() ports.LicenseRepo { return memLicenses{s} }

// Activations returns the activation repository.
func (s *MemStore) Activations() ports.ActivationRepo { return memActivations{s} }

// Certificates returns the certificate repository.
func (s *MemStore) Certificates() ports.CertificateRepo { return memCertificates{s} }

// Claims returns the claim repository.
func (s *MemStore) Claims() ports.ClaimRepo { return memClaims{s} }

// AdminTokens returns the admin token repository.
func (s *MemStore) AdminTokens() ports.AdminTokenRepo { return memAdminTokens{s} }

// Nonces returns the store's nonce store (outside transactions, like the real ones).
func (s *MemStore) Nonces() ports.NonceStore { return s.nonces }

var (
	_ ports.Tx              = memTxPort{}
	_ ports.ProductRepo     = memProducts{}
	_ ports.LicenseRepo     = memLicenses{}
	_ ports.ActivationRepo  = memActivations{}
	_ ports.CertificateRepo = memCertificates{}
	_ ports.ClaimRepo       = memClaims{}
	_ ports.AdminTokenRepo  = memAdminTokens{}
)

// ---- transactions ----

type txKey struct{}

type memTx struct {
	store *MemStore
	undo  []func()
	done  bool
}

func (s *MemStore) txFrom(ctx context.Context) *memTx {
	tx, _ := ctx.Value(txKey{}).(*memTx)
	if tx == nil || tx.store != s {
		return nil
	}
	return tx
}

func (s *MemStore) acquire(ctx context.Context) error {
	t := time.NewTimer(lockWait)
	defer t.Stop()
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errs.Internalf("portstest: waiting for the store lock: %w", ctx.Err())
	case <-t.C:
		return errs.Internalf("portstest: store lock not acquired in %v: is a repository called with a ctx that lacks the running transaction?", lockWait)
	}
}

func (s *MemStore) release() { <-s.sem }

// run executes op under the store lock: inside the transaction of ctx, or alone.
func (s *MemStore) run(ctx context.Context, op func(tx *memTx) error) error {
	if tx := s.txFrom(ctx); tx != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if tx.done {
			return errs.Internalf("portstest: transaction used after it ended")
		}
		return op(tx)
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	return op(nil)
}

type memTxPort struct{ s *MemStore }

func (p memTxPort) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	s := p.s
	if tx := s.txFrom(ctx); tx != nil && !tx.done {
		return fn(ctx) // nested: join the outer transaction
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	tx := &memTx{store: s}
	committed := false
	defer func() {
		s.mu.Lock()
		if !committed {
			tx.rollback()
		}
		tx.done = true
		s.mu.Unlock()
		s.release()
	}()
	if err := fn(context.WithValue(ctx, txKey{}, tx)); err != nil {
		return err
	}
	committed = true
	return nil
}

func (tx *memTx) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo = nil
}

// remember logs the current state of m[k] so that a rollback restores it.
func remember[K comparable, V any](tx *memTx, m map[K]V, k K) {
	if tx == nil {
		return
	}
	old, had := m[k]
	tx.undo = append(tx.undo, func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
}

// ---- errors ----

func notFound(what string) error { return errs.E(errs.NotFound, errs.CodeNotFound, what+" not found") }

func conflict(msg string) error { return errs.E(errs.Conflict, errs.CodeConflict, msg) }

// missingParent is what a foreign key violation is in the database adapters: a bug, not a 404.
func missingParent(child, parent, id string) error {
	return errs.Internalf("portstest: %s references missing %s %q", child, parent, id)
}

// ---- copies ----

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}.UTC()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := normTime(*t)
	return &v
}

// cloneBytes and cloneStrings copy, mapping empty to nil as the database adapters do.
func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return slices.Clone(b)
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func copyProduct(p license.ProductRecord) license.ProductRecord {
	p.Entitlements = cloneStrings(p.Entitlements)
	p.CreatedAt = normTime(p.CreatedAt)
	p.UpdatedAt = normTime(p.UpdatedAt)
	return p
}

func copyLicense(l license.LicenseRecord) license.LicenseRecord {
	l.KeyHash = cloneBytes(l.KeyHash)
	l.KeySealed = cloneBytes(l.KeySealed)
	l.Entitlements = cloneStrings(l.Entitlements)
	l.ExpiresAt = normTimePtr(l.ExpiresAt)
	l.CreatedAt = normTime(l.CreatedAt)
	l.UpdatedAt = normTime(l.UpdatedAt)
	l.ExpiryWarnedAt = normTimePtr(l.ExpiryWarnedAt)
	l.ExpiredNoticedAt = normTimePtr(l.ExpiredNoticedAt)
	return l
}

func copyActivation(a license.ActivationRecord) license.ActivationRecord {
	a.PublicKeyDER = cloneBytes(a.PublicKeyDER)
	a.CreatedAt = normTime(a.CreatedAt)
	a.LastHeartbeatAt = normTime(a.LastHeartbeatAt)
	a.LastLeaseExp = normTimePtr(a.LastLeaseExp)
	a.EndedAt = normTimePtr(a.EndedAt)
	a.SeatHeldUntil = normTimePtr(a.SeatHeldUntil)
	a.UpdatedAt = normTime(a.UpdatedAt)
	return a
}

func copyCertificate(c license.CertificateRecord) license.CertificateRecord {
	c.DER = cloneBytes(c.DER)
	c.NotBefore = normTime(c.NotBefore)
	c.NotAfter = normTime(c.NotAfter)
	c.OverlapUntil = normTimePtr(c.OverlapUntil)
	c.RevokedAt = normTimePtr(c.RevokedAt)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func copyClaim(c license.ClaimRecord) license.ClaimRecord {
	c.PublicKeyDER = cloneBytes(c.PublicKeyDER)
	c.TokenHash = cloneBytes(c.TokenHash)
	c.CreatedAt = normTime(c.CreatedAt)
	c.ExpiresAt = normTime(c.ExpiresAt)
	c.DecidedAt = normTimePtr(c.DecidedAt)
	return c
}

func copyToken(t ports.AdminToken) ports.AdminToken {
	t.Hash = cloneBytes(t.Hash)
	t.CreatedAt = normTime(t.CreatedAt)
	return t
}

// ---- pagination ----

// pageLimit applies the defaults of ports.Page.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return 50
	case n > 200:
		return 200
	}
	return n
}

// A cursor is the (created_at, id) of the last row of a page, opaque to callers.
func encodeCursor(created time.Time, id string) string {
	raw := strconv.FormatInt(created.UnixMicro(), 10) + ":" + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", errs.Validation("invalid cursor")
	}
	us, id, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return time.Time{}, "", errs.Validation("invalid cursor")
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, "", errs.Validation("invalid cursor")
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// paginate orders rows newest first (ties by id, descending), skips up to the cursor and cuts a page.
func paginate[T any](rows []T, key func(T) (time.Time, string), p ports.Page) ([]T, string, error) {
	sort.Slice(rows, func(i, j int) bool {
		ci, ii := key(rows[i])
		cj, ij := key(rows[j])
		if !ci.Equal(cj) {
			return ci.After(cj)
		}
		return ii > ij
	})
	if p.Cursor != "" {
		ct, cid, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		start := len(rows)
		for i, r := range rows {
			c, id := key(r)
			if c.Before(ct) || (c.Equal(ct) && id < cid) {
				start = i
				break
			}
		}
		rows = rows[start:]
	}
	limit := pageLimit(p.Limit)
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	c, id := key(rows[limit-1])
	return rows, encodeCursor(c, id), nil
}

// ---- products ----

type memProducts struct{ s *MemStore }

func (r memProducts) Upsert(ctx context.Context, p license.ProductRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if old, ok := r.s.products[p.Slug]; ok {
			p.CreatedAt = old.CreatedAt // an upsert replaces the policy, not the creation time
		}
		remember(tx, r.s.products, p.Slug)
		r.s.products[p.Slug] = copyProduct(p)
		return nil
	})
}

func (r memProducts) Get(ctx context.Context, slug string) (license.ProductRecord, error) {
	var out license.ProductRecord
	err := r.s.run(ctx, func(*memTx) error {
		p, ok := r.s.products[slug]
		if !ok {
			return notFound("product")
		}
		out = copyProduct(p)
		return nil
	})
	return out, err
}

func (r memProducts) List(ctx context.Context) ([]license.ProductRecord, error) {
	var out []license.ProductRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, p := range r.s.products {
			out = append(out, copyProduct(p))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out, err
}

// ---- licenses ----

type memLicenses struct{ s *MemStore }

// uniqueLicense checks the unique columns of l against every other license.
func (r memLicenses) uniqueLicense(l license.LicenseRecord) error {
	for id, o := range r.s.licenses {
		if id == l.ID {
			continue
		}
		if string(o.KeyHash) == string(l.KeyHash) {
			return conflict("a license with this key already exists")
		}
		if l.IdempotencyKey != "" && o.IdempotencyKey == l.IdempotencyKey {
			return conflict("a license with this idempotency key already exists")
		}
	}
	return nil
}

func (r memLicenses) Insert(ctx context.Context, l license.LicenseRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.licenses[l.ID]; ok {
			return conflict("a license with this id already exists")
		}
		if err := r.uniqueLicense(l); err != nil {
			return err
		}
		remember(tx, r.s.licenses, l.ID)
		r.s.licenses[l.ID] = copyLicense(l)
		return nil
	})
}

func (r memLicenses) find(ctx context.Context, match func(license.LicenseRecord) bool) (license.LicenseRecord, error) {
	var out license.LicenseRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, l := range r.s.licenses {
			if match(l) {
				out = copyLicense(l)
				return nil
			}
		}
		return notFound("license")
	})
	return out, err
}

func (r memLicenses) Get(ctx context.Context, id string) (license.LicenseRecord, error) {
	var out license.LicenseRecord
	err := r.s.run(ctx, func(*memTx) error {
		l, ok := r.s.licenses[id]
		if !ok {
			return notFound("license")
		}
		out = copyLicense(l)
		return nil
	})
	return out, err
}

// GetForUpdate needs a transaction; the store lock that the transaction holds is the row lock.
func (r memLicenses) GetForUpdate(ctx context.Context, id string) (license.LicenseRecord, error) {
	if r.s.txFrom(ctx) == nil {
		return license.LicenseRecord{}, errs.Internalf("portstest: GetForUpdate outside a transaction")
	}
	return r.Get(ctx, id)
}

func (r memLicenses) ByKeyHash(ctx context.Context, hash []byte) (license.LicenseRecord, error) {
	return r.find(ctx, func(l license.LicenseRecord) bool { return string(l.KeyHash) == string(hash) })
}

func (r memLicenses) ByIdempotencyKey(ctx context.Context, key string) (license.LicenseRecord, error) {
	if key == "" {
		return license.LicenseRecord{}, notFound("license")
	}
	return r.find(ctx, func(l license.LicenseRecord) bool { return l.IdempotencyKey == key })
}

func (r memLicenses) Update(ctx context.Context, l license.LicenseRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.licenses[l.ID]; !ok {
			return notFound("license")
		}
		if err := r.uniqueLicense(l); err != nil {
			return err
		}
		remember(tx, r.s.licenses, l.ID)
		r.s.licenses[l.ID] = copyLicense(l)
		return nil
	})
}

func (r memLicenses) List(ctx context.Context, f ports.LicenseFilter) ([]license.LicenseRecord, string, error) {
	var rows []license.LicenseRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, l := range r.s.licenses {
			if (f.Product == "" || l.Product == f.Product) &&
				(f.Status == "" || l.Status == f.Status) &&
				(f.OwnerEmail == "" || l.OwnerEmail == f.OwnerEmail) {
				rows = append(rows, copyLicense(l))
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return paginate(rows, func(l license.LicenseRecord) (time.Time, string) { return l.CreatedAt, l.ID }, f.Page)
}

func (r memLicenses) ListByOwner(ctx context.Context, owner string) ([]license.LicenseRecord, error) {
	var rows []license.LicenseRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, l := range r.s.licenses {
			if license.OwnedBy(l, strings.ToLower(owner)) {
				rows = append(rows, copyLicense(l))
			}
		}
		return nil
	})
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].CreatedAt.Equal(rows[j].CreatedAt) {
			return rows[i].CreatedAt.After(rows[j].CreatedAt)
		}
		return rows[i].ID > rows[j].ID
	})
	return rows, err
}

// ExpiryNoticesDue selects with the aggregate's own rule, which the database adapters write as SQL.
func (r memLicenses) ExpiryNoticesDue(ctx context.Context, n license.ExpiryNotice, now time.Time, after ports.ExpiryCursor, limit int) ([]license.LicenseRecord, error) {
	if n != license.ExpiryNoticeExpiring && n != license.ExpiryNoticeExpired {
		return nil, errs.Validation("expiry notice must be expiring or expired")
	}
	if limit <= 0 || limit > 500 {
		limit = 500
	}
	var rows []license.LicenseRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, l := range r.s.licenses {
			if license.ExpiryNoticeDue(l, now) != n {
				continue
			}
			if after.ID != "" && (l.ExpiresAt.Before(after.ExpiresAt) || (l.ExpiresAt.Equal(after.ExpiresAt) && l.ID <= after.ID)) {
				continue
			}
			rows = append(rows, copyLicense(l))
		}
		return nil
	})
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].ExpiresAt.Equal(*rows[j].ExpiresAt) {
			return rows[i].ExpiresAt.Before(*rows[j].ExpiresAt)
		}
		return rows[i].ID < rows[j].ID
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows, err
}

// ---- activations ----

type memActivations struct{ s *MemStore }

// uniqueActive enforces the partial unique index on (license, fingerprint) of active activations.
func (r memActivations) uniqueActive(a license.ActivationRecord) error {
	if a.Status != license.ActivationActive {
		return nil
	}
	for id, o := range r.s.activations {
		if id != a.ID && o.Status == license.ActivationActive && o.LicenseID == a.LicenseID && o.Fingerprint == a.Fingerprint {
			return errs.E(errs.Conflict, CodeActivationExists, "this device already has an active activation on this license")
		}
	}
	return nil
}

func (r memActivations) Insert(ctx context.Context, a license.ActivationRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.activations[a.ID]; ok {
			return conflict("an activation with this id already exists")
		}
		if _, ok := r.s.licenses[a.LicenseID]; !ok {
			return missingParent("activation", "license", a.LicenseID)
		}
		if err := r.uniqueActive(a); err != nil {
			return err
		}
		remember(tx, r.s.activations, a.ID)
		r.s.activations[a.ID] = copyActivation(a)
		return nil
	})
}

func (r memActivations) Get(ctx context.Context, id string) (license.ActivationRecord, error) {
	var out license.ActivationRecord
	err := r.s.run(ctx, func(*memTx) error {
		a, ok := r.s.activations[id]
		if !ok {
			return notFound("activation")
		}
		out = copyActivation(a)
		return nil
	})
	return out, err
}

func (r memActivations) Update(ctx context.Context, a license.ActivationRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.activations[a.ID]; !ok {
			return notFound("activation")
		}
		if err := r.uniqueActive(a); err != nil {
			return err
		}
		remember(tx, r.s.activations, a.ID)
		r.s.activations[a.ID] = copyActivation(a)
		return nil
	})
}

// filter returns copies of the activations that match, oldest first.
func (r memActivations) filter(ctx context.Context, match func(license.ActivationRecord) bool) ([]license.ActivationRecord, error) {
	var out []license.ActivationRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, a := range r.s.activations {
			if match(a) {
				out = append(out, copyActivation(a))
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// newest returns the newest match or NOT_FOUND.
func (r memActivations) newest(ctx context.Context, match func(license.ActivationRecord) bool) (license.ActivationRecord, error) {
	all, err := r.filter(ctx, match)
	if err != nil {
		return license.ActivationRecord{}, err
	}
	if len(all) == 0 {
		return license.ActivationRecord{}, notFound("activation")
	}
	return all[len(all)-1], nil
}

func (r memActivations) ActiveByFingerprint(ctx context.Context, licenseID, fingerprint string) (license.ActivationRecord, error) {
	return r.newest(ctx, func(a license.ActivationRecord) bool {
		return a.Status == license.ActivationActive && a.LicenseID == licenseID && a.Fingerprint == fingerprint
	})
}

func (r memActivations) ActiveByThumbprint(ctx context.Context, thumbprint string) (license.ActivationRecord, error) {
	return r.newest(ctx, func(a license.ActivationRecord) bool {
		return a.Status == license.ActivationActive && a.KeyThumbprint == thumbprint
	})
}

func (r memActivations) SeatHolders(ctx context.Context, licenseID string, now time.Time) ([]license.ActivationRecord, error) {
	return r.filter(ctx, func(a license.ActivationRecord) bool {
		return a.LicenseID == licenseID &&
			(a.Status == license.ActivationActive || (a.SeatHeldUntil != nil && a.SeatHeldUntil.After(now)))
	})
}

func (r memActivations) TransfersSince(ctx context.Context, licenseID string, since time.Time) (int, error) {
	all, err := r.filter(ctx, func(a license.ActivationRecord) bool {
		return a.LicenseID == licenseID && a.FreedByTransfer && a.EndedAt != nil && a.EndedAt.After(since)
	})
	return len(all), err
}

func (r memActivations) List(ctx context.Context, f ports.ActivationFilter) ([]license.ActivationRecord, string, error) {
	rows, err := r.filter(ctx, func(a license.ActivationRecord) bool {
		return (f.LicenseID == "" || a.LicenseID == f.LicenseID) &&
			(f.Status == "" || a.Status == f.Status) &&
			(f.Fingerprint == "" || a.Fingerprint == f.Fingerprint)
	})
	if err != nil {
		return nil, "", err
	}
	return paginate(rows, func(a license.ActivationRecord) (time.Time, string) { return a.CreatedAt, a.ID }, f.Page)
}

func (r memActivations) SetTrustLevel(ctx context.Context, id string, level int) error {
	return r.s.run(ctx, func(tx *memTx) error {
		a, ok := r.s.activations[id]
		if !ok || a.LastTrustLevel == level {
			return nil
		}
		remember(tx, r.s.activations, id)
		a.LastTrustLevel = level
		r.s.activations[id] = a
		return nil
	})
}

// ---- certificates ----

type memCertificates struct{ s *MemStore }

func (r memCertificates) Insert(ctx context.Context, c license.CertificateRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.certs[c.Serial]; ok {
			return conflict("a certificate with this serial already exists")
		}
		if _, ok := r.s.activations[c.ActivationID]; !ok {
			return missingParent("certificate", "activation", c.ActivationID)
		}
		if _, ok := r.s.licenses[c.LicenseID]; !ok {
			return missingParent("certificate", "license", c.LicenseID)
		}
		remember(tx, r.s.certs, c.Serial)
		r.s.certs[c.Serial] = copyCertificate(c)
		return nil
	})
}

func (r memCertificates) BySerial(ctx context.Context, serial string) (license.CertificateRecord, error) {
	var out license.CertificateRecord
	err := r.s.run(ctx, func(*memTx) error {
		c, ok := r.s.certs[serial]
		if !ok {
			return notFound("certificate")
		}
		out = copyCertificate(c)
		return nil
	})
	return out, err
}

func (r memCertificates) Update(ctx context.Context, c license.CertificateRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.certs[c.Serial]; !ok {
			return notFound("certificate")
		}
		remember(tx, r.s.certs, c.Serial)
		r.s.certs[c.Serial] = copyCertificate(c)
		return nil
	})
}

func (r memCertificates) ListByActivation(ctx context.Context, activationID string) ([]license.CertificateRecord, error) {
	var out []license.CertificateRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, c := range r.s.certs {
			if c.ActivationID == activationID {
				out = append(out, copyCertificate(c))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(c license.CertificateRecord) (time.Time, string) { return c.CreatedAt, c.Serial })
	return out, err
}

func (r memCertificates) RevokedByIssuer(ctx context.Context, issuerID string, now time.Time) ([]ports.RevokedCertificate, error) {
	var out []ports.RevokedCertificate
	err := r.s.run(ctx, func(*memTx) error {
		for _, c := range r.s.certs {
			if c.IssuerID != issuerID || c.Status != license.CertificateRevoked || !c.NotAfter.After(now) {
				continue
			}
			rc := ports.RevokedCertificate{Serial: c.Serial, NotAfter: c.NotAfter, Reason: c.RevokeReason}
			if c.RevokedAt != nil {
				rc.RevokedAt = *c.RevokedAt
			}
			out = append(out, rc)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Serial < out[j].Serial })
	return out, err
}

func sortOldestFirst[T any](rows []T, key func(T) (time.Time, string)) {
	sort.Slice(rows, func(i, j int) bool {
		ci, ii := key(rows[i])
		cj, ij := key(rows[j])
		if !ci.Equal(cj) {
			return ci.Before(cj)
		}
		return ii < ij
	})
}

// ---- claims ----

type memClaims struct{ s *MemStore }

func (r memClaims) uniqueToken(c license.ClaimRecord) error {
	if len(c.TokenHash) == 0 {
		return nil
	}
	for id, o := range r.s.claims {
		if id != c.ID && string(o.TokenHash) == string(c.TokenHash) {
			return conflict("a claim with this token already exists")
		}
	}
	return nil
}

func (r memClaims) Insert(ctx context.Context, c license.ClaimRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.claims[c.ID]; ok {
			return conflict("a claim with this id already exists")
		}
		if _, ok := r.s.licenses[c.LicenseID]; !ok {
			return missingParent("claim", "license", c.LicenseID)
		}
		if err := r.uniqueToken(c); err != nil {
			return err
		}
		remember(tx, r.s.claims, c.ID)
		r.s.claims[c.ID] = copyClaim(c)
		return nil
	})
}

func (r memClaims) Get(ctx context.Context, id string) (license.ClaimRecord, error) {
	var out license.ClaimRecord
	err := r.s.run(ctx, func(*memTx) error {
		c, ok := r.s.claims[id]
		if !ok {
			return notFound("claim")
		}
		out = copyClaim(c)
		return nil
	})
	return out, err
}

func (r memClaims) Update(ctx context.Context, c license.ClaimRecord) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.claims[c.ID]; !ok {
			return notFound("claim")
		}
		if err := r.uniqueToken(c); err != nil {
			return err
		}
		remember(tx, r.s.claims, c.ID)
		r.s.claims[c.ID] = copyClaim(c)
		return nil
	})
}

func (r memClaims) filter(ctx context.Context, match func(license.ClaimRecord) bool) ([]license.ClaimRecord, error) {
	var out []license.ClaimRecord
	err := r.s.run(ctx, func(*memTx) error {
		for _, c := range r.s.claims {
			if match(c) {
				out = append(out, copyClaim(c))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(c license.ClaimRecord) (time.Time, string) { return c.CreatedAt, c.ID })
	return out, err
}

func (r memClaims) OpenByLicense(ctx context.Context, licenseID string, now time.Time) ([]license.ClaimRecord, error) {
	return r.filter(ctx, func(c license.ClaimRecord) bool {
		return c.LicenseID == licenseID && c.Status == license.ClaimPending && c.ExpiresAt.After(now)
	})
}

func (r memClaims) OpenByThumbprint(ctx context.Context, thumbprint string, now time.Time) (license.ClaimRecord, error) {
	all, err := r.filter(ctx, func(c license.ClaimRecord) bool {
		return c.KeyThumbprint == thumbprint && c.Status == license.ClaimPending && c.ExpiresAt.After(now)
	})
	if err != nil {
		return license.ClaimRecord{}, err
	}
	if len(all) == 0 {
		return license.ClaimRecord{}, notFound("claim")
	}
	return all[len(all)-1], nil
}

func (r memClaims) ByTokenHash(ctx context.Context, hash []byte) (license.ClaimRecord, error) {
	if len(hash) == 0 {
		return license.ClaimRecord{}, notFound("claim")
	}
	all, err := r.filter(ctx, func(c license.ClaimRecord) bool { return string(c.TokenHash) == string(hash) })
	if err != nil {
		return license.ClaimRecord{}, err
	}
	if len(all) == 0 {
		return license.ClaimRecord{}, notFound("claim")
	}
	return all[0], nil
}

// ---- admin tokens ----

type memAdminTokens struct{ s *MemStore }

func (r memAdminTokens) Insert(ctx context.Context, t ports.AdminToken) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.tokens[t.ID]; ok {
			return conflict("an admin token with this id already exists")
		}
		for _, o := range r.s.tokens {
			if string(o.Hash) == string(t.Hash) {
				return conflict("an admin token with this hash already exists")
			}
		}
		remember(tx, r.s.tokens, t.ID)
		r.s.tokens[t.ID] = copyToken(t)
		return nil
	})
}

func (r memAdminTokens) ByHash(ctx context.Context, hash []byte) (ports.AdminToken, error) {
	var out ports.AdminToken
	err := r.s.run(ctx, func(*memTx) error {
		for _, t := range r.s.tokens {
			if string(t.Hash) == string(hash) {
				out = copyToken(t)
				return nil
			}
		}
		return notFound("admin token")
	})
	return out, err
}
