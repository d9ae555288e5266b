package web

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// fakeOrders is the slice of ports.Commerce the order pages use; the embedded nil interface makes
// any other call fail the test loudly.
type fakeOrders struct {
	ports.Commerce
	view      ports.OrderView
	versions  map[string][]catalog.Version
	names     map[string]string
	linkErr   error
	lastCmd   ports.DownloadCommand
	downloads int
}

const orderToken = "tok-ord_1"

func (f *fakeOrders) OrderByAccessToken(_ context.Context, id, token string) (ports.OrderView, error) {
	if id != "ord_1" || token != orderToken {
		return ports.OrderView{}, errs.E(errs.NotFound, order.CodeOrderNotFound, "no such order")
	}
	return f.view, nil
}

func (f *fakeOrders) LatestVersions(_ context.Context, slug, _ string) ([]catalog.Version, error) {
	vs, ok := f.versions[slug]
	if !ok {
		return nil, errs.E(errs.NotFound, catalog.CodeProductNotFound, "not in the catalog")
	}
	return vs, nil
}

func (f *fakeOrders) CatalogProduct(_ context.Context, slug string) (catalog.Product, error) {
	if n, ok := f.names[slug]; ok {
		return catalog.Product{Slug: slug, Name: n}, nil
	}
	return catalog.Product{}, errs.E(errs.NotFound, catalog.CodeProductNotFound, "no")
}

func (f *fakeOrders) DownloadLink(_ context.Context, cmd ports.DownloadCommand) (ports.DownloadLink, error) {
	f.downloads++
	f.lastCmd = cmd
	if f.linkErr != nil {
		return ports.DownloadLink{}, f.linkErr
	}
	if cmd.OrderID != "ord_1" || cmd.AccessToken != orderToken {
		return ports.DownloadLink{}, errs.E(errs.NotFound, order.CodeOrderNotFound, "no such order")
	}
	return ports.DownloadLink{URL: "https://files.example.test/v1/files/signed?x=1", ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func orderSetup(t *testing.T) (*fiber.App, *fakeOrders) {
	t.Helper()
	unlocked := time.Date(2026, 11, 29, 12, 5, 0, 0, time.UTC)
	f := &fakeOrders{
		view: ports.OrderView{
			Order: order.Order{ID: "ord_1", Number: 42, CustomerEmail: "buyer@example.com", Currency: "USD", Status: order.StatusFulfilled,
				SubtotalCents: 14800, DiscountCents: 1480, TotalCents: 13320, CouponCode: "SPRING", ReviewReason: "internal: amount mismatch",
				PaymentRef: "pi_secret", CreatedAt: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)},
			Reference: "LS-000042",
			Receipt: []ports.ReceiptLine{
				{Product: "synth", ProductName: "Synth <Pro>", ProductType: "plugin", Quantity: 2, UnitPriceCents: 4900, LineTotalCents: 9800},
				{Product: "bundle", ProductName: "Studio Bundle", ProductType: "bundle", Quantity: 1, UnitPriceCents: 5000, LineTotalCents: 5000},
			},
			Entitlements: []order.Entitlement{
				{Product: "synth", LicenseID: "lic_1", Status: order.EntitlementActive, UnlockedAt: &unlocked},
				{Product: "drums", ViaBundle: "bundle", Status: order.EntitlementActive, UnlockedAt: &unlocked},
				{Product: "old", ViaBundle: "bundle", Status: order.EntitlementActive, UnlockedAt: &unlocked},
				{Product: "locked", Status: order.EntitlementActive},
				{Product: "gone", Status: order.EntitlementRevoked, UnlockedAt: &unlocked},
			},
		},
		versions: map[string][]catalog.Version{
			"synth": {
				{Version: "1.2.0", Platform: catalog.PlatformWin, StorageKey: "k1", SizeBytes: 45_100_000},
				{Version: "1.2.0", Platform: catalog.PlatformMac, StorageKey: "k2", SizeBytes: 52_000_000},
				{Version: "0.9.0", Platform: catalog.PlatformLinux}, // no file
			},
			"drums": {{Version: "2.0.0", Platform: catalog.PlatformAll, StorageKey: "k3", SizeBytes: 1_500}},
		},
		names: map[string]string{"drums": "Drum Kits"},
	}
	p, err := New(Deps{Licensing: &fakeClaims{}, Commerce: f})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	p.Register(app)
	return app, f
}

var hrefs = regexp.MustCompile(`<form method="get" action="([^"]+)">\s*<input type="hidden" name="token" value="([^"]+)">\s*(?:<input type="hidden" name="platform" value="([^"]+)">)?`)

func TestOrderPage(t *testing.T) {
	app, f := orderSetup(t)
	res, body := do(t, app, httptest.NewRequest(http.MethodGet, "/orders/ord_1?token="+orderToken, nil))
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	for _, want := range []string{"Order LS-000042", "Delivered", "Synth &lt;Pro&gt;", "2 × 49.00 USD = 98.00 USD", "148.00 USD",
		"−14.80 USD", "SPRING", "133.20 USD", "Windows · 1.2.0 · 45.1 MB", "macOS · 1.2.0 · 52.0 MB", "Drum Kits",
		"All platforms · 2.0.0 · 1.5 KB", "license keys were sent to buyer@example.com"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, secret := range []string{"lic_1", "amount mismatch", "pi_secret", "Linux", "locked", "gone"} {
		if strings.Contains(body, secret) {
			t.Errorf("page shows %q", secret)
		}
	}
	if res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("the order page lacks the security headers")
	}
	// One button per product and platform; a product no longer in the catalog gets one button.
	got := hrefs.FindAllStringSubmatch(body, -1)
	var urls []string
	for _, m := range got {
		u := html.UnescapeString(m[1]) + "?token=" + html.UnescapeString(m[2])
		if m[3] != "" {
			u += "&platform=" + m[3]
		}
		urls = append(urls, u)
	}
	want := []string{
		"ord_1/download/synth?token=" + orderToken + "&platform=win",
		"ord_1/download/synth?token=" + orderToken + "&platform=mac",
		"ord_1/download/drums?token=" + orderToken + "&platform=all",
		"ord_1/download/old?token=" + orderToken,
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("buttons:\n%s\nwant\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}

	// Following a button (relative to /orders/ord_1) redirects to a fresh link.
	res, _ = do(t, app, httptest.NewRequest(http.MethodGet, "/orders/"+want[1], nil))
	if res.StatusCode != 302 || res.Header.Get("Location") != "https://files.example.test/v1/files/signed?x=1" {
		t.Fatalf("download: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if f.lastCmd.Product != "synth" || f.lastCmd.Platform != "mac" || f.lastCmd.OrderID != "ord_1" || f.lastCmd.AccessToken != orderToken || f.lastCmd.RequestAddr == "" {
		t.Fatalf("command = %+v", f.lastCmd)
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the redirect to a bearer link may be cached or leak a referrer")
	}
}

func TestOrderPageStates(t *testing.T) {
	app, f := orderSetup(t)
	ents := f.view.Entitlements
	for _, tc := range []struct {
		status  order.Status
		want    string
		buttons bool
	}{
		{order.StatusPending, "Awaiting payment", false},
		{order.StatusPaid, "being prepared", true},
		{order.StatusRefunded, "no longer available", false},
		{order.StatusDisputed, "suspended", false},
	} {
		f.view.Order.Status = tc.status
		f.view.Entitlements = ents
		if tc.status == order.StatusPending {
			f.view.Entitlements = nil
		}
		res, body := do(t, app, httptest.NewRequest(http.MethodGet, "/orders/ord_1?token="+orderToken, nil))
		if res.StatusCode != 200 || !strings.Contains(body, tc.want) || strings.Contains(body, "<form") != tc.buttons {
			t.Fatalf("%s: status %d, buttons %v:\n%s", tc.status, res.StatusCode, strings.Contains(body, "<form"), body)
		}
	}
	for _, path := range []string{"/orders/ord_1", "/orders/ord_1?token=wrong", "/orders/ord_2?token=" + orderToken} {
		res, body := do(t, app, httptest.NewRequest(http.MethodGet, path, nil))
		if res.StatusCode != 404 || !strings.Contains(body, "Order not found") {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
}

func TestOrderDownloadErrors(t *testing.T) {
	app, f := orderSetup(t)
	for _, tc := range []struct {
		path string
		err  error
		code int
	}{
		{"/orders/ord_1/download/synth", nil, 404},
		{"/orders/ord_1/download/synth?token=wrong", nil, 404},
		{"/orders/ord_1/download/synth?token=" + orderToken + "&platform=amiga", nil, 400},
		{"/orders/ord_1/download/synth?token=" + orderToken, errs.E(errs.Forbidden, order.CodeDownloadForbidden, "no right"), 403},
		{"/orders/ord_1/download/synth?token=" + orderToken, errs.E(errs.NotFound, order.CodeDownloadNotAvailable, "no file"), 404},
		{"/orders/ord_1/download/synth?token=" + orderToken, errs.Internalf("disk on fire at /var/secret"), 503},
	} {
		f.linkErr = tc.err
		res, body := do(t, app, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if res.StatusCode != tc.code || res.Header.Get("Location") != "" || !strings.Contains(body, "<html") || strings.Contains(body, "secret") {
			t.Fatalf("%s (%v): %d %s", tc.path, tc.err, res.StatusCode, body)
		}
	}
	if f.downloads != 4 {
		t.Fatalf("DownloadLink called %d times, want 4", f.downloads)
	}
}

// Without Commerce the order pages are not served.
func TestOrderPagesNeedCommerce(t *testing.T) {
	app, _ := setup(t)
	res, _ := do(t, app, httptest.NewRequest(http.MethodGet, "/orders/ord_1?token="+orderToken, nil))
	if res.StatusCode != 404 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// Both pages are in docs/openapi.yaml.
func TestOrderPagesDocumented(t *testing.T) {
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"\n  /orders/{id}:\n    get:", "\n  /orders/{id}/download/{product}:\n    get:"} {
		if !strings.Contains(string(spec), path) {
			t.Errorf("docs/openapi.yaml lacks %q", path)
		}
	}
}
