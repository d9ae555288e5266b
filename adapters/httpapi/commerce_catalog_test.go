package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// withPolicy is the licensing double with a stored product policy for "synth".
type withPolicy struct {
	ports.Licensing
	fail error
}

func (w *withPolicy) GetProduct(_ context.Context, slug string) (license.ProductRecord, error) {
	if w.fail != nil {
		return license.ProductRecord{}, w.fail
	}
	if slug != "synth" {
		return license.ProductRecord{}, errs.E(errs.NotFound, license.CodeProductNotFound, "no such product")
	}
	return license.ProductRecord{Slug: "synth", Entitlements: []string{"synth", "synth-pro"}, Policy: license.Policy{
		MaxActivations: 3, FirstActivation: license.FirstActivation("instant"), HeartbeatInterval: time.Hour,
		GracePeriod: 2 * time.Hour, CertificateValidity: 24 * time.Hour, TransfersPer30d: 2,
	}}, nil
}

func policyHarness(t *testing.T) *commerceHarness {
	return newCommerceHarness(t, func(d *Deps) { d.Licensing = &withPolicy{Licensing: d.Licensing} })
}

const goodProduct = `{"slug":"synth","name":"Synth","type":"plugin","price_cents":4900,"currency":"USD","policy":{"max_activations":2,"first_activation":"instant","heartbeat_interval_s":60,"grace_period_s":120}}`

func TestCommerceAdminRoutesNeedTheToken(t *testing.T) {
	h := newCommerceHarness(t)
	for _, r := range [][2]string{
		{"GET", "/v1/admin/products"}, {"GET", "/v1/admin/products/synth"}, {"PATCH", "/v1/admin/products/synth"},
		{"DELETE", "/v1/admin/products/synth"}, {"POST", "/v1/admin/products/synth/publish"},
		{"POST", "/v1/admin/products/synth/unpublish"}, {"POST", "/v1/admin/products/synth/versions"},
		{"PATCH", "/v1/admin/products/synth/versions/ver_1"}, {"DELETE", "/v1/admin/products/synth/versions/ver_1"},
		{"PUT", "/v1/admin/products/synth/versions/ver_1/asset"}, {"GET", "/v1/admin/coupons"}, {"POST", "/v1/admin/coupons"},
		{"GET", "/v1/admin/coupons/cpn_1"}, {"PATCH", "/v1/admin/coupons/cpn_1"}, {"DELETE", "/v1/admin/coupons/cpn_1"},
		{"GET", "/v1/admin/orders"}, {"POST", "/v1/admin/orders"}, {"GET", "/v1/admin/orders/ord_1"},
		{"POST", "/v1/admin/orders/ord_1/mark-paid"}, {"POST", "/v1/admin/orders/ord_1/refund"},
		{"POST", "/v1/admin/orders/ord_1/release"}, {"POST", "/v1/admin/products"},
	} {
		for _, tok := range []string{"", "wrong"} {
			res := h.admin(r[0], r[1], `{}`, tok)
			if res.status != 401 {
				t.Fatalf("%s %s with token %q: status %d", r[0], r[1], tok, res.status)
			}
			h.problem(res, 401, "UNAUTHORIZED")
		}
	}
	if calls := h.com.callList(); len(calls) != 0 {
		t.Fatalf("unauthenticated calls reached the port: %v", calls)
	}
}

func TestCommerceRoutesAbsentWithoutCommerce(t *testing.T) {
	h := newHarness(t)
	h.problem(h.admin(http.MethodGet, "/v1/admin/orders", ""), 404, "NOT_FOUND")
	res := h.do(request{method: http.MethodPost, path: "/v1/checkout", body: []byte(`{}`), unsigned: true})
	if res.status != 404 {
		t.Fatalf("checkout without Commerce: %d", res.status)
	}
}

func TestAdminPutProductThroughCommerce(t *testing.T) {
	h := policyHarness(t)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/products", goodProduct), 201)
	// PROTOCOL.md section 9's fields, plus the catalog's.
	wantKeys(t, m, "slug", "name", "type", "price_cents", "currency", "entitlements", "policy", "created_at", "updated_at",
		"id", "description", "active", "prices", "components")
	in := h.com.last("PutProduct")[0].(ports.ProductInput)
	if in.Slug != "synth" || in.Name != "Synth" || in.Type != "plugin" || in.PriceCents != 4900 || in.Currency != "USD" || in.Active != nil {
		t.Fatalf("input = %+v", in)
	}
	if in.Policy == nil || in.Policy.MaxActivations != 2 || in.Policy.HeartbeatIntervalS != 60 || in.Policy.GracePeriodS != 120 {
		t.Fatalf("policy = %+v", in.Policy)
	}
	// The licensing context's stored policy is what the answer shows.
	pol := m["policy"].(map[string]any)
	if pol["max_activations"] != 3.0 || pol["heartbeat_interval_s"] != 3600.0 || pol["certificate_validity_s"] != 86400.0 {
		t.Fatalf("policy = %v", pol)
	}
	if got := m["entitlements"].([]any); len(got) != 2 || m["id"] != "prd_1" || m["active"] != true || m["price_cents"] != 4900.0 {
		t.Fatalf("product = %v", m)
	}
	if ps := m["prices"].([]any); len(ps) != 2 || ps[1].(map[string]any)["currency"] != "EUR" || ps[1].(map[string]any)["amount_cents"] != 4500.0 {
		t.Fatalf("prices = %v", ps)
	}
	if uc := h.lic.useCases(); len(uc) != 0 {
		t.Fatalf("the licensing port was changed besides Commerce: %v", uc)
	}

	// No slug: created with a generated one.
	h.json(h.admin(http.MethodPost, "/v1/admin/products", `{"name":"Drums","type":"sample_pack","price_cents":900,"currency":"EUR","description":"Kits","components":[],"active":false,"prices":[{"currency":"USD","amount_cents":1000}]}`), 201)
	in = h.com.last("CreateProduct")[0].(ports.ProductInput)
	if in.Slug != "" || in.Policy != nil || in.Description != "Kits" || *in.Active || len(in.Prices) != 1 || in.Prices[0].AmountCents != 1000 {
		t.Fatalf("create input = %+v", in)
	}

	// The old validations hold on this path too.
	for name, tc := range map[string]struct{ body, detail string }{
		"unknown field":     {strings.Replace(goodProduct, `"slug"`, `"colour":"red","slug"`, 1), `unknown field "colour"`},
		"plugin w/o policy": {`{"slug":"s","name":"n","type":"plugin","price_cents":1,"currency":"USD"}`, "policy is required"},
		"policy field":      {strings.Replace(goodProduct, `"grace_period_s":120`, `"duration_s":5`, 1), "policy.grace_period_s is required"},
		"no name":           {`{"type":"sample_pack","price_cents":1,"currency":"USD"}`, "name is required"},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(h.com.callList())
			p := h.problem(h.admin(http.MethodPost, "/v1/admin/products", tc.body), 400, "VALIDATION_FAILED")
			if !strings.Contains(p.Detail, tc.detail) || len(h.com.callList()) != before {
				t.Fatalf("detail %q (want %q), calls %v", p.Detail, tc.detail, h.com.callList())
			}
		})
	}
	h.com.fail("PutProduct", errs.Conflict, catalog.CodeSlugTaken)
	h.problem(h.admin(http.MethodPost, "/v1/admin/products", goodProduct), 409, catalog.CodeSlugTaken)
}

// Without a stored policy (a sample pack) the policy is null; a failing read answers the policy as
// sent rather than failing a product that was stored.
func TestAdminProductPolicyFallbacks(t *testing.T) {
	h := newCommerceHarness(t)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/products", goodProduct), 201)
	if pol := m["policy"].(map[string]any); pol["max_activations"] != 2.0 || pol["heartbeat_interval_s"] != 60.0 {
		t.Fatalf("policy = %v", pol)
	}
	m = h.json(h.admin(http.MethodGet, "/v1/admin/products/synth", ""), 200)
	if m["policy"] != nil {
		t.Fatalf("policy of a product licensing does not know = %v", m["policy"])
	}
}

func TestAdminProductReads(t *testing.T) {
	h := policyHarness(t)
	m := h.json(h.admin(http.MethodGet, "/v1/admin/products?q=syn&type=plugin&limit=5&cursor=c1", ""), 200)
	if m["next_cursor"] != "cur-2" || len(m["items"].([]any)) != 2 {
		t.Fatalf("page = %v", m)
	}
	item := m["items"].([]any)[1].(map[string]any)
	wantKeys(t, item, "id", "slug", "name", "description", "type", "price_cents", "currency", "prices", "components", "active", "created_at", "updated_at")
	if item["active"] != false {
		t.Fatalf("admins see inactive products: %v", item)
	}
	q := h.com.last("AdminListProducts")[0].(ports.CatalogQuery)
	if q.Query != "syn" || q.Type != "plugin" || q.Limit != 5 || q.Cursor != "c1" {
		t.Fatalf("query = %+v", q)
	}
	h.problem(h.admin(http.MethodGet, "/v1/admin/products?type=vst", ""), 400, catalog.CodeInvalidProductType)
	h.problem(h.admin(http.MethodGet, "/v1/admin/products?limit=0", ""), 400, "VALIDATION_FAILED")

	m = h.json(h.admin(http.MethodGet, "/v1/admin/products/synth", ""), 200)
	vs := m["versions"].([]any)
	if len(vs) != 2 || m["policy"] == nil {
		t.Fatalf("detail = %v", m)
	}
	// Newest first by semantic version: 1.10.0 before 1.0.0.
	v0 := vs[0].(map[string]any)
	wantKeys(t, v0, "id", "product_id", "version", "platform", "release_notes", "min_protocol_version", "storage_key", "file_name",
		"file_size_bytes", "sha256", "published", "is_latest", "created_at", "updated_at")
	if v0["version"] != "1.10.0" || vs[1].(map[string]any)["storage_key"] != "products/synth/ver_1/Synth-1.0.0.dmg" || v0["sha256"] != nil {
		t.Fatalf("versions = %v", vs)
	}
	h.com.fail("AdminGetProduct", errs.NotFound, catalog.CodeProductNotFound)
	h.problem(h.admin(http.MethodGet, "/v1/admin/products/nope", ""), 404, catalog.CodeProductNotFound)
}

func TestAdminProductPatchDeletePublish(t *testing.T) {
	h := policyHarness(t)
	// A patch keeps what it does not name: the whole product goes to UpdateProduct.
	m := h.json(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"description":"New words","price_cents":5900}`), 200)
	if m["slug"] != "synth" || m["policy"] == nil {
		t.Fatalf("answer = %v", m)
	}
	args := h.com.last("UpdateProduct")
	in := args[1].(ports.ProductInput)
	if args[0] != "synth" || in.Slug != "synth" || in.Name != "Synth" || in.Description != "New words" || in.Type != "plugin" ||
		in.Currency != "USD" || in.PriceCents != 5900 || in.Active == nil || !*in.Active || in.Policy != nil {
		t.Fatalf("input = %+v", in)
	}
	// The EUR price stays; the old USD entry gives way to the new primary price.
	if len(in.Prices) != 1 || in.Prices[0] != (catalog.Price{Currency: "EUR", AmountCents: 4500}) {
		t.Fatalf("prices = %+v", in.Prices)
	}
	h.json(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"prices":null,"active":false,"components":["a"],"policy":{"max_activations":5,"first_activation":"owner_approval","heartbeat_interval_s":1,"grace_period_s":2}}`), 200)
	in = h.com.last("UpdateProduct")[1].(ports.ProductInput)
	if in.Prices != nil || *in.Active || len(in.Components) != 1 || in.Policy == nil || in.Policy.MaxActivations != 5 || in.PriceCents != 4900 {
		t.Fatalf("input = %+v", in)
	}
	before := h.com.count("UpdateProduct")
	h.problem(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"name":null}`), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"slug":"other"}`), 400, "VALIDATION_FAILED")
	p := h.problem(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"policy":{"max_activations":"x"}}`), 400, "VALIDATION_FAILED")
	if !strings.Contains(p.Detail, "policy.max_activations") {
		t.Fatalf("detail = %q", p.Detail)
	}
	p = h.problem(h.admin(http.MethodPatch, "/v1/admin/products/synth", `{"policy":{"max_activations":1,"colour":1}}`), 400, "VALIDATION_FAILED")
	if !strings.Contains(p.Detail, "colour") {
		t.Fatalf("detail = %q", p.Detail)
	}
	if h.com.count("UpdateProduct") != before {
		t.Fatal("an invalid patch reached the port")
	}

	res := h.admin(http.MethodDelete, "/v1/admin/products/synth", "")
	if res.status != 204 || len(res.body) != 0 || h.com.last("DeleteProduct")[0] != "synth" {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	h.com.fail("DeleteProduct", errs.Conflict, catalog.CodeProductInUse)
	h.problem(h.admin(http.MethodDelete, "/v1/admin/products/synth", ""), 409, catalog.CodeProductInUse)

	m = h.json(h.admin(http.MethodPost, "/v1/admin/products/synth/unpublish", ""), 200)
	if m["active"] != false || h.com.last("SetProductActive")[1] != false {
		t.Fatalf("unpublish: %v", m)
	}
	m = h.json(h.admin(http.MethodPost, "/v1/admin/products/synth/publish", `{}`), 200)
	if m["active"] != true || h.com.last("SetProductActive")[1] != true {
		t.Fatalf("publish: %v", m)
	}
}

func TestAdminVersions(t *testing.T) {
	h := newCommerceHarness(t)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/products/synth/versions", `{"version":"1.0.0","platform":"mac","release_notes":"first","storage_key":"k","file_name":"S.dmg"}`), 201)
	if m["storage_key"] != "products/synth/ver_1/Synth-1.0.0.dmg" {
		t.Fatalf("version = %v", m)
	}
	args := h.com.last("CreateVersion")
	in := args[1].(ports.VersionInput)
	if args[0] != "synth" || in.Version != "1.0.0" || in.Platform != "mac" || in.ReleaseNotes != "first" || in.StorageKey != "k" ||
		in.FileName != "S.dmg" || in.MinProtocolVersion != 1 || in.Published == nil || *in.Published {
		t.Fatalf("input = %+v", in)
	}
	h.problem(h.admin(http.MethodPost, "/v1/admin/products/synth/versions", `{"platform":"mac"}`), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodPost, "/v1/admin/products/synth/versions", `{"version":"1","platform":"mac","published":null}`), 400, "VALIDATION_FAILED")
	h.com.fail("CreateVersion", errs.Conflict, catalog.CodeVersionExists)
	h.problem(h.admin(http.MethodPost, "/v1/admin/products/synth/versions", `{"version":"1.0.0","platform":"mac"}`), 409, catalog.CodeVersionExists)

	// PATCH keeps the stored fields it does not name.
	h.json(h.admin(http.MethodPatch, "/v1/admin/products/synth/versions/ver_1", `{"published":false,"release_notes":null}`), 200)
	args = h.com.last("UpdateVersion")
	in = args[2].(ports.VersionInput)
	if args[0] != "synth" || args[1] != "ver_1" || in.Version != "1.0.0" || in.Platform != "mac" || in.ReleaseNotes != "" ||
		in.StorageKey != "products/synth/ver_1/Synth-1.0.0.dmg" || *in.Published {
		t.Fatalf("input = %+v", in)
	}
	h.problem(h.admin(http.MethodPatch, "/v1/admin/products/synth/versions/ver_x", `{}`), 404, catalog.CodeVersionNotFound)

	res := h.admin(http.MethodDelete, "/v1/admin/products/synth/versions/ver_1", "")
	if res.status != 204 || h.com.last("DeleteVersion")[1] != "ver_1" {
		t.Fatalf("delete: %d", res.status)
	}
	h.com.fail("DeleteVersion", errs.NotFound, catalog.CodeVersionNotFound)
	h.problem(h.admin(http.MethodDelete, "/v1/admin/products/synth/versions/ver_9", ""), 404, catalog.CodeVersionNotFound)
}

func TestPublicCatalog(t *testing.T) {
	h := newCommerceHarness(t)
	m := h.json(h.get("/v1/catalog/products?q=syn&type=plugin&limit=3"), 200)
	if m["next_cursor"] != nil {
		t.Fatalf("page = %v", m)
	}
	p := m["items"].([]any)[0].(map[string]any)
	wantKeys(t, p, "slug", "name", "description", "type", "price_cents", "currency", "prices", "components")
	if q := h.com.last("ListCatalog")[0].(ports.CatalogQuery); q.Query != "syn" || q.Type != "plugin" || q.Limit != 3 {
		t.Fatalf("query = %+v", q)
	}
	h.problem(h.get("/v1/catalog/products?type=x"), 400, catalog.CodeInvalidProductType)

	m = h.json(h.get("/v1/catalog/products/synth"), 200)
	if m["slug"] != "synth" || m["price_cents"] != 4900.0 {
		t.Fatalf("product = %v", m)
	}
	h.com.fail("CatalogProduct", errs.NotFound, catalog.CodeProductNotFound)
	h.problem(h.get("/v1/catalog/products/gone"), 404, catalog.CodeProductNotFound)

	res := h.get("/v1/catalog/products/synth/versions?platform=MAC")
	m = h.json(res, 200)
	if strings.Contains(string(res.body), "storage_key") || strings.Contains(string(res.body), "products/synth") {
		t.Fatalf("a storage key reached the public: %s", res.body)
	}
	items := m["items"].([]any)
	v := items[0].(map[string]any)
	wantKeys(t, v, "id", "version", "platform", "release_notes", "min_protocol_version", "file_name", "file_size_bytes", "sha256",
		"downloadable", "is_latest", "released_at")
	if len(items) != 2 || v["version"] != "1.10.0" || v["downloadable"] != true || items[1].(map[string]any)["sha256"] != strings.Repeat("ab", 32) {
		t.Fatalf("versions = %v", items)
	}
	if args := h.com.last("CatalogVersions"); args[0] != "synth" || args[1] != "mac" {
		t.Fatalf("args = %v", args)
	}
	h.problem(h.get("/v1/catalog/products/synth/versions?platform=amiga"), 400, catalog.CodeInvalidPlatform)

	res = h.get("/v1/catalog/products/synth/versions/latest")
	m = h.json(res, 200)
	if len(m["items"].([]any)) != 1 || strings.Contains(string(res.body), "storage_key") {
		t.Fatalf("latest = %s", res.body)
	}
	if args := h.com.last("LatestVersions"); args[0] != "synth" || args[1] != "" {
		t.Fatalf("args = %v", args)
	}
	h.problem(h.get("/v1/catalog/products/synth/versions/latest?platform=dos"), 400, catalog.CodeInvalidPlatform)
}

// The public routes share the per-address limit of the device API (their own counter).
func TestPublicRateLimit(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.RateLimits.PerAddress.Max = 2 })
	h.json(h.get("/v1/catalog/products"), 200)
	h.json(h.get("/v1/catalog/products/synth"), 200)
	res := h.get("/v1/catalog/products")
	h.problem(res, 429, "RATE_LIMITED")
	if res.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// The webhooks are not limited: a provider's burst must get through.
	h.com.outcome = ports.PaymentOutcome{Outcome: "ignored"}
	hs := newCommerceHarness(t, func(d *Deps) {
		d.Config.RateLimits.PerAddress.Max = 1
		d.StripeWebhook = func([]byte, string) (ports.PaymentEventIn, error) {
			return ports.PaymentEventIn{Provider: "stripe", EventID: "evt", Type: ports.PaymentIgnored}, nil
		}
	})
	for range 3 {
		hs.json(hs.call(http.MethodPost, "/v1/webhooks/stripe", `{}`, map[string]string{"Stripe-Signature": "t=1,v1=x"}), 200)
	}
}
