package pgstore

import (
	"encoding/json"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
)

// The rows below are the tables of migrations/*/20261129000004_commerce, mapped to and from the
// commerce records like the licensing rows: times in UTC at microsecond precision, lists as JSON
// text, empty lists read back as nil.

type catalogProductRow struct {
	bun.BaseModel `bun:"table:catalog_products,alias:cp"`

	ID          string    `bun:"id,pk"`
	Slug        string    `bun:"slug"`
	Name        string    `bun:"name"`
	Description string    `bun:"description"`
	Type        string    `bun:"type"`
	Currency    string    `bun:"currency"`
	Prices      string    `bun:"prices"`
	Components  string    `bun:"components"`
	Active      bool      `bun:"active"`
	CreatedAt   time.Time `bun:"created_at"`
	UpdatedAt   time.Time `bun:"updated_at"`
}

type catalogVersionRow struct {
	bun.BaseModel `bun:"table:catalog_versions,alias:cv"`

	ID                 string    `bun:"id,pk"`
	ProductID          string    `bun:"product_id"`
	Version            string    `bun:"version"`
	Platform           string    `bun:"platform"`
	ReleaseNotes       string    `bun:"release_notes"`
	MinProtocolVersion int       `bun:"min_protocol_version"`
	StorageKey         string    `bun:"storage_key"`
	FileName           string    `bun:"file_name"`
	SizeBytes          int64     `bun:"size_bytes"`
	SHA256             string    `bun:"sha256"`
	Published          bool      `bun:"published"`
	IsLatest           bool      `bun:"is_latest"`
	CreatedAt          time.Time `bun:"created_at"`
	UpdatedAt          time.Time `bun:"updated_at"`
}

type orderRow struct {
	bun.BaseModel `bun:"table:orders,alias:o"`

	ID                string     `bun:"id,pk"`
	Number            int64      `bun:"number"` // assigned by the INSERT (see orderRepo.Insert)
	CustomerEmail     string     `bun:"customer_email"`
	CustomerID        string     `bun:"customer_id"`
	Source            string     `bun:"source"`
	Currency          string     `bun:"currency"`
	SubtotalCents     int64      `bun:"subtotal_cents"`
	DiscountCents     int64      `bun:"discount_cents"`
	TotalCents        int64      `bun:"total_cents"`
	CouponID          string     `bun:"coupon_id"`
	CouponCode        string     `bun:"coupon_code"`
	Status            string     `bun:"status"`
	ReviewReason      string     `bun:"review_reason"`
	PaymentProvider   string     `bun:"payment_provider"`
	PaymentRef        string     `bun:"payment_ref"`
	CheckoutSessionID string     `bun:"checkout_session_id"`
	PaidAmountCents   int64      `bun:"paid_amount_cents"`
	PaidCurrency      string     `bun:"paid_currency"`
	PaidAt            *time.Time `bun:"paid_at"`
	FulfilledAt       *time.Time `bun:"fulfilled_at"`
	RefundedAt        *time.Time `bun:"refunded_at"`
	StatusReason      string     `bun:"status_reason"`
	CreatedAt         time.Time  `bun:"created_at"`
	UpdatedAt         time.Time  `bun:"updated_at"`
}

type orderLineRow struct {
	bun.BaseModel `bun:"table:order_lines,alias:ol"`

	OrderID        string `bun:"order_id,pk"`
	LineIndex      int    `bun:"line_index,pk"`
	Product        string `bun:"product"`
	ProductName    string `bun:"product_name"`
	ProductType    string `bun:"product_type"`
	Quantity       int    `bun:"quantity"`
	UnitPriceCents int64  `bun:"unit_price_cents"`
}

type couponRow struct {
	bun.BaseModel `bun:"table:coupons,alias:cpn"`

	ID             string     `bun:"id,pk"`
	Code           string     `bun:"code"`
	Kind           string     `bun:"kind"`
	PercentOff     int        `bun:"percent_off"`
	AmountOffCents int64      `bun:"amount_off_cents"`
	Currency       string     `bun:"currency"`
	StartsAt       *time.Time `bun:"starts_at"`
	EndsAt         *time.Time `bun:"ends_at"`
	MaxRedemptions *int       `bun:"max_redemptions"`
	Redemptions    int        `bun:"redemptions"`
	Active         bool       `bun:"active"`
	Notes          string     `bun:"notes"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

type entitlementRow struct {
	bun.BaseModel `bun:"table:entitlements,alias:e"`

	ID            string     `bun:"id,pk"`
	OrderID       string     `bun:"order_id"`
	LineIndex     int        `bun:"line_index"`
	Product       string     `bun:"product"`
	ViaBundle     string     `bun:"via_bundle"`
	CustomerEmail string     `bun:"customer_email"`
	LicenseID     string     `bun:"license_id"`
	Status        string     `bun:"status"`
	UnlockedAt    *time.Time `bun:"unlocked_at"`
	RevokedAt     *time.Time `bun:"revoked_at"`
	CreatedAt     time.Time  `bun:"created_at"`
}

type paymentEventRow struct {
	bun.BaseModel `bun:"table:payment_events,alias:pe"`

	Provider   string    `bun:"provider,pk"`
	EventID    string    `bun:"event_id,pk"`
	Type       string    `bun:"type"`
	OrderID    string    `bun:"order_id"`
	Outcome    string    `bun:"outcome"`
	ReceivedAt time.Time `bun:"received_at"`
}

type downloadRow struct {
	bun.BaseModel `bun:"table:downloads,alias:d"`

	ID            string    `bun:"id,pk"`
	OrderID       string    `bun:"order_id"`
	EntitlementID string    `bun:"entitlement_id"`
	VersionID     string    `bun:"version_id"`
	CustomerEmail string    `bun:"customer_email"`
	RequestAddr   string    `bun:"request_addr"`
	IssuedAt      time.Time `bun:"issued_at"`
	ExpiresAt     time.Time `bun:"expires_at"`
}

// ---- value mappers ----

// priceJSON is the stored shape of a catalog.Price: the JSON keys are the schema, independent of
// the Go field names.
type priceJSON struct {
	Currency    string `json:"currency"`
	AmountCents int64  `json:"amount_cents"`
}

func dbPrices(p []catalog.Price) (string, error) {
	if len(p) == 0 {
		return "[]", nil
	}
	out := make([]priceJSON, len(p))
	for i, v := range p {
		out[i] = priceJSON(v)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", errs.Internalf("pgstore: encoding prices: %w", err)
	}
	return string(b), nil
}

func recPrices(s string) ([]catalog.Price, error) {
	if s == "" || s == "[]" || s == "null" {
		return nil, nil
	}
	var in []priceJSON
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, errs.Internalf("pgstore: decoding prices: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]catalog.Price, len(in))
	for i, v := range in {
		out[i] = catalog.Price(v)
	}
	return out, nil
}

// ---- record mappers ----

func toCatalogProductRow(p catalog.Product) (catalogProductRow, error) {
	prices, err := dbPrices(p.Prices)
	if err != nil {
		return catalogProductRow{}, err
	}
	comps, err := dbStrings(p.Components)
	if err != nil {
		return catalogProductRow{}, err
	}
	return catalogProductRow{
		ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Type: string(p.Type),
		Currency: p.Currency, Prices: prices, Components: comps, Active: p.Active,
		CreatedAt: dbTime(p.CreatedAt), UpdatedAt: dbTime(p.UpdatedAt),
	}, nil
}

func (r catalogProductRow) record() (catalog.Product, error) {
	prices, err := recPrices(r.Prices)
	if err != nil {
		return catalog.Product{}, err
	}
	comps, err := recStrings(r.Components)
	if err != nil {
		return catalog.Product{}, err
	}
	return catalog.Product{
		ID: r.ID, Slug: r.Slug, Name: r.Name, Description: r.Description, Type: catalog.ProductType(r.Type),
		Currency: r.Currency, Prices: prices, Components: comps, Active: r.Active,
		CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}, nil
}

func toCatalogVersionRow(v catalog.Version) catalogVersionRow {
	return catalogVersionRow{
		ID: v.ID, ProductID: v.ProductID, Version: v.Version, Platform: string(v.Platform),
		ReleaseNotes: v.ReleaseNotes, MinProtocolVersion: v.MinProtocolVersion, StorageKey: v.StorageKey,
		FileName: v.FileName, SizeBytes: v.SizeBytes, SHA256: v.SHA256, Published: v.Published,
		IsLatest: v.IsLatest, CreatedAt: dbTime(v.CreatedAt), UpdatedAt: dbTime(v.UpdatedAt),
	}
}

func (r catalogVersionRow) record() catalog.Version {
	return catalog.Version{
		ID: r.ID, ProductID: r.ProductID, Version: r.Version, Platform: catalog.Platform(r.Platform),
		ReleaseNotes: r.ReleaseNotes, MinProtocolVersion: r.MinProtocolVersion, StorageKey: r.StorageKey,
		FileName: r.FileName, SizeBytes: r.SizeBytes, SHA256: r.SHA256, Published: r.Published,
		IsLatest: r.IsLatest, CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}
}

func toOrderRow(o order.Order) orderRow {
	return orderRow{
		ID: o.ID, Number: o.Number, CustomerEmail: o.CustomerEmail, CustomerID: o.CustomerID,
		Source: string(o.Source), Currency: o.Currency, SubtotalCents: o.SubtotalCents,
		DiscountCents: o.DiscountCents, TotalCents: o.TotalCents, CouponID: o.CouponID,
		CouponCode: o.CouponCode, Status: string(o.Status), ReviewReason: o.ReviewReason,
		PaymentProvider: o.PaymentProvider, PaymentRef: o.PaymentRef, CheckoutSessionID: o.CheckoutSessionID,
		PaidAmountCents: o.PaidAmountCents, PaidCurrency: o.PaidCurrency, PaidAt: dbTimePtr(o.PaidAt),
		FulfilledAt: dbTimePtr(o.FulfilledAt), RefundedAt: dbTimePtr(o.RefundedAt),
		StatusReason: o.StatusReason, CreatedAt: dbTime(o.CreatedAt), UpdatedAt: dbTime(o.UpdatedAt),
	}
}

func toOrderLineRows(o order.Order) []orderLineRow {
	rows := make([]orderLineRow, len(o.Lines))
	for i, l := range o.Lines {
		rows[i] = orderLineRow{
			OrderID: o.ID, LineIndex: i, Product: l.Product, ProductName: l.ProductName,
			ProductType: l.ProductType, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents,
		}
	}
	return rows
}

// record maps the row with its lines (in line order; nil when there are none).
func (r orderRow) record(lines []orderLineRow) order.Order {
	var ls []order.Line
	for _, l := range lines {
		ls = append(ls, order.Line{
			Product: l.Product, ProductName: l.ProductName, ProductType: l.ProductType,
			Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents,
		})
	}
	return order.Order{
		ID: r.ID, Number: r.Number, CustomerEmail: r.CustomerEmail, CustomerID: r.CustomerID,
		Source: order.Source(r.Source), Currency: r.Currency, Lines: ls, SubtotalCents: r.SubtotalCents,
		DiscountCents: r.DiscountCents, TotalCents: r.TotalCents, CouponID: r.CouponID,
		CouponCode: r.CouponCode, Status: order.Status(r.Status), ReviewReason: r.ReviewReason,
		PaymentProvider: r.PaymentProvider, PaymentRef: r.PaymentRef, CheckoutSessionID: r.CheckoutSessionID,
		PaidAmountCents: r.PaidAmountCents, PaidCurrency: r.PaidCurrency, PaidAt: recTimePtr(r.PaidAt),
		FulfilledAt: recTimePtr(r.FulfilledAt), RefundedAt: recTimePtr(r.RefundedAt),
		StatusReason: r.StatusReason, CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}
}

func toCouponRow(c order.Coupon) couponRow {
	return couponRow{
		ID: c.ID, Code: c.Code, Kind: string(c.Kind), PercentOff: c.PercentOff, AmountOffCents: c.AmountOffCents,
		Currency: c.Currency, StartsAt: dbTimePtr(c.StartsAt), EndsAt: dbTimePtr(c.EndsAt),
		MaxRedemptions: c.MaxRedemptions, Redemptions: c.Redemptions, Active: c.Active, Notes: c.Notes,
		CreatedAt: dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt),
	}
}

func (r couponRow) record() order.Coupon {
	return order.Coupon{
		ID: r.ID, Code: r.Code, Kind: order.CouponKind(r.Kind), PercentOff: r.PercentOff,
		AmountOffCents: r.AmountOffCents, Currency: r.Currency, StartsAt: recTimePtr(r.StartsAt),
		EndsAt: recTimePtr(r.EndsAt), MaxRedemptions: r.MaxRedemptions, Redemptions: r.Redemptions,
		Active: r.Active, Notes: r.Notes, CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}
}

func toEntitlementRow(e order.Entitlement) entitlementRow {
	return entitlementRow{
		ID: e.ID, OrderID: e.OrderID, LineIndex: e.LineIndex, Product: e.Product, ViaBundle: e.ViaBundle,
		CustomerEmail: e.CustomerEmail, LicenseID: e.LicenseID, Status: string(e.Status),
		UnlockedAt: dbTimePtr(e.UnlockedAt), RevokedAt: dbTimePtr(e.RevokedAt), CreatedAt: dbTime(e.CreatedAt),
	}
}

func (r entitlementRow) record() order.Entitlement {
	return order.Entitlement{
		ID: r.ID, OrderID: r.OrderID, LineIndex: r.LineIndex, Product: r.Product, ViaBundle: r.ViaBundle,
		CustomerEmail: r.CustomerEmail, LicenseID: r.LicenseID, Status: order.EntitlementStatus(r.Status),
		UnlockedAt: recTimePtr(r.UnlockedAt), RevokedAt: recTimePtr(r.RevokedAt), CreatedAt: recTime(r.CreatedAt),
	}
}

func toPaymentEventRow(e order.PaymentEvent) paymentEventRow {
	return paymentEventRow{
		Provider: e.Provider, EventID: e.EventID, Type: e.Type, OrderID: e.OrderID, Outcome: e.Outcome,
		ReceivedAt: dbTime(e.ReceivedAt),
	}
}

func (r paymentEventRow) record() order.PaymentEvent {
	return order.PaymentEvent{
		Provider: r.Provider, EventID: r.EventID, Type: r.Type, OrderID: r.OrderID, Outcome: r.Outcome,
		ReceivedAt: recTime(r.ReceivedAt),
	}
}

func toDownloadRow(d order.Download) downloadRow {
	return downloadRow{
		ID: d.ID, OrderID: d.OrderID, EntitlementID: d.EntitlementID, VersionID: d.VersionID,
		CustomerEmail: d.CustomerEmail, RequestAddr: d.RequestAddr, IssuedAt: dbTime(d.IssuedAt),
		ExpiresAt: dbTime(d.ExpiresAt),
	}
}

func (r downloadRow) record() order.Download {
	return order.Download{
		ID: r.ID, OrderID: r.OrderID, EntitlementID: r.EntitlementID, VersionID: r.VersionID,
		CustomerEmail: r.CustomerEmail, RequestAddr: r.RequestAddr, IssuedAt: recTime(r.IssuedAt),
		ExpiresAt: recTime(r.ExpiresAt),
	}
}
