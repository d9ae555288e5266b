// Package order holds the Order aggregate of the commerce context (money, lines, states and their
// transitions), coupons, entitlements, payment events and the download record.
//
// The structs are persistence shapes: stores map rows to and from them; the rules (transitions,
// totals, coupon status, references) live in this package's functions and are table-tested.
package order

import "time"

// Status is the stored state of an order.
//
//	pending → paid → fulfilled
//	pending → failed (checkout expired or abandoned)
//	paid|fulfilled → refunded | disputed
//	paid → failed (fulfilment failed for good; flagged for support)
type Status string

const (
	StatusPending   Status = "pending"
	StatusPaid      Status = "paid"
	StatusFulfilled Status = "fulfilled"
	StatusRefunded  Status = "refunded"
	StatusDisputed  Status = "disputed"
	StatusFailed    Status = "failed"
)

// Source says how an order came to be.
type Source string

const (
	SourceCheckout    Source = "checkout"     // POST /v1/checkout (Stripe Checkout Session)
	SourcePaymentLink Source = "payment_link" // a Stripe Payment Link (metadata.samplero_products)
	SourceAdmin       Source = "admin"        // created by an admin
	SourceGeneric     Source = "generic"      // created for the generic payment webhook
)

// Line is one order line: a product at its unit price at purchase time.
type Line struct {
	Product        string // catalog slug
	ProductName    string
	ProductType    string // plugin | sample_pack | bundle
	Quantity       int    // 1..100
	UnitPriceCents int64
}

// Order is an order as stored. Amounts are minor units of Currency.
type Order struct {
	ID            string // ord_…
	Number        int64  // sequential, assigned by the store on insert; Reference() = LS-000123
	CustomerEmail string // lower case
	CustomerID    string // "" for a guest order
	Source        Source
	Currency      string
	Lines         []Line
	SubtotalCents int64
	DiscountCents int64
	TotalCents    int64
	CouponID      string // "" = none
	CouponCode    string
	Status        Status
	// ReviewReason is set while the order is held for review (amount mismatch, partial refund,
	// fulfilment failure); "" otherwise. A held order is never fulfilled until an admin releases it.
	ReviewReason string
	// Payment, as the provider reported it.
	PaymentProvider   string // stripe | generic | coupon | admin
	PaymentRef        string // Stripe payment intent id, generic payment id, coupon:<CODE>
	CheckoutSessionID string
	PaidAmountCents   int64
	PaidCurrency      string
	PaidAt            *time.Time
	FulfilledAt       *time.Time
	RefundedAt        *time.Time
	StatusReason      string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// CouponKind is what a coupon takes off.
type CouponKind string

const (
	CouponFull    CouponKind = "full"    // the whole order (support coupons)
	CouponPercent CouponKind = "percent" // PercentOff % of the subtotal
	CouponFixed   CouponKind = "fixed"   // AmountOffCents in Currency
)

// Coupon is a discount code as stored. Code is unique, upper case.
type Coupon struct {
	ID             string // cpn_…
	Code           string
	Kind           CouponKind
	PercentOff     int   // 1..100 for percent
	AmountOffCents int64 // for fixed
	Currency       string
	StartsAt       *time.Time
	EndsAt         *time.Time
	MaxRedemptions *int // nil = unlimited
	Redemptions    int
	Active         bool
	Notes          string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// EntitlementStatus is the stored state of an entitlement.
type EntitlementStatus string

const (
	EntitlementActive  EntitlementStatus = "active"
	EntitlementRevoked EntitlementStatus = "revoked"
)

// Entitlement is the right of an order's customer to one product: every product an order grants
// (a plugin line, a sample pack, each component of a bundle) has one. Plugins also carry the
// license issued for them. Unique on (OrderID, LineIndex, Product).
type Entitlement struct {
	ID            string // ent_…
	OrderID       string
	LineIndex     int
	Product       string // catalog slug granted
	ViaBundle     string // the bundle slug when granted as a component; "" otherwise
	CustomerEmail string
	LicenseID     string // plugins only
	Status        EntitlementStatus
	UnlockedAt    *time.Time // downloads unlocked by fulfilment
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

// PaymentEvent is one webhook event as received; (Provider, EventID) is unique.
type PaymentEvent struct {
	Provider   string // stripe | generic
	EventID    string
	Type       string
	OrderID    string // "" when the event names no order
	Outcome    string // what was done: fulfilled, held, ignored, revoked, …
	ReceivedAt time.Time
}

// Download is one download link handed out.
type Download struct {
	ID            string // dl_…
	OrderID       string
	EntitlementID string
	VersionID     string
	CustomerEmail string
	RequestAddr   string
	IssuedAt      time.Time
	ExpiresAt     time.Time
}
