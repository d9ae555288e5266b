package commerce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// ---- helpers ----

func i64p(v int64) *int64 { return &v }

// orderFor stores an order with one line of each slug, as a checkout would have.
func (h *harness) orderFor(slugs ...string) order.Order {
	h.t.Helper()
	o := order.Order{ID: "ord_" + strings.Join(slugs, "_"), CustomerEmail: "buyer@example.com", Source: order.SourceAdmin,
		Currency: "EUR", Status: order.StatusPending, CreatedAt: harnessStart, UpdatedAt: harnessStart}
	for _, s := range slugs {
		o.Lines = append(o.Lines, order.Line{Product: s, ProductName: s, ProductType: "plugin", Quantity: 1, UnitPriceCents: 100})
	}
	out, err := h.store.Orders().Insert(h.ctx, o)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// versions returns every stored version of a product.
func (h *harness) versions(productID string) []catalog.Version {
	h.t.Helper()
	vs, err := h.store.Catalog().Versions(h.ctx, productID)
	if err != nil {
		h.t.Fatal(err)
	}
	return vs
}

// checkLatest asserts the invariant the service keeps: on every platform of the product, exactly
// the highest published version is flagged latest, and nothing is flagged on a platform without a
// published version.
func (h *harness) checkLatest(productID string) {
	h.t.Helper()
	vs := h.versions(productID)
	for _, p := range catalog.Platforms {
		var flagged []string
		for _, v := range vs {
			if v.Platform == p && v.IsLatest {
				flagged = append(flagged, v.Version)
			}
		}
		want, ok := catalog.Latest(vs, p)
		switch {
		case !ok && len(flagged) != 0:
			h.t.Fatalf("%s: %v flagged latest with nothing published", p, flagged)
		case ok && (len(flagged) != 1 || flagged[0] != want.Version):
			h.t.Fatalf("%s: flagged %v, want exactly [%s]", p, flagged, want.Version)
		}
	}
}

// latestOf returns the version string flagged latest on platform ("" when none).
func (h *harness) latestOf(productID string, p catalog.Platform) string {
	h.t.Helper()
	h.checkLatest(productID)
	for _, v := range h.versions(productID) {
		if v.Platform == p && v.IsLatest {
			return v.Version
		}
	}
	return ""
}

func (h *harness) licensingProduct(slug string) (maxActivations int, ok bool) {
	h.t.Helper()
	p, err := h.store.Products().Get(h.ctx, slug)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return 0, false
		}
		h.t.Fatal(err)
	}
	return p.Policy.MaxActivations, true
}

// ---- products ----

func TestCreateProductGeneratesUniqueSlugs(t *testing.T) {
	h := newHarness(t)
	in := ports.ProductInput{Name: "Crème Delay", Type: "plugin", Currency: "eur", PriceCents: 4900}
	var slugs []string
	for range 3 {
		p, err := h.svc.CreateProduct(h.ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		slugs = append(slugs, p.Slug)
		if p.Currency != "EUR" || !slices.Equal(p.Prices, []catalog.Price{{Currency: "EUR", AmountCents: 4900}}) {
			t.Fatalf("currency/prices: %+v", p)
		}
		if !p.Active || !strings.HasPrefix(p.ID, "prd_") || !p.CreatedAt.Equal(harnessStart) {
			t.Fatalf("defaults: %+v", p)
		}
	}
	if !slices.Equal(slugs, []string{"creme-delay", "creme-delay-2", "creme-delay-3"}) {
		t.Fatalf("slugs %v", slugs)
	}
	// Every one is registered with licensing, with the default activation limit.
	for _, s := range slugs {
		if max, ok := h.licensingProduct(s); !ok || max != defaultMaxActivations {
			t.Fatalf("licensing product %s: max %d, ok %v", s, max, ok)
		}
	}
	spec := h.lic.putCalls()[0]
	if spec.Slug != "creme-delay" || spec.Name != "Crème Delay" || spec.Type != "plugin" || spec.PriceCents != 4900 || spec.Currency != "EUR" {
		t.Fatalf("licensing spec %+v", spec)
	}
}

func TestGeneratedSlugSkipsALicensingOnlyProduct(t *testing.T) {
	h := newHarness(t)
	// A product created in the licensing context before the catalog existed.
	if _, err := h.lic.PutProduct(h.ctx, ports.ProductSpec{Slug: "tape-echo", Name: "Old", Type: "plugin", Currency: "EUR", Policy: ports.PolicySpec{MaxActivations: 7}}); err != nil {
		t.Fatal(err)
	}
	p := h.mustProduct("", func(in *ports.ProductInput) { in.Name = "Tape Echo" })
	if p.Slug != "tape-echo-2" {
		t.Fatalf("generated slug %q took over the licensing product", p.Slug)
	}
	if max, _ := h.licensingProduct("tape-echo"); max != 7 {
		t.Fatalf("the old licensing policy changed: %d", max)
	}
	// An explicit slug adopts it (and its policy, since none is given).
	q := h.mustProduct("tape-echo", nil)
	if q.Slug != "tape-echo" {
		t.Fatal(q.Slug)
	}
	if max, _ := h.licensingProduct("tape-echo"); max != 7 {
		t.Fatalf("adopting without a policy must keep the licensing policy: %d", max)
	}
}

func TestCreateProductValidation(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustProduct("drum-pack", func(in *ports.ProductInput) { in.Type = "sample_pack" })
	h.mustProduct("starter", func(in *ports.ProductInput) { in.Type = "bundle"; in.Components = []string{"space-echo"} })
	cases := []struct {
		name string
		mod  func(*ports.ProductInput)
		code string
		kind errs.Kind
	}{
		{"slug taken", func(in *ports.ProductInput) { in.Slug = "space-echo" }, catalog.CodeSlugTaken, errs.Conflict},
		{"bad slug", func(in *ports.ProductInput) { in.Slug = "Space Echo" }, catalog.CodeInvalidSlug, errs.Invalid},
		{"one-character slug", func(in *ports.ProductInput) { in.Slug = "x" }, catalog.CodeInvalidSlug, errs.Invalid},
		{"no name", func(in *ports.ProductInput) { in.Name = "" }, errs.CodeValidationFailed, errs.Invalid},
		{"long name", func(in *ports.ProductInput) { in.Name = strings.Repeat("é", 201) }, errs.CodeValidationFailed, errs.Invalid},
		{"no type", func(in *ports.ProductInput) { in.Type = "" }, catalog.CodeInvalidProductType, errs.Invalid},
		{"bad type", func(in *ports.ProductInput) { in.Type = "preset" }, catalog.CodeInvalidProductType, errs.Invalid},
		{"bad currency", func(in *ports.ProductInput) { in.Currency = "euro" }, catalog.CodeInvalidCurrency, errs.Invalid},
		{"no currency", func(in *ports.ProductInput) { in.Currency = "" }, catalog.CodeInvalidCurrency, errs.Invalid},
		{"negative price", func(in *ports.ProductInput) { in.PriceCents = -1 }, catalog.CodeInvalidPrice, errs.Invalid},
		{"currency twice", func(in *ports.ProductInput) {
			in.Prices = []catalog.Price{{Currency: "USD", AmountCents: 1}, {Currency: "usd", AmountCents: 2}}
		}, catalog.CodeInvalidCurrency, errs.Invalid},
		{"plugin with components", func(in *ports.ProductInput) { in.Components = []string{"space-echo"} }, catalog.CodeInvalidComponents, errs.Invalid},
		{"bundle without components", func(in *ports.ProductInput) { in.Type = "bundle" }, catalog.CodeInvalidComponents, errs.Invalid},
		{"bundle of an unknown product", func(in *ports.ProductInput) { in.Type = "bundle"; in.Components = []string{"space-echo", "nope"} }, catalog.CodeInvalidComponents, errs.Invalid},
		{"bundle of a bundle", func(in *ports.ProductInput) { in.Type = "bundle"; in.Components = []string{"starter"} }, catalog.CodeInvalidComponents, errs.Invalid},
		{"bundle of itself", func(in *ports.ProductInput) { in.Type = "bundle"; in.Slug = "mega"; in.Components = []string{"mega"} }, catalog.CodeInvalidComponents, errs.Invalid},
		{"bad policy", func(in *ports.ProductInput) { in.Policy = &ports.PolicySpec{MaxActivations: -1} }, errs.CodeValidationFailed, errs.Invalid},
	}
	before := len(h.lic.putCalls())
	for _, c := range cases {
		in := ports.ProductInput{Slug: "new-one", Name: "New One", Type: "plugin", Currency: "EUR", PriceCents: 100}
		c.mod(&in)
		_, err := h.svc.CreateProduct(h.ctx, in)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != c.kind {
			t.Errorf("%s: got %v, want %s (%s)", c.name, err, c.code, c.kind)
		}
	}
	// Nothing was stored by any failed call: not the catalog product, not the licensing one
	// (the bad policy reached licensing and failed there; the transaction rolled the insert back).
	for _, s := range []string{"new-one", "mega"} {
		if _, err := h.store.Catalog().ProductBySlug(h.ctx, s); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("%s was stored: %v", s, err)
		}
		if _, ok := h.licensingProduct(s); ok {
			t.Fatalf("%s was registered with licensing", s)
		}
	}
	if n := len(h.lic.putCalls()) - before; n != 1 {
		t.Fatalf("licensing was called %d times; only the bad policy should have got that far", n)
	}
}

func TestCreateProductRollsBackWhenLicensingFails(t *testing.T) {
	h := newHarness(t)
	h.lic.putErr = errs.E(errs.Unavailable, errs.CodeUnavailable, "licensing is down")
	_, err := h.svc.CreateProduct(h.ctx, ports.ProductInput{Name: "Space Echo", Type: "plugin", Currency: "EUR", PriceCents: 100})
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	rows, _, err := h.svc.AdminListProducts(h.ctx, ports.CatalogQuery{})
	if err != nil || len(rows) != 0 {
		t.Fatalf("the catalog product survived the failed registration: %v %v", rows, err)
	}
	// A plain error from licensing is internal and says nothing to the client.
	h.lic.putErr = errors.New("pq: connection reset")
	_, err = h.svc.CreateProduct(h.ctx, ports.ProductInput{Name: "Space Echo", Type: "plugin", Currency: "EUR", PriceCents: 100})
	wantCode(t, err, errs.CodeInternal, errs.Internal)
	if e, _ := errs.As(err); strings.Contains(e.Message, "pq") {
		t.Fatalf("internal text leaked into the message: %q", e.Message)
	}
}

func TestProductPolicyGoesToLicensingAndIsKept(t *testing.T) {
	h := newHarness(t)
	pol := &ports.PolicySpec{MaxActivations: 5, FirstActivation: "owner_approval", HeartbeatIntervalS: 3600, GracePeriodS: 7200, DurationS: i64p(86400)}
	h.mustProduct("space-echo", func(in *ports.ProductInput) { in.Policy = pol })
	rec, err := h.store.Products().Get(h.ctx, "space-echo")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Policy.MaxActivations != 5 || rec.Policy.HeartbeatInterval != time.Hour || rec.Policy.Duration != 24*time.Hour ||
		string(rec.Policy.FirstActivation) != "owner_approval" {
		t.Fatalf("policy %+v", rec.Policy)
	}
	// An edit without a policy keeps it; the name and price reach licensing.
	if _, err := h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Name: "Space Echo II", PriceCents: 5900}); err != nil {
		t.Fatal(err)
	}
	rec2, _ := h.store.Products().Get(h.ctx, "space-echo")
	if rec2.Policy != rec.Policy {
		t.Fatalf("policy changed: %+v → %+v", rec.Policy, rec2.Policy)
	}
	if rec2.Name != "Space Echo II" || rec2.PriceCents != 5900 || !rec2.CreatedAt.Equal(rec.CreatedAt) {
		t.Fatalf("licensing record %+v", rec2)
	}
	// An edit with a policy replaces it.
	if _, err := h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Policy: &ports.PolicySpec{MaxActivations: 2}}); err != nil {
		t.Fatal(err)
	}
	rec3, _ := h.store.Products().Get(h.ctx, "space-echo")
	if rec3.Policy.MaxActivations != 2 || rec3.Policy.Duration != 0 || rec3.Policy.HeartbeatInterval != 24*time.Hour {
		t.Fatalf("replaced policy %+v", rec3.Policy)
	}
}

func TestPutProductCreatesThenReplaces(t *testing.T) {
	h := newHarness(t)
	in := ports.ProductInput{Slug: "space-echo", Name: "Space Echo", Description: "A tape echo.", Type: "plugin", Currency: "USD",
		PriceCents: 4900, Prices: []catalog.Price{{Currency: "EUR", AmountCents: 4500}}, Policy: &ports.PolicySpec{MaxActivations: 2}}
	p1, err := h.svc.PutProduct(h.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.SetProductActive(h.ctx, "space-echo", false); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	// The same call again with other fields: a replacement (an empty description, a price of 0,
	// no other currencies), keeping id, creation time and the inactive flag.
	p2, err := h.svc.PutProduct(h.ctx, ports.ProductInput{Slug: "space-echo", Name: "Space Echo", Type: "plugin", Currency: "USD", PriceCents: 0})
	if err != nil {
		t.Fatal(err)
	}
	if p2.ID != p1.ID || !p2.CreatedAt.Equal(p1.CreatedAt) || p2.Active || p2.Description != "" ||
		!slices.Equal(p2.Prices, []catalog.Price{{Currency: "USD", AmountCents: 0}}) || !p2.UpdatedAt.Equal(harnessStart.Add(time.Hour)) {
		t.Fatalf("replaced: %+v", p2)
	}
	if max, _ := h.licensingProduct("space-echo"); max != 2 {
		t.Fatalf("a replacement without a policy keeps the licensing policy: %d", max)
	}
	// Active given: taken.
	p3, err := h.svc.PutProduct(h.ctx, ports.ProductInput{Slug: "space-echo", Name: "Space Echo", Type: "plugin", Currency: "USD", Active: boolp(true)})
	if err != nil || !p3.Active {
		t.Fatalf("%+v %v", p3, err)
	}
	// Without a slug it creates with a generated one.
	p4, err := h.svc.PutProduct(h.ctx, ports.ProductInput{Name: "Space Echo", Type: "plugin", Currency: "USD"})
	if err != nil || p4.Slug != "space-echo-2" {
		t.Fatalf("%+v %v", p4, err)
	}
}

func TestUpdateProduct(t *testing.T) {
	h := newHarness(t)
	orig := h.mustProduct("space-echo", func(in *ports.ProductInput) {
		in.Description = "Tape echo."
		in.Prices = []catalog.Price{{Currency: "USD", AmountCents: 5500}}
	})
	h.clock.Advance(time.Minute)
	// Zero fields keep; the primary price changes; the USD price stays.
	p, err := h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{PriceCents: 3900})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != orig.Name || p.Description != "Tape echo." || p.Type != catalog.TypePlugin || p.Currency != "EUR" || !p.Active ||
		!slices.Equal(p.Prices, []catalog.Price{{Currency: "EUR", AmountCents: 3900}, {Currency: "USD", AmountCents: 5500}}) ||
		p.ID != orig.ID || !p.UpdatedAt.After(orig.UpdatedAt) {
		t.Fatalf("updated: %+v", p)
	}
	stored, _ := h.store.Catalog().ProductBySlug(h.ctx, "space-echo")
	if !slices.Equal(stored.Prices, p.Prices) {
		t.Fatalf("stored %+v", stored)
	}
	// Switching the primary currency to one of the others.
	p, err = h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Currency: "usd", PriceCents: 5500})
	if err != nil || p.Currency != "USD" {
		t.Fatalf("%+v %v", p, err)
	}
	if v, ok := catalog.PriceIn(p, "EUR"); !ok || v != 3900 {
		t.Fatalf("EUR price lost: %+v", p.Prices)
	}

	_, err = h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Slug: "other-slug"})
	wantCode(t, err, catalog.CodeInvalidSlug, errs.Invalid)
	_, err = h.svc.UpdateProduct(h.ctx, "nope", ports.ProductInput{Name: "x"})
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	_, err = h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Type: "preset"})
	wantCode(t, err, catalog.CodeInvalidProductType, errs.Invalid)

	// A type change is free while no order references the product.
	p, err = h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Type: "sample_pack"})
	if err != nil || p.Type != catalog.TypeSamplePack {
		t.Fatalf("%+v %v", p, err)
	}
	h.orderFor("space-echo")
	_, err = h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Type: "plugin"})
	wantCode(t, err, catalog.CodeProductInUse, errs.Conflict)
	// Other edits still work.
	if _, err := h.svc.UpdateProduct(h.ctx, "space-echo", ports.ProductInput{Name: "Renamed"}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateProductBundles(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustProduct("drum-pack", func(in *ports.ProductInput) { in.Type = "sample_pack" })
	h.mustProduct("synth", nil)
	b := h.mustProduct("starter", func(in *ports.ProductInput) { in.Type = "bundle"; in.Components = []string{" Space-Echo", "drum-pack"} })
	if !slices.Equal(b.Components, []string{"space-echo", "drum-pack"}) {
		t.Fatalf("components %v", b.Components)
	}
	// A component cannot become a bundle.
	_, err := h.svc.UpdateProduct(h.ctx, "drum-pack", ports.ProductInput{Type: "bundle", Components: []string{"synth"}})
	wantCode(t, err, catalog.CodeProductInUse, errs.Conflict)
	// Components are replaced when given, kept when not.
	b, err = h.svc.UpdateProduct(h.ctx, "starter", ports.ProductInput{Components: []string{"synth"}})
	if err != nil || !slices.Equal(b.Components, []string{"synth"}) {
		t.Fatalf("%+v %v", b, err)
	}
	b, err = h.svc.UpdateProduct(h.ctx, "starter", ports.ProductInput{Name: "Starter Kit"})
	if err != nil || !slices.Equal(b.Components, []string{"synth"}) {
		t.Fatalf("%+v %v", b, err)
	}
	_, err = h.svc.UpdateProduct(h.ctx, "starter", ports.ProductInput{Components: []string{"ghost"}})
	wantCode(t, err, catalog.CodeInvalidComponents, errs.Invalid)
	// A bundle turned into a plugin drops its components.
	p, err := h.svc.UpdateProduct(h.ctx, "starter", ports.ProductInput{Type: "plugin"})
	if err != nil || len(p.Components) != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	// drum-pack is no longer listed anywhere: it may become a bundle now.
	if _, err := h.svc.UpdateProduct(h.ctx, "drum-pack", ports.ProductInput{Type: "bundle", Components: []string{"synth"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSetProductActiveHidesFromThePublicCatalog(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustVersion("space-echo", "1.0.0", "mac")
	p, err := h.svc.SetProductActive(h.ctx, "space-echo", false)
	if err != nil || p.Active {
		t.Fatalf("%+v %v", p, err)
	}
	_, err = h.svc.CatalogProduct(h.ctx, "space-echo")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	_, err = h.svc.CatalogVersions(h.ctx, "space-echo", "")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	_, err = h.svc.LatestVersions(h.ctx, "space-echo", "")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	if rows, _, _ := h.svc.ListCatalog(h.ctx, ports.CatalogQuery{}); len(rows) != 0 {
		t.Fatalf("inactive product listed: %+v", rows)
	}
	if rows, _, _ := h.svc.AdminListProducts(h.ctx, ports.CatalogQuery{}); len(rows) != 1 {
		t.Fatalf("admins see every product: %+v", rows)
	}
	if _, _, err := h.svc.AdminGetProduct(h.ctx, "space-echo"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.SetProductActive(h.ctx, "space-echo", true); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.CatalogProduct(h.ctx, "space-echo"); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.SetProductActive(h.ctx, "nope", true)
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
}

func TestDeleteProduct(t *testing.T) {
	h := newHarness(t)
	p := h.mustProduct("space-echo", nil)
	v1 := h.mustVersion("space-echo", "1.0.0", "mac")
	v2 := h.mustVersion("space-echo", "1.1.0", "win")
	h.mustProduct("sold", nil)
	h.orderFor("sold")
	h.mustProduct("component", nil)
	h.mustProduct("bundle", func(in *ports.ProductInput) { in.Type = "bundle"; in.Components = []string{"component"} })

	err := h.svc.DeleteProduct(h.ctx, "sold")
	wantCode(t, err, catalog.CodeProductInUse, errs.Conflict)
	err = h.svc.DeleteProduct(h.ctx, "component")
	wantCode(t, err, catalog.CodeProductInUse, errs.Conflict)
	err = h.svc.DeleteProduct(h.ctx, "nope")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)

	if err := h.svc.DeleteProduct(h.ctx, "space-echo"); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.svc.AdminGetProduct(h.ctx, "space-echo")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	if vs := h.versions(p.ID); len(vs) != 0 {
		t.Fatalf("versions left: %+v", vs)
	}
	for _, k := range []string{v1.StorageKey, v2.StorageKey} {
		if h.objects.has(k) {
			t.Fatalf("asset %s left in the store", k)
		}
	}
	// Deleting the bundle frees its component.
	if err := h.svc.DeleteProduct(h.ctx, "bundle"); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteProduct(h.ctx, "component"); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteProductSurvivesAFailingObjectStore(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	v := h.mustVersion("space-echo", "1.0.0", "mac")
	h.objects.deleteErr = errs.E(errs.Unavailable, errs.CodeUnavailable, "s3 down")
	// The database is the truth: the product is gone; the object is an orphan, logged.
	if err := h.svc.DeleteProduct(h.ctx, "space-echo"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.objects.deleted(), v.StorageKey) {
		t.Fatal("the asset deletion was not attempted")
	}
}

func TestAdminListAndSearch(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("", func(in *ports.ProductInput) { in.Name = "Space Echo" })
	h.mustProduct("", func(in *ports.ProductInput) { in.Name = "Tape Echo"; in.Type = "sample_pack" })
	h.mustProduct("", func(in *ports.ProductInput) { in.Name = "Bass Synth" })
	h.mustProduct("", func(in *ports.ProductInput) { in.Name = "Hidden Echo"; in.Active = boolp(false) })

	names := func(ps []catalog.Product) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	rows, _, err := h.svc.ListCatalog(h.ctx, ports.CatalogQuery{Query: " echo "})
	if err != nil || !slices.Equal(names(rows), []string{"Space Echo", "Tape Echo"}) {
		t.Fatalf("public search: %v %v", names(rows), err)
	}
	rows, _, err = h.svc.AdminListProducts(h.ctx, ports.CatalogQuery{Query: "echo"})
	if err != nil || !slices.Equal(names(rows), []string{"Hidden Echo", "Space Echo", "Tape Echo"}) {
		t.Fatalf("admin search: %v %v", names(rows), err)
	}
	rows, _, err = h.svc.ListCatalog(h.ctx, ports.CatalogQuery{Type: "Sample_Pack"})
	if err != nil || !slices.Equal(names(rows), []string{"Tape Echo"}) {
		t.Fatalf("type filter: %v %v", names(rows), err)
	}
	// Paging walks every active product once.
	var all []string
	q := ports.CatalogQuery{Page: ports.Page{Limit: 2}}
	for {
		rows, next, err := h.svc.ListCatalog(h.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, names(rows)...)
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if !slices.Equal(all, []string{"Bass Synth", "Space Echo", "Tape Echo"}) {
		t.Fatalf("pages: %v", all)
	}
	_, _, err = h.svc.ListCatalog(h.ctx, ports.CatalogQuery{Type: "preset"})
	wantCode(t, err, catalog.CodeInvalidProductType, errs.Invalid)
	_, _, err = h.svc.ListCatalog(h.ctx, ports.CatalogQuery{Query: strings.Repeat("q", 201)})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	_, _, err = h.svc.AdminListProducts(h.ctx, ports.CatalogQuery{Page: ports.Page{Limit: 500}})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
}

func TestConcurrentCreatesGetDistinctSlugs(t *testing.T) {
	h := newHarness(t)
	const n = 8
	var wg sync.WaitGroup
	slugs := make([]string, n)
	errsOut := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := h.svc.CreateProduct(h.ctx, ports.ProductInput{Name: "Space Echo", Type: "plugin", Currency: "EUR"})
			slugs[i], errsOut[i] = p.Slug, err
		}()
	}
	wg.Wait()
	for _, err := range errsOut {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(slugs)
	if len(slices.Compact(slices.Clone(slugs))) != n {
		t.Fatalf("duplicate slugs: %v", slugs)
	}
}

// ---- versions ----

func TestVersionsKeepOneLatestPerPlatform(t *testing.T) {
	h := newHarness(t)
	p := h.mustProduct("space-echo", nil)
	v100 := h.mustVersion("space-echo", "1.0.0", "mac")
	if !v100.IsLatest {
		t.Fatal("the only published version is latest")
	}
	v1100 := h.mustVersion("space-echo", "1.10.0", "mac")
	v190 := h.mustVersion("space-echo", "1.9.0", "mac")
	if got := h.latestOf(p.ID, catalog.PlatformMac); got != "1.10.0" {
		t.Fatalf("latest %s, want 1.10.0 (semver, not text)", got)
	}
	if !v1100.IsLatest || v190.IsLatest {
		t.Fatalf("returned flags: 1.10.0 %v, 1.9.0 %v", v1100.IsLatest, v190.IsLatest)
	}
	// Another platform has its own latest.
	h.mustVersion("space-echo", "0.5.0", "win")
	if h.latestOf(p.ID, catalog.PlatformWin) != "0.5.0" || h.latestOf(p.ID, catalog.PlatformMac) != "1.10.0" {
		t.Fatal("platforms mixed up")
	}
	// A pre-release above the latest release wins once published; a draft never does.
	rc, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "2.0.0-rc.1", Platform: "mac"})
	if err != nil || rc.Published || rc.IsLatest {
		t.Fatalf("draft: %+v %v", rc, err)
	}
	if h.latestOf(p.ID, catalog.PlatformMac) != "1.10.0" {
		t.Fatal("a draft became latest")
	}
	// Unpublishing the latest hands the flag down.
	if _, err := h.svc.UpdateVersion(h.ctx, "space-echo", v1100.ID, ports.VersionInput{Published: boolp(false)}); err != nil {
		t.Fatal(err)
	}
	if got := h.latestOf(p.ID, catalog.PlatformMac); got != "1.9.0" {
		t.Fatalf("after unpublish: %s", got)
	}
	// Renumbering moves it.
	if _, err := h.svc.UpdateVersion(h.ctx, "space-echo", v100.ID, ports.VersionInput{Version: "1.9.1"}); err != nil {
		t.Fatal(err)
	}
	if got := h.latestOf(p.ID, catalog.PlatformMac); got != "1.9.1" {
		t.Fatalf("after renumbering: %s", got)
	}
	// Moving the latest to another platform recomputes both.
	if _, err := h.svc.UpdateVersion(h.ctx, "space-echo", v100.ID, ports.VersionInput{Platform: "win"}); err != nil {
		t.Fatal(err)
	}
	if h.latestOf(p.ID, catalog.PlatformMac) != "1.9.0" || h.latestOf(p.ID, catalog.PlatformWin) != "1.9.1" {
		t.Fatal("platform move")
	}
	// Deleting the latest hands the flag down; deleting the last one leaves none.
	if err := h.svc.DeleteVersion(h.ctx, "space-echo", v190.ID); err != nil {
		t.Fatal(err)
	}
	if got := h.latestOf(p.ID, catalog.PlatformMac); got != "" {
		t.Fatalf("only unpublished versions are left on mac, got latest %s", got)
	}
	if err := h.svc.DeleteVersion(h.ctx, "space-echo", v100.ID); err != nil {
		t.Fatal(err)
	}
	if got := h.latestOf(p.ID, catalog.PlatformWin); got != "0.5.0" {
		t.Fatalf("win after delete: %s", got)
	}
}

func TestCreateVersionValidation(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustVersion("space-echo", "1.0.0+build.7", "mac")
	h.objects.put("uploads/space-echo.dmg", []byte("dmg"))
	cases := []struct {
		name string
		slug string
		in   ports.VersionInput
		code string
		kind errs.Kind
	}{
		{"unknown product", "nope", ports.VersionInput{Version: "1.0.0", Platform: "mac"}, catalog.CodeProductNotFound, errs.NotFound},
		{"no version", "space-echo", ports.VersionInput{Platform: "mac"}, catalog.CodeInvalidVersion, errs.Invalid},
		{"bad version", "space-echo", ports.VersionInput{Version: "v1.0", Platform: "mac"}, catalog.CodeInvalidVersion, errs.Invalid},
		{"no platform", "space-echo", ports.VersionInput{Version: "1.0.1"}, catalog.CodeInvalidPlatform, errs.Invalid},
		{"bad platform", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "amiga"}, catalog.CodeInvalidPlatform, errs.Invalid},
		{"negative protocol", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", MinProtocolVersion: -1}, catalog.CodeInvalidVersion, errs.Invalid},
		{"duplicate", "space-echo", ports.VersionInput{Version: "1.0.0+build.7", Platform: "mac"}, catalog.CodeVersionExists, errs.Conflict},
		{"duplicate by precedence", "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac"}, catalog.CodeVersionExists, errs.Conflict},
		{"published without asset", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", Published: boolp(true)}, catalog.CodeVersionNoAsset, errs.Invalid},
		{"storage key of nothing", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", StorageKey: "uploads/missing.dmg"}, catalog.CodeInvalidVersion, errs.Invalid},
		{"storage key escaping", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", StorageKey: "uploads/../../etc/passwd"}, catalog.CodeInvalidVersion, errs.Invalid},
		{"absolute storage key", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", StorageKey: "/etc/passwd"}, catalog.CodeInvalidVersion, errs.Invalid},
		{"bad file name", "space-echo", ports.VersionInput{Version: "1.0.1", Platform: "mac", StorageKey: "uploads/space-echo.dmg", FileName: "日本"}, catalog.CodeInvalidFileName, errs.Invalid},
	}
	for _, c := range cases {
		_, err := h.svc.CreateVersion(h.ctx, c.slug, c.in)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != c.kind {
			t.Errorf("%s: got %v, want %s (%s)", c.name, err, c.code, c.kind)
		}
	}
	// The same version on another platform is another release.
	if _, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "WIN"}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateVersionWithAStoredObject(t *testing.T) {
	h := newHarness(t)
	p := h.mustProduct("space-echo", nil)
	data := []byte("a dmg uploaded straight to S3")
	h.objects.put("uploads/Space Echo.dmg", data)
	_, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac", StorageKey: "uploads/Space Echo.dmg"})
	wantCode(t, err, catalog.CodeInvalidVersion, errs.Invalid) // a key with a space is refused
	h.objects.put("uploads/space-echo-1.0.0.dmg", data)
	v, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac",
		StorageKey: "uploads/space-echo-1.0.0.dmg", ReleaseNotes: "First.\nRelease."})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !v.Published || !v.IsLatest || v.FileName != "space-echo-1.0.0.dmg" || v.SizeBytes != int64(len(data)) ||
		v.SHA256 != hex.EncodeToString(sum[:]) || v.MinProtocolVersion != 1 || v.ProductID != p.ID ||
		v.ReleaseNotes != "First.\nRelease." || !strings.HasPrefix(v.ID, "ver_") {
		t.Fatalf("version %+v", v)
	}
}

func TestVersionMustBelongToTheProduct(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustProduct("tape-echo", nil)
	v := h.mustVersion("space-echo", "1.0.0", "mac")
	_, err := h.svc.UpdateVersion(h.ctx, "tape-echo", v.ID, ports.VersionInput{ReleaseNotes: "x"})
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)
	err = h.svc.DeleteVersion(h.ctx, "tape-echo", v.ID)
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)
	_, err = h.svc.UploadAsset(h.ctx, "tape-echo", v.ID, "x.zip", strings.NewReader("x"), 1)
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)
	_, err = h.svc.UpdateVersion(h.ctx, "space-echo", "ver_nope", ports.VersionInput{ReleaseNotes: "x"})
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)
	// Nothing changed on the real owner.
	_, vs, err := h.svc.AdminGetProduct(h.ctx, "space-echo")
	if err != nil || len(vs) != 1 || vs[0].ReleaseNotes != "" {
		t.Fatalf("%+v %v", vs, err)
	}
}

func TestUpdateVersion(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	v := h.mustVersion("space-echo", "1.0.0", "mac")
	other := h.mustVersion("space-echo", "1.1.0", "mac")
	h.clock.Advance(time.Minute)
	u, err := h.svc.UpdateVersion(h.ctx, "space-echo", v.ID, ports.VersionInput{ReleaseNotes: "Fixed the wow.", MinProtocolVersion: 2})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != "1.0.0" || u.Platform != catalog.PlatformMac || u.ReleaseNotes != "Fixed the wow." || u.MinProtocolVersion != 2 ||
		!u.Published || u.StorageKey != v.StorageKey || !u.UpdatedAt.After(v.UpdatedAt) || !u.CreatedAt.Equal(v.CreatedAt) {
		t.Fatalf("updated %+v", u)
	}
	_, err = h.svc.UpdateVersion(h.ctx, "space-echo", v.ID, ports.VersionInput{Version: "1.1.0+rebuild"})
	wantCode(t, err, catalog.CodeVersionExists, errs.Conflict)
	_, err = h.svc.UpdateVersion(h.ctx, "space-echo", v.ID, ports.VersionInput{Version: "one"})
	wantCode(t, err, catalog.CodeInvalidVersion, errs.Invalid)
	_, err = h.svc.UpdateVersion(h.ctx, "space-echo", v.ID, ports.VersionInput{MinProtocolVersion: -3})
	wantCode(t, err, catalog.CodeInvalidVersion, errs.Invalid)
	// A failed edit changed nothing, latest flags included.
	got, _ := h.store.Catalog().Version(h.ctx, v.ID)
	if got.Version != "1.0.0" || got.MinProtocolVersion != 2 {
		t.Fatalf("stored %+v", got)
	}
	if h.latestOf(other.ProductID, catalog.PlatformMac) != "1.1.0" {
		t.Fatal("latest flag moved by a failed edit")
	}
	// A draft without an asset cannot be published.
	d, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "2.0.0", Platform: "linux"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.UpdateVersion(h.ctx, "space-echo", d.ID, ports.VersionInput{Published: boolp(true)})
	wantCode(t, err, catalog.CodeVersionNoAsset, errs.Invalid)
}

func TestUploadAsset(t *testing.T) {
	h := newHarness(t)
	p := h.mustProduct("space-echo", nil)
	v, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac"})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	u, err := h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "../My Plugin (mac).dmg", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wantKey := "products/" + p.ID + "/" + v.ID + "/My_Plugin_mac_.dmg"
	if u.StorageKey != wantKey || u.FileName != "My_Plugin_mac_.dmg" || u.SizeBytes != int64(len(data)) || u.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploaded %+v", u)
	}
	if !bytes.Equal(h.objects.get(wantKey), data) {
		t.Fatal("stored bytes differ")
	}
	if u.Published {
		t.Fatal("uploading does not publish")
	}
	stored, _ := h.store.Catalog().Version(h.ctx, v.ID)
	if stored.StorageKey != wantKey || stored.SHA256 != u.SHA256 {
		t.Fatalf("not recorded: %+v", stored)
	}
	// Now it can be published.
	if _, err := h.svc.UpdateVersion(h.ctx, "space-echo", v.ID, ports.VersionInput{Published: boolp(true)}); err != nil {
		t.Fatal(err)
	}
	// A new file under another name replaces the object; the old one is deleted.
	u2, err := h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "space-echo-1.0.0.dmg", bytes.NewReader([]byte("v2")), 2)
	if err != nil {
		t.Fatal(err)
	}
	if h.objects.has(wantKey) || !h.objects.has(u2.StorageKey) || u2.SizeBytes != 2 || !u2.Published {
		t.Fatalf("replacement: %+v, old still there %v", u2, h.objects.has(wantKey))
	}
}

func TestUploadAssetRefusals(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	v, _ := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac"})
	_, err := h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "日本", strings.NewReader("x"), 1)
	wantCode(t, err, catalog.CodeInvalidFileName, errs.Invalid)
	_, err = h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "a.zip", strings.NewReader(""), 0)
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	_, err = h.svc.UploadAsset(h.ctx, "nope", v.ID, "a.zip", strings.NewReader("x"), 1)
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)
	// The body ends before the declared size: the partial object is removed, nothing recorded.
	_, err = h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "a.zip", strings.NewReader("short"), 100)
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	key := "products/" + v.ProductID + "/" + v.ID + "/a.zip"
	if h.objects.has(key) {
		t.Fatal("partial object left")
	}
	// The store fails.
	h.objects.putErr = errs.E(errs.Unavailable, errs.CodeUnavailable, "s3 down")
	_, err = h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "a.zip", strings.NewReader("x"), 1)
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	h.objects.putErr = nil
	stored, _ := h.store.Catalog().Version(h.ctx, v.ID)
	if stored.StorageKey != "" || stored.SizeBytes != 0 {
		t.Fatalf("a failed upload was recorded: %+v", stored)
	}
}

// deletingReader deletes the version on the first read: a version deleted while its file was
// uploading (the upload runs outside any transaction).
type deletingReader struct {
	r    io.Reader
	once sync.Once
	del  func()
}

func (d *deletingReader) Read(p []byte) (int, error) {
	d.once.Do(d.del)
	return d.r.Read(p)
}

func TestUploadAssetForAVersionDeletedMeanwhile(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	v, _ := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac"})
	r := &deletingReader{r: strings.NewReader("data"), del: func() {
		if err := h.store.Catalog().DeleteVersion(context.Background(), v.ID); err != nil {
			t.Error(err)
		}
	}}
	_, err := h.svc.UploadAsset(h.ctx, "space-echo", v.ID, "a.zip", r, 4)
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)
	key := "products/" + v.ProductID + "/" + v.ID + "/a.zip"
	if h.objects.has(key) || !slices.Contains(h.objects.deleted(), key) {
		t.Fatal("the object of a deleted version was left in the store")
	}
}

func TestDeleteVersionKeepsASharedObject(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.objects.put("uploads/universal.zip", []byte("zip"))
	a, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "mac", StorageKey: "uploads/universal.zip"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "1.0.0", Platform: "win", StorageKey: "uploads/universal.zip"}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteVersion(h.ctx, "space-echo", a.ID); err != nil {
		t.Fatal(err)
	}
	if !h.objects.has("uploads/universal.zip") {
		t.Fatal("an object another version uses was deleted")
	}
}

// ---- public reads ----

func TestPublicVersionReads(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("space-echo", nil)
	h.mustVersion("space-echo", "1.0.0", "mac")
	h.mustVersion("space-echo", "1.2.0", "mac")
	h.mustVersion("space-echo", "1.1.0", "win")
	h.mustVersion("space-echo", "1.0.0", "all")
	if _, err := h.svc.CreateVersion(h.ctx, "space-echo", ports.VersionInput{Version: "9.0.0", Platform: "mac"}); err != nil { // a draft
		t.Fatal(err)
	}
	list := func(vs []catalog.Version) []string {
		var out []string
		for _, v := range vs {
			if v.StorageKey != "" {
				t.Fatalf("a public read returned a storage key: %+v", v)
			}
			if !v.Published {
				t.Fatalf("a public read returned a draft: %+v", v)
			}
			out = append(out, v.Version+"/"+string(v.Platform))
		}
		return out
	}
	vs, err := h.svc.CatalogVersions(h.ctx, "space-echo", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := list(vs); !slices.Equal(got, []string{"1.2.0/mac", "1.1.0/win", "1.0.0/mac", "1.0.0/all"}) {
		t.Fatalf("all platforms: %v", got)
	}
	vs, _ = h.svc.CatalogVersions(h.ctx, "space-echo", "MAC")
	if got := list(vs); !slices.Equal(got, []string{"1.2.0/mac", "1.0.0/mac", "1.0.0/all"}) {
		t.Fatalf("mac: %v", got)
	}
	vs, _ = h.svc.CatalogVersions(h.ctx, "space-echo", "all")
	if got := list(vs); !slices.Equal(got, []string{"1.0.0/all"}) {
		t.Fatalf("all: %v", got)
	}
	vs, _ = h.svc.CatalogVersions(h.ctx, "space-echo", "linux")
	if got := list(vs); !slices.Equal(got, []string{"1.0.0/all"}) {
		t.Fatalf("linux: %v", got)
	}
	_, err = h.svc.CatalogVersions(h.ctx, "space-echo", "amiga")
	wantCode(t, err, catalog.CodeInvalidPlatform, errs.Invalid)

	vs, err = h.svc.LatestVersions(h.ctx, "space-echo", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := list(vs); !slices.Equal(got, []string{"1.1.0/win", "1.2.0/mac", "1.0.0/all"}) {
		t.Fatalf("latest: %v", got)
	}
	vs, _ = h.svc.LatestVersions(h.ctx, "space-echo", "mac")
	if got := list(vs); !slices.Equal(got, []string{"1.2.0/mac", "1.0.0/all"}) {
		t.Fatalf("latest mac: %v", got)
	}
	vs, _ = h.svc.LatestVersions(h.ctx, "space-echo", "linux")
	if got := list(vs); !slices.Equal(got, []string{"1.0.0/all"}) {
		t.Fatalf("latest linux: %v", got)
	}
	// A product without published versions: an empty list, not an error.
	h.mustProduct("tape-echo", nil)
	vs, err = h.svc.LatestVersions(h.ctx, "tape-echo", "")
	if err != nil || len(vs) != 0 {
		t.Fatalf("%v %v", vs, err)
	}
	_, err = h.svc.CatalogVersions(h.ctx, "nope", "")
	wantCode(t, err, catalog.CodeProductNotFound, errs.NotFound)

	// Admins see drafts and storage keys.
	_, all, err := h.svc.AdminGetProduct(h.ctx, "space-echo")
	if err != nil || len(all) != 5 || all[0].Version != "9.0.0" || all[1].StorageKey == "" {
		t.Fatalf("admin view: %+v %v", all, err)
	}
}
