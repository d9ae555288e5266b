package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// fakeCommerce is a ports.Commerce that records every call with its arguments and answers canned
// values, or the error set for the method in errs.
type fakeCommerce struct {
	mu    sync.Mutex
	calls []string
	args  map[string][]any // method → arguments of its last call
	errs  map[string]error // method → the error it answers

	product  catalog.Product
	versions []catalog.Version
	coupon   ports.CouponView
	view     ports.OrderView
	checkout ports.CheckoutResult
	link     ports.DownloadLink
	outcome  ports.PaymentOutcome
	next     string // next cursor of list answers

	// uploaded is what UploadAsset read from its reader; uploadErr the reader's error.
	uploaded  []byte
	uploadSum string
	uploadErr error
	onRead    func() // called after each read of the upload body that returned bytes
	skipRead  bool   // UploadAsset answers its error without reading

	// seen remembers payment event ids, to answer a redelivery as HandlePayment does.
	seen map[string]bool
}

var _ ports.Commerce = (*fakeCommerce)(nil)

var (
	tPaid      = t0.Add(time.Minute)
	tFulfilled = t0.Add(2 * time.Minute)
)

func newFakeCommerce() *fakeCommerce {
	f := &fakeCommerce{args: map[string][]any{}, errs: map[string]error{}, seen: map[string]bool{}, next: "cur-2"}
	f.product = catalog.Product{
		ID: "prd_1", Slug: "synth", Name: "Synth", Description: "A synth", Type: catalog.TypePlugin, Currency: "USD",
		Prices: []catalog.Price{{Currency: "USD", AmountCents: 4900}, {Currency: "EUR", AmountCents: 4500}},
		Active: true, CreatedAt: t0, UpdatedAt: t0,
	}
	f.versions = []catalog.Version{
		{ID: "ver_1", ProductID: "prd_1", Version: "1.0.0", Platform: catalog.PlatformMac, ReleaseNotes: "first",
			MinProtocolVersion: 1, StorageKey: "products/synth/ver_1/Synth-1.0.0.dmg", FileName: "Synth-1.0.0.dmg",
			SizeBytes: 1234, SHA256: strings.Repeat("ab", 32), Published: true, CreatedAt: t0, UpdatedAt: t0},
		{ID: "ver_2", ProductID: "prd_1", Version: "1.10.0", Platform: catalog.PlatformMac, MinProtocolVersion: 1,
			StorageKey: "products/synth/ver_2/Synth-1.10.0.dmg", FileName: "Synth-1.10.0.dmg", SizeBytes: 2345,
			Published: true, IsLatest: true, CreatedAt: t0, UpdatedAt: t0},
	}
	max := 10
	remaining := 7
	f.coupon = ports.CouponView{Coupon: order.Coupon{
		ID: "cpn_1", Code: "SPRING", Kind: order.CouponPercent, PercentOff: 20, MaxRedemptions: &max, Redemptions: 3,
		Active: true, Notes: "spring sale", CreatedAt: t0, UpdatedAt: t0,
	}, Status: "redeemable", Remaining: &remaining}
	paid, fulfilled := tPaid, tFulfilled
	unlocked := tFulfilled
	f.view = ports.OrderView{
		Order: order.Order{
			ID: "ord_1", Number: 123, CustomerEmail: "buyer@example.com", Source: order.SourceCheckout, Currency: "USD",
			Lines:         []order.Line{{Product: "synth", ProductName: "Synth", ProductType: "plugin", Quantity: 2, UnitPriceCents: 4900}},
			SubtotalCents: 9800, DiscountCents: 1960, TotalCents: 7840, CouponID: "cpn_1", CouponCode: "SPRING",
			Status: order.StatusFulfilled, ReviewReason: "amount mismatch: secret detail", PaymentProvider: "stripe",
			PaymentRef: "pi_123", CheckoutSessionID: "cs_123", PaidAmountCents: 7840, PaidCurrency: "USD",
			PaidAt: &paid, FulfilledAt: &fulfilled, CreatedAt: t0, UpdatedAt: tFulfilled,
		},
		Reference: "LS-000123",
		Receipt:   []ports.ReceiptLine{{Product: "synth", ProductName: "Synth", ProductType: "plugin", Quantity: 2, UnitPriceCents: 4900, LineTotalCents: 9800}},
		Summary:   ports.DeliverySummary{PluginCount: 2, LicenseCount: 1, DownloadCount: 1, ReadyForDelivery: true},
		Entitlements: []order.Entitlement{{ID: "ent_1", OrderID: "ord_1", Product: "synth", CustomerEmail: "buyer@example.com",
			LicenseID: "lic_9", Status: order.EntitlementActive, UnlockedAt: &unlocked, CreatedAt: tFulfilled}},
	}
	pending := f.view
	pending.Order.Status = order.StatusPending
	pending.Order.PaidAt, pending.Order.FulfilledAt = nil, nil
	pending.Entitlements = nil
	f.checkout = ports.CheckoutResult{Order: pending, CheckoutURL: "https://checkout.stripe.test/c/pay/cs_123", SessionID: "cs_123"}
	f.link = ports.DownloadLink{URL: "http://127.0.0.1:8080/v1/files/tok", ExpiresAt: t0.Add(time.Hour), FileName: "Synth-1.10.0.dmg",
		Version: "1.10.0", Platform: "mac", SizeBytes: 2345}
	return f
}

// call records a call and returns the error set for it.
func (f *fakeCommerce) call(name string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.args[name] = args
	return f.errs[name]
}

func (f *fakeCommerce) fail(method string, kind errs.Kind, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = errs.E(kind, code, "failed: "+code)
}

// last returns the arguments of the last call of method (nil when it was not called).
func (f *fakeCommerce) last(method string) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.args[method]
}

func (f *fakeCommerce) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == method {
			n++
		}
	}
	return n
}

func (f *fakeCommerce) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeCommerce) CreateProduct(_ context.Context, in ports.ProductInput) (catalog.Product, error) {
	return f.product, f.call("CreateProduct", in)
}
func (f *fakeCommerce) UpdateProduct(_ context.Context, slug string, in ports.ProductInput) (catalog.Product, error) {
	return f.product, f.call("UpdateProduct", slug, in)
}
func (f *fakeCommerce) PutProduct(_ context.Context, in ports.ProductInput) (catalog.Product, error) {
	return f.product, f.call("PutProduct", in)
}
func (f *fakeCommerce) SetProductActive(_ context.Context, slug string, active bool) (catalog.Product, error) {
	p := f.product
	p.Active = active
	return p, f.call("SetProductActive", slug, active)
}
func (f *fakeCommerce) DeleteProduct(_ context.Context, slug string) error {
	return f.call("DeleteProduct", slug)
}
func (f *fakeCommerce) AdminListProducts(_ context.Context, q ports.CatalogQuery) ([]catalog.Product, string, error) {
	inactive := f.product
	inactive.Slug, inactive.Active = "old-synth", false
	return []catalog.Product{f.product, inactive}, f.next, f.call("AdminListProducts", q)
}
func (f *fakeCommerce) AdminGetProduct(_ context.Context, slug string) (catalog.Product, []catalog.Version, error) {
	return f.product, append([]catalog.Version(nil), f.versions...), f.call("AdminGetProduct", slug)
}
func (f *fakeCommerce) CreateVersion(_ context.Context, slug string, in ports.VersionInput) (catalog.Version, error) {
	return f.versions[0], f.call("CreateVersion", slug, in)
}
func (f *fakeCommerce) UpdateVersion(_ context.Context, slug, id string, in ports.VersionInput) (catalog.Version, error) {
	return f.versions[0], f.call("UpdateVersion", slug, id, in)
}
func (f *fakeCommerce) DeleteVersion(_ context.Context, slug, id string) error {
	return f.call("DeleteVersion", slug, id)
}

// UploadAsset reads the whole reader, as a store does, and records what it got.
func (f *fakeCommerce) UploadAsset(_ context.Context, slug, id, fileName string, r io.Reader, size int64) (catalog.Version, error) {
	if f.skipRead {
		return catalog.Version{}, f.call("UploadAsset", slug, id, fileName, size)
	}
	h := sha256.New()
	var buf bytes.Buffer
	if f.onRead != nil {
		r = notifyingReader{r: r, fn: f.onRead}
	}
	_, rerr := io.Copy(io.MultiWriter(h, &buf), r)
	f.mu.Lock()
	f.uploaded, f.uploadSum, f.uploadErr = buf.Bytes(), hex.EncodeToString(h.Sum(nil)), rerr
	f.mu.Unlock()
	if err := f.call("UploadAsset", slug, id, fileName, size); err != nil {
		return catalog.Version{}, err
	}
	if rerr != nil {
		return catalog.Version{}, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "storing the asset failed", rerr)
	}
	if int64(buf.Len()) != size {
		return catalog.Version{}, errs.E(errs.Invalid, "ASSET_SIZE_MISMATCH", "size mismatch")
	}
	v := f.versions[0]
	v.SizeBytes, v.SHA256, v.FileName = size, hex.EncodeToString(h.Sum(nil)), fileName
	return v, nil
}

type notifyingReader struct {
	r  io.Reader
	fn func()
}

func (n notifyingReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if k > 0 {
		n.fn()
	}
	return k, err
}

func (f *fakeCommerce) ListCatalog(_ context.Context, q ports.CatalogQuery) ([]catalog.Product, string, error) {
	return []catalog.Product{f.product}, "", f.call("ListCatalog", q)
}
func (f *fakeCommerce) CatalogProduct(_ context.Context, slug string) (catalog.Product, error) {
	return f.product, f.call("CatalogProduct", slug)
}
func (f *fakeCommerce) CatalogVersions(_ context.Context, slug, platform string) ([]catalog.Version, error) {
	return []catalog.Version{f.versions[1], f.versions[0]}, f.call("CatalogVersions", slug, platform)
}
func (f *fakeCommerce) LatestVersions(_ context.Context, slug, platform string) ([]catalog.Version, error) {
	return []catalog.Version{f.versions[1]}, f.call("LatestVersions", slug, platform)
}
func (f *fakeCommerce) CreateCoupon(_ context.Context, in ports.CouponInput) (ports.CouponView, error) {
	return f.coupon, f.call("CreateCoupon", in)
}
func (f *fakeCommerce) UpdateCoupon(_ context.Context, id string, in ports.CouponInput) (ports.CouponView, error) {
	return f.coupon, f.call("UpdateCoupon", id, in)
}
func (f *fakeCommerce) GetCoupon(_ context.Context, id string) (ports.CouponView, error) {
	return f.coupon, f.call("GetCoupon", id)
}
func (f *fakeCommerce) ListCoupons(_ context.Context, p ports.Page) ([]ports.CouponView, string, error) {
	return []ports.CouponView{f.coupon}, f.next, f.call("ListCoupons", p)
}
func (f *fakeCommerce) DeleteCoupon(_ context.Context, id string) error {
	return f.call("DeleteCoupon", id)
}
func (f *fakeCommerce) Checkout(_ context.Context, cmd ports.CheckoutCommand) (ports.CheckoutResult, error) {
	res := f.checkout
	if cmd.Admin {
		res.CheckoutURL, res.SessionID = "", ""
	}
	return res, f.call("Checkout", cmd)
}
func (f *fakeCommerce) GetOrder(_ context.Context, id string) (ports.OrderView, error) {
	return f.view, f.call("GetOrder", id)
}
func (f *fakeCommerce) ListOrders(_ context.Context, of ports.OrderFilter) ([]ports.OrderView, string, error) {
	v := f.view
	v.Entitlements = nil
	return []ports.OrderView{v}, f.next, f.call("ListOrders", of)
}

// OrderByAccessToken accepts the token AccessToken gives for the id, like the service.
func (f *fakeCommerce) OrderByAccessToken(_ context.Context, id, token string) (ports.OrderView, error) {
	if err := f.call("OrderByAccessToken", id, token); err != nil {
		return ports.OrderView{}, err
	}
	if id != f.view.Order.ID || token != f.AccessToken(id) {
		return ports.OrderView{}, errs.E(errs.NotFound, order.CodeOrderNotFound, "no such order")
	}
	return f.view, nil
}
func (f *fakeCommerce) AccessToken(orderID string) string { return "tok-" + orderID }
func (f *fakeCommerce) MarkPaid(_ context.Context, id, ref string) (ports.OrderView, error) {
	return f.view, f.call("MarkPaid", id, ref)
}
func (f *fakeCommerce) Refund(_ context.Context, id, reason string, refundPayment bool) (ports.OrderView, error) {
	return f.view, f.call("Refund", id, reason, refundPayment)
}
func (f *fakeCommerce) ReleaseReview(_ context.Context, id string) (ports.OrderView, error) {
	return f.view, f.call("ReleaseReview", id)
}

// HandlePayment answers a redelivered event id as a duplicate, like the service.
func (f *fakeCommerce) HandlePayment(_ context.Context, ev ports.PaymentEventIn) (ports.PaymentOutcome, error) {
	if err := f.call("HandlePayment", ev); err != nil {
		return ports.PaymentOutcome{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ev.Provider + "/" + ev.EventID
	out := f.outcome
	out.Duplicate = f.seen[key]
	f.seen[key] = true
	return out, nil
}
func (f *fakeCommerce) ResumeFulfilment(context.Context) (int, error) {
	return 0, f.call("ResumeFulfilment")
}
func (f *fakeCommerce) DownloadLink(_ context.Context, cmd ports.DownloadCommand) (ports.DownloadLink, error) {
	return f.link, f.call("DownloadLink", cmd)
}

// --- the commerce harness ---

// commerceHarness is the app with a fake Commerce (and the licensing double for product policies).
type commerceHarness struct {
	*harness
	com *fakeCommerce
}

func newCommerceHarness(t testing.TB, mutate ...func(*Deps)) *commerceHarness {
	t.Helper()
	com := newFakeCommerce()
	h := newHarness(t, append([]func(*Deps){func(d *Deps) { d.Commerce = com }}, mutate...)...)
	return &commerceHarness{harness: h, com: com}
}

// call sends a request with optional headers (no admin token unless given).
func (h *commerceHarness) call(method, path, body string, header map[string]string) response {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, path: req.URL.Path}
}

func (h *commerceHarness) get(path string) response { return h.call(http.MethodGet, path, "", nil) }
func (h *commerceHarness) post(path, body string) response {
	return h.call(http.MethodPost, path, body, nil)
}
