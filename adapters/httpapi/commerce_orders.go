package httpapi

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Coupons, orders, checkout, downloads and the signed file links.

// --- coupons ---

type couponBody struct {
	ID             string  `json:"id"`
	Code           string  `json:"code"`
	Kind           string  `json:"kind"`
	PercentOff     *int    `json:"percent_off"`
	AmountOffCents *int64  `json:"amount_off_cents"`
	Currency       *string `json:"currency"`
	StartsAt       *string `json:"starts_at"`
	EndsAt         *string `json:"ends_at"`
	MaxRedemptions *int    `json:"max_redemptions"`
	Redemptions    int     `json:"redemptions"`
	Remaining      *int    `json:"remaining"`
	Active         bool    `json:"active"`
	Status         string  `json:"status"`
	Notes          string  `json:"notes"`
	CreatedAt      *string `json:"created_at"`
	UpdatedAt      *string `json:"updated_at"`
}

func couponOf(v ports.CouponView) couponBody {
	c := v.Coupon
	b := couponBody{
		ID: c.ID, Code: c.Code, Kind: string(c.Kind), Currency: nullable(c.Currency),
		StartsAt: rfc3339p(c.StartsAt), EndsAt: rfc3339p(c.EndsAt), MaxRedemptions: c.MaxRedemptions,
		Redemptions: c.Redemptions, Remaining: v.Remaining, Active: c.Active, Status: v.Status, Notes: c.Notes,
		CreatedAt: rfc3339(c.CreatedAt), UpdatedAt: rfc3339(c.UpdatedAt),
	}
	switch c.Kind {
	case order.CouponPercent:
		b.PercentOff = &c.PercentOff
	case order.CouponFixed:
		b.AmountOffCents = &c.AmountOffCents
	}
	return b
}

// couponRequest is POST /v1/admin/coupons and, every field optional, PATCH /v1/admin/coupons/{id}.
// Times are RFC 3339; null clears starts_at, ends_at and max_redemptions.
type couponRequest struct {
	Code           optional[string] `json:"code"`
	Kind           optional[string] `json:"kind"`
	PercentOff     optional[int]    `json:"percent_off"`
	AmountOffCents optional[int64]  `json:"amount_off_cents"`
	Currency       optional[string] `json:"currency"`
	StartsAt       optional[string] `json:"starts_at"`
	EndsAt         optional[string] `json:"ends_at"`
	MaxRedemptions optional[int]    `json:"max_redemptions"`
	Active         optional[bool]   `json:"active"`
	Notes          optional[string] `json:"notes"`
}

// timeField applies an optional time to the current one.
func timeField(name string, o optional[string], cur *time.Time) (*time.Time, error) {
	switch {
	case !o.set:
		return cur, nil
	case o.null:
		return nil, nil
	}
	t, err := parseTime(name, o.v)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// input applies the request to cur (the zero coupon on create).
func (r couponRequest) input(cur order.Coupon) (ports.CouponInput, error) {
	for _, err := range []error{r.Code.notNull("code"), r.Kind.notNull("kind"), r.Active.notNull("active")} {
		if err != nil {
			return ports.CouponInput{}, err
		}
	}
	in := ports.CouponInput{
		Code:           r.Code.value(cur.Code),
		Kind:           r.Kind.value(string(cur.Kind)),
		PercentOff:     r.PercentOff.clearable(cur.PercentOff),
		AmountOffCents: r.AmountOffCents.clearable(cur.AmountOffCents),
		Currency:       r.Currency.clearable(cur.Currency),
		Notes:          r.Notes.clearable(cur.Notes),
		MaxRedemptions: cur.MaxRedemptions,
	}
	var err error
	if in.StartsAt, err = timeField("starts_at", r.StartsAt, cur.StartsAt); err != nil {
		return in, err
	}
	if in.EndsAt, err = timeField("ends_at", r.EndsAt, cur.EndsAt); err != nil {
		return in, err
	}
	if r.MaxRedemptions.set {
		in.MaxRedemptions = nil
		if !r.MaxRedemptions.null {
			n := r.MaxRedemptions.v
			in.MaxRedemptions = &n
		}
	}
	if r.Active.set {
		v := r.Active.v
		in.Active = &v
	} else if cur.ID != "" {
		v := cur.Active
		in.Active = &v
	}
	return in, nil
}

// adminListCoupons: GET /v1/admin/coupons?limit=&cursor=.
func (a *api) adminListCoupons(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	items, next, err := a.deps.Commerce.ListCoupons(c.UserContext(), p)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, couponOf)
}

// adminCreateCoupon: POST /v1/admin/coupons → 201 the coupon.
func (a *api) adminCreateCoupon(c *fiber.Ctx) error {
	var req couponRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if err := required(field{"code", req.Code.set}, field{"kind", req.Kind.set}); err != nil {
		return err
	}
	in, err := req.input(order.Coupon{})
	if err != nil {
		return err
	}
	v, err := a.deps.Commerce.CreateCoupon(c.UserContext(), in)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, couponOf(v))
}

// adminGetCoupon: GET /v1/admin/coupons/{id}.
func (a *api) adminGetCoupon(c *fiber.Ctx) error {
	v, err := a.deps.Commerce.GetCoupon(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, couponOf(v))
}

// adminUpdateCoupon: PATCH /v1/admin/coupons/{id} → 200 the coupon. The patch is applied to the
// stored coupon and the whole of it is sent, so absent fields keep their values.
func (a *api) adminUpdateCoupon(c *fiber.Ctx) error {
	var req couponRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	id := param(c, "id")
	cur, err := a.deps.Commerce.GetCoupon(c.UserContext(), id)
	if err != nil {
		return err
	}
	in, err := req.input(cur.Coupon)
	if err != nil {
		return err
	}
	v, err := a.deps.Commerce.UpdateCoupon(c.UserContext(), id, in)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, couponOf(v))
}

// adminDeleteCoupon: DELETE /v1/admin/coupons/{id} → 204 (COUPON_IN_USE, 409, once redeemed).
func (a *api) adminDeleteCoupon(c *fiber.Ctx) error {
	if err := a.deps.Commerce.DeleteCoupon(c.UserContext(), param(c, "id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// --- orders ---

type orderLineBody struct {
	Product        string `json:"product"`
	ProductName    string `json:"product_name"`
	ProductType    string `json:"product_type"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	LineTotalCents int64  `json:"line_total_cents"`
}

type deliveryBody struct {
	PluginCount      int  `json:"plugin_count"`
	SamplePackCount  int  `json:"sample_pack_count"`
	BundleCount      int  `json:"bundle_count"`
	LicenseCount     int  `json:"license_count"`
	DownloadCount    int  `json:"download_count"`
	ReadyForDelivery bool `json:"ready_for_delivery"`
}

type entitlementBody struct {
	Product           string  `json:"product"`
	ViaBundle         *string `json:"via_bundle"`
	Status            string  `json:"status"`
	LicenseID         *string `json:"license_id"`
	DownloadsUnlocked bool    `json:"downloads_unlocked"`
}

// customerOrderBody is an order as its buyer sees it: no review reason, no payment references.
type customerOrderBody struct {
	ID            string             `json:"id"`
	Reference     string             `json:"reference"`
	Status        string             `json:"status"`
	Email         string             `json:"email"`
	Currency      string             `json:"currency"`
	SubtotalCents int64              `json:"subtotal_cents"`
	DiscountCents int64              `json:"discount_cents"`
	TotalCents    int64              `json:"total_cents"`
	CouponCode    *string            `json:"coupon_code"`
	CreatedAt     *string            `json:"created_at"`
	PaidAt        *string            `json:"paid_at"`
	FulfilledAt   *string            `json:"fulfilled_at"`
	RefundedAt    *string            `json:"refunded_at"`
	Lines         []orderLineBody    `json:"lines"`
	Delivery      deliveryBody       `json:"delivery"`
	Entitlements  *[]entitlementBody `json:"entitlements,omitempty"`
}

// adminOrderBody adds what only operators see.
type adminOrderBody struct {
	customerOrderBody
	CustomerID        *string `json:"customer_id"`
	Source            string  `json:"source"`
	CouponID          *string `json:"coupon_id"`
	InReview          bool    `json:"in_review"`
	ReviewReason      *string `json:"review_reason"`
	StatusReason      *string `json:"status_reason"`
	PaymentProvider   *string `json:"payment_provider"`
	PaymentRef        *string `json:"payment_ref"`
	CheckoutSessionID *string `json:"checkout_session_id"`
	PaidAmountCents   int64   `json:"paid_amount_cents"`
	PaidCurrency      *string `json:"paid_currency"`
	UpdatedAt         *string `json:"updated_at"`
}

// customerOrderOf renders v; entitlements only when withEntitlements (single-order reads, where the
// port fills them).
func customerOrderOf(v ports.OrderView, withEntitlements bool) customerOrderBody {
	o := v.Order
	b := customerOrderBody{
		ID: o.ID, Reference: v.Reference, Status: string(o.Status), Email: o.CustomerEmail, Currency: o.Currency,
		SubtotalCents: o.SubtotalCents, DiscountCents: o.DiscountCents, TotalCents: o.TotalCents,
		CouponCode: nullable(o.CouponCode), CreatedAt: rfc3339(o.CreatedAt), PaidAt: rfc3339p(o.PaidAt),
		FulfilledAt: rfc3339p(o.FulfilledAt), RefundedAt: rfc3339p(o.RefundedAt),
		Lines: make([]orderLineBody, 0, len(v.Receipt)),
		Delivery: deliveryBody{
			PluginCount: v.Summary.PluginCount, SamplePackCount: v.Summary.SamplePackCount, BundleCount: v.Summary.BundleCount,
			LicenseCount: v.Summary.LicenseCount, DownloadCount: v.Summary.DownloadCount, ReadyForDelivery: v.Summary.ReadyForDelivery,
		},
	}
	if b.Reference == "" && o.Number > 0 {
		b.Reference = order.Reference(o.Number)
	}
	for _, l := range v.Receipt {
		b.Lines = append(b.Lines, orderLineBody{
			Product: l.Product, ProductName: l.ProductName, ProductType: l.ProductType, Quantity: l.Quantity,
			UnitPriceCents: l.UnitPriceCents, LineTotalCents: l.LineTotalCents,
		})
	}
	if withEntitlements {
		ents := make([]entitlementBody, 0, len(v.Entitlements))
		for _, e := range v.Entitlements {
			ents = append(ents, entitlementBody{
				Product: e.Product, ViaBundle: nullable(e.ViaBundle), Status: string(e.Status),
				LicenseID: nullable(e.LicenseID), DownloadsUnlocked: e.UnlockedAt != nil && e.Status == order.EntitlementActive,
			})
		}
		b.Entitlements = &ents
	}
	return b
}

func adminOrderOf(withEntitlements bool) func(ports.OrderView) adminOrderBody {
	return func(v ports.OrderView) adminOrderBody {
		o := v.Order
		return adminOrderBody{
			customerOrderBody: customerOrderOf(v, withEntitlements),
			CustomerID:        nullable(o.CustomerID), Source: string(o.Source), CouponID: nullable(o.CouponID),
			InReview: o.ReviewReason != "", ReviewReason: nullable(o.ReviewReason), StatusReason: nullable(o.StatusReason),
			PaymentProvider: nullable(o.PaymentProvider), PaymentRef: nullable(o.PaymentRef),
			CheckoutSessionID: nullable(o.CheckoutSessionID), PaidAmountCents: o.PaidAmountCents,
			PaidCurrency: nullable(o.PaidCurrency), UpdatedAt: rfc3339(o.UpdatedAt),
		}
	}
}

// adminListOrders: GET /v1/admin/orders?status=&email=&in_review=&limit=&cursor= (newest first).
func (a *api) adminListOrders(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	f := ports.OrderFilter{CustomerEmail: strings.ToLower(strings.TrimSpace(query(c, "email"))), Page: p}
	if s := c.Query("status"); s != "" {
		if f.Status, err = order.ParseStatus(s); err != nil {
			return err
		}
	}
	if f.InReview, err = queryBool(c, "in_review"); err != nil {
		return err
	}
	items, next, err := a.deps.Commerce.ListOrders(c.UserContext(), f)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, adminOrderOf(false))
}

// adminGetOrder: GET /v1/admin/orders/{id} with its entitlements.
func (a *api) adminGetOrder(c *fiber.Ctx) error {
	v, err := a.deps.Commerce.GetOrder(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, adminOrderOf(true)(v))
}

type orderItemRequest struct {
	Product  *string `json:"product"`
	Quantity *int    `json:"quantity"`
}

// checkoutRequest is POST /v1/checkout; POST /v1/admin/orders takes the same minus the return URLs.
type checkoutRequest struct {
	Items      []orderItemRequest `json:"items"`
	Email      *string            `json:"email"`
	Currency   *string            `json:"currency"`
	Coupon     *string            `json:"coupon"`
	SuccessURL *string            `json:"success_url"`
	CancelURL  *string            `json:"cancel_url"`
}

type adminOrderRequest struct {
	Items    []orderItemRequest `json:"items"`
	Email    *string            `json:"email"`
	Currency *string            `json:"currency"`
	Coupon   *string            `json:"coupon"`
}

// command checks the request's shape (the use case checks the rest: products, currency, coupon).
func (r checkoutRequest) command() (ports.CheckoutCommand, error) {
	if len(r.Items) == 0 {
		return ports.CheckoutCommand{}, errs.Validation("items must hold at least one item")
	}
	if len(r.Items) > 100 {
		return ports.CheckoutCommand{}, errs.Validation("items must hold at most 100 items")
	}
	if r.Email == nil || strings.TrimSpace(*r.Email) == "" {
		return ports.CheckoutCommand{}, errs.Validation("email is required")
	}
	cmd := ports.CheckoutCommand{CustomerEmail: strings.TrimSpace(*r.Email)}
	for i, it := range r.Items {
		if it.Product == nil || *it.Product == "" {
			return cmd, errs.Validation("items[" + strconv.Itoa(i) + "].product is required")
		}
		q := 1
		if it.Quantity != nil {
			q = *it.Quantity
		}
		if q < 1 || q > 100 {
			return cmd, errs.E(errs.Invalid, order.CodeInvalidQuantity, "items["+strconv.Itoa(i)+"].quantity must be from 1 to 100")
		}
		cmd.Lines = append(cmd.Lines, ports.OrderLineInput{Product: *it.Product, Quantity: q})
	}
	if r.Currency != nil {
		cmd.Currency = strings.ToUpper(strings.TrimSpace(*r.Currency))
	}
	if r.Coupon != nil {
		cmd.CouponCode = strings.TrimSpace(*r.Coupon)
	}
	if r.SuccessURL != nil {
		if err := absoluteHTTPURL("success_url", *r.SuccessURL); err != nil {
			return cmd, err
		}
		cmd.SuccessURL = *r.SuccessURL
	}
	if r.CancelURL != nil {
		if err := absoluteHTTPURL("cancel_url", *r.CancelURL); err != nil {
			return cmd, err
		}
		cmd.CancelURL = *r.CancelURL
	}
	return cmd, nil
}

// orderURL is the buyer's link to the order page (the token proves the right to see it).
func (a *api) orderURL(orderID string) string {
	return strings.TrimSuffix(a.cfg.PublicURL, "/") + "/orders/" + url.PathEscape(orderID) +
		"?token=" + url.QueryEscape(a.deps.Commerce.AccessToken(orderID))
}

type checkoutBody[O any] struct {
	Order       O       `json:"order"`
	CheckoutURL *string `json:"checkout_url"`
	OrderURL    string  `json:"order_url"`
}

// checkout: POST /v1/checkout → 201 the pending order, where to pay (null when a coupon covered
// everything and fulfilment has started) and the order page.
func (a *api) checkout(c *fiber.Ctx) error {
	var req checkoutRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	cmd, err := req.command()
	if err != nil {
		return err
	}
	res, err := a.deps.Commerce.Checkout(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, checkoutBody[customerOrderBody]{
		Order:       customerOrderOf(res.Order, false),
		CheckoutURL: nullable(res.CheckoutURL),
		OrderURL:    a.orderURL(res.Order.Order.ID),
	})
}

// adminCreateOrder: POST /v1/admin/orders → 201 a pending order created by an operator (no payment
// page: mark it paid, or it was covered by a coupon).
func (a *api) adminCreateOrder(c *fiber.Ctx) error {
	var req adminOrderRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	cmd, err := checkoutRequest{Items: req.Items, Email: req.Email, Currency: req.Currency, Coupon: req.Coupon}.command()
	if err != nil {
		return err
	}
	cmd.Admin = true
	res, err := a.deps.Commerce.Checkout(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, checkoutBody[adminOrderBody]{
		Order:       adminOrderOf(false)(res.Order),
		CheckoutURL: nullable(res.CheckoutURL),
		OrderURL:    a.orderURL(res.Order.Order.ID),
	})
}

// adminMarkPaid: POST /v1/admin/orders/{id}/mark-paid {"payment_ref"?} → 200 the order.
func (a *api) adminMarkPaid(c *fiber.Ctx) error {
	var req struct {
		PaymentRef *string `json:"payment_ref"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	ref := ""
	if req.PaymentRef != nil {
		ref = *req.PaymentRef
	}
	v, err := a.deps.Commerce.MarkPaid(c.UserContext(), param(c, "id"), ref)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, adminOrderOf(false)(v))
}

// adminRefund: POST /v1/admin/orders/{id}/refund {"reason"?, "refund_payment"?} → 200 the order.
func (a *api) adminRefund(c *fiber.Ctx) error {
	var req struct {
		Reason        *string `json:"reason"`
		RefundPayment *bool   `json:"refund_payment"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	reason := ""
	if req.Reason != nil {
		reason = *req.Reason
	}
	v, err := a.deps.Commerce.Refund(c.UserContext(), param(c, "id"), reason, req.RefundPayment != nil && *req.RefundPayment)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, adminOrderOf(false)(v))
}

// adminRelease: POST /v1/admin/orders/{id}/release → 200 the order, no longer held for review.
func (a *api) adminRelease(c *fiber.Ctx) error {
	var req actionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	v, err := a.deps.Commerce.ReleaseReview(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, adminOrderOf(false)(v))
}

// customerOrder: GET /v1/orders/{id}?token=… → the buyer's view; a wrong or missing token is the
// same 404 as a missing order.
func (a *api) customerOrder(c *fiber.Ctx) error {
	v, err := a.deps.Commerce.OrderByAccessToken(c.UserContext(), param(c, "id"), query(c, "token"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, customerOrderOf(v, true))
}

// --- downloads ---

type downloadBody struct {
	URL       string  `json:"url"`
	ExpiresAt *string `json:"expires_at"`
	FileName  string  `json:"file_name"`
	Version   string  `json:"version"`
	Platform  string  `json:"platform"`
	SizeBytes int64   `json:"size_bytes"`
}

// downloadRequest is what both download calls share.
type downloadRequest struct {
	Product   *string
	Platform  *string
	VersionID *string
}

func (a *api) download(c *fiber.Ctx, cmd ports.DownloadCommand, req downloadRequest) error {
	if req.Product == nil || *req.Product == "" {
		return errs.Validation("product is required")
	}
	cmd.Product = *req.Product
	if req.Platform != nil && *req.Platform != "" {
		p, err := catalog.ParsePlatform(*req.Platform)
		if err != nil {
			return err
		}
		cmd.Platform = string(p)
	}
	if req.VersionID != nil {
		cmd.VersionID = *req.VersionID
	}
	cmd.RequestAddr = a.clientAddr(c)
	l, err := a.deps.Commerce.DownloadLink(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, downloadBody{
		URL: l.URL, ExpiresAt: rfc3339(l.ExpiresAt), FileName: l.FileName, Version: l.Version, Platform: l.Platform, SizeBytes: l.SizeBytes,
	})
}

// orderDownload: POST /v1/orders/{id}/downloads {"token","product","platform"?,"version_id"?}.
func (a *api) orderDownload(c *fiber.Ctx) error {
	var req struct {
		Token     *string `json:"token"`
		Product   *string `json:"product"`
		Platform  *string `json:"platform"`
		VersionID *string `json:"version_id"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if req.Token == nil || *req.Token == "" {
		return errs.Validation("token is required")
	}
	return a.download(c, ports.DownloadCommand{OrderID: param(c, "id"), AccessToken: *req.Token},
		downloadRequest{Product: req.Product, Platform: req.Platform, VersionID: req.VersionID})
}

// licenseDownload: POST /v1/downloads {"license_key","product","platform"?,"version_id"?} (plugin
// installers prove their right with the license key).
func (a *api) licenseDownload(c *fiber.Ctx) error {
	var req struct {
		LicenseKey *string `json:"license_key"`
		Product    *string `json:"product"`
		Platform   *string `json:"platform"`
		VersionID  *string `json:"version_id"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if req.LicenseKey == nil || *req.LicenseKey == "" {
		return errs.Validation("license_key is required")
	}
	return a.download(c, ports.DownloadCommand{LicenseKey: *req.LicenseKey},
		downloadRequest{Product: req.Product, Platform: req.Platform, VersionID: req.VersionID})
}

// --- signed file links ---

// serveFile: GET /v1/files/{token} streams the object a signed link names (local object store).
// The file is streamed from disk, never read into memory; a single byte range is honoured (resumed
// downloads), anything fancier gets the whole file, which RFC 9110 allows.
func (a *api) serveFile(c *fiber.Ctx) error {
	if a.deps.Files == nil {
		return errs.E(errs.NotFound, errs.CodeNotFound, "no such file")
	}
	f, err := a.deps.Files.OpenSigned(c.UserContext(), param(c, "token"))
	if err != nil {
		return err
	}
	size := f.SizeBytes
	length, status := size, fiber.StatusOK
	if rh := c.Get(fiber.HeaderRange); rh != "" && c.Get(fiber.HeaderIfRange) == "" {
		start, n, ok, satisfiable := parseRange(rh, size)
		if !satisfiable {
			_ = f.Body.Close()
			c.Set(fiber.HeaderContentRange, "bytes */"+strconv.FormatInt(size, 10))
			return a.rangeNotSatisfiable(c)
		}
		if ok {
			if _, err := f.Body.Seek(start, io.SeekStart); err != nil {
				_ = f.Body.Close()
				return errs.Internalf("httpapi: seeking in a served file: %w", err)
			}
			length, status = n, fiber.StatusPartialContent
			c.Set(fiber.HeaderContentRange, "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+n-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": f.FileName})
	if disposition == "" {
		disposition = "attachment"
	}
	c.Set(fiber.HeaderContentDisposition, disposition)
	c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if !f.ModTime.IsZero() {
		c.Set(fiber.HeaderLastModified, f.ModTime.UTC().Format(http.TimeFormat))
	}
	c.Status(status)
	// fasthttp copies length bytes from the stream after the handler and then closes it (the file).
	c.Response().SetBodyStream(readCloser{Reader: io.LimitReader(f.Body, length), Closer: f.Body}, int(length))
	return nil
}

// rangeNotSatisfiable answers 416 as a problem: no error kind has that status, so it is written
// here rather than by errorHandler.
func (a *api) rangeNotSatisfiable(c *fiber.Ctx) error {
	const code = "RANGE_NOT_SATISFIABLE"
	b, err := json.Marshal(problem{Type: problemType(code), Title: http.StatusText(fiber.StatusRequestedRangeNotSatisfiable),
		Status: fiber.StatusRequestedRangeNotSatisfiable, Code: code, Detail: "the requested range lies outside the file"})
	if err != nil {
		return errs.Internalf("httpapi: encoding a problem: %w", err)
	}
	c.Status(fiber.StatusRequestedRangeNotSatisfiable)
	c.Set(fiber.HeaderContentType, "application/problem+json")
	c.Response().SetBodyRaw(b)
	if isDevicePath(string(c.Request().URI().PathOriginal())) {
		a.signResponse(c)
	}
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// parseRange reads a Range header for a file of size bytes. ok is false when the header should be
// ignored (not bytes, several ranges, garbled): the whole file is then served. satisfiable is false
// for a well-formed single range that lies outside the file (416).
func parseRange(h string, size int64) (start, length int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, true
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false, true
	}
	if s >= size {
		return 0, 0, false, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, false, true
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true, true
}
