package pgstore

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

var (
	_ ports.ProductRepo     = productRepo{}
	_ ports.LicenseRepo     = licenseRepo{}
	_ ports.ActivationRepo  = activationRepo{}
	_ ports.CertificateRepo = certificateRepo{}
	_ ports.ClaimRepo       = claimRepo{}
	_ ports.AdminTokenRepo  = adminTokenRepo{}
)

// ---- shared helpers ----

// updated turns the result of an UPDATE … WHERE pk into NOT_FOUND when no row matched.
func (s *Store) updated(res interface{ RowsAffected() (int64, error) }, err error, what string) error {
	if err != nil {
		return s.mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.mapErr(err, what)
	}
	if n == 0 {
		return notFound(what)
	}
	return nil
}

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

// A cursor is the (created_at, id) of the last row of a page, opaque to callers: the next page
// continues strictly after it in (created_at DESC, id DESC) order, through the list indexes.
func encodeCursor(created time.Time, id string) string {
	raw := strconv.FormatInt(created.UnixMicro(), 10) + ":" + id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(c string) (time.Time, string, error) {
	bad := errs.Validation("invalid cursor")
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	us, id, ok := strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(n).UTC(), id, nil
}

// pageQuery adds the cursor condition, the order and the limit (one more row than the page, to
// know whether there is a next one).
func pageQuery(q *bun.SelectQuery, p ports.Page) (*bun.SelectQuery, int, error) {
	if p.Cursor != "" {
		ct, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, 0, err
		}
		q = q.Where("(created_at < ? OR (created_at = ? AND id < ?))", ct, ct, id)
	}
	limit := pageLimit(p.Limit)
	return q.OrderExpr("created_at DESC, id DESC").Limit(int64(limit + 1)), limit, nil
}

// ---- products ----

type productRepo struct{ s *Store }

func (r productRepo) Upsert(ctx context.Context, p license.ProductRecord) error {
	row, err := toProductRow(p)
	if err != nil {
		return err
	}
	q := r.s.idb(ctx).NewInsert().Model(&row).On("CONFLICT (slug) DO UPDATE")
	// Everything but the key and the creation time is replaced.
	for _, c := range []string{"name", "type", "price_cents", "currency", "entitlements", "max_activations",
		"first_activation", "heartbeat_interval_ms", "grace_period_ms", "certificate_validity_ms",
		"transfers_per_30d", "duration_ms", "updated_at"} {
		q = q.Set("? = EXCLUDED.?", bun.Ident(c), bun.Ident(c))
	}
	_, err = q.Exec(ctx)
	r.s.wrote(ctx)
	return r.s.mapErr(err, "product")
}

func (r productRepo) Get(ctx context.Context, slug string) (license.ProductRecord, error) {
	gen, cache := r.s.cacheable(ctx)
	if cache {
		if p, ok := cacheGet(r.s, productsOf, slug); ok {
			return cloneProduct(p), nil
		}
	}
	var row productRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("slug = ?", slug).Limit(1).Scan(ctx); err != nil {
		return license.ProductRecord{}, r.s.mapErr(err, "product")
	}
	p, err := row.record()
	if err == nil && cache {
		cachePut(r.s, productsOf, gen, slug, cloneProduct(p))
	}
	return p, err
}

func (r productRepo) List(ctx context.Context) ([]license.ProductRecord, error) {
	var rows []productRow
	if err := r.s.idb(ctx).NewSelect().Model(&rows).OrderExpr("slug ASC").Scan(ctx); err != nil {
		return nil, r.s.mapErr(err, "product")
	}
	out := make([]license.ProductRecord, 0, len(rows))
	for _, row := range rows {
		p, err := row.record()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ---- licenses ----

type licenseRepo struct{ s *Store }

func (r licenseRepo) Insert(ctx context.Context, l license.LicenseRecord) error {
	row, err := toLicenseRow(l)
	if err != nil {
		return err
	}
	_, err = r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	r.s.wrote(ctx)
	return r.s.mapErr(err, "license")
}

func (r licenseRepo) one(ctx context.Context, forUpdate bool, where string, args ...any) (license.LicenseRecord, error) {
	var row licenseRow
	q := r.s.idb(ctx).NewSelect().Model(&row).Where(where, args...).Limit(1)
	if forUpdate && r.s.dialect == DialectPostgres {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return license.LicenseRecord{}, r.s.mapErr(err, "license")
	}
	return row.record()
}

func (r licenseRepo) Get(ctx context.Context, id string) (license.LicenseRecord, error) {
	gen, cache := r.s.cacheable(ctx)
	if cache {
		if l, ok := cacheGet(r.s, licensesOf, id); ok {
			return cloneLicense(l), nil
		}
	}
	l, err := r.one(ctx, false, "id = ?", id)
	if err == nil && cache {
		cachePut(r.s, licensesOf, gen, id, cloneLicense(l))
	}
	return l, err
}

// GetForUpdate locks the row with SELECT … FOR UPDATE on PostgreSQL. On SQLite every transaction
// holds the database's write lock from BEGIN (immediate), which serialises at least as strongly.
func (r licenseRepo) GetForUpdate(ctx context.Context, id string) (license.LicenseRecord, error) {
	if !r.s.inTx(ctx) {
		return license.LicenseRecord{}, errs.Internalf("pgstore: GetForUpdate outside a transaction")
	}
	return r.one(ctx, true, "id = ?", id)
}

func (r licenseRepo) ByKeyHash(ctx context.Context, hash []byte) (license.LicenseRecord, error) {
	if len(hash) == 0 {
		return license.LicenseRecord{}, notFound("license")
	}
	return r.one(ctx, false, "key_hash = ?", hash)
}

func (r licenseRepo) ByIdempotencyKey(ctx context.Context, key string) (license.LicenseRecord, error) {
	if key == "" {
		return license.LicenseRecord{}, notFound("license")
	}
	return r.one(ctx, false, "idempotency_key = ?", key)
}

func (r licenseRepo) Update(ctx context.Context, l license.LicenseRecord) error {
	row, err := toLicenseRow(l)
	if err != nil {
		return err
	}
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	r.s.wrote(ctx)
	return r.s.updated(res, err, "license")
}

func (r licenseRepo) List(ctx context.Context, f ports.LicenseFilter) ([]license.LicenseRecord, string, error) {
	var rows []licenseRow
	q := r.s.idb(ctx).NewSelect().Model(&rows)
	if f.Product != "" {
		q = q.Where("product = ?", f.Product)
	}
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.OwnerEmail != "" {
		q = q.Where("owner_email = ?", f.OwnerEmail)
	}
	q, limit, err := pageQuery(q, f.Page)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", r.s.mapErr(err, "license")
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].CreatedAt, rows[limit-1].ID)
	}
	out := make([]license.LicenseRecord, 0, len(rows))
	for _, row := range rows {
		l, err := row.record()
		if err != nil {
			return nil, "", err
		}
		out = append(out, l)
	}
	return out, next, nil
}

// licenses maps rows to records.
func licenses(rows []licenseRow) ([]license.LicenseRecord, error) {
	out := make([]license.LicenseRecord, 0, len(rows))
	for _, row := range rows {
		l, err := row.record()
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// ListByOwner reads through licenses_owner_lower_idx: its predicate (a non-empty owner_email) is
// repeated so that both databases may use the partial index.
func (r licenseRepo) ListByOwner(ctx context.Context, owner string) ([]license.LicenseRecord, error) {
	if owner == "" {
		return nil, nil
	}
	var rows []licenseRow
	err := r.s.idb(ctx).NewSelect().Model(&rows).
		Where("lower(owner_email) = ?", strings.ToLower(owner)).
		Where("owner_email <> ''").
		OrderExpr("created_at DESC, id DESC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "license")
	}
	return licenses(rows)
}

// expiryPageMax bounds a page of ExpiryNoticesDue.
const expiryPageMax = 500

// ExpiryNoticesDue reads through licenses_expiry_warn_idx or licenses_expired_notice_idx: every
// term of the partial index's predicate is repeated literally (bun writes the arguments into the
// statement), which is what SQLite needs to use a partial index.
func (r licenseRepo) ExpiryNoticesDue(ctx context.Context, n license.ExpiryNotice, now time.Time, after ports.ExpiryCursor, limit int) ([]license.LicenseRecord, error) {
	if limit <= 0 || limit > expiryPageMax {
		limit = expiryPageMax
	}
	var rows []licenseRow
	q := r.s.idb(ctx).NewSelect().Model(&rows).
		Where("expires_at IS NOT NULL").
		Where("owner_email <> ''").
		Where("status = ?", string(license.LicenseActive))
	switch n {
	case license.ExpiryNoticeExpiring:
		q = q.Where("expiry_warned_at IS NULL").
			Where("expires_at > ?", dbTime(now)).
			Where("expires_at <= ?", dbTime(now.Add(license.ExpiryWarning)))
	case license.ExpiryNoticeExpired:
		q = q.Where("expired_noticed_at IS NULL").
			Where("expires_at > ?", dbTime(now.Add(-license.ExpiredNoticeWindow))).
			Where("expires_at <= ?", dbTime(now))
	default:
		return nil, errs.Validation("expiry notice must be expiring or expired")
	}
	if after.ID != "" {
		at := dbTime(after.ExpiresAt)
		q = q.Where("(expires_at > ? OR (expires_at = ? AND id > ?))", at, at, after.ID)
	}
	if err := q.OrderExpr("expires_at ASC, id ASC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, r.s.mapErr(err, "license")
	}
	return licenses(rows)
}

// ---- activations ----

type activationRepo struct{ s *Store }

func (r activationRepo) Insert(ctx context.Context, a license.ActivationRecord) error {
	row := toActivationRow(a)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	r.s.wrote(ctx)
	return r.s.mapErr(err, "activation")
}

func (r activationRepo) Get(ctx context.Context, id string) (license.ActivationRecord, error) {
	gen, cache := r.s.cacheable(ctx)
	if cache {
		if a, ok := cacheGet(r.s, activationsOf, id); ok {
			return cloneActivation(a), nil
		}
	}
	a, err := r.one(ctx, "id = ?", id)
	if err == nil && cache {
		cachePut(r.s, activationsOf, gen, id, cloneActivation(a))
	}
	return a, err
}

func (r activationRepo) Update(ctx context.Context, a license.ActivationRecord) error {
	row := toActivationRow(a)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	r.s.wrote(ctx)
	return r.s.updated(res, err, "activation")
}

// one returns the newest activation matching where, or NOT_FOUND.
func (r activationRepo) one(ctx context.Context, where string, args ...any) (license.ActivationRecord, error) {
	var row activationRow
	err := r.s.idb(ctx).NewSelect().Model(&row).Where(where, args...).
		OrderExpr("created_at DESC, id DESC").Limit(1).Scan(ctx)
	if err != nil {
		return license.ActivationRecord{}, r.s.mapErr(err, "activation")
	}
	return row.record(), nil
}

func (r activationRepo) many(ctx context.Context, q *bun.SelectQuery, rows *[]activationRow) ([]license.ActivationRecord, error) {
	if err := q.Scan(ctx); err != nil {
		return nil, r.s.mapErr(err, "activation")
	}
	out := make([]license.ActivationRecord, 0, len(*rows))
	for _, row := range *rows {
		out = append(out, row.record())
	}
	return out, nil
}

func (r activationRepo) ActiveByFingerprint(ctx context.Context, licenseID, fingerprint string) (license.ActivationRecord, error) {
	return r.one(ctx, "license_id = ? AND fingerprint = ? AND status = ?", licenseID, fingerprint, string(license.ActivationActive))
}

func (r activationRepo) ActiveByThumbprint(ctx context.Context, thumbprint string) (license.ActivationRecord, error) {
	return r.one(ctx, "key_thumbprint = ? AND status = ?", thumbprint, string(license.ActivationActive))
}

// SeatHolders returns the rows that hold a seat (see CountSeats for the cheaper count). On SQLite
// the OR with the ORDER BY walks the license's index entries, so it is not on the activation path.
func (r activationRepo) SeatHolders(ctx context.Context, licenseID string, now time.Time) ([]license.ActivationRecord, error) {
	var rows []activationRow
	q := r.s.idb(ctx).NewSelect().Model(&rows).
		Where("license_id = ?", licenseID).
		Where("(status = ? OR seat_held_until > ?)", string(license.ActivationActive), dbTime(now)).
		OrderExpr("created_at ASC, id ASC")
	return r.many(ctx, q, &rows)
}

var _ ports.SeatCounter = activationRepo{}

// CountSeats counts without loading a row, as two index searches: the active rows of the license
// through activations_seats_idx (license_id, status) and the ended rows still holding a seat
// through activations_held_idx (license_id, seat_held_until > now). Written as one OR, SQLite
// walks every index entry of the license instead, so the cost grew with its ended activations.
func (r activationRepo) CountSeats(ctx context.Context, licenseID string, now time.Time) (held, active int, err error) {
	var endedHeld int
	err = r.s.idb(ctx).NewRaw(
		"SELECT (SELECT COUNT(*) FROM activations WHERE license_id = ? AND status = ?) AS active, "+
			"(SELECT COUNT(*) FROM activations WHERE license_id = ? AND seat_held_until > ? AND status <> ?) AS ended_held",
		licenseID, string(license.ActivationActive), licenseID, dbTime(now), string(license.ActivationActive),
	).Scan(ctx, &active, &endedHeld)
	if err != nil {
		return 0, 0, r.s.mapErr(err, "activation")
	}
	return active + endedHeld, active, nil
}

func (r activationRepo) TransfersSince(ctx context.Context, licenseID string, since time.Time) (int, error) {
	n, err := r.s.idb(ctx).NewSelect().Model((*activationRow)(nil)).
		Where("license_id = ?", licenseID).
		Where("freed_by_transfer").
		Where("ended_at > ?", dbTime(since)).
		Count(ctx)
	if err != nil {
		return 0, r.s.mapErr(err, "activation")
	}
	return int(n), nil
}

func (r activationRepo) List(ctx context.Context, f ports.ActivationFilter) ([]license.ActivationRecord, string, error) {
	var rows []activationRow
	q := r.s.idb(ctx).NewSelect().Model(&rows)
	if f.LicenseID != "" {
		q = q.Where("license_id = ?", f.LicenseID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.Fingerprint != "" {
		q = q.Where("fingerprint = ?", f.Fingerprint)
	}
	q, limit, err := pageQuery(q, f.Page)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", r.s.mapErr(err, "activation")
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].CreatedAt, rows[limit-1].ID)
	}
	out := make([]license.ActivationRecord, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, next, nil
}

// SetTrustLevel writes one column under a guard, outside any lock: the cache is cleared only when
// a row changed, so the steady state of validate (the level already recorded) stays cached.
func (r activationRepo) SetTrustLevel(ctx context.Context, id string, level int) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*activationRow)(nil)).
		Set("last_trust_level = ?", level).
		Where("id = ?", id).
		Where("last_trust_level <> ?", level).
		Exec(ctx)
	if err != nil {
		return r.s.mapErr(err, "activation")
	}
	if n, err := res.RowsAffected(); err != nil {
		return r.s.mapErr(err, "activation")
	} else if n > 0 {
		r.s.wrote(ctx)
	}
	return nil
}

// ---- certificates ----

type certificateRepo struct{ s *Store }

func (r certificateRepo) Insert(ctx context.Context, c license.CertificateRecord) error {
	row := toCertificateRow(c)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	r.s.wrote(ctx)
	return r.s.mapErr(err, "certificate")
}

func (r certificateRepo) BySerial(ctx context.Context, serial string) (license.CertificateRecord, error) {
	gen, cache := r.s.cacheable(ctx)
	if cache {
		if c, ok := cacheGet(r.s, certsOf, serial); ok {
			return cloneCertificate(c), nil
		}
	}
	var row certificateRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("serial = ?", serial).Limit(1).Scan(ctx); err != nil {
		return license.CertificateRecord{}, r.s.mapErr(err, "certificate")
	}
	c := row.record()
	if cache {
		cachePut(r.s, certsOf, gen, serial, cloneCertificate(c))
	}
	return c, nil
}

func (r certificateRepo) Update(ctx context.Context, c license.CertificateRecord) error {
	row := toCertificateRow(c)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	r.s.wrote(ctx)
	return r.s.updated(res, err, "certificate")
}

func (r certificateRepo) ListByActivation(ctx context.Context, activationID string) ([]license.CertificateRecord, error) {
	var rows []certificateRow
	err := r.s.idb(ctx).NewSelect().Model(&rows).Where("activation_id = ?", activationID).
		OrderExpr("created_at ASC, serial ASC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "certificate")
	}
	out := make([]license.CertificateRecord, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, nil
}

// RevokedByIssuer reads four columns of the revoked rows only, through certificates_revoked_idx (a
// partial index on status = 'revoked'), so the CRL publisher can afford it on every request. It
// bypasses the read cache: a revocation must show in the next list.
func (r certificateRepo) RevokedByIssuer(ctx context.Context, issuerID string, now time.Time) ([]ports.RevokedCertificate, error) {
	var rows []struct {
		Serial       string     `bun:"serial"`
		RevokedAt    *time.Time `bun:"revoked_at"`
		NotAfter     time.Time  `bun:"not_after"`
		RevokeReason string     `bun:"revoke_reason"`
	}
	err := r.s.idb(ctx).NewSelect().Table("certificates").
		Column("serial", "revoked_at", "not_after", "revoke_reason").
		Where("issuer_id = ?", issuerID).Where("status = ?", string(license.CertificateRevoked)).
		Where("not_after > ?", dbTime(now)).OrderExpr("serial ASC").Scan(ctx, &rows)
	if err != nil {
		return nil, r.s.mapErr(err, "certificate")
	}
	out := make([]ports.RevokedCertificate, 0, len(rows))
	for _, row := range rows {
		rc := ports.RevokedCertificate{Serial: row.Serial, NotAfter: recTime(row.NotAfter), Reason: row.RevokeReason}
		if t := recTimePtr(row.RevokedAt); t != nil {
			rc.RevokedAt = *t
		}
		out = append(out, rc)
	}
	return out, nil
}

// ---- claims ----

type claimRepo struct{ s *Store }

func (r claimRepo) Insert(ctx context.Context, c license.ClaimRecord) error {
	row := toClaimRow(c)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "claim")
}

func (r claimRepo) Get(ctx context.Context, id string) (license.ClaimRecord, error) {
	return r.one(ctx, "id = ?", id)
}

func (r claimRepo) Update(ctx context.Context, c license.ClaimRecord) error {
	row := toClaimRow(c)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	return r.s.updated(res, err, "claim")
}

func (r claimRepo) one(ctx context.Context, where string, args ...any) (license.ClaimRecord, error) {
	var row claimRow
	err := r.s.idb(ctx).NewSelect().Model(&row).Where(where, args...).
		OrderExpr("created_at DESC, id DESC").Limit(1).Scan(ctx)
	if err != nil {
		return license.ClaimRecord{}, r.s.mapErr(err, "claim")
	}
	return row.record(), nil
}

func (r claimRepo) OpenByLicense(ctx context.Context, licenseID string, now time.Time) ([]license.ClaimRecord, error) {
	var rows []claimRow
	err := r.s.idb(ctx).NewSelect().Model(&rows).
		Where("license_id = ? AND status = ? AND expires_at > ?", licenseID, string(license.ClaimPending), dbTime(now)).
		OrderExpr("created_at ASC, id ASC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "claim")
	}
	out := make([]license.ClaimRecord, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, nil
}

func (r claimRepo) OpenByThumbprint(ctx context.Context, thumbprint string, now time.Time) (license.ClaimRecord, error) {
	return r.one(ctx, "key_thumbprint = ? AND status = ? AND expires_at > ?", thumbprint, string(license.ClaimPending), dbTime(now))
}

func (r claimRepo) ByTokenHash(ctx context.Context, hash []byte) (license.ClaimRecord, error) {
	if len(hash) == 0 {
		return license.ClaimRecord{}, notFound("claim")
	}
	return r.one(ctx, "token_hash = ?", hash)
}

// ---- admin tokens ----

type adminTokenRepo struct{ s *Store }

func (r adminTokenRepo) Insert(ctx context.Context, t ports.AdminToken) error {
	row := toAdminTokenRow(t)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "admin token")
}

func (r adminTokenRepo) ByHash(ctx context.Context, hash []byte) (ports.AdminToken, error) {
	if len(hash) == 0 {
		return ports.AdminToken{}, notFound("admin token")
	}
	var row adminTokenRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("hash = ?", hash).Limit(1).Scan(ctx); err != nil {
		return ports.AdminToken{}, r.s.mapErr(err, "admin token")
	}
	return row.record(), nil
}
