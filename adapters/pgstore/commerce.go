package pgstore

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// CodeCouponExhausted is the code of a redemption refused because the coupon has none left (see
// ports.CouponRepo.Redeem).
const CodeCouponExhausted = "COUPON_EXHAUSTED"

// unfinishedDefault is how many ids Unfinished returns when asked for limit <= 0.
const unfinishedDefault = 100

var (
	_ ports.CatalogRepo      = catalogRepo{}
	_ ports.OrderRepo        = orderRepo{}
	_ ports.CouponRepo       = couponRepo{}
	_ ports.EntitlementRepo  = entitlementRepo{}
	_ ports.PaymentEventRepo = paymentEventRepo{}
	_ ports.DownloadRepo     = downloadRepo{}
)

// Catalog returns the catalog repository.
func (s *Store) Catalog() ports.CatalogRepo { return catalogRepo{s} }

// Orders returns the order repository.
func (s *Store) Orders() ports.OrderRepo { return orderRepo{s} }

// Coupons returns the coupon repository.
func (s *Store) Coupons() ports.CouponRepo { return couponRepo{s} }

// Entitlements returns the entitlement repository.
func (s *Store) Entitlements() ports.EntitlementRepo { return entitlementRepo{s} }

// PaymentEvents returns the payment event repository.
func (s *Store) PaymentEvents() ports.PaymentEventRepo { return paymentEventRepo{s} }

// Downloads returns the download repository.
func (s *Store) Downloads() ports.DownloadRepo { return downloadRepo{s} }

// ---- catalog ----

type catalogRepo struct{ s *Store }

func (r catalogRepo) InsertProduct(ctx context.Context, p catalog.Product) error {
	row, err := toCatalogProductRow(p)
	if err != nil {
		return err
	}
	_, err = r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "product")
}

func (r catalogRepo) UpdateProduct(ctx context.Context, p catalog.Product) error {
	row, err := toCatalogProductRow(p)
	if err != nil {
		return err
	}
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	return r.s.updated(res, err, "product")
}

// DeleteProduct deletes the row; its versions go with it (ON DELETE CASCADE), in one statement.
func (r catalogRepo) DeleteProduct(ctx context.Context, id string) error {
	res, err := r.s.idb(ctx).NewDelete().Model((*catalogProductRow)(nil)).Where("id = ?", id).Exec(ctx)
	return r.s.updated(res, err, "product")
}

func (r catalogRepo) product(ctx context.Context, where string, arg any) (catalog.Product, error) {
	var row catalogProductRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where(where, arg).Limit(1).Scan(ctx); err != nil {
		return catalog.Product{}, r.s.mapErr(err, "product")
	}
	return row.record()
}

func (r catalogRepo) ProductByID(ctx context.Context, id string) (catalog.Product, error) {
	return r.product(ctx, "id = ?", id)
}

func (r catalogRepo) ProductBySlug(ctx context.Context, slug string) (catalog.Product, error) {
	return r.product(ctx, "slug = ?", slug)
}

// likeEscape makes s a literal LIKE pattern fragment (escape character '!').
func likeEscape(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// ListProducts pages by (name, slug) through catalog_products_name_idx. Names and slugs compare
// byte-wise on both databases (collation "C" on PostgreSQL, BINARY on SQLite), like the cursor.
func (r catalogRepo) ListProducts(ctx context.Context, f ports.ProductFilter) ([]catalog.Product, string, error) {
	var rows []catalogProductRow
	q := r.s.idb(ctx).NewSelect().Model(&rows)
	if f.Query != "" {
		pat := "%" + likeEscape(strings.ToLower(f.Query)) + "%"
		q = q.Where("(lower(name) LIKE ? ESCAPE '!' OR lower(slug) LIKE ? ESCAPE '!')", pat, pat)
	}
	if f.Type != "" {
		q = q.Where("type = ?", string(f.Type))
	}
	if f.ActiveOnly {
		q = q.Where("active")
	}
	if f.Cursor != "" {
		name, slug, err := decodeNameCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		q = q.Where("(name > ? OR (name = ? AND slug > ?))", name, name, slug)
	}
	limit := pageLimit(f.Limit)
	if err := q.OrderExpr("name ASC, slug ASC").Limit(int64(limit + 1)).Scan(ctx); err != nil {
		return nil, "", r.s.mapErr(err, "product")
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeNameCursor(rows[limit-1].Name, rows[limit-1].Slug)
	}
	out := make([]catalog.Product, 0, len(rows))
	for _, row := range rows {
		p, err := row.record()
		if err != nil {
			return nil, "", err
		}
		out = append(out, p)
	}
	return out, next, nil
}

// A name cursor is the (name, slug) of the last row: slugs never hold a newline, so the last
// newline separates them.
func encodeNameCursor(name, slug string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name + "\n" + slug))
}

func decodeNameCursor(c string) (name, slug string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", "", errs.Validation("invalid cursor")
	}
	i := strings.LastIndexByte(string(raw), '\n')
	if i < 0 || i == len(raw)-1 {
		return "", "", errs.Validation("invalid cursor")
	}
	return string(raw[:i]), string(raw[i+1:]), nil
}

func (r catalogRepo) InsertVersion(ctx context.Context, v catalog.Version) error {
	row := toCatalogVersionRow(v)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "version")
}

func (r catalogRepo) UpdateVersion(ctx context.Context, v catalog.Version) error {
	row := toCatalogVersionRow(v)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	return r.s.updated(res, err, "version")
}

func (r catalogRepo) DeleteVersion(ctx context.Context, id string) error {
	res, err := r.s.idb(ctx).NewDelete().Model((*catalogVersionRow)(nil)).Where("id = ?", id).Exec(ctx)
	return r.s.updated(res, err, "version")
}

func (r catalogRepo) Version(ctx context.Context, id string) (catalog.Version, error) {
	var row catalogVersionRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("id = ?", id).Limit(1).Scan(ctx); err != nil {
		return catalog.Version{}, r.s.mapErr(err, "version")
	}
	return row.record(), nil
}

func (r catalogRepo) Versions(ctx context.Context, productID string) ([]catalog.Version, error) {
	var rows []catalogVersionRow
	err := r.s.idb(ctx).NewSelect().Model(&rows).Where("product_id = ?", productID).
		OrderExpr("created_at ASC, id ASC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "version")
	}
	out := make([]catalog.Version, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, nil
}

// ---- orders ----

type orderRepo struct{ s *Store }

// Insert writes the order and its lines in one transaction (joining the caller's). The number
// comes from the INSERT itself: the identity column on PostgreSQL; on SQLite MAX(number) + 1 in
// the same statement, which holds the database's single write lock while it reads the maximum.
func (r orderRepo) Insert(ctx context.Context, o order.Order) (order.Order, error) {
	row := toOrderRow(o)
	lines := toOrderLineRows(o)
	err := r.s.Tx().InTx(ctx, func(ctx context.Context) error {
		db := r.s.idb(ctx)
		q := db.NewInsert().Model(&row).Returning("number")
		if r.s.dialect == DialectPostgres {
			q = q.ExcludeColumn("number")
		} else {
			q = q.Value("number", "(SELECT COALESCE(MAX(number), 0) + 1 FROM orders)")
		}
		if _, err := q.Exec(ctx); err != nil {
			return r.s.mapErr(err, "order")
		}
		if len(lines) > 0 {
			if _, err := db.NewInsert().Model(&lines).Exec(ctx); err != nil {
				return r.s.mapErr(err, "order line")
			}
		}
		return nil
	})
	if err != nil {
		return order.Order{}, err
	}
	return row.record(lines), nil
}

// withLines loads the lines of rows and maps them, keeping the order of rows.
func (r orderRepo) withLines(ctx context.Context, rows []orderRow) ([]order.Order, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	var lines []orderLineRow
	err := r.s.idb(ctx).NewSelect().Model(&lines).Where("order_id IN (?)", bun.In(ids)).
		OrderExpr("order_id ASC, line_index ASC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "order line")
	}
	byOrder := map[string][]orderLineRow{}
	for _, l := range lines {
		byOrder[l.OrderID] = append(byOrder[l.OrderID], l)
	}
	out := make([]order.Order, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record(byOrder[row.ID]))
	}
	return out, nil
}

// one returns the newest order matching where (references are not unique: a coupon's payment
// reference is shared by its orders), with its lines.
func (r orderRepo) one(ctx context.Context, forUpdate bool, where string, args ...any) (order.Order, error) {
	var row orderRow
	q := r.s.idb(ctx).NewSelect().Model(&row).Where(where, args...).OrderExpr("created_at DESC, id DESC").Limit(1)
	if forUpdate && r.s.dialect == DialectPostgres {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return order.Order{}, r.s.mapErr(err, "order")
	}
	out, err := r.withLines(ctx, []orderRow{row})
	if err != nil {
		return order.Order{}, err
	}
	return out[0], nil
}

func (r orderRepo) Get(ctx context.Context, id string) (order.Order, error) {
	return r.one(ctx, false, "id = ?", id)
}

// GetForUpdate locks the row with SELECT … FOR UPDATE on PostgreSQL. On SQLite every transaction
// holds the database's write lock from BEGIN (immediate), which serialises at least as strongly.
func (r orderRepo) GetForUpdate(ctx context.Context, id string) (order.Order, error) {
	if !r.s.inTx(ctx) {
		return order.Order{}, errs.Internalf("pgstore: GetForUpdate outside a transaction")
	}
	return r.one(ctx, true, "id = ?", id)
}

func (r orderRepo) ByNumber(ctx context.Context, number int64) (order.Order, error) {
	return r.one(ctx, false, "number = ?", number)
}

func (r orderRepo) ByCheckoutSession(ctx context.Context, sessionID string) (order.Order, error) {
	if sessionID == "" {
		return order.Order{}, notFound("order")
	}
	return r.one(ctx, false, "checkout_session_id = ?", sessionID)
}

func (r orderRepo) ByPaymentRef(ctx context.Context, provider, ref string) (order.Order, error) {
	if ref == "" {
		return order.Order{}, notFound("order")
	}
	return r.one(ctx, false, "payment_provider = ? AND payment_ref = ?", provider, ref)
}

// Update writes every column but the number (an identity that PostgreSQL refuses to overwrite);
// the lines live in their own table and are never rewritten.
func (r orderRepo) Update(ctx context.Context, o order.Order) error {
	row := toOrderRow(o)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).ExcludeColumn("number").WherePK().Exec(ctx)
	return r.s.updated(res, err, "order")
}

func (r orderRepo) List(ctx context.Context, f ports.OrderFilter) ([]order.Order, string, error) {
	var rows []orderRow
	q := r.s.idb(ctx).NewSelect().Model(&rows)
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.CustomerEmail != "" {
		q = q.Where("customer_email = ?", strings.ToLower(f.CustomerEmail))
	}
	if f.InReview {
		q = q.Where("review_reason <> ''") // the predicate of orders_review_created_idx
	}
	q, limit, err := pageQuery(q, f.Page)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", r.s.mapErr(err, "order")
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].CreatedAt, rows[limit-1].ID)
	}
	out, err := r.withLines(ctx, rows)
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// CountByProduct counts distinct orders through order_lines_product_idx.
func (r orderRepo) CountByProduct(ctx context.Context, slug string) (int, error) {
	var n int
	err := r.s.idb(ctx).NewSelect().Model((*orderLineRow)(nil)).ColumnExpr("COUNT(DISTINCT order_id)").
		Where("product = ?", slug).Scan(ctx, &n)
	if err != nil {
		return 0, r.s.mapErr(err, "order line")
	}
	return n, nil
}

// Unfinished returns the oldest first, so that a long backlog is worked off in order. The
// condition is written as the predicate of orders_unfinished_idx so that both planners use it.
func (r orderRepo) Unfinished(ctx context.Context, limit int) ([]string, error) {
	if limit <= 0 {
		limit = unfinishedDefault
	}
	var ids []string
	err := r.s.idb(ctx).NewSelect().Model((*orderRow)(nil)).Column("id").
		Where("status = 'paid' AND review_reason = '' AND fulfilled_at IS NULL").
		OrderExpr("created_at ASC, id ASC").Limit(int64(limit)).Scan(ctx, &ids)
	if err != nil {
		return nil, r.s.mapErr(err, "order")
	}
	return ids, nil
}

// ---- coupons ----

type couponRepo struct{ s *Store }

func (r couponRepo) Insert(ctx context.Context, c order.Coupon) error {
	row := toCouponRow(c)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "coupon")
}

// Update leaves redemptions alone: only Redeem and Release move the counter, atomically.
func (r couponRepo) Update(ctx context.Context, c order.Coupon) error {
	row := toCouponRow(c)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).ExcludeColumn("redemptions").WherePK().Exec(ctx)
	return r.s.updated(res, err, "coupon")
}

func (r couponRepo) Delete(ctx context.Context, id string) error {
	// The condition is part of the DELETE, so a redemption committed by another transaction while
	// this one waited for the row lock is seen (PostgreSQL re-checks the WHERE after the wait).
	res, err := r.s.idb(ctx).NewDelete().Model((*couponRow)(nil)).Where("id = ?", id).Where("redemptions = 0").Exec(ctx)
	if err != nil {
		return r.s.mapErr(err, "coupon")
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	if _, err := r.Get(ctx, id); err != nil {
		return err
	}
	return errs.E(errs.Conflict, "COUPON_IN_USE", "the coupon has been redeemed")
}

func (r couponRepo) one(ctx context.Context, where string, arg any) (order.Coupon, error) {
	var row couponRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where(where, arg).Limit(1).Scan(ctx); err != nil {
		return order.Coupon{}, r.s.mapErr(err, "coupon")
	}
	return row.record(), nil
}

func (r couponRepo) Get(ctx context.Context, id string) (order.Coupon, error) {
	return r.one(ctx, "id = ?", id)
}

func (r couponRepo) ByCode(ctx context.Context, code string) (order.Coupon, error) {
	return r.one(ctx, "code = ?", code)
}

func (r couponRepo) List(ctx context.Context, p ports.Page) ([]order.Coupon, string, error) {
	var rows []couponRow
	q, limit, err := pageQuery(r.s.idb(ctx).NewSelect().Model(&rows), p)
	if err != nil {
		return nil, "", err
	}
	if err := q.Scan(ctx); err != nil {
		return nil, "", r.s.mapErr(err, "coupon")
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].CreatedAt, rows[limit-1].ID)
	}
	out := make([]order.Coupon, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, next, nil
}

// Redeem is one conditional UPDATE: the database decides which of concurrent callers takes the
// last redemption (PostgreSQL re-checks the condition on the row version it waited for; SQLite
// runs one writer at a time). Only when no row changed is the coupon looked up, to tell a missing
// coupon from an exhausted one.
func (r couponRepo) Redeem(ctx context.Context, id string) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*couponRow)(nil)).
		Set("redemptions = redemptions + 1").
		Where("id = ?", id).
		Where("(max_redemptions IS NULL OR redemptions < max_redemptions)").
		Exec(ctx)
	if n, err := r.s.affected(res, err, "coupon"); err != nil || n == 1 {
		return err
	}
	if err := r.exists(ctx, id); err != nil {
		return err
	}
	return errs.E(errs.Conflict, CodeCouponExhausted, "this coupon has no redemptions left")
}

// Release is one conditional UPDATE too; at zero it changes nothing.
func (r couponRepo) Release(ctx context.Context, id string) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*couponRow)(nil)).
		Set("redemptions = redemptions - 1").
		Where("id = ? AND redemptions > 0", id).
		Exec(ctx)
	if n, err := r.s.affected(res, err, "coupon"); err != nil || n == 1 {
		return err
	}
	return r.exists(ctx, id)
}

// exists returns NOT_FOUND when there is no coupon id.
func (r couponRepo) exists(ctx context.Context, id string) error {
	ok, err := r.s.idb(ctx).NewSelect().Model((*couponRow)(nil)).Where("id = ?", id).Exists(ctx)
	if err != nil {
		return r.s.mapErr(err, "coupon")
	}
	if !ok {
		return notFound("coupon")
	}
	return nil
}

// affected returns how many rows a statement changed.
func (s *Store) affected(res interface{ RowsAffected() (int64, error) }, err error, what string) (int64, error) {
	if err != nil {
		return 0, s.mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.mapErr(err, what)
	}
	return n, nil
}

// ---- entitlements ----

type entitlementRepo struct{ s *Store }

func (r entitlementRepo) Insert(ctx context.Context, e order.Entitlement) error {
	row := toEntitlementRow(e)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "entitlement")
}

func (r entitlementRepo) Update(ctx context.Context, e order.Entitlement) error {
	row := toEntitlementRow(e)
	res, err := r.s.idb(ctx).NewUpdate().Model(&row).WherePK().Exec(ctx)
	return r.s.updated(res, err, "entitlement")
}

func (r entitlementRepo) Get(ctx context.Context, id string) (order.Entitlement, error) {
	var row entitlementRow
	if err := r.s.idb(ctx).NewSelect().Model(&row).Where("id = ?", id).Limit(1).Scan(ctx); err != nil {
		return order.Entitlement{}, r.s.mapErr(err, "entitlement")
	}
	return row.record(), nil
}

func (r entitlementRepo) many(ctx context.Context, orderBy string, where string, args ...any) ([]order.Entitlement, error) {
	var rows []entitlementRow
	if err := r.s.idb(ctx).NewSelect().Model(&rows).Where(where, args...).OrderExpr(orderBy).Scan(ctx); err != nil {
		return nil, r.s.mapErr(err, "entitlement")
	}
	out := make([]order.Entitlement, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, nil
}

// ByOrder returns the order's entitlements in line order (then product, then id), through
// entitlements_order_line_product_key.
func (r entitlementRepo) ByOrder(ctx context.Context, orderID string) ([]order.Entitlement, error) {
	return r.many(ctx, "line_index ASC, product ASC, id ASC", "order_id = ?", orderID)
}

// ActiveFor returns oldest first, through entitlements_customer_product_idx.
func (r entitlementRepo) ActiveFor(ctx context.Context, email, product string) ([]order.Entitlement, error) {
	return r.many(ctx, "created_at ASC, id ASC", "customer_email = ? AND product = ? AND status = ?",
		strings.ToLower(email), product, string(order.EntitlementActive))
}

// ByLicense returns the oldest entitlement carrying the license (there is one in practice; the
// schema does not forbid more).
func (r entitlementRepo) ByLicense(ctx context.Context, licenseID string) (order.Entitlement, error) {
	if licenseID == "" {
		return order.Entitlement{}, notFound("entitlement")
	}
	var row entitlementRow
	err := r.s.idb(ctx).NewSelect().Model(&row).Where("license_id = ?", licenseID).
		OrderExpr("created_at ASC, id ASC").Limit(1).Scan(ctx)
	if err != nil {
		return order.Entitlement{}, r.s.mapErr(err, "entitlement")
	}
	return row.record(), nil
}

// ---- payment events ----

type paymentEventRepo struct{ s *Store }

// Record is INSERT … ON CONFLICT DO NOTHING on the (provider, event_id) key: the database picks
// the one fresh caller among concurrent deliveries (on PostgreSQL a second insert waits for the
// first one's transaction and then does nothing, or inserts if that one rolled back).
func (r paymentEventRepo) Record(ctx context.Context, e order.PaymentEvent) (bool, error) {
	row := toPaymentEventRow(e)
	res, err := r.s.idb(ctx).NewInsert().Model(&row).On("CONFLICT (provider, event_id) DO NOTHING").Exec(ctx)
	n, err := r.s.affected(res, err, "payment event")
	return n == 1, err
}

func (r paymentEventRepo) Get(ctx context.Context, provider, eventID string) (order.PaymentEvent, error) {
	var row paymentEventRow
	err := r.s.idb(ctx).NewSelect().Model(&row).Where("provider = ? AND event_id = ?", provider, eventID).
		Limit(1).Scan(ctx)
	if err != nil {
		return order.PaymentEvent{}, r.s.mapErr(err, "payment event")
	}
	return row.record(), nil
}

func (r paymentEventRepo) SetOutcome(ctx context.Context, provider, eventID, outcome string) error {
	res, err := r.s.idb(ctx).NewUpdate().Model((*paymentEventRow)(nil)).Set("outcome = ?", outcome).
		Where("provider = ? AND event_id = ?", provider, eventID).Exec(ctx)
	return r.s.updated(res, err, "payment event")
}

// ---- downloads ----

type downloadRepo struct{ s *Store }

func (r downloadRepo) Insert(ctx context.Context, d order.Download) error {
	row := toDownloadRow(d)
	_, err := r.s.idb(ctx).NewInsert().Model(&row).Exec(ctx)
	return r.s.mapErr(err, "download")
}

// ByOrder returns the order's downloads, oldest first, through downloads_order_idx.
func (r downloadRepo) ByOrder(ctx context.Context, orderID string) ([]order.Download, error) {
	var rows []downloadRow
	err := r.s.idb(ctx).NewSelect().Model(&rows).Where("order_id = ?", orderID).
		OrderExpr("issued_at ASC, id ASC").Scan(ctx)
	if err != nil {
		return nil, r.s.mapErr(err, "download")
	}
	out := make([]order.Download, 0, len(rows))
	for _, row := range rows {
		out = append(out, row.record())
	}
	return out, nil
}
