package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func TestAdminCoupons(t *testing.T) {
	h := newCommerceHarness(t)
	m := h.json(h.admin(http.MethodPost, "/v1/admin/coupons", `{"code":"spring","kind":"percent","percent_off":20,"starts_at":"2026-12-01T00:00:00+01:00","max_redemptions":10,"notes":"n"}`), 201)
	wantKeys(t, m, "id", "code", "kind", "percent_off", "amount_off_cents", "currency", "starts_at", "ends_at", "max_redemptions",
		"redemptions", "remaining", "active", "status", "notes", "created_at", "updated_at")
	if m["percent_off"] != 20.0 || m["amount_off_cents"] != nil || m["remaining"] != 7.0 || m["status"] != "redeemable" {
		t.Fatalf("coupon = %v", m)
	}
	in := h.com.last("CreateCoupon")[0].(ports.CouponInput)
	if in.Code != "spring" || in.Kind != "percent" || in.PercentOff != 20 || *in.MaxRedemptions != 10 || in.Notes != "n" ||
		!in.StartsAt.Equal(time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)) || in.EndsAt != nil || in.Active != nil {
		t.Fatalf("input = %+v", in)
	}
	h.problem(h.admin(http.MethodPost, "/v1/admin/coupons", `{"kind":"full"}`), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodPost, "/v1/admin/coupons", `{"code":"X","kind":"full","ends_at":"soon"}`), 400, "VALIDATION_FAILED")
	h.com.fail("CreateCoupon", errs.Conflict, order.CodeCouponExists)
	h.problem(h.admin(http.MethodPost, "/v1/admin/coupons", `{"code":"X","kind":"full"}`), 409, order.CodeCouponExists)

	m = h.json(h.admin(http.MethodGet, "/v1/admin/coupons?limit=10", ""), 200)
	if m["next_cursor"] != "cur-2" || len(m["items"].([]any)) != 1 || h.com.last("ListCoupons")[0].(ports.Page).Limit != 10 {
		t.Fatalf("page = %v", m)
	}
	h.json(h.admin(http.MethodGet, "/v1/admin/coupons/cpn_1", ""), 200)
	h.com.fail("GetCoupon", errs.NotFound, order.CodeCouponNotFound)
	h.problem(h.admin(http.MethodGet, "/v1/admin/coupons/cpn_x", ""), 404, order.CodeCouponNotFound)
	h.com.errs = map[string]error{}

	// PATCH applies to the stored coupon; null clears the limit and the start.
	h.json(h.admin(http.MethodPatch, "/v1/admin/coupons/cpn_1", `{"max_redemptions":null,"active":false,"ends_at":"2027-01-01T00:00:00Z"}`), 200)
	args := h.com.last("UpdateCoupon")
	in = args[1].(ports.CouponInput)
	if args[0] != "cpn_1" || in.Code != "SPRING" || in.Kind != "percent" || in.PercentOff != 20 || in.MaxRedemptions != nil ||
		*in.Active || in.Notes != "spring sale" || !in.EndsAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("input = %+v", in)
	}
	h.json(h.admin(http.MethodPatch, "/v1/admin/coupons/cpn_1", `{}`), 200)
	in = h.com.last("UpdateCoupon")[1].(ports.CouponInput)
	if in.MaxRedemptions == nil || *in.MaxRedemptions != 10 || !*in.Active {
		t.Fatalf("an empty patch changed the coupon: %+v", in)
	}
	h.problem(h.admin(http.MethodPatch, "/v1/admin/coupons/cpn_1", `{"code":null}`), 400, "VALIDATION_FAILED")

	res := h.admin(http.MethodDelete, "/v1/admin/coupons/cpn_1", "")
	if res.status != 204 || h.com.last("DeleteCoupon")[0] != "cpn_1" {
		t.Fatalf("delete %d", res.status)
	}
	h.com.fail("DeleteCoupon", errs.Conflict, order.CodeCouponInUse)
	h.problem(h.admin(http.MethodDelete, "/v1/admin/coupons/cpn_1", ""), 409, order.CodeCouponInUse)
}

func TestAdminOrders(t *testing.T) {
	h := newCommerceHarness(t)
	m := h.json(h.admin(http.MethodGet, "/v1/admin/orders?status=paid&email=Buyer@Example.com&in_review=true&limit=20&cursor=c", ""), 200)
	f := h.com.last("ListOrders")[0].(ports.OrderFilter)
	if f.Status != order.StatusPaid || f.CustomerEmail != "buyer@example.com" || !f.InReview || f.Limit != 20 || f.Cursor != "c" {
		t.Fatalf("filter = %+v", f)
	}
	item := m["items"].([]any)[0].(map[string]any)
	if _, ok := item["entitlements"]; ok {
		t.Fatalf("list items carry entitlements: %v", item)
	}
	if item["review_reason"] != "amount mismatch: secret detail" || item["in_review"] != true || item["reference"] != "LS-000123" {
		t.Fatalf("admin item = %v", item)
	}
	h.problem(h.admin(http.MethodGet, "/v1/admin/orders?status=shipped", ""), 400, "VALIDATION_FAILED")
	h.problem(h.admin(http.MethodGet, "/v1/admin/orders?in_review=maybe", ""), 400, "VALIDATION_FAILED")

	m = h.json(h.admin(http.MethodGet, "/v1/admin/orders/ord_1", ""), 200)
	wantKeys(t, m, "id", "reference", "status", "email", "currency", "subtotal_cents", "discount_cents", "total_cents", "coupon_code",
		"created_at", "paid_at", "fulfilled_at", "refunded_at", "lines", "delivery", "entitlements", "customer_id", "source", "coupon_id",
		"in_review", "review_reason", "status_reason", "payment_provider", "payment_ref", "checkout_session_id", "paid_amount_cents",
		"paid_currency", "updated_at")
	if m["payment_ref"] != "pi_123" || len(m["entitlements"].([]any)) != 1 {
		t.Fatalf("order = %v", m)
	}
	h.com.fail("GetOrder", errs.NotFound, order.CodeOrderNotFound)
	h.problem(h.admin(http.MethodGet, "/v1/admin/orders/ord_x", ""), 404, order.CodeOrderNotFound)

	// An operator's order: Checkout with Admin, no payment page.
	res := h.admin(http.MethodPost, "/v1/admin/orders", `{"items":[{"product":"synth","quantity":2}],"email":"x@example.com","currency":"eur","coupon":" SUPPORT "}`)
	m = h.json(res, 201)
	cmd := h.com.last("Checkout")[0].(ports.CheckoutCommand)
	if !cmd.Admin || cmd.CustomerEmail != "x@example.com" || cmd.Currency != "EUR" || cmd.CouponCode != "SUPPORT" ||
		len(cmd.Lines) != 1 || cmd.Lines[0] != (ports.OrderLineInput{Product: "synth", Quantity: 2}) {
		t.Fatalf("command = %+v", cmd)
	}
	if m["checkout_url"] != nil || m["order"].(map[string]any)["source"] != "checkout" || m["order_url"] != "/orders/ord_1?token=tok-ord_1" {
		t.Fatalf("answer = %v", m)
	}
	h.problem(h.admin(http.MethodPost, "/v1/admin/orders", `{"items":[{"product":"synth"}],"email":"x@example.com","success_url":"https://x"}`), 400, "VALIDATION_FAILED")

	h.json(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/mark-paid", `{"payment_ref":"wire-42"}`), 200)
	if args := h.com.last("MarkPaid"); args[0] != "ord_1" || args[1] != "wire-42" {
		t.Fatalf("mark-paid args = %v", args)
	}
	h.json(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/mark-paid", ``), 200)
	if args := h.com.last("MarkPaid"); args[1] != "" {
		t.Fatalf("mark-paid args = %v", args)
	}
	h.com.fail("MarkPaid", errs.Conflict, order.CodeOrderNotPayable)
	h.problem(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/mark-paid", `{}`), 409, order.CodeOrderNotPayable)

	h.json(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/refund", `{"reason":"asked","refund_payment":true}`), 200)
	if args := h.com.last("Refund"); args[0] != "ord_1" || args[1] != "asked" || args[2] != true {
		t.Fatalf("refund args = %v", args)
	}
	h.json(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/refund", `{}`), 200)
	if args := h.com.last("Refund"); args[1] != "" || args[2] != false {
		t.Fatalf("refund args = %v", args)
	}
	h.problem(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/refund", `{"refund_payment":"yes"}`), 400, "VALIDATION_FAILED")
	h.com.fail("Refund", errs.Conflict, order.CodeOrderNotRefundable)
	h.problem(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/refund", `{}`), 409, order.CodeOrderNotRefundable)

	h.json(h.admin(http.MethodPost, "/v1/admin/orders/ord_1/release", ``), 200)
	if h.com.last("ReleaseReview")[0] != "ord_1" {
		t.Fatal("release not called")
	}
}

func TestCheckout(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.PublicURL = "https://shop.example.test/" })
	body := `{"items":[{"product":"synth","quantity":2},{"product":"drums"}],"email":" Buyer@Example.com ","currency":"usd","coupon":"SPRING","success_url":"https://shop.example.test/thanks","cancel_url":"http://shop.example.test/cart"}`
	res := h.post("/v1/checkout", body)
	m := h.json(res, 201)
	wantKeys(t, m, "order", "checkout_url", "order_url")
	if m["checkout_url"] != "https://checkout.stripe.test/c/pay/cs_123" || m["order_url"] != "https://shop.example.test/orders/ord_1?token=tok-ord_1" {
		t.Fatalf("answer = %v", m)
	}
	o := m["order"].(map[string]any)
	wantKeys(t, o, "id", "reference", "status", "email", "currency", "subtotal_cents", "discount_cents", "total_cents", "coupon_code",
		"created_at", "paid_at", "fulfilled_at", "refunded_at", "lines", "delivery")
	if o["status"] != "pending" || o["total_cents"] != 7840.0 || strings.Contains(string(res.body), "secret detail") || strings.Contains(string(res.body), "pi_123") {
		t.Fatalf("customer order = %s", res.body)
	}
	cmd := h.com.last("Checkout")[0].(ports.CheckoutCommand)
	if cmd.Admin || cmd.CustomerEmail != "Buyer@Example.com" || cmd.Currency != "USD" || cmd.CouponCode != "SPRING" ||
		cmd.SuccessURL != "https://shop.example.test/thanks" || cmd.CancelURL != "http://shop.example.test/cart" ||
		len(cmd.Lines) != 2 || cmd.Lines[1] != (ports.OrderLineInput{Product: "drums", Quantity: 1}) {
		t.Fatalf("command = %+v", cmd)
	}
	// A coupon that covers everything: nothing to pay.
	h.com.checkout.CheckoutURL = ""
	m = h.json(h.post("/v1/checkout", `{"items":[{"product":"synth","quantity":1}],"email":"a@example.com"}`), 201)
	if m["checkout_url"] != nil {
		t.Fatalf("checkout_url = %v", m["checkout_url"])
	}

	before := h.com.count("Checkout")
	for name, tc := range map[string]struct{ body, code string }{
		"unknown field":  {`{"items":[{"product":"synth"}],"email":"a@example.com","gift":true}`, "VALIDATION_FAILED"},
		"unknown nested": {`{"items":[{"product":"synth","colour":"red"}],"email":"a@example.com"}`, "VALIDATION_FAILED"},
		"no items":       {`{"items":[],"email":"a@example.com"}`, "VALIDATION_FAILED"},
		"no email":       {`{"items":[{"product":"synth"}]}`, "VALIDATION_FAILED"},
		"no product":     {`{"items":[{"quantity":1}],"email":"a@example.com"}`, "VALIDATION_FAILED"},
		"quantity 0":     {`{"items":[{"product":"synth","quantity":0}],"email":"a@example.com"}`, order.CodeInvalidQuantity},
		"quantity 101":   {`{"items":[{"product":"synth","quantity":101}],"email":"a@example.com"}`, order.CodeInvalidQuantity},
		"fraction":       {`{"items":[{"product":"synth","quantity":1.5}],"email":"a@example.com"}`, "VALIDATION_FAILED"},
		"relative url":   {`{"items":[{"product":"synth"}],"email":"a@example.com","success_url":"/thanks"}`, "INVALID_URL"},
		"ftp url":        {`{"items":[{"product":"synth"}],"email":"a@example.com","cancel_url":"ftp://x/y"}`, "INVALID_URL"},
		"userinfo url":   {`{"items":[{"product":"synth"}],"email":"a@example.com","cancel_url":"https://u:p@x/y"}`, "INVALID_URL"},
		"not json":       {`items=1`, "VALIDATION_FAILED"},
	} {
		t.Run(name, func(t *testing.T) {
			h.problem(h.post("/v1/checkout", tc.body), 400, tc.code)
		})
	}
	if h.com.count("Checkout") != before {
		t.Fatal("an invalid checkout reached the port")
	}
	h.com.fail("Checkout", errs.Unavailable, order.CodePaymentsUnavailable)
	h.problem(h.post("/v1/checkout", `{"items":[{"product":"synth"}],"email":"a@example.com"}`), 503, order.CodePaymentsUnavailable)
	h.com.fail("Checkout", errs.Invalid, order.CodeProductNotAvailable)
	h.problem(h.post("/v1/checkout", `{"items":[{"product":"gone"}],"email":"a@example.com"}`), 400, order.CodeProductNotAvailable)
}

func TestCustomerOrder(t *testing.T) {
	h := newCommerceHarness(t)
	res := h.get("/v1/orders/ord_1?token=tok-ord_1")
	m := h.json(res, 200)
	wantKeys(t, m, "id", "reference", "status", "email", "currency", "subtotal_cents", "discount_cents", "total_cents", "coupon_code",
		"created_at", "paid_at", "fulfilled_at", "refunded_at", "lines", "delivery", "entitlements")
	for _, secret := range []string{"amount mismatch", "review", "pi_123", "cs_123", "stripe"} {
		if strings.Contains(string(res.body), secret) {
			t.Fatalf("the customer sees %q: %s", secret, res.body)
		}
	}
	if m["paid_at"] != "2026-11-29T12:01:00Z" || m["reference"] != "LS-000123" || m["coupon_code"] != "SPRING" {
		t.Fatalf("order = %v", m)
	}
	line := m["lines"].([]any)[0].(map[string]any)
	if line["line_total_cents"] != 9800.0 || line["quantity"] != 2.0 || line["product_name"] != "Synth" {
		t.Fatalf("line = %v", line)
	}
	d := m["delivery"].(map[string]any)
	if d["plugin_count"] != 2.0 || d["license_count"] != 1.0 || d["ready_for_delivery"] != true {
		t.Fatalf("delivery = %v", d)
	}
	ent := m["entitlements"].([]any)[0].(map[string]any)
	wantKeys(t, ent, "product", "via_bundle", "status", "license_id", "downloads_unlocked")
	if ent["license_id"] != "lic_9" || ent["downloads_unlocked"] != true || ent["via_bundle"] != nil {
		t.Fatalf("entitlement = %v", ent)
	}
	// A wrong or missing token is the same 404 as a missing order.
	h.problem(h.get("/v1/orders/ord_1?token=tok-ord_2"), 404, order.CodeOrderNotFound)
	h.problem(h.get("/v1/orders/ord_1"), 404, order.CodeOrderNotFound)
	h.problem(h.get("/v1/orders/ord_2?token=tok-ord_2"), 404, order.CodeOrderNotFound)
}

func TestDownloads(t *testing.T) {
	h := newCommerceHarness(t)
	res := h.call(http.MethodPost, "/v1/orders/ord_1/downloads", `{"token":"tok-ord_1","product":"synth","platform":"mac","version_id":"ver_2"}`,
		map[string]string{"X-Forwarded-For": "203.0.113.9"})
	m := h.json(res, 200)
	wantKeys(t, m, "url", "expires_at", "file_name", "version", "platform", "size_bytes")
	if m["url"] != "http://127.0.0.1:8080/v1/files/tok" || m["expires_at"] != "2026-11-29T13:00:00Z" || m["size_bytes"] != 2345.0 {
		t.Fatalf("link = %v", m)
	}
	cmd := h.com.last("DownloadLink")[0].(ports.DownloadCommand)
	if cmd.OrderID != "ord_1" || cmd.AccessToken != "tok-ord_1" || cmd.LicenseKey != "" || cmd.Product != "synth" ||
		cmd.Platform != "mac" || cmd.VersionID != "ver_2" || cmd.RequestAddr != "203.0.113.9" {
		t.Fatalf("command = %+v", cmd)
	}
	h.problem(h.post("/v1/orders/ord_1/downloads", `{"product":"synth"}`), 400, "VALIDATION_FAILED")
	h.problem(h.post("/v1/orders/ord_1/downloads", `{"token":"t"}`), 400, "VALIDATION_FAILED")
	h.problem(h.post("/v1/orders/ord_1/downloads", `{"token":"t","product":"synth","platform":"beos"}`), 400, catalog.CodeInvalidPlatform)
	h.problem(h.post("/v1/orders/ord_1/downloads", `{"token":"t","product":"synth","license_key":"k"}`), 400, "VALIDATION_FAILED")

	h.json(h.post("/v1/downloads", `{"license_key":"VST-AAAAA-BBBBB-CCCCC-DDDDD","product":"synth"}`), 200)
	cmd = h.com.last("DownloadLink")[0].(ports.DownloadCommand)
	if cmd.OrderID != "" || cmd.AccessToken != "" || cmd.LicenseKey != "VST-AAAAA-BBBBB-CCCCC-DDDDD" || cmd.Platform != "" || cmd.VersionID != "" {
		t.Fatalf("command = %+v", cmd)
	}
	h.problem(h.post("/v1/downloads", `{"product":"synth"}`), 400, "VALIDATION_FAILED")
	h.com.fail("DownloadLink", errs.Forbidden, order.CodeDownloadForbidden)
	h.problem(h.post("/v1/downloads", `{"license_key":"k","product":"synth"}`), 403, order.CodeDownloadForbidden)
	h.com.fail("DownloadLink", errs.NotFound, order.CodeDownloadNotAvailable)
	h.problem(h.post("/v1/orders/ord_1/downloads", `{"token":"t","product":"synth"}`), 404, order.CodeDownloadNotAvailable)
}
