package httpapi

import (
	"net/http"
	"testing"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func TestMeOrders(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodGet, "/v1/me/orders", "", nil), 200)
	items := m["items"].([]any)
	if len(items) != 2 || m["next_cursor"] != nil {
		t.Fatalf("orders = %v", m)
	}
	first := items[0].(map[string]any)
	if first["id"] != "ord_a1" || first["reference"] != "LS-000003" || items[1].(map[string]any)["id"] != "ord_a0" {
		t.Fatalf("orders = %v", items)
	}
	if _, ok := first["entitlements"]; ok {
		t.Fatal("list items carry entitlements")
	}
	if _, ok := first["review_reason"]; ok {
		t.Fatal("the customer sees the operator's fields")
	}
	if first["delivery"].(map[string]any)["ready_for_delivery"] != true || len(first["lines"].([]any)) != 1 {
		t.Fatalf("receipt and summary = %v", first)
	}
	if f := h.orders.last("ListOrders")[0].(ports.OrderFilter); f.CustomerEmail != alice {
		t.Fatalf("filter = %+v", f)
	}

	// Cursor pagination.
	m = h.json(h.req(tok, http.MethodGet, "/v1/me/orders?limit=1", "", nil), 200)
	if len(m["items"].([]any)) != 1 || m["next_cursor"] != "at-1" {
		t.Fatalf("page 1 = %v", m)
	}
	m = h.json(h.req(tok, http.MethodGet, "/v1/me/orders?limit=1&cursor=at-1", "", nil), 200)
	if m["items"].([]any)[0].(map[string]any)["id"] != "ord_a0" || m["next_cursor"] != nil {
		t.Fatalf("page 2 = %v", m)
	}
	h.problem(h.req(tok, http.MethodGet, "/v1/me/orders?limit=0", "", nil), 400, errs.CodeValidationFailed)

	// A store that ignored the filter would still not show bob's order.
	h.orders.ignoreFilter = true
	m = h.json(h.req(tok, http.MethodGet, "/v1/me/orders", "", nil), 200)
	if items := m["items"].([]any); len(items) != 2 {
		t.Fatalf("orders = %v", items)
	}
	for _, it := range m["items"].([]any) {
		if it.(map[string]any)["email"] != alice {
			t.Fatalf("foreign order listed: %v", it)
		}
	}
}

func TestMeOrder(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodGet, "/v1/me/orders/ord_a1", "", nil), 200)
	ents := m["entitlements"].([]any)
	if m["id"] != "ord_a1" || len(ents) != 3 || ents[0].(map[string]any)["license_id"] != "lic_a" {
		t.Fatalf("order = %v", m)
	}
	h.problem(h.req(tok, http.MethodGet, "/v1/me/orders/ord_b1", "", nil), 404, order.CodeOrderNotFound)
	// A store's plain NOT_FOUND is answered with the order code, like someone else's order.
	h.orders.fail("GetOrder", errs.NotFound, errs.CodeNotFound)
	h.problem(h.req(tok, http.MethodGet, "/v1/me/orders/ord_a1", "", nil), 404, order.CodeOrderNotFound)
	h.orders.fail("GetOrder", errs.Unavailable, errs.CodeUnavailable)
	h.problem(h.req(tok, http.MethodGet, "/v1/me/orders/ord_a1", "", nil), 503, errs.CodeUnavailable)
}

func TestMeDownloads(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodGet, "/v1/me/downloads", "", nil), 200)
	items := m["items"].([]any)
	// synth and the bundle's kicks from ord_a1; not "locked" (never unlocked), not the refunded
	// order's pads, not bob's drums.
	if len(items) != 2 {
		t.Fatalf("downloads = %v", m)
	}
	synth, kicks := items[0].(map[string]any), items[1].(map[string]any)
	wantKeys(t, synth, "product", "product_name", "order_id", "order_reference", "via_bundle", "versions")
	if synth["product"] != "synth" || synth["product_name"] != "Synth" || synth["order_id"] != "ord_a1" || synth["order_reference"] != "LS-000003" || synth["via_bundle"] != nil {
		t.Fatalf("synth = %v", synth)
	}
	vs := synth["versions"].([]any)
	v := vs[0].(map[string]any)
	if len(vs) != 1 || v["version"] != "1.10.0" || v["platform"] != "mac" || v["downloadable"] != true {
		t.Fatalf("versions = %v", vs)
	}
	if _, ok := v["storage_key"]; ok {
		t.Fatal("a storage key reached the customer")
	}
	if kicks["product"] != "kicks" || kicks["via_bundle"] != "starter" {
		t.Fatalf("kicks = %v", kicks)
	}
	// kicks is no line of the receipt: its name comes from the catalog.
	if args := h.orders.last("CatalogProduct"); len(args) != 1 || args[0] != "kicks" {
		t.Fatalf("CatalogProduct args = %v", args)
	}

	// Every page of orders is walked.
	h.orders.orders = append(h.orders.orders, h.orders.orders...) // same ids again: each product once
	h.json(h.req(tok, http.MethodGet, "/v1/me/downloads", "", nil), 200)
	if f := h.orders.last("ListOrders")[0].(ports.OrderFilter); f.CustomerEmail != alice || f.Limit != orderPageSize {
		t.Fatalf("filter = %+v", f)
	}

	h.orders.fail("LatestVersions", errs.NotFound, "PRODUCT_NOT_FOUND")
	m = h.json(h.req(tok, http.MethodGet, "/v1/me/downloads", "", nil), 200)
	if vs := m["items"].([]any)[0].(map[string]any)["versions"].([]any); len(vs) != 0 {
		t.Fatalf("versions of a product gone from the catalog = %v", vs)
	}
	h.orders.fail("LatestVersions", errs.Unavailable, errs.CodeUnavailable)
	h.problem(h.req(tok, http.MethodGet, "/v1/me/downloads", "", nil), 503, errs.CodeUnavailable)
}

func TestMeDownloadLink(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	m := h.json(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_a1","product":"synth","platform":"mac"}`, nil), 200)
	if m["url"] != "http://127.0.0.1:8080/v1/files/tok" || m["version"] != "1.10.0" {
		t.Fatalf("link = %v", m)
	}
	cmd := h.orders.last("DownloadLink")[0].(ports.DownloadCommand)
	if cmd.OrderID != "ord_a1" || cmd.AccessToken != "tok-ord_a1" || cmd.Product != "synth" || cmd.Platform != "mac" || cmd.LicenseKey != "" || cmd.RequestAddr != "0.0.0.0" {
		t.Fatalf("command = %+v", cmd)
	}
	h.json(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_a1","product":"synth","version_id":"ver_1"}`, nil), 200)
	if cmd := h.orders.last("DownloadLink")[0].(ports.DownloadCommand); cmd.VersionID != "ver_1" {
		t.Fatalf("command = %+v", cmd)
	}
	h.problem(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"product":"synth"}`, nil), 400, errs.CodeValidationFailed)
	h.problem(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_a1"}`, nil), 400, errs.CodeValidationFailed)
	h.problem(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_a1","product":"synth","platform":"amiga"}`, nil), 400, "INVALID_PLATFORM")
	h.orders.fail("DownloadLink", errs.Forbidden, order.CodeDownloadForbidden)
	h.problem(h.req(tok, http.MethodPost, "/v1/me/downloads", `{"order_id":"ord_a0","product":"pads"}`, nil), 403, order.CodeDownloadForbidden)
}
