package portstest

import (
	"context"
	"encoding/base64"
	"slices"
	"sort"
	"strings"
	"time"

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

// commerceMem holds the commerce maps of a MemStore; every write goes through remember so that a
// rollback of the transaction undoes it like the licensing maps.
type commerceMem struct {
	catProducts  map[string]catalog.Product // by id
	catVersions  map[string]catalog.Version // by id
	orders       map[string]order.Order     // by id
	orderSeq     int64                      // the last order number handed out
	coupons      map[string]order.Coupon    // by id
	entitlements map[string]order.Entitlement
	payEvents    map[payEventKey]order.PaymentEvent
	downloads    map[string]order.Download
}

type payEventKey struct{ provider, eventID string }

func newCommerceMem() commerceMem {
	return commerceMem{
		catProducts:  map[string]catalog.Product{},
		catVersions:  map[string]catalog.Version{},
		orders:       map[string]order.Order{},
		coupons:      map[string]order.Coupon{},
		entitlements: map[string]order.Entitlement{},
		payEvents:    map[payEventKey]order.PaymentEvent{},
		downloads:    map[string]order.Download{},
	}
}

// Catalog returns the catalog repository.
func (s *MemStore) Catalog() ports.CatalogRepo { return memCatalog{s} }

// Orders returns the order repository.
func (s *MemStore) Orders() ports.OrderRepo { return memOrders{s} }

// Coupons returns the coupon repository.
func (s *MemStore) Coupons() ports.CouponRepo { return memCoupons{s} }

// Entitlements returns the entitlement repository.
func (s *MemStore) Entitlements() ports.EntitlementRepo { return memEntitlements{s} }

// PaymentEvents returns the payment event repository.
func (s *MemStore) PaymentEvents() ports.PaymentEventRepo { return memPaymentEvents{s} }

// Downloads returns the download repository.
func (s *MemStore) Downloads() ports.DownloadRepo { return memDownloads{s} }

var (
	_ ports.CatalogRepo      = memCatalog{}
	_ ports.OrderRepo        = memOrders{}
	_ ports.CouponRepo       = memCoupons{}
	_ ports.EntitlementRepo  = memEntitlements{}
	_ ports.PaymentEventRepo = memPaymentEvents{}
	_ ports.DownloadRepo     = memDownloads{}
)

// ---- copies ----

func clonePrices(p []catalog.Price) []catalog.Price {
	if len(p) == 0 {
		return nil
	}
	return slices.Clone(p)
}

func copyCatProduct(p catalog.Product) catalog.Product {
	p.Prices = clonePrices(p.Prices)
	p.Components = cloneStrings(p.Components)
	p.CreatedAt = normTime(p.CreatedAt)
	p.UpdatedAt = normTime(p.UpdatedAt)
	return p
}

func copyCatVersion(v catalog.Version) catalog.Version {
	v.CreatedAt = normTime(v.CreatedAt)
	v.UpdatedAt = normTime(v.UpdatedAt)
	return v
}

func copyOrder(o order.Order) order.Order {
	if len(o.Lines) == 0 {
		o.Lines = nil
	} else {
		o.Lines = slices.Clone(o.Lines)
	}
	o.PaidAt = normTimePtr(o.PaidAt)
	o.FulfilledAt = normTimePtr(o.FulfilledAt)
	o.RefundedAt = normTimePtr(o.RefundedAt)
	o.CreatedAt = normTime(o.CreatedAt)
	o.UpdatedAt = normTime(o.UpdatedAt)
	return o
}

func copyCoupon(c order.Coupon) order.Coupon {
	c.StartsAt = normTimePtr(c.StartsAt)
	c.EndsAt = normTimePtr(c.EndsAt)
	if c.MaxRedemptions != nil {
		n := *c.MaxRedemptions
		c.MaxRedemptions = &n
	}
	c.CreatedAt = normTime(c.CreatedAt)
	c.UpdatedAt = normTime(c.UpdatedAt)
	return c
}

func copyEntitlement(e order.Entitlement) order.Entitlement {
	e.UnlockedAt = normTimePtr(e.UnlockedAt)
	e.RevokedAt = normTimePtr(e.RevokedAt)
	e.CreatedAt = normTime(e.CreatedAt)
	return e
}

func copyPaymentEvent(e order.PaymentEvent) order.PaymentEvent {
	e.ReceivedAt = normTime(e.ReceivedAt)
	return e
}

func copyDownload(d order.Download) order.Download {
	d.IssuedAt = normTime(d.IssuedAt)
	d.ExpiresAt = normTime(d.ExpiresAt)
	return d
}

// ---- catalog ----

type memCatalog struct{ s *MemStore }

func (r memCatalog) uniqueSlug(p catalog.Product) error {
	for id, o := range r.s.com.catProducts {
		if id != p.ID && o.Slug == p.Slug {
			return conflict("a product with this slug already exists")
		}
	}
	return nil
}

func (r memCatalog) InsertProduct(ctx context.Context, p catalog.Product) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catProducts[p.ID]; ok {
			return conflict("a product with this id already exists")
		}
		if err := r.uniqueSlug(p); err != nil {
			return err
		}
		remember(tx, r.s.com.catProducts, p.ID)
		r.s.com.catProducts[p.ID] = copyCatProduct(p)
		return nil
	})
}

func (r memCatalog) UpdateProduct(ctx context.Context, p catalog.Product) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catProducts[p.ID]; !ok {
			return notFound("product")
		}
		if err := r.uniqueSlug(p); err != nil {
			return err
		}
		remember(tx, r.s.com.catProducts, p.ID)
		r.s.com.catProducts[p.ID] = copyCatProduct(p)
		return nil
	})
}

func (r memCatalog) DeleteProduct(ctx context.Context, id string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catProducts[id]; !ok {
			return notFound("product")
		}
		for vid, v := range r.s.com.catVersions {
			if v.ProductID == id {
				remember(tx, r.s.com.catVersions, vid)
				delete(r.s.com.catVersions, vid)
			}
		}
		remember(tx, r.s.com.catProducts, id)
		delete(r.s.com.catProducts, id)
		return nil
	})
}

func (r memCatalog) findProduct(ctx context.Context, match func(catalog.Product) bool) (catalog.Product, error) {
	var out catalog.Product
	err := r.s.run(ctx, func(*memTx) error {
		for _, p := range r.s.com.catProducts {
			if match(p) {
				out = copyCatProduct(p)
				return nil
			}
		}
		return notFound("product")
	})
	return out, err
}

func (r memCatalog) ProductByID(ctx context.Context, id string) (catalog.Product, error) {
	return r.findProduct(ctx, func(p catalog.Product) bool { return p.ID == id })
}

func (r memCatalog) ProductBySlug(ctx context.Context, slug string) (catalog.Product, error) {
	return r.findProduct(ctx, func(p catalog.Product) bool { return p.Slug == slug })
}

// ListProducts orders by name then slug, byte-wise (the databases use the C collation), and pages
// with a (name, slug) cursor.
func (r memCatalog) ListProducts(ctx context.Context, f ports.ProductFilter) ([]catalog.Product, string, error) {
	var afterName, afterSlug string
	if f.Cursor != "" {
		var err error
		if afterName, afterSlug, err = decodeNameCursor(f.Cursor); err != nil {
			return nil, "", err
		}
	}
	q := strings.ToLower(f.Query)
	var rows []catalog.Product
	err := r.s.run(ctx, func(*memTx) error {
		for _, p := range r.s.com.catProducts {
			if q != "" && !strings.Contains(strings.ToLower(p.Name), q) && !strings.Contains(strings.ToLower(p.Slug), q) {
				continue
			}
			if (f.Type != "" && p.Type != f.Type) || (f.ActiveOnly && !p.Active) {
				continue
			}
			if f.Cursor != "" && (p.Name < afterName || (p.Name == afterName && p.Slug <= afterSlug)) {
				continue
			}
			rows = append(rows, copyCatProduct(p))
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Name != rows[j].Name {
			return rows[i].Name < rows[j].Name
		}
		return rows[i].Slug < rows[j].Slug
	})
	limit := pageLimit(f.Limit)
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	last := rows[limit-1]
	return rows, encodeNameCursor(last.Name, last.Slug), nil
}

// encodeNameCursor is the cursor of a list ordered by (name, slug), opaque to callers: slugs never
// hold a newline, so the last newline separates them.
func encodeNameCursor(name, slug string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name + "\n" + slug))
}

// decodeNameCursor reverses encodeNameCursor; anything else is errs.Invalid.
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

func (r memCatalog) uniqueVersion(v catalog.Version) error {
	for id, o := range r.s.com.catVersions {
		if id != v.ID && o.ProductID == v.ProductID && o.Platform == v.Platform && o.Version == v.Version {
			return conflict("this version already exists for this platform")
		}
	}
	return nil
}

func (r memCatalog) InsertVersion(ctx context.Context, v catalog.Version) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catVersions[v.ID]; ok {
			return conflict("a version with this id already exists")
		}
		if _, ok := r.s.com.catProducts[v.ProductID]; !ok {
			return missingParent("version", "product", v.ProductID)
		}
		if err := r.uniqueVersion(v); err != nil {
			return err
		}
		remember(tx, r.s.com.catVersions, v.ID)
		r.s.com.catVersions[v.ID] = copyCatVersion(v)
		return nil
	})
}

func (r memCatalog) UpdateVersion(ctx context.Context, v catalog.Version) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catVersions[v.ID]; !ok {
			return notFound("version")
		}
		if _, ok := r.s.com.catProducts[v.ProductID]; !ok {
			return missingParent("version", "product", v.ProductID)
		}
		if err := r.uniqueVersion(v); err != nil {
			return err
		}
		remember(tx, r.s.com.catVersions, v.ID)
		r.s.com.catVersions[v.ID] = copyCatVersion(v)
		return nil
	})
}

func (r memCatalog) DeleteVersion(ctx context.Context, id string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.catVersions[id]; !ok {
			return notFound("version")
		}
		remember(tx, r.s.com.catVersions, id)
		delete(r.s.com.catVersions, id)
		return nil
	})
}

func (r memCatalog) Version(ctx context.Context, id string) (catalog.Version, error) {
	var out catalog.Version
	err := r.s.run(ctx, func(*memTx) error {
		v, ok := r.s.com.catVersions[id]
		if !ok {
			return notFound("version")
		}
		out = copyCatVersion(v)
		return nil
	})
	return out, err
}

func (r memCatalog) Versions(ctx context.Context, productID string) ([]catalog.Version, error) {
	var out []catalog.Version
	err := r.s.run(ctx, func(*memTx) error {
		for _, v := range r.s.com.catVersions {
			if v.ProductID == productID {
				out = append(out, copyCatVersion(v))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(v catalog.Version) (time.Time, string) { return v.CreatedAt, v.ID })
	return out, err
}

// ---- orders ----

type memOrders struct{ s *MemStore }

func (r memOrders) Insert(ctx context.Context, o order.Order) (order.Order, error) {
	var out order.Order
	err := r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.orders[o.ID]; ok {
			return conflict("an order with this id already exists")
		}
		prev := r.s.com.orderSeq
		if tx != nil {
			// Unlike a PostgreSQL sequence the fake gives the number back on rollback: the port
			// promises unique, increasing numbers, not gaps.
			tx.undo = append(tx.undo, func() { r.s.com.orderSeq = prev })
		}
		r.s.com.orderSeq++
		o.Number = r.s.com.orderSeq
		remember(tx, r.s.com.orders, o.ID)
		r.s.com.orders[o.ID] = copyOrder(o)
		out = copyOrder(o)
		return nil
	})
	return out, err
}

func (r memOrders) Get(ctx context.Context, id string) (order.Order, error) {
	return r.find(ctx, func(o order.Order) bool { return o.ID == id })
}

// GetForUpdate needs a transaction; the store lock that the transaction holds is the row lock.
func (r memOrders) GetForUpdate(ctx context.Context, id string) (order.Order, error) {
	if r.s.txFrom(ctx) == nil {
		return order.Order{}, errs.Internalf("portstest: GetForUpdate outside a transaction")
	}
	return r.Get(ctx, id)
}

func (r memOrders) ByNumber(ctx context.Context, number int64) (order.Order, error) {
	return r.find(ctx, func(o order.Order) bool { return o.Number == number })
}

func (r memOrders) ByCheckoutSession(ctx context.Context, sessionID string) (order.Order, error) {
	if sessionID == "" {
		return order.Order{}, notFound("order")
	}
	return r.find(ctx, func(o order.Order) bool { return o.CheckoutSessionID == sessionID })
}

func (r memOrders) ByPaymentRef(ctx context.Context, provider, ref string) (order.Order, error) {
	if ref == "" {
		return order.Order{}, notFound("order")
	}
	return r.find(ctx, func(o order.Order) bool { return o.PaymentProvider == provider && o.PaymentRef == ref })
}

// find returns the newest matching order (references are not unique in the schema: a coupon's
// payment reference is shared by its orders).
func (r memOrders) find(ctx context.Context, match func(order.Order) bool) (order.Order, error) {
	rows, err := r.filter(ctx, match)
	if err != nil {
		return order.Order{}, err
	}
	if len(rows) == 0 {
		return order.Order{}, notFound("order")
	}
	return rows[len(rows)-1], nil
}

// filter returns copies of the matching orders, oldest first.
func (r memOrders) filter(ctx context.Context, match func(order.Order) bool) ([]order.Order, error) {
	var out []order.Order
	err := r.s.run(ctx, func(*memTx) error {
		for _, o := range r.s.com.orders {
			if match(o) {
				out = append(out, copyOrder(o))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(o order.Order) (time.Time, string) { return o.CreatedAt, o.ID })
	return out, err
}

func (r memOrders) Update(ctx context.Context, o order.Order) error {
	return r.s.run(ctx, func(tx *memTx) error {
		old, ok := r.s.com.orders[o.ID]
		if !ok {
			return notFound("order")
		}
		o.Lines = old.Lines
		o.Number = old.Number
		remember(tx, r.s.com.orders, o.ID)
		r.s.com.orders[o.ID] = copyOrder(o)
		return nil
	})
}

func (r memOrders) List(ctx context.Context, f ports.OrderFilter) ([]order.Order, string, error) {
	email := strings.ToLower(f.CustomerEmail)
	rows, err := r.filter(ctx, func(o order.Order) bool {
		return (f.Status == "" || o.Status == f.Status) &&
			(email == "" || o.CustomerEmail == email) &&
			(!f.InReview || o.ReviewReason != "")
	})
	if err != nil {
		return nil, "", err
	}
	return paginate(rows, func(o order.Order) (time.Time, string) { return o.CreatedAt, o.ID }, f.Page)
}

func (r memOrders) CountByProduct(ctx context.Context, slug string) (int, error) {
	rows, err := r.filter(ctx, func(o order.Order) bool {
		return slices.ContainsFunc(o.Lines, func(l order.Line) bool { return l.Product == slug })
	})
	return len(rows), err
}

// Unfinished returns the oldest first, so that a long backlog is worked off in order.
func (r memOrders) Unfinished(ctx context.Context, limit int) ([]string, error) {
	if limit <= 0 {
		limit = unfinishedDefault
	}
	rows, err := r.filter(ctx, func(o order.Order) bool {
		return o.Status == order.StatusPaid && o.ReviewReason == "" && o.FulfilledAt == nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, o := range rows {
		if len(ids) == limit {
			break
		}
		ids = append(ids, o.ID)
	}
	return ids, nil
}

// ---- coupons ----

type memCoupons struct{ s *MemStore }

func (r memCoupons) uniqueCode(c order.Coupon) error {
	for id, o := range r.s.com.coupons {
		if id != c.ID && o.Code == c.Code {
			return conflict("a coupon with this code already exists")
		}
	}
	return nil
}

func (r memCoupons) Insert(ctx context.Context, c order.Coupon) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.coupons[c.ID]; ok {
			return conflict("a coupon with this id already exists")
		}
		if err := r.uniqueCode(c); err != nil {
			return err
		}
		remember(tx, r.s.com.coupons, c.ID)
		r.s.com.coupons[c.ID] = copyCoupon(c)
		return nil
	})
}

func (r memCoupons) Update(ctx context.Context, c order.Coupon) error {
	return r.s.run(ctx, func(tx *memTx) error {
		old, ok := r.s.com.coupons[c.ID]
		if !ok {
			return notFound("coupon")
		}
		if err := r.uniqueCode(c); err != nil {
			return err
		}
		c.Redemptions = old.Redemptions // only Redeem and Release move the counter
		remember(tx, r.s.com.coupons, c.ID)
		r.s.com.coupons[c.ID] = copyCoupon(c)
		return nil
	})
}

func (r memCoupons) Delete(ctx context.Context, id string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		c, ok := r.s.com.coupons[id]
		if !ok {
			return notFound("coupon")
		}
		if c.Redemptions > 0 {
			return errs.E(errs.Conflict, "COUPON_IN_USE", "the coupon has been redeemed")
		}
		remember(tx, r.s.com.coupons, id)
		delete(r.s.com.coupons, id)
		return nil
	})
}

func (r memCoupons) Get(ctx context.Context, id string) (order.Coupon, error) {
	var out order.Coupon
	err := r.s.run(ctx, func(*memTx) error {
		c, ok := r.s.com.coupons[id]
		if !ok {
			return notFound("coupon")
		}
		out = copyCoupon(c)
		return nil
	})
	return out, err
}

func (r memCoupons) ByCode(ctx context.Context, code string) (order.Coupon, error) {
	var out order.Coupon
	err := r.s.run(ctx, func(*memTx) error {
		for _, c := range r.s.com.coupons {
			if c.Code == code {
				out = copyCoupon(c)
				return nil
			}
		}
		return notFound("coupon")
	})
	return out, err
}

func (r memCoupons) List(ctx context.Context, p ports.Page) ([]order.Coupon, string, error) {
	var rows []order.Coupon
	err := r.s.run(ctx, func(*memTx) error {
		for _, c := range r.s.com.coupons {
			rows = append(rows, copyCoupon(c))
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return paginate(rows, func(c order.Coupon) (time.Time, string) { return c.CreatedAt, c.ID }, p)
}

// Redeem checks and increments under the store lock: the fake's form of the conditional update.
func (r memCoupons) Redeem(ctx context.Context, id string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		c, ok := r.s.com.coupons[id]
		if !ok {
			return notFound("coupon")
		}
		if c.MaxRedemptions != nil && c.Redemptions >= *c.MaxRedemptions {
			return errs.E(errs.Conflict, CodeCouponExhausted, "this coupon has no redemptions left")
		}
		remember(tx, r.s.com.coupons, id)
		c.Redemptions++
		r.s.com.coupons[id] = c
		return nil
	})
}

func (r memCoupons) Release(ctx context.Context, id string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		c, ok := r.s.com.coupons[id]
		if !ok {
			return notFound("coupon")
		}
		if c.Redemptions > 0 {
			remember(tx, r.s.com.coupons, id)
			c.Redemptions--
			r.s.com.coupons[id] = c
		}
		return nil
	})
}

// ---- entitlements ----

type memEntitlements struct{ s *MemStore }

func (r memEntitlements) unique(e order.Entitlement) error {
	for id, o := range r.s.com.entitlements {
		if id != e.ID && o.OrderID == e.OrderID && o.LineIndex == e.LineIndex && o.Product == e.Product {
			return conflict("this order line already has an entitlement to this product")
		}
	}
	return nil
}

func (r memEntitlements) Insert(ctx context.Context, e order.Entitlement) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.entitlements[e.ID]; ok {
			return conflict("an entitlement with this id already exists")
		}
		if _, ok := r.s.com.orders[e.OrderID]; !ok {
			return missingParent("entitlement", "order", e.OrderID)
		}
		if err := r.unique(e); err != nil {
			return err
		}
		remember(tx, r.s.com.entitlements, e.ID)
		r.s.com.entitlements[e.ID] = copyEntitlement(e)
		return nil
	})
}

func (r memEntitlements) Update(ctx context.Context, e order.Entitlement) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.entitlements[e.ID]; !ok {
			return notFound("entitlement")
		}
		if _, ok := r.s.com.orders[e.OrderID]; !ok {
			return missingParent("entitlement", "order", e.OrderID)
		}
		if err := r.unique(e); err != nil {
			return err
		}
		remember(tx, r.s.com.entitlements, e.ID)
		r.s.com.entitlements[e.ID] = copyEntitlement(e)
		return nil
	})
}

func (r memEntitlements) Get(ctx context.Context, id string) (order.Entitlement, error) {
	var out order.Entitlement
	err := r.s.run(ctx, func(*memTx) error {
		e, ok := r.s.com.entitlements[id]
		if !ok {
			return notFound("entitlement")
		}
		out = copyEntitlement(e)
		return nil
	})
	return out, err
}

// filter returns copies of the matching entitlements, oldest first.
func (r memEntitlements) filter(ctx context.Context, match func(order.Entitlement) bool) ([]order.Entitlement, error) {
	var out []order.Entitlement
	err := r.s.run(ctx, func(*memTx) error {
		for _, e := range r.s.com.entitlements {
			if match(e) {
				out = append(out, copyEntitlement(e))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(e order.Entitlement) (time.Time, string) { return e.CreatedAt, e.ID })
	return out, err
}

// ByOrder returns the order's entitlements in line order (then product, then id).
func (r memEntitlements) ByOrder(ctx context.Context, orderID string) ([]order.Entitlement, error) {
	out, err := r.filter(ctx, func(e order.Entitlement) bool { return e.OrderID == orderID })
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.LineIndex != b.LineIndex {
			return a.LineIndex < b.LineIndex
		}
		if a.Product != b.Product {
			return a.Product < b.Product
		}
		return a.ID < b.ID
	})
	return out, err
}

// ActiveFor returns oldest first.
func (r memEntitlements) ActiveFor(ctx context.Context, email, product string) ([]order.Entitlement, error) {
	email = strings.ToLower(email)
	return r.filter(ctx, func(e order.Entitlement) bool {
		return e.Status == order.EntitlementActive && e.CustomerEmail == email && e.Product == product
	})
}

// ByLicense returns the oldest entitlement carrying the license (there is one in practice; the
// schema does not forbid more).
func (r memEntitlements) ByLicense(ctx context.Context, licenseID string) (order.Entitlement, error) {
	if licenseID == "" {
		return order.Entitlement{}, notFound("entitlement")
	}
	rows, err := r.filter(ctx, func(e order.Entitlement) bool { return e.LicenseID == licenseID })
	if err != nil {
		return order.Entitlement{}, err
	}
	if len(rows) == 0 {
		return order.Entitlement{}, notFound("entitlement")
	}
	return rows[0], nil
}

// ---- payment events ----

type memPaymentEvents struct{ s *MemStore }

func (r memPaymentEvents) Record(ctx context.Context, e order.PaymentEvent) (bool, error) {
	fresh := false
	err := r.s.run(ctx, func(tx *memTx) error {
		k := payEventKey{e.Provider, e.EventID}
		if _, ok := r.s.com.payEvents[k]; ok {
			return nil
		}
		remember(tx, r.s.com.payEvents, k)
		r.s.com.payEvents[k] = copyPaymentEvent(e)
		fresh = true
		return nil
	})
	return fresh, err
}

func (r memPaymentEvents) Get(ctx context.Context, provider, eventID string) (order.PaymentEvent, error) {
	var out order.PaymentEvent
	err := r.s.run(ctx, func(*memTx) error {
		e, ok := r.s.com.payEvents[payEventKey{provider, eventID}]
		if !ok {
			return notFound("payment event")
		}
		out = copyPaymentEvent(e)
		return nil
	})
	return out, err
}

func (r memPaymentEvents) SetOutcome(ctx context.Context, provider, eventID, outcome string) error {
	return r.s.run(ctx, func(tx *memTx) error {
		k := payEventKey{provider, eventID}
		e, ok := r.s.com.payEvents[k]
		if !ok {
			return notFound("payment event")
		}
		remember(tx, r.s.com.payEvents, k)
		e.Outcome = outcome
		r.s.com.payEvents[k] = e
		return nil
	})
}

// ---- downloads ----

type memDownloads struct{ s *MemStore }

func (r memDownloads) Insert(ctx context.Context, d order.Download) error {
	return r.s.run(ctx, func(tx *memTx) error {
		if _, ok := r.s.com.downloads[d.ID]; ok {
			return conflict("a download with this id already exists")
		}
		if _, ok := r.s.com.orders[d.OrderID]; !ok {
			return missingParent("download", "order", d.OrderID)
		}
		remember(tx, r.s.com.downloads, d.ID)
		r.s.com.downloads[d.ID] = copyDownload(d)
		return nil
	})
}

// ByOrder returns the order's downloads, oldest first.
func (r memDownloads) ByOrder(ctx context.Context, orderID string) ([]order.Download, error) {
	var out []order.Download
	err := r.s.run(ctx, func(*memTx) error {
		for _, d := range r.s.com.downloads {
			if d.OrderID == orderID {
				out = append(out, copyDownload(d))
			}
		}
		return nil
	})
	sortOldestFirst(out, func(d order.Download) (time.Time, string) { return d.IssuedAt, d.ID })
	return out, err
}
