package portstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// CommerceStores is one set of commerce repositories over one backing store, as the commerce
// repository contract needs it.
type CommerceStores struct {
	Tx            ports.Tx
	Catalog       ports.CatalogRepo
	Orders        ports.OrderRepo
	Coupons       ports.CouponRepo
	Entitlements  ports.EntitlementRepo
	PaymentEvents ports.PaymentEventRepo
	Downloads     ports.DownloadRepo
}

// CommerceStores returns the commerce repositories of s, for RunCommerceContract.
func (s *MemStore) CommerceStores() CommerceStores {
	return CommerceStores{
		Tx: s.Tx(), Catalog: s.Catalog(), Orders: s.Orders(), Coupons: s.Coupons(),
		Entitlements: s.Entitlements(), PaymentEvents: s.PaymentEvents(), Downloads: s.Downloads(),
	}
}

// RunCommerceContract checks that the commerce repositories and Tx built by newStores behave as
// ports/commerce.go promises. newStores must return empty stores, independent of any other call.
func RunCommerceContract(t *testing.T, newStores func(t *testing.T) CommerceStores) {
	t.Run("CatalogProducts", func(t *testing.T) { testCatalogProducts(t, newStores(t)) })
	t.Run("CatalogList", func(t *testing.T) { testCatalogList(t, newStores(t)) })
	t.Run("CatalogVersions", func(t *testing.T) { testCatalogVersions(t, newStores(t)) })
	t.Run("OrderRoundTrip", func(t *testing.T) { testOrderRoundTrip(t, newStores(t)) })
	t.Run("OrderNumbers", func(t *testing.T) { testOrderNumbers(t, newStores(t)) })
	t.Run("OrderList", func(t *testing.T) { testOrderList(t, newStores(t)) })
	t.Run("OrderCountAndUnfinished", func(t *testing.T) { testOrderCountAndUnfinished(t, newStores(t)) })
	t.Run("OrderGetForUpdateSerialises", func(t *testing.T) { testOrderGetForUpdate(t, newStores(t)) })
	t.Run("Coupons", func(t *testing.T) { testCoupons(t, newStores(t)) })
	t.Run("CouponRedeem", func(t *testing.T) { testCouponRedeem(t, newStores(t)) })
	t.Run("CouponRedeemRace", func(t *testing.T) { testCouponRedeemRace(t, newStores(t)) })
	t.Run("Entitlements", func(t *testing.T) { testEntitlements(t, newStores(t)) })
	t.Run("PaymentEvents", func(t *testing.T) { testPaymentEvents(t, newStores(t)) })
	t.Run("PaymentEventRace", func(t *testing.T) { testPaymentEventRace(t, newStores(t)) })
	t.Run("Downloads", func(t *testing.T) { testDownloads(t, newStores(t)) })
	t.Run("CommerceTxRollback", func(t *testing.T) { testCommerceTxRollback(t, newStores(t)) })
}

// ---- samples ----

func sampleCatProduct(id, slug string, n int) catalog.Product {
	return catalog.Product{
		ID: id, Slug: slug, Name: "Product " + slug, Description: "A description\nwith lines & <html>",
		Type: catalog.TypeBundle, Currency: "EUR",
		Prices:     []catalog.Price{{Currency: "EUR", AmountCents: 4900}, {Currency: "USD", AmountCents: 5400}},
		Components: []string{"synth-a", "pack-b"}, Active: true,
		CreatedAt: at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleVersion(id, productID, version string, platform catalog.Platform, n int) catalog.Version {
	return catalog.Version{
		ID: id, ProductID: productID, Version: version, Platform: platform, ReleaseNotes: "Fixes " + version,
		MinProtocolVersion: 1, StorageKey: "products/" + productID + "/" + id + ".zip", FileName: id + ".zip",
		SizeBytes: 123456789012, SHA256: "ab12cd34", Published: true, IsLatest: n%2 == 0,
		CreatedAt: at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleOrder(id string, n int) order.Order {
	return order.Order{
		ID: id, CustomerEmail: "buyer@example.com", CustomerID: "cus_1", Source: order.SourceCheckout,
		Currency: "EUR",
		Lines: []order.Line{
			{Product: "synth", ProductName: "Synth", ProductType: "plugin", Quantity: 2, UnitPriceCents: 4900},
			{Product: "drums", ProductName: "Drums", ProductType: "sample_pack", Quantity: 1, UnitPriceCents: 1900},
		},
		SubtotalCents: 11700, DiscountCents: 700, TotalCents: 11000, CouponID: "cpn_1", CouponCode: "SAVE",
		Status: order.StatusPending, PaymentProvider: "stripe", PaymentRef: "pi_" + id,
		CheckoutSessionID: "cs_" + id,
		CreatedAt:         at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleCoupon(id, code string, n int) order.Coupon {
	return order.Coupon{
		ID: id, Code: code, Kind: order.CouponPercent, PercentOff: 25, Currency: "EUR",
		StartsAt: ptr(at(-time.Hour)), EndsAt: ptr(at(24 * time.Hour)), MaxRedemptions: ptr(10),
		Active: true, Notes: "launch",
		CreatedAt: at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleEntitlement(id, orderID string, line int, product string, n int) order.Entitlement {
	return order.Entitlement{
		ID: id, OrderID: orderID, LineIndex: line, Product: product, CustomerEmail: "buyer@example.com",
		LicenseID: "lic_" + id, Status: order.EntitlementActive, CreatedAt: at(time.Duration(n) * time.Minute),
	}
}

// insertOrder inserts sampleOrder(id, n) and returns it as stored.
func insertOrder(t *testing.T, s CommerceStores, id string, n int) order.Order {
	t.Helper()
	o, err := s.Orders.Insert(t.Context(), sampleOrder(id, n))
	noErr(t, err)
	return o
}

func wantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if got := errs.KindOf(err); got != kind {
		t.Fatalf("want kind %s, got %s (%v)", kind, got, err)
	}
}

func versionID(v catalog.Version) string          { return v.ID }
func orderID(o order.Order) string                { return o.ID }
func couponID(c order.Coupon) string              { return c.ID }
func entID(e order.Entitlement) string            { return e.ID }
func downloadID(d order.Download) string          { return d.ID }
func sortedIDs(in []string) []string              { out := slices.Clone(in); sort.Strings(out); return out }
func versionsSorted(v []catalog.Version) []string { return sortedIDs(ids(v, versionID)) }

// ---- catalog ----

func testCatalogProducts(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	_, err := s.Catalog.ProductByID(ctx, "prd_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	_, err = s.Catalog.ProductBySlug(ctx, "missing")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Catalog.UpdateProduct(ctx, sampleCatProduct("prd_missing", "missing", 1)), errs.CodeNotFound)
	wantCode(t, s.Catalog.DeleteProduct(ctx, "prd_missing"), errs.CodeNotFound)

	full := sampleCatProduct("prd_full", "full-bundle", 1)
	bare := catalog.Product{ID: "prd_bare", Slug: "bare", Name: "Bare", Type: catalog.TypePlugin, Currency: "USD",
		CreatedAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Catalog.InsertProduct(ctx, full))
	noErr(t, s.Catalog.InsertProduct(ctx, bare))
	for _, want := range []catalog.Product{full, bare} {
		got, err := s.Catalog.ProductByID(ctx, want.ID)
		noErr(t, err)
		same(t, "product by id", want, got)
		got, err = s.Catalog.ProductBySlug(ctx, want.Slug)
		noErr(t, err)
		same(t, "product by slug", want, got)
	}

	// Duplicates.
	dupSlug := sampleCatProduct("prd_other", "full-bundle", 2)
	err = s.Catalog.InsertProduct(ctx, dupSlug)
	wantCode(t, err, errs.CodeConflict)
	wantKind(t, err, errs.Conflict)
	wantCode(t, s.Catalog.InsertProduct(ctx, sampleCatProduct("prd_full", "another", 2)), errs.CodeConflict)

	// Update writes every field: lists emptied, flags cleared.
	upd := full
	upd.Name, upd.Description, upd.Type, upd.Currency = "Renamed", "", catalog.TypeSamplePack, "GBP"
	upd.Prices, upd.Components, upd.Active = []catalog.Price{{Currency: "GBP", AmountCents: 100}}, nil, false
	upd.Slug, upd.UpdatedAt = "renamed", at(time.Hour)
	noErr(t, s.Catalog.UpdateProduct(ctx, upd))
	got, err := s.Catalog.ProductByID(ctx, upd.ID)
	noErr(t, err)
	same(t, "updated product", upd, got)
	_, err = s.Catalog.ProductBySlug(ctx, "full-bundle")
	wantCode(t, err, errs.CodeNotFound)

	// Onto another product's slug: a conflict, nothing changes.
	clash := upd
	clash.Slug, clash.Name = "bare", "Clash"
	wantCode(t, s.Catalog.UpdateProduct(ctx, clash), errs.CodeConflict)
	got, err = s.Catalog.ProductByID(ctx, upd.ID)
	noErr(t, err)
	same(t, "product after refused update", upd, got)

	// Copies: mutating what was returned changes nothing stored.
	got.Prices[0].AmountCents = 1
	again, err := s.Catalog.ProductByID(ctx, upd.ID)
	noErr(t, err)
	same(t, "prices after mutating a copy", upd.Prices, again.Prices)

	// Delete removes the product and its versions, not another product's.
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_1", "prd_full", "1.0.0", catalog.PlatformWin, 1)))
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_2", "prd_full", "1.0.0", catalog.PlatformMac, 2)))
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_3", "prd_bare", "1.0.0", catalog.PlatformWin, 3)))
	noErr(t, s.Catalog.DeleteProduct(ctx, "prd_full"))
	_, err = s.Catalog.ProductByID(ctx, "prd_full")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Catalog.Version(ctx, "ver_1")
	wantCode(t, err, errs.CodeNotFound)
	vs, err := s.Catalog.Versions(ctx, "prd_full")
	noErr(t, err)
	same(t, "versions of a deleted product", 0, len(vs))
	vs, err = s.Catalog.Versions(ctx, "prd_bare")
	noErr(t, err)
	same(t, "versions of the other product", []string{"ver_3"}, ids(vs, versionID))
	// The slug is free again.
	noErr(t, s.Catalog.InsertProduct(ctx, sampleCatProduct("prd_new", "renamed", 5)))
}

func testCatalogList(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	mk := func(id, slug, name string, typ catalog.ProductType, active bool) catalog.Product {
		p := sampleCatProduct(id, slug, 1)
		p.Name, p.Type, p.Active = name, typ, active
		return p
	}
	// Byte-wise order: upper case sorts before lower case; equal names are ordered by slug.
	all := []catalog.Product{
		mk("prd_1", "zeta-synth", "Zeta Synth", catalog.TypePlugin, true),
		mk("prd_2", "alpha-drums", "alpha drums", catalog.TypeSamplePack, true),
		mk("prd_3", "echo-b", "Echo", catalog.TypePlugin, false),
		mk("prd_4", "echo-a", "Echo", catalog.TypePlugin, true),
		mk("prd_5", "big-bundle", "Bundle of SYNTHS", catalog.TypeBundle, true),
		mk("prd_6", "bass", "Bass", catalog.TypeSamplePack, false),
	}
	for _, p := range all {
		noErr(t, s.Catalog.InsertProduct(ctx, p))
	}
	slugs := func(ps []catalog.Product) []string { return ids(ps, func(p catalog.Product) string { return p.Slug }) }
	list := func(f ports.ProductFilter) []string {
		t.Helper()
		var out []string
		f.Limit = 2
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			rows, next, err := s.Catalog.ListProducts(ctx, f)
			noErr(t, err)
			if len(rows) > 2 {
				t.Fatalf("page of %d rows for limit 2", len(rows))
			}
			out = append(out, slugs(rows)...)
			if next == "" {
				return out
			}
			f.Cursor = next
		}
	}
	same(t, "all products", []string{"bass", "big-bundle", "echo-a", "echo-b", "zeta-synth", "alpha-drums"}, list(ports.ProductFilter{}))
	same(t, "active products", []string{"big-bundle", "echo-a", "zeta-synth", "alpha-drums"}, list(ports.ProductFilter{ActiveOnly: true}))
	same(t, "plugins", []string{"echo-a", "echo-b", "zeta-synth"}, list(ports.ProductFilter{Type: catalog.TypePlugin}))
	// Query: case-insensitive substring of the name or the slug.
	same(t, "query synth", []string{"big-bundle", "zeta-synth"}, list(ports.ProductFilter{Query: "SYNTH"}))
	same(t, "query on slug", []string{"alpha-drums"}, list(ports.ProductFilter{Query: "a-dr"}))
	same(t, "query and type", []string{"zeta-synth"}, list(ports.ProductFilter{Query: "synth", Type: catalog.TypePlugin}))
	same(t, "query matching nothing", []string(nil), list(ports.ProductFilter{Query: "nothing"}))
	// LIKE wildcards in a query are literal characters.
	same(t, "query with wildcards", []string(nil), list(ports.ProductFilter{Query: "%"}))
	same(t, "query with underscore", []string(nil), list(ports.ProductFilter{Query: "_"}))

	// One page holding everything has no next cursor.
	rows, next, err := s.Catalog.ListProducts(ctx, ports.ProductFilter{})
	noErr(t, err)
	same(t, "default page", 6, len(rows))
	same(t, "cursor of the last page", "", next)
	same(t, "listed record", all[1], rows[5])

	_, _, err = s.Catalog.ListProducts(ctx, ports.ProductFilter{Page: ports.Page{Cursor: "!!not a cursor"}})
	wantKind(t, err, errs.Invalid)
}

func testCatalogVersions(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	noErr(t, s.Catalog.InsertProduct(ctx, sampleCatProduct("prd_a", "a", 1)))
	noErr(t, s.Catalog.InsertProduct(ctx, sampleCatProduct("prd_b", "b", 2)))
	_, err := s.Catalog.Version(ctx, "ver_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Catalog.UpdateVersion(ctx, sampleVersion("ver_missing", "prd_a", "1.0.0", catalog.PlatformWin, 1)), errs.CodeNotFound)
	wantCode(t, s.Catalog.DeleteVersion(ctx, "ver_missing"), errs.CodeNotFound)

	full := sampleVersion("ver_win", "prd_a", "1.2.3", catalog.PlatformWin, 1)
	bare := catalog.Version{ID: "ver_bare", ProductID: "prd_a", Version: "0.1.0", Platform: catalog.PlatformAll,
		CreatedAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Catalog.InsertVersion(ctx, full))
	noErr(t, s.Catalog.InsertVersion(ctx, bare))
	for _, want := range []catalog.Version{full, bare} {
		got, err := s.Catalog.Version(ctx, want.ID)
		noErr(t, err)
		same(t, "version", want, got)
	}
	// Unique (product, platform, version); the same version on another platform or product is fine.
	err = s.Catalog.InsertVersion(ctx, sampleVersion("ver_dup", "prd_a", "1.2.3", catalog.PlatformWin, 2))
	wantCode(t, err, errs.CodeConflict)
	wantCode(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_win", "prd_a", "9.9.9", catalog.PlatformWin, 2)), errs.CodeConflict)
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_mac", "prd_a", "1.2.3", catalog.PlatformMac, 3)))
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_b", "prd_b", "1.2.3", catalog.PlatformWin, 4)))

	vs, err := s.Catalog.Versions(ctx, "prd_a")
	noErr(t, err)
	same(t, "versions of a", []string{"ver_bare", "ver_mac", "ver_win"}, versionsSorted(vs))
	vs, err = s.Catalog.Versions(ctx, "prd_missing")
	noErr(t, err)
	same(t, "versions of a missing product", 0, len(vs))

	// Update writes every field.
	upd := full
	upd.Version, upd.ReleaseNotes, upd.MinProtocolVersion = "1.2.4", "", 2
	upd.StorageKey, upd.FileName, upd.SizeBytes, upd.SHA256 = "", "", 0, ""
	upd.Published, upd.IsLatest, upd.UpdatedAt = false, true, at(time.Hour)
	noErr(t, s.Catalog.UpdateVersion(ctx, upd))
	got, err := s.Catalog.Version(ctx, upd.ID)
	noErr(t, err)
	same(t, "updated version", upd, got)
	// Onto another row's (product, platform, version): a conflict, nothing changes.
	clash := upd
	clash.Platform = catalog.PlatformMac
	clash.Version = "1.2.3"
	wantCode(t, s.Catalog.UpdateVersion(ctx, clash), errs.CodeConflict)
	got, err = s.Catalog.Version(ctx, upd.ID)
	noErr(t, err)
	same(t, "version after refused update", upd, got)

	noErr(t, s.Catalog.DeleteVersion(ctx, "ver_mac"))
	_, err = s.Catalog.Version(ctx, "ver_mac")
	wantCode(t, err, errs.CodeNotFound)
	vs, err = s.Catalog.Versions(ctx, "prd_a")
	noErr(t, err)
	same(t, "versions after delete", []string{"ver_bare", "ver_win"}, versionsSorted(vs))
	// Its (platform, version) is free again.
	noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_mac2", "prd_a", "1.2.3", catalog.PlatformMac, 5)))
}

// ---- orders ----

func testOrderRoundTrip(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	_, err := s.Orders.Get(ctx, "ord_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	_, err = s.Orders.ByNumber(ctx, 424242)
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Orders.ByCheckoutSession(ctx, "cs_missing")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Orders.ByPaymentRef(ctx, "stripe", "pi_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Orders.Update(ctx, sampleOrder("ord_missing", 1)), errs.CodeNotFound)
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		_, err := s.Orders.GetForUpdate(ctx, "ord_missing")
		return err
	})
	wantCode(t, err, errs.CodeNotFound)

	full := sampleOrder("ord_full", 1)
	full.Number = 777 // the store assigns the number; what the caller sets is ignored
	full.ReviewReason, full.StatusReason = "amount mismatch", "held"
	full.PaidAmountCents, full.PaidCurrency = 11000, "EUR"
	full.PaidAt, full.FulfilledAt, full.RefundedAt = ptr(at(time.Hour)), ptr(at(2*time.Hour)), ptr(at(3*time.Hour))
	stored, err := s.Orders.Insert(ctx, full)
	noErr(t, err)
	if stored.Number <= 0 {
		t.Fatalf("Insert returned number %d, want a positive one", stored.Number)
	}
	want := full
	want.Number = stored.Number
	same(t, "inserted order", want, stored)

	bare := order.Order{ID: "ord_bare", CustomerEmail: "x@example.com", Source: order.SourceAdmin, Currency: "USD",
		Status: order.StatusPending, CreatedAt: at(0), UpdatedAt: at(0)}
	storedBare, err := s.Orders.Insert(ctx, bare)
	noErr(t, err)
	bare.Number = storedBare.Number
	same(t, "inserted bare order", bare, storedBare)

	for _, w := range []order.Order{want, bare} {
		got, err := s.Orders.Get(ctx, w.ID)
		noErr(t, err)
		same(t, "order by id", w, got)
		got, err = s.Orders.ByNumber(ctx, w.Number)
		noErr(t, err)
		same(t, "order by number", w, got)
		noErr(t, s.Tx.InTx(ctx, func(ctx context.Context) error {
			got, err := s.Orders.GetForUpdate(ctx, w.ID)
			noErr(t, err)
			same(t, "order for update", w, got)
			return nil
		}))
	}
	got, err := s.Orders.ByCheckoutSession(ctx, "cs_ord_full")
	noErr(t, err)
	same(t, "order by checkout session", want, got)
	got, err = s.Orders.ByPaymentRef(ctx, "stripe", "pi_ord_full")
	noErr(t, err)
	same(t, "order by payment ref", want, got)
	_, err = s.Orders.ByPaymentRef(ctx, "generic", "pi_ord_full")
	wantCode(t, err, errs.CodeNotFound)
	// The empty reference and session of the bare order match nothing.
	_, err = s.Orders.ByCheckoutSession(ctx, "")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Orders.ByPaymentRef(ctx, "", "")
	wantCode(t, err, errs.CodeNotFound)

	// GetForUpdate is only meaningful in a transaction.
	_, err = s.Orders.GetForUpdate(ctx, "ord_full")
	wantKind(t, err, errs.Internal)

	wantCode(t, func() error { _, err := s.Orders.Insert(ctx, sampleOrder("ord_full", 9)); return err }(), errs.CodeConflict)

	// Update writes every field but Lines and Number, pointers set to nil included.
	upd := want
	upd.CustomerEmail, upd.CustomerID, upd.Source, upd.Currency = "new@example.com", "", order.SourcePaymentLink, "USD"
	upd.Lines = []order.Line{{Product: "other", Quantity: 9, UnitPriceCents: 1}}
	upd.Number = 999999
	upd.SubtotalCents, upd.DiscountCents, upd.TotalCents = 1, 0, 1
	upd.CouponID, upd.CouponCode, upd.Status, upd.ReviewReason = "", "", order.StatusPaid, ""
	upd.PaymentProvider, upd.PaymentRef, upd.CheckoutSessionID = "generic", "pay_9", "cs_new"
	upd.PaidAmountCents, upd.PaidCurrency = 1, "USD"
	upd.PaidAt, upd.FulfilledAt, upd.RefundedAt = ptr(at(5*time.Hour)), nil, nil
	upd.StatusReason, upd.UpdatedAt = "", at(6*time.Hour)
	noErr(t, s.Orders.Update(ctx, upd))
	got, err = s.Orders.Get(ctx, upd.ID)
	noErr(t, err)
	wantUpd := upd
	wantUpd.Lines, wantUpd.Number = want.Lines, want.Number
	same(t, "updated order", wantUpd, got)
	got, err = s.Orders.ByPaymentRef(ctx, "generic", "pay_9")
	noErr(t, err)
	same(t, "order by its new payment ref", wantUpd.ID, got.ID)
	_, err = s.Orders.ByCheckoutSession(ctx, "cs_ord_full")
	wantCode(t, err, errs.CodeNotFound)

	// Copies.
	got.Lines[0].Quantity = 99
	again, err := s.Orders.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "lines after mutating a copy", want.Lines, again.Lines)
}

func testOrderNumbers(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	// Sequential: each insert takes the next number.
	var prev int64
	for i := range 3 {
		o := insertOrder(t, s, fmt.Sprintf("ord_seq_%d", i), i)
		if i > 0 && o.Number != prev+1 {
			t.Fatalf("order %d got number %d after %d: want sequential numbers", i, o.Number, prev)
		}
		prev = o.Number
	}
	// A rolled-back insert never makes a later number collide.
	boom := errors.New("rolled back")
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		_, err := s.Orders.Insert(ctx, sampleOrder("ord_rb", 10))
		noErr(t, err)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	after := insertOrder(t, s, "ord_after", 11)
	if after.Number <= prev {
		t.Fatalf("number %d after a rollback, want more than %d", after.Number, prev)
	}
	prev = after.Number

	// Concurrent inserts, in transactions and alone, get unique numbers above every earlier one.
	const workers = 16
	numbers := make(chan int64, workers)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := sampleOrder(fmt.Sprintf("ord_c_%02d", w), 20+w)
			if w%2 == 0 {
				o, err := s.Orders.Insert(ctx, o)
				errc <- err
				numbers <- o.Number
				return
			}
			errc <- s.Tx.InTx(ctx, func(ctx context.Context) error {
				o, err := s.Orders.Insert(ctx, o)
				numbers <- o.Number
				return err
			})
		}()
	}
	wg.Wait()
	close(errc)
	close(numbers)
	for err := range errc {
		noErr(t, err)
	}
	seen := map[int64]bool{}
	for n := range numbers {
		if n <= prev {
			t.Fatalf("concurrent insert got number %d, want more than %d", n, prev)
		}
		if seen[n] {
			t.Fatalf("number %d handed out twice", n)
		}
		seen[n] = true
	}
	same(t, "distinct numbers", workers, len(seen))
	// Every one is stored under its number.
	for n := range seen {
		o, err := s.Orders.ByNumber(ctx, n)
		noErr(t, err)
		same(t, "number of the order found by number", n, o.Number)
	}
}

func testOrderList(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	for i := range 9 {
		o := sampleOrder(fmt.Sprintf("ord_%02d", i), i)
		if i == 4 {
			o.CreatedAt = at(3 * time.Minute) // a tie with ord_03: ordered by id
		}
		if i%3 == 0 {
			o.Status = order.StatusPaid
		}
		if i == 7 || i == 2 {
			o.CustomerEmail = "other@example.com"
		}
		if i == 6 || i == 7 {
			o.ReviewReason = "partial refund"
		}
		_, err := s.Orders.Insert(ctx, o)
		noErr(t, err)
	}
	list := func(f ports.OrderFilter) []string {
		t.Helper()
		var out []string
		f.Limit = 4
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			rows, next, err := s.Orders.List(ctx, f)
			noErr(t, err)
			if len(rows) > 4 {
				t.Fatalf("page of %d rows for limit 4", len(rows))
			}
			for _, o := range rows {
				if len(o.Lines) != 2 {
					t.Fatalf("listed order %s has %d lines, want its 2", o.ID, len(o.Lines))
				}
			}
			out = append(out, ids(rows, orderID)...)
			if next == "" {
				return out
			}
			f.Cursor = next
		}
	}
	same(t, "all orders", []string{"ord_08", "ord_07", "ord_06", "ord_05", "ord_04", "ord_03", "ord_02", "ord_01", "ord_00"}, list(ports.OrderFilter{}))
	same(t, "paid orders", []string{"ord_06", "ord_03", "ord_00"}, list(ports.OrderFilter{Status: order.StatusPaid}))
	same(t, "customer's orders", []string{"ord_07", "ord_02"}, list(ports.OrderFilter{CustomerEmail: "other@example.com"}))
	same(t, "customer's orders by a mixed-case address", []string{"ord_07", "ord_02"}, list(ports.OrderFilter{CustomerEmail: "Other@Example.com"}))
	same(t, "orders in review", []string{"ord_07", "ord_06"}, list(ports.OrderFilter{InReview: true}))
	same(t, "paid orders in review", []string{"ord_06"}, list(ports.OrderFilter{Status: order.StatusPaid, InReview: true}))
	same(t, "no match", []string(nil), list(ports.OrderFilter{Status: order.StatusRefunded}))

	rows, next, err := s.Orders.List(ctx, ports.OrderFilter{})
	noErr(t, err)
	same(t, "default page", 9, len(rows))
	same(t, "cursor of the last page", "", next)
	want, err := s.Orders.Get(ctx, "ord_05")
	noErr(t, err)
	same(t, "listed record", want, rows[3])

	_, _, err = s.Orders.List(ctx, ports.OrderFilter{Page: ports.Page{Cursor: "!!"}})
	wantKind(t, err, errs.Invalid)
}

func testOrderCountAndUnfinished(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	n, err := s.Orders.CountByProduct(ctx, "synth")
	noErr(t, err)
	same(t, "count with no orders", 0, n)

	mk := func(id string, i int, status order.Status, review string, fulfilled bool, lines ...string) {
		o := sampleOrder(id, i)
		o.Status, o.ReviewReason = status, review
		if fulfilled {
			o.FulfilledAt = ptr(at(time.Hour))
		}
		o.Lines = nil
		for _, p := range lines {
			o.Lines = append(o.Lines, order.Line{Product: p, ProductName: p, ProductType: "plugin", Quantity: 1, UnitPriceCents: 100})
		}
		_, err := s.Orders.Insert(ctx, o)
		noErr(t, err)
	}
	mk("ord_a", 5, order.StatusPaid, "", false, "synth", "drums")
	mk("ord_b", 1, order.StatusPaid, "", false, "synth", "synth") // twice in one order counts once
	mk("ord_c", 2, order.StatusPaid, "amount mismatch", false, "bundle")
	mk("ord_d", 3, order.StatusPaid, "", true, "drums")
	mk("ord_e", 4, order.StatusPending, "", false, "synth-2")
	mk("ord_f", 6, order.StatusFulfilled, "", true, "synth")
	mk("ord_g", 0, order.StatusPaid, "", false)
	mk("ord_h", 7, order.StatusRefunded, "", false, "bundle")

	for slug, want := range map[string]int{"synth": 3, "drums": 2, "bundle": 2, "synth-2": 1, "synt": 0, "nothing": 0} {
		n, err := s.Orders.CountByProduct(ctx, slug)
		noErr(t, err)
		same(t, "count of "+slug, want, n)
	}

	// Paid, not held, not fulfilled; oldest first.
	got, err := s.Orders.Unfinished(ctx, 10)
	noErr(t, err)
	same(t, "unfinished orders", []string{"ord_g", "ord_b", "ord_a"}, got)
	got, err = s.Orders.Unfinished(ctx, 2)
	noErr(t, err)
	same(t, "unfinished orders, limited", []string{"ord_g", "ord_b"}, got)

	// Once fulfilled or held it is no longer unfinished.
	o, err := s.Orders.Get(ctx, "ord_g")
	noErr(t, err)
	o.Status, o.FulfilledAt = order.StatusFulfilled, ptr(at(time.Hour))
	noErr(t, s.Orders.Update(ctx, o))
	o, err = s.Orders.Get(ctx, "ord_b")
	noErr(t, err)
	o.ReviewReason = "fulfilment failed"
	noErr(t, s.Orders.Update(ctx, o))
	got, err = s.Orders.Unfinished(ctx, 10)
	noErr(t, err)
	same(t, "unfinished orders after updates", []string{"ord_a"}, got)
}

func testOrderGetForUpdate(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	o := insertOrder(t, s, "ord_counter", 1)
	const workers, rounds = 2, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				errc <- s.Tx.InTx(ctx, func(ctx context.Context) error {
					cur, err := s.Orders.GetForUpdate(ctx, "ord_counter")
					if err != nil {
						return err
					}
					// Widen the race window: without the lock the other worker reads the same value.
					if _, err := s.Entitlements.ByOrder(ctx, cur.ID); err != nil {
						return err
					}
					time.Sleep(time.Millisecond)
					cur.PaidAmountCents++
					return s.Orders.Update(ctx, cur)
				})
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		noErr(t, err)
	}
	got, err := s.Orders.Get(ctx, "ord_counter")
	noErr(t, err)
	same(t, "counter after concurrent read-modify-writes", o.PaidAmountCents+workers*rounds, got.PaidAmountCents)
}

// ---- coupons ----

func testCoupons(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	_, err := s.Coupons.Get(ctx, "cpn_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	_, err = s.Coupons.ByCode(ctx, "MISSING")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Coupons.Update(ctx, sampleCoupon("cpn_missing", "MISSING", 1)), errs.CodeNotFound)
	wantCode(t, s.Coupons.Delete(ctx, "cpn_missing"), errs.CodeNotFound)

	full := sampleCoupon("cpn_full", "LAUNCH25", 1)
	bare := order.Coupon{ID: "cpn_bare", Code: "FREE", Kind: order.CouponFull, CreatedAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Coupons.Insert(ctx, full))
	noErr(t, s.Coupons.Insert(ctx, bare))
	for _, want := range []order.Coupon{full, bare} {
		got, err := s.Coupons.Get(ctx, want.ID)
		noErr(t, err)
		same(t, "coupon by id", want, got)
		got, err = s.Coupons.ByCode(ctx, want.Code)
		noErr(t, err)
		same(t, "coupon by code", want, got)
	}
	wantCode(t, s.Coupons.Insert(ctx, sampleCoupon("cpn_other", "LAUNCH25", 2)), errs.CodeConflict)
	wantCode(t, s.Coupons.Insert(ctx, sampleCoupon("cpn_full", "OTHER", 2)), errs.CodeConflict)

	// Update writes every field but Redemptions.
	noErr(t, s.Coupons.Redeem(ctx, "cpn_full"))
	noErr(t, s.Coupons.Redeem(ctx, "cpn_full"))
	upd := full
	upd.Code, upd.Kind, upd.PercentOff, upd.AmountOffCents, upd.Currency = "FIXED5", order.CouponFixed, 0, 500, "USD"
	upd.StartsAt, upd.EndsAt, upd.MaxRedemptions = nil, nil, nil
	upd.Redemptions = 50
	upd.Active, upd.Notes, upd.UpdatedAt = false, "", at(time.Hour)
	noErr(t, s.Coupons.Update(ctx, upd))
	got, err := s.Coupons.Get(ctx, upd.ID)
	noErr(t, err)
	wantUpd := upd
	wantUpd.Redemptions = 2
	same(t, "updated coupon", wantUpd, got)
	_, err = s.Coupons.ByCode(ctx, "LAUNCH25")
	wantCode(t, err, errs.CodeNotFound)
	// And back to a limit.
	upd.MaxRedemptions, upd.StartsAt = ptr(3), ptr(at(time.Minute))
	noErr(t, s.Coupons.Update(ctx, upd))
	got, err = s.Coupons.Get(ctx, upd.ID)
	noErr(t, err)
	wantUpd = upd
	wantUpd.Redemptions = 2
	same(t, "re-updated coupon", wantUpd, got)
	// Onto another coupon's code: a conflict, nothing changes.
	clash := upd
	clash.Code = "FREE"
	wantCode(t, s.Coupons.Update(ctx, clash), errs.CodeConflict)
	got, err = s.Coupons.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "coupon after refused update", wantUpd, got)
	// Copies.
	*got.MaxRedemptions = 1000
	again, err := s.Coupons.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "max redemptions after mutating a copy", 3, *again.MaxRedemptions)

	// List: newest first, paginated.
	for i := range 5 {
		noErr(t, s.Coupons.Insert(ctx, sampleCoupon(fmt.Sprintf("cpn_%d", i), fmt.Sprintf("CODE%d", i), 10+i)))
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := s.Coupons.List(ctx, ports.Page{Limit: 3, Cursor: cursor})
		noErr(t, err)
		if len(rows) > 3 {
			t.Fatalf("page of %d rows for limit 3", len(rows))
		}
		seen = append(seen, ids(rows, couponID)...)
		if next == "" {
			break
		}
		cursor = next
	}
	same(t, "coupons newest first", []string{"cpn_4", "cpn_3", "cpn_2", "cpn_1", "cpn_0", "cpn_full", "cpn_bare"}, seen)
	_, _, err = s.Coupons.List(ctx, ports.Page{Cursor: "%%"})
	wantKind(t, err, errs.Invalid)

	// cpn_full was redeemed twice: it stays. cpn_bare never was: it goes.
	wantCode(t, s.Coupons.Delete(ctx, "cpn_full"), "COUPON_IN_USE")
	noErr(t, s.Coupons.Delete(ctx, "cpn_bare"))
	_, err = s.Coupons.Get(ctx, "cpn_bare")
	wantCode(t, err, errs.CodeNotFound)
	// Its code is free again.
	noErr(t, s.Coupons.Insert(ctx, order.Coupon{ID: "cpn_new", Code: "FREE", Kind: order.CouponFull, CreatedAt: at(30 * time.Minute), UpdatedAt: at(30 * time.Minute)}))
}

func testCouponRedeem(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	wantCode(t, s.Coupons.Redeem(ctx, "cpn_missing"), errs.CodeNotFound)
	wantCode(t, s.Coupons.Release(ctx, "cpn_missing"), errs.CodeNotFound)
	redemptions := func(id string) int {
		t.Helper()
		c, err := s.Coupons.Get(ctx, id)
		noErr(t, err)
		return c.Redemptions
	}

	// Unlimited.
	unlimited := sampleCoupon("cpn_unl", "UNL", 1)
	unlimited.MaxRedemptions = nil
	noErr(t, s.Coupons.Insert(ctx, unlimited))
	for range 5 {
		noErr(t, s.Coupons.Redeem(ctx, "cpn_unl"))
	}
	same(t, "unlimited redemptions", 5, redemptions("cpn_unl"))

	// Limited to two.
	two := sampleCoupon("cpn_two", "TWO", 2)
	two.MaxRedemptions = ptr(2)
	noErr(t, s.Coupons.Insert(ctx, two))
	noErr(t, s.Coupons.Redeem(ctx, "cpn_two"))
	noErr(t, s.Coupons.Redeem(ctx, "cpn_two"))
	err := s.Coupons.Redeem(ctx, "cpn_two")
	wantCode(t, err, CodeCouponExhausted)
	wantKind(t, err, errs.Conflict)
	same(t, "redemptions after exhaustion", 2, redemptions("cpn_two"))

	// Release gives one back; never below zero.
	noErr(t, s.Coupons.Release(ctx, "cpn_two"))
	same(t, "after a release", 1, redemptions("cpn_two"))
	noErr(t, s.Coupons.Redeem(ctx, "cpn_two"))
	same(t, "redeemed again", 2, redemptions("cpn_two"))
	for range 4 {
		noErr(t, s.Coupons.Release(ctx, "cpn_two"))
	}
	same(t, "released below zero", 0, redemptions("cpn_two"))

	// A redemption inside a transaction that fails is given back by the rollback.
	boom := errors.New("checkout failed")
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		noErr(t, s.Coupons.Redeem(ctx, "cpn_two"))
		noErr(t, s.Coupons.Redeem(ctx, "cpn_two"))
		wantCode(t, s.Coupons.Redeem(ctx, "cpn_two"), CodeCouponExhausted)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	same(t, "after a rolled-back redemption", 0, redemptions("cpn_two"))

	// A coupon whose limit was lowered below its redemptions is exhausted, not broken.
	lowered := sampleCoupon("cpn_low", "LOW", 3)
	lowered.MaxRedemptions = ptr(5)
	noErr(t, s.Coupons.Insert(ctx, lowered))
	for range 3 {
		noErr(t, s.Coupons.Redeem(ctx, "cpn_low"))
	}
	lowered.MaxRedemptions = ptr(1)
	noErr(t, s.Coupons.Update(ctx, lowered))
	wantCode(t, s.Coupons.Redeem(ctx, "cpn_low"), CodeCouponExhausted)
	same(t, "redemptions of a lowered coupon", 3, redemptions("cpn_low"))

	// A redeemed coupon cannot be deleted: the orders that took it keep pointing at it.
	wantCode(t, s.Coupons.Delete(ctx, "cpn_low"), "COUPON_IN_USE")
	same(t, "redemptions after a refused delete", 3, redemptions("cpn_low"))
}

func testCouponRedeemRace(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	c := sampleCoupon("cpn_race", "RACE", 1)
	c.MaxRedemptions = ptr(5)
	noErr(t, s.Coupons.Insert(ctx, c))
	for range 4 {
		noErr(t, s.Coupons.Redeem(ctx, "cpn_race"))
	}
	// 20 callers race for the last redemption: half alone, half inside a transaction.
	const racers = 20
	var wg sync.WaitGroup
	start := make(chan struct{})
	errc := make(chan error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				errc <- s.Coupons.Redeem(ctx, "cpn_race")
				return
			}
			errc <- s.Tx.InTx(ctx, func(ctx context.Context) error { return s.Coupons.Redeem(ctx, "cpn_race") })
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	wins := 0
	for err := range errc {
		if err == nil {
			wins++
			continue
		}
		wantCode(t, err, CodeCouponExhausted)
	}
	same(t, "winners of the last redemption", 1, wins)
	got, err := s.Coupons.Get(ctx, "cpn_race")
	noErr(t, err)
	same(t, "redemptions after the race", 5, got.Redemptions)
}

// ---- entitlements ----

func testEntitlements(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	_, err := s.Entitlements.Get(ctx, "ent_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	_, err = s.Entitlements.ByLicense(ctx, "lic_missing")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Entitlements.ByLicense(ctx, "")
	wantCode(t, err, errs.CodeNotFound)
	insertOrder(t, s, "ord_1", 1)
	insertOrder(t, s, "ord_2", 2)
	wantCode(t, s.Entitlements.Update(ctx, sampleEntitlement("ent_missing", "ord_1", 0, "synth", 1)), errs.CodeNotFound)

	full := sampleEntitlement("ent_full", "ord_1", 1, "synth-a", 3)
	full.ViaBundle = "bundle"
	full.UnlockedAt = ptr(at(time.Hour))
	full.RevokedAt = ptr(at(2 * time.Hour))
	bare := order.Entitlement{ID: "ent_bare", OrderID: "ord_1", LineIndex: 0, Product: "drums",
		CustomerEmail: "buyer@example.com", Status: order.EntitlementActive, CreatedAt: at(0)}
	noErr(t, s.Entitlements.Insert(ctx, full))
	noErr(t, s.Entitlements.Insert(ctx, bare))
	for _, want := range []order.Entitlement{full, bare} {
		got, err := s.Entitlements.Get(ctx, want.ID)
		noErr(t, err)
		same(t, "entitlement", want, got)
	}
	got, err := s.Entitlements.ByLicense(ctx, "lic_ent_full")
	noErr(t, err)
	same(t, "entitlement by license", full, got)

	// One per (order, line, product); the same product on another line or order is fine.
	err = s.Entitlements.Insert(ctx, sampleEntitlement("ent_dup", "ord_1", 1, "synth-a", 4))
	wantCode(t, err, errs.CodeConflict)
	wantKind(t, err, errs.Conflict)
	wantCode(t, s.Entitlements.Insert(ctx, sampleEntitlement("ent_full", "ord_2", 5, "x", 4)), errs.CodeConflict)
	noErr(t, s.Entitlements.Insert(ctx, sampleEntitlement("ent_b", "ord_1", 1, "synth-b", 1)))
	noErr(t, s.Entitlements.Insert(ctx, sampleEntitlement("ent_l2", "ord_1", 2, "synth-a", 0)))
	noErr(t, s.Entitlements.Insert(ctx, sampleEntitlement("ent_o2", "ord_2", 0, "synth-a", 5)))
	other := sampleEntitlement("ent_other", "ord_2", 1, "synth-a", 6)
	other.CustomerEmail = "other@example.com"
	noErr(t, s.Entitlements.Insert(ctx, other))

	// ByOrder: in line order, then product.
	rows, err := s.Entitlements.ByOrder(ctx, "ord_1")
	noErr(t, err)
	same(t, "entitlements of ord_1", []string{"ent_bare", "ent_full", "ent_b", "ent_l2"}, ids(rows, entID))
	same(t, "listed entitlement", full, rows[1])
	rows, err = s.Entitlements.ByOrder(ctx, "ord_missing")
	noErr(t, err)
	same(t, "entitlements of a missing order", 0, len(rows))

	// ActiveFor: across orders, only active ones of this customer and product, oldest first.
	rows, err = s.Entitlements.ActiveFor(ctx, "buyer@example.com", "synth-a")
	noErr(t, err)
	same(t, "active entitlements", []string{"ent_l2", "ent_full", "ent_o2"}, ids(rows, entID))
	// E-mail addresses are stored in lower case; the lookup lowers its argument too.
	rows, err = s.Entitlements.ActiveFor(ctx, "Buyer@Example.COM", "synth-a")
	noErr(t, err)
	same(t, "active entitlements by a mixed-case address", []string{"ent_l2", "ent_full", "ent_o2"}, ids(rows, entID))
	rows, err = s.Entitlements.ActiveFor(ctx, "nobody@example.com", "synth-a")
	noErr(t, err)
	same(t, "active entitlements of nobody", 0, len(rows))

	// Update writes every field; a revoked one is no longer active.
	upd := full
	upd.Status, upd.RevokedAt, upd.UnlockedAt = order.EntitlementRevoked, ptr(at(3*time.Hour)), nil
	upd.ViaBundle, upd.LicenseID = "", "lic_new"
	noErr(t, s.Entitlements.Update(ctx, upd))
	got, err = s.Entitlements.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "updated entitlement", upd, got)
	rows, err = s.Entitlements.ActiveFor(ctx, "buyer@example.com", "synth-a")
	noErr(t, err)
	same(t, "active entitlements after a revocation", []string{"ent_l2", "ent_o2"}, ids(rows, entID))
	got, err = s.Entitlements.ByLicense(ctx, "lic_new")
	noErr(t, err)
	same(t, "entitlement by its new license", upd.ID, got.ID)
	_, err = s.Entitlements.ByLicense(ctx, "lic_ent_full")
	wantCode(t, err, errs.CodeNotFound)
	// Onto another entitlement's (order, line, product): a conflict.
	clash := upd
	clash.LineIndex, clash.Product = 0, "drums"
	wantCode(t, s.Entitlements.Update(ctx, clash), errs.CodeConflict)
	// Entitlements without a license (sample packs) are not found by the empty license id.
	_, err = s.Entitlements.ByLicense(ctx, "")
	wantCode(t, err, errs.CodeNotFound)
}

// ---- payment events ----

func testPaymentEvents(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	_, err := s.PaymentEvents.Get(ctx, "stripe", "evt_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	wantCode(t, s.PaymentEvents.SetOutcome(ctx, "stripe", "evt_missing", "x"), errs.CodeNotFound)

	ev := order.PaymentEvent{Provider: "stripe", EventID: "evt_1", Type: "checkout.session.completed",
		OrderID: "ord_1", ReceivedAt: at(time.Minute)}
	fresh, err := s.PaymentEvents.Record(ctx, ev)
	noErr(t, err)
	same(t, "first record", true, fresh)
	got, err := s.PaymentEvents.Get(ctx, "stripe", "evt_1")
	noErr(t, err)
	same(t, "recorded event", ev, got)

	// The same (provider, event id) again: not fresh and nothing written.
	again := ev
	again.Type, again.OrderID, again.Outcome, again.ReceivedAt = "other", "ord_2", "done", at(time.Hour)
	fresh, err = s.PaymentEvents.Record(ctx, again)
	noErr(t, err)
	same(t, "second record", false, fresh)
	got, err = s.PaymentEvents.Get(ctx, "stripe", "evt_1")
	noErr(t, err)
	same(t, "event after a duplicate", ev, got)

	// Another provider with the same event id, and an event naming no order, are fresh.
	gen := order.PaymentEvent{Provider: "generic", EventID: "evt_1", Type: "payment.succeeded", ReceivedAt: at(0)}
	fresh, err = s.PaymentEvents.Record(ctx, gen)
	noErr(t, err)
	same(t, "same id, other provider", true, fresh)
	got, err = s.PaymentEvents.Get(ctx, "generic", "evt_1")
	noErr(t, err)
	same(t, "generic event", gen, got)

	noErr(t, s.PaymentEvents.SetOutcome(ctx, "stripe", "evt_1", "fulfilling"))
	got, err = s.PaymentEvents.Get(ctx, "stripe", "evt_1")
	noErr(t, err)
	want := ev
	want.Outcome = "fulfilling"
	same(t, "event with outcome", want, got)
	got, err = s.PaymentEvents.Get(ctx, "generic", "evt_1")
	noErr(t, err)
	same(t, "other provider's event untouched", gen, got)

	// A record rolled back is forgotten: the retried delivery is fresh.
	boom := errors.New("handler failed")
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		fresh, err := s.PaymentEvents.Record(ctx, order.PaymentEvent{Provider: "stripe", EventID: "evt_rb", Type: "x", ReceivedAt: at(0)})
		noErr(t, err)
		same(t, "record in a transaction", true, fresh)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	fresh, err = s.PaymentEvents.Record(ctx, order.PaymentEvent{Provider: "stripe", EventID: "evt_rb", Type: "x", ReceivedAt: at(0)})
	noErr(t, err)
	same(t, "record after a rollback", true, fresh)
}

func testPaymentEventRace(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	const racers = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	type result struct {
		fresh bool
		err   error
	}
	res := make(chan result, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ev := order.PaymentEvent{Provider: "stripe", EventID: "evt_race", Type: fmt.Sprint("try-", i), ReceivedAt: at(0)}
			if i%2 == 0 {
				fresh, err := s.PaymentEvents.Record(ctx, ev)
				res <- result{fresh, err}
				return
			}
			var fresh bool
			err := s.Tx.InTx(ctx, func(ctx context.Context) error {
				var err error
				fresh, err = s.PaymentEvents.Record(ctx, ev)
				return err
			})
			res <- result{fresh, err}
		}()
	}
	close(start)
	wg.Wait()
	close(res)
	freshCount := 0
	for r := range res {
		noErr(t, r.err)
		if r.fresh {
			freshCount++
		}
	}
	same(t, "fresh records of one event", 1, freshCount)
}

// ---- downloads ----

func testDownloads(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	insertOrder(t, s, "ord_1", 1)
	insertOrder(t, s, "ord_2", 2)
	rows, err := s.Downloads.ByOrder(ctx, "ord_1")
	noErr(t, err)
	same(t, "downloads of an order with none", 0, len(rows))

	mk := func(id, orderID string, n int) order.Download {
		return order.Download{ID: id, OrderID: orderID, EntitlementID: "ent_" + id, VersionID: "ver_1",
			CustomerEmail: "buyer@example.com", RequestAddr: "203.0.113.7",
			IssuedAt: at(time.Duration(n) * time.Minute), ExpiresAt: at(time.Duration(n)*time.Minute + time.Hour)}
	}
	d1, d2, d3 := mk("dl_1", "ord_1", 5), mk("dl_2", "ord_1", 2), mk("dl_3", "ord_2", 1)
	bare := order.Download{ID: "dl_bare", OrderID: "ord_1", IssuedAt: at(9 * time.Minute), ExpiresAt: at(10 * time.Minute)}
	for _, d := range []order.Download{d1, d2, d3, bare} {
		noErr(t, s.Downloads.Insert(ctx, d))
	}
	wantCode(t, s.Downloads.Insert(ctx, mk("dl_1", "ord_2", 7)), errs.CodeConflict)

	rows, err = s.Downloads.ByOrder(ctx, "ord_1")
	noErr(t, err)
	same(t, "downloads of ord_1, oldest first", []order.Download{d2, d1, bare}, rows)
	rows, err = s.Downloads.ByOrder(ctx, "ord_2")
	noErr(t, err)
	same(t, "downloads of ord_2", []string{"dl_3"}, ids(rows, downloadID))
}

// ---- transactions ----

func testCommerceTxRollback(t *testing.T, s CommerceStores) {
	ctx := t.Context()
	kept := insertOrder(t, s, "ord_keep", 1)
	keptCoupon := sampleCoupon("cpn_keep", "KEEP", 1)
	noErr(t, s.Coupons.Insert(ctx, keptCoupon))
	noErr(t, s.Coupons.Redeem(ctx, "cpn_keep"))
	keptCoupon.Redemptions = 1
	keptProduct := sampleCatProduct("prd_keep", "keep", 1)
	noErr(t, s.Catalog.InsertProduct(ctx, keptProduct))
	keptEnt := sampleEntitlement("ent_keep", "ord_keep", 0, "synth", 1)
	noErr(t, s.Entitlements.Insert(ctx, keptEnt))

	boom := errors.New("use case failed")
	var rolledNumber int64
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		noErr(t, s.Catalog.InsertProduct(ctx, sampleCatProduct("prd_rb", "rb", 2)))
		noErr(t, s.Catalog.InsertVersion(ctx, sampleVersion("ver_rb", "prd_rb", "1.0.0", catalog.PlatformWin, 2)))
		changed := keptProduct
		changed.Name = "changed"
		noErr(t, s.Catalog.UpdateProduct(ctx, changed))
		o, err := s.Orders.Insert(ctx, sampleOrder("ord_rb", 2))
		noErr(t, err)
		rolledNumber = o.Number
		m := kept
		m.Status, m.PaidAt = order.StatusPaid, ptr(at(time.Hour))
		noErr(t, s.Orders.Update(ctx, m))
		noErr(t, s.Coupons.Insert(ctx, sampleCoupon("cpn_rb", "RB", 2)))
		noErr(t, s.Coupons.Redeem(ctx, "cpn_keep"))
		noErr(t, s.Entitlements.Insert(ctx, sampleEntitlement("ent_rb", "ord_rb", 0, "synth", 2)))
		e := keptEnt
		e.Status = order.EntitlementRevoked
		noErr(t, s.Entitlements.Update(ctx, e))
		_, err = s.PaymentEvents.Record(ctx, order.PaymentEvent{Provider: "stripe", EventID: "evt_rb", Type: "x", ReceivedAt: at(0)})
		noErr(t, err)
		noErr(t, s.Downloads.Insert(ctx, order.Download{ID: "dl_rb", OrderID: "ord_keep", IssuedAt: at(0), ExpiresAt: at(time.Hour)}))
		// Reads in the transaction see its own writes.
		if _, err := s.Orders.GetForUpdate(ctx, "ord_rb"); err != nil {
			t.Errorf("own write not visible: %v", err)
		}
		if rows, err := s.Entitlements.ByOrder(ctx, "ord_rb"); err != nil || len(rows) != 1 {
			t.Errorf("own entitlement not visible: %v, %d rows", err, len(rows))
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	_, err = s.Catalog.ProductByID(ctx, "prd_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Catalog.Version(ctx, "ver_rb")
	wantCode(t, err, errs.CodeNotFound)
	p, err := s.Catalog.ProductByID(ctx, "prd_keep")
	noErr(t, err)
	same(t, "product after rollback", keptProduct, p)
	_, err = s.Orders.Get(ctx, "ord_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Orders.ByNumber(ctx, rolledNumber)
	wantCode(t, err, errs.CodeNotFound)
	o, err := s.Orders.Get(ctx, "ord_keep")
	noErr(t, err)
	same(t, "order after rollback", kept, o)
	_, err = s.Coupons.Get(ctx, "cpn_rb")
	wantCode(t, err, errs.CodeNotFound)
	c, err := s.Coupons.Get(ctx, "cpn_keep")
	noErr(t, err)
	same(t, "coupon after rollback", keptCoupon, c)
	_, err = s.Entitlements.Get(ctx, "ent_rb")
	wantCode(t, err, errs.CodeNotFound)
	e, err := s.Entitlements.Get(ctx, "ent_keep")
	noErr(t, err)
	same(t, "entitlement after rollback", keptEnt, e)
	_, err = s.PaymentEvents.Get(ctx, "stripe", "evt_rb")
	wantCode(t, err, errs.CodeNotFound)
	rows, err := s.Downloads.ByOrder(ctx, "ord_keep")
	noErr(t, err)
	same(t, "downloads after rollback", 0, len(rows))
	n, err := s.Orders.CountByProduct(ctx, "drums")
	noErr(t, err)
	same(t, "orders with drums after rollback", 1, n)

	// Committed work stays.
	noErr(t, s.Tx.InTx(ctx, func(ctx context.Context) error {
		_, err := s.Orders.Insert(ctx, sampleOrder("ord_commit", 3))
		if err != nil {
			return err
		}
		return s.Coupons.Redeem(ctx, "cpn_keep")
	}))
	_, err = s.Orders.Get(ctx, "ord_commit")
	noErr(t, err)
	c, err = s.Coupons.Get(ctx, "cpn_keep")
	noErr(t, err)
	same(t, "redemptions after a commit", 2, c.Redemptions)
}

// RunSharedTxCheck checks that the licensing repositories lic and the commerce repositories com of
// one backing store share its transactions (fulfilment issues licenses and entitlements in one):
// a rollback undoes the writes of both, a commit keeps both. The stores must be empty.
func RunSharedTxCheck(t *testing.T, lic Stores, com CommerceStores) {
	ctx := t.Context()
	boom := errors.New("fulfilment failed")
	issue := func(ctx context.Context, suffix string, fail bool) error {
		if _, err := com.Orders.Insert(ctx, sampleOrder("ord_"+suffix, 1)); err != nil {
			return err
		}
		if err := lic.Licenses.Insert(ctx, sampleLicense("lic_"+suffix, 1)); err != nil {
			return err
		}
		e := sampleEntitlement("ent_"+suffix, "ord_"+suffix, 0, "synth", 1)
		e.LicenseID = "lic_" + suffix
		if err := com.Entitlements.Insert(ctx, e); err != nil {
			return err
		}
		if fail {
			return boom
		}
		return nil
	}
	err := com.Tx.InTx(ctx, func(ctx context.Context) error { return issue(ctx, "rb", true) })
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	_, err = lic.Licenses.Get(ctx, "lic_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = com.Entitlements.ByLicense(ctx, "lic_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = com.Orders.Get(ctx, "ord_rb")
	wantCode(t, err, errs.CodeNotFound)

	// The licensing Tx port runs the same transactions.
	noErr(t, lic.Tx.InTx(ctx, func(ctx context.Context) error { return issue(ctx, "ok", false) }))
	_, err = lic.Licenses.Get(ctx, "lic_ok")
	noErr(t, err)
	e, err := com.Entitlements.ByLicense(ctx, "lic_ok")
	noErr(t, err)
	same(t, "entitlement of the committed license", "ent_ok", e.ID)
}
