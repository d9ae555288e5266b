package ports

import (
	"context"
	"io"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
)

// ---------------------------------------------------------------------------------------------
// Driven ports of the commerce context. Every method takes part in the transaction carried by ctx
// (see Tx). Lookups of a missing row return errs.NotFound code NOT_FOUND; records are returned by
// value.

// ProductFilter narrows CatalogRepo.ListProducts. Empty fields do not filter.
type ProductFilter struct {
	Query      string // case-insensitive substring of the name or slug
	Type       catalog.ProductType
	ActiveOnly bool
	Page
}

// CatalogRepo stores catalog products and versions.
type CatalogRepo interface {
	// InsertProduct adds a product; a duplicate slug or id is errs.Conflict code CONFLICT.
	InsertProduct(ctx context.Context, p catalog.Product) error
	UpdateProduct(ctx context.Context, p catalog.Product) error
	// DeleteProduct deletes the product and its versions.
	DeleteProduct(ctx context.Context, id string) error
	ProductByID(ctx context.Context, id string) (catalog.Product, error)
	ProductBySlug(ctx context.Context, slug string) (catalog.Product, error)
	// ListProducts returns a page ordered by name, then slug, and the next cursor ("" at the end).
	ListProducts(ctx context.Context, f ProductFilter) ([]catalog.Product, string, error)

	InsertVersion(ctx context.Context, v catalog.Version) error // duplicate (product, platform, version) → CONFLICT
	UpdateVersion(ctx context.Context, v catalog.Version) error
	DeleteVersion(ctx context.Context, id string) error
	Version(ctx context.Context, id string) (catalog.Version, error)
	// Versions returns every version of a product, in no particular order.
	Versions(ctx context.Context, productID string) ([]catalog.Version, error)
}

// OrderFilter narrows OrderRepo.List. Empty fields do not filter.
type OrderFilter struct {
	Status        order.Status
	CustomerEmail string
	InReview      bool // only orders with a ReviewReason
	Page
}

// OrderRepo stores orders with their lines.
type OrderRepo interface {
	// Insert adds the order and returns it with Number assigned (sequential, unique).
	Insert(ctx context.Context, o order.Order) (order.Order, error)
	Get(ctx context.Context, id string) (order.Order, error)
	// GetForUpdate loads the order and locks its row until the transaction in ctx ends.
	GetForUpdate(ctx context.Context, id string) (order.Order, error)
	ByNumber(ctx context.Context, number int64) (order.Order, error)
	ByCheckoutSession(ctx context.Context, sessionID string) (order.Order, error)
	// ByPaymentRef returns the order paid by this provider reference (Stripe payment intent).
	ByPaymentRef(ctx context.Context, provider, ref string) (order.Order, error)
	// Update writes every field of o except Lines and Number (by ID).
	Update(ctx context.Context, o order.Order) error
	// List returns a page, newest first, and the next cursor.
	List(ctx context.Context, f OrderFilter) ([]order.Order, string, error)
	// CountByProduct counts orders with a line for this product slug (deletion guard).
	CountByProduct(ctx context.Context, slug string) (int, error)
	// Unfinished returns the ids of orders that are paid, not held for review and not yet
	// fulfilled: the ones whose fulfilment must be (re)started after a crash.
	Unfinished(ctx context.Context, limit int) ([]string, error)
}

// CouponRepo stores coupons.
type CouponRepo interface {
	Insert(ctx context.Context, c order.Coupon) error // duplicate code → CONFLICT
	Update(ctx context.Context, c order.Coupon) error // writes every field but Redemptions
	// Delete removes a coupon that was never redeemed; one with Redemptions > 0 (also one redeemed
	// concurrently) is errs.Conflict code COUPON_IN_USE and stays.
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (order.Coupon, error)
	ByCode(ctx context.Context, code string) (order.Coupon, error)
	List(ctx context.Context, p Page) ([]order.Coupon, string, error)
	// Redeem takes one redemption in a single conditional update: of any number of concurrent
	// calls for the last redemption exactly one succeeds; the others get errs.Conflict code
	// COUPON_EXHAUSTED and nothing changes.
	Redeem(ctx context.Context, id string) error
	// Release gives one redemption back (an order that never got paid); never below zero.
	Release(ctx context.Context, id string) error
}

// EntitlementRepo stores entitlements.
type EntitlementRepo interface {
	// Insert adds an entitlement; a second one for the same (order, line, product) is errs.Conflict
	// code CONFLICT.
	Insert(ctx context.Context, e order.Entitlement) error
	Update(ctx context.Context, e order.Entitlement) error
	Get(ctx context.Context, id string) (order.Entitlement, error)
	ByOrder(ctx context.Context, orderID string) ([]order.Entitlement, error)
	// ActiveFor returns the customer's active entitlements to a product, across orders.
	ActiveFor(ctx context.Context, email, product string) ([]order.Entitlement, error)
	ByLicense(ctx context.Context, licenseID string) (order.Entitlement, error)
}

// PaymentEventRepo remembers every webhook event.
type PaymentEventRepo interface {
	// Record inserts the event; fresh=false (and nothing written) when (Provider, EventID) was
	// already recorded. Atomic: of two concurrent calls exactly one gets fresh=true.
	Record(ctx context.Context, e order.PaymentEvent) (fresh bool, err error)
	Get(ctx context.Context, provider, eventID string) (order.PaymentEvent, error)
	// SetOutcome writes the outcome of a recorded event.
	SetOutcome(ctx context.Context, provider, eventID, outcome string) error
}

// DownloadRepo records every download link handed out.
type DownloadRepo interface {
	Insert(ctx context.Context, d order.Download) error
	ByOrder(ctx context.Context, orderID string) ([]order.Download, error)
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key       string
	SizeBytes int64
	SHA256    string // hex, when the store knows it
}

// ObjectStore keeps product assets and hands out expiring download links.
type ObjectStore interface {
	// Put stores the object under key (replacing one that is there) and returns what it stored.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (ObjectInfo, error)
	// Stat returns NOT_FOUND when there is no such object.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	Delete(ctx context.Context, key string) error
	// DownloadURL returns a link that lets whoever holds it GET the object, saved as fileName,
	// until now+ttl; after that the link is refused.
	DownloadURL(ctx context.Context, key, fileName string, ttl time.Duration) (string, error)
}

// LocalFile is an object opened through a signed link of a store that serves its own links.
type LocalFile struct {
	Body      io.ReadSeekCloser
	FileName  string
	SizeBytes int64
	ModTime   time.Time
}

// FileServer is implemented by an ObjectStore whose links point at this server (the local
// filesystem store): the HTTP adapter serves GET /v1/files/{token} through it.
type FileServer interface {
	// OpenSigned checks the token (signature and expiry) and opens the object. A bad or expired
	// token is errs.Forbidden code DOWNLOAD_LINK_INVALID / DOWNLOAD_LINK_EXPIRED.
	OpenSigned(ctx context.Context, token string) (LocalFile, error)
}

// CheckoutLine is one line item of a Checkout Session.
type CheckoutLine struct {
	Name           string
	Product        string // slug
	UnitPriceCents int64
	Quantity       int
}

// CheckoutRequest asks the payment provider for a hosted checkout page for a pending order.
type CheckoutRequest struct {
	OrderID       string // put in metadata.samplero_order_id and used as the idempotency key
	Reference     string
	CustomerEmail string
	Currency      string
	Lines         []CheckoutLine
	DiscountCents int64 // a one-off discount applied to the whole session
	SuccessURL    string
	CancelURL     string
}

// CheckoutSession is the provider's answer.
type CheckoutSession struct {
	ID        string
	URL       string
	ExpiresAt time.Time
}

// Payments is the payment provider (Stripe).
type Payments interface {
	// CreateCheckout creates a Checkout Session. Retrying with the same OrderID returns the same
	// session (provider idempotency key). Provider failures are errs.Unavailable.
	CreateCheckout(ctx context.Context, req CheckoutRequest) (CheckoutSession, error)
	// Refund refunds the whole payment (a payment intent id).
	Refund(ctx context.Context, paymentRef, reason string) error
}

// Normalised payment event types (what the webhooks are mapped to).
const (
	PaymentSucceeded       = "payment.succeeded"          // paid: fulfil
	PaymentRefunded        = "payment.refunded"           // fully refunded: revoke
	PaymentPartialRefund   = "payment.partially_refunded" // hold for review
	PaymentDisputed        = "payment.disputed"           // revoke
	PaymentCheckoutExpired = "checkout.expired"           // the pending order failed
	PaymentIgnored         = "ignored"                    // acknowledged, nothing to do
)

// PaymentEventIn is a verified webhook event, mapped from the provider's shape.
type PaymentEventIn struct {
	Provider  string // stripe | generic
	EventID   string
	Type      string // one of the Payment* constants
	RawType   string // the provider's own type, for the record
	OrderID   string // metadata.samplero_order_id / data.order_id; "" for Payment Links
	SessionID string
	// Products is metadata.samplero_products of a Payment Link ("slug:qty,slug:qty").
	Products      string
	CustomerEmail string
	PaymentRef    string // payment intent / payment id
	AmountCents   int64  // amount paid (amount_total), or refunded for refunds
	DiscountCents int64  // discount the provider reports (total_details.amount_discount)
	Currency      string
	// ChargeAmountCents is the charge's full amount, for refunds (full when AmountCents equals it).
	ChargeAmountCents int64
}

// PaymentOutcome says what HandlePayment did.
type PaymentOutcome struct {
	Duplicate bool   // the event id was seen before: nothing new was done
	OrderID   string // "" when the event concerned no order
	Outcome   string // fulfilling | held | revoking | failed | ignored
}

// ---------------------------------------------------------------------------------------------
// Driving port of the commerce context.

// ProductInput creates or edits a catalog product. Slug "" on create is generated from the name
// (unique: a suffix -2, -3… is added). Policy is the licensing policy (plugins and bundles of
// plugins); it is handed to the licensing context in the same transaction.
type ProductInput struct {
	Slug        string
	Name        string
	Description string
	Type        string
	Currency    string
	PriceCents  int64
	Prices      []catalog.Price // more currencies
	Components  []string
	Active      *bool // nil keeps (create: true)
	Policy      *PolicySpec
}

// VersionInput creates or edits a version.
type VersionInput struct {
	Version            string
	Platform           string
	ReleaseNotes       string
	MinProtocolVersion int
	StorageKey         string // an object already in the store (S3 upload done elsewhere)
	FileName           string
	Published          *bool
}

// CatalogQuery is a public catalog search.
type CatalogQuery struct {
	Query string
	Type  string
	Page
}

// OrderLineInput is one requested line.
type OrderLineInput struct {
	Product  string // slug
	Quantity int
}

// CheckoutCommand is POST /v1/checkout (and the admin's order creation with Admin set).
type CheckoutCommand struct {
	Lines         []OrderLineInput
	CustomerEmail string
	CustomerID    string
	Currency      string // "" = the products' primary currency
	CouponCode    string
	SuccessURL    string
	CancelURL     string
	Admin         bool // admin-created: no Checkout Session
}

// CheckoutResult is the answer of Checkout: the pending order and where to pay. With a coupon that
// covers everything there is nothing to pay: CheckoutURL is "" and fulfilment has started.
type CheckoutResult struct {
	Order       OrderView
	CheckoutURL string
	SessionID   string
}

// ReceiptLine is one line of a receipt.
type ReceiptLine struct {
	Product        string
	ProductName    string
	ProductType    string
	Quantity       int
	UnitPriceCents int64
	LineTotalCents int64
}

// DeliverySummary counts what an order delivers.
type DeliverySummary struct {
	PluginCount      int
	SamplePackCount  int
	BundleCount      int
	LicenseCount     int
	DownloadCount    int // products with a downloadable published version
	ReadyForDelivery bool
}

// OrderView is an order as customers and admins see it.
type OrderView struct {
	Order     order.Order
	Reference string // LS-000123
	Receipt   []ReceiptLine
	Summary   DeliverySummary
	// Entitlements are filled on single-order reads.
	Entitlements []order.Entitlement
}

// DownloadCommand asks for a download link. The caller proves a right to the product with either
// the order's access token (from the delivery e-mail) or a license key of that product.
type DownloadCommand struct {
	OrderID     string
	AccessToken string
	LicenseKey  string
	Product     string // slug
	VersionID   string // "" = the latest published version for Platform
	Platform    string // win | mac | linux | all; "" with VersionID ""= all, else any
	RequestAddr string
}

// DownloadLink is a link handed out.
type DownloadLink struct {
	URL       string
	ExpiresAt time.Time
	FileName  string
	Version   string
	Platform  string
	SizeBytes int64
}

// CouponInput creates or edits a coupon.
type CouponInput struct {
	Code           string
	Kind           string
	PercentOff     int
	AmountOffCents int64
	Currency       string
	StartsAt       *time.Time
	EndsAt         *time.Time
	MaxRedemptions *int
	Active         *bool
	Notes          string
}

// CouponView is a coupon with its derived status.
type CouponView struct {
	Coupon    order.Coupon
	Status    string // inactive | scheduled | expired | exhausted | redeemable
	Remaining *int
}

// Commerce is the driving port of the commerce context. Errors are *errs.Error with stable codes.
type Commerce interface {
	// Catalog (admin).
	CreateProduct(ctx context.Context, in ProductInput) (catalog.Product, error)
	UpdateProduct(ctx context.Context, slug string, in ProductInput) (catalog.Product, error)
	// PutProduct is PROTOCOL.md section 9's POST /v1/admin/products: create or replace by slug.
	PutProduct(ctx context.Context, in ProductInput) (catalog.Product, error)
	SetProductActive(ctx context.Context, slug string, active bool) (catalog.Product, error)
	// DeleteProduct refuses (errs.Conflict code PRODUCT_IN_USE) a product that orders reference.
	DeleteProduct(ctx context.Context, slug string) error
	AdminListProducts(ctx context.Context, q CatalogQuery) ([]catalog.Product, string, error)
	AdminGetProduct(ctx context.Context, slug string) (catalog.Product, []catalog.Version, error)
	CreateVersion(ctx context.Context, slug string, in VersionInput) (catalog.Version, error)
	UpdateVersion(ctx context.Context, slug, versionID string, in VersionInput) (catalog.Version, error)
	DeleteVersion(ctx context.Context, slug, versionID string) error
	// UploadAsset stores the version's file in the ObjectStore and records key, size and sum.
	UploadAsset(ctx context.Context, slug, versionID, fileName string, r io.Reader, size int64) (catalog.Version, error)

	// Catalog (public): only active products and published versions; never storage keys.
	ListCatalog(ctx context.Context, q CatalogQuery) ([]catalog.Product, string, error)
	CatalogProduct(ctx context.Context, slug string) (catalog.Product, error)
	// CatalogVersions lists published versions, newest first (semver), of one platform (plus
	// "all") or of every platform when platform is "".
	CatalogVersions(ctx context.Context, slug, platform string) ([]catalog.Version, error)
	// LatestVersions returns the latest published version per platform (one platform when given).
	LatestVersions(ctx context.Context, slug, platform string) ([]catalog.Version, error)

	// Coupons (admin).
	CreateCoupon(ctx context.Context, in CouponInput) (CouponView, error)
	UpdateCoupon(ctx context.Context, id string, in CouponInput) (CouponView, error)
	GetCoupon(ctx context.Context, id string) (CouponView, error)
	ListCoupons(ctx context.Context, p Page) ([]CouponView, string, error)
	DeleteCoupon(ctx context.Context, id string) error

	// Orders.
	Checkout(ctx context.Context, cmd CheckoutCommand) (CheckoutResult, error)
	GetOrder(ctx context.Context, id string) (OrderView, error)
	ListOrders(ctx context.Context, f OrderFilter) ([]OrderView, string, error)
	// OrderByAccessToken is the customer's view of an order through the token of its e-mail;
	// a wrong token is NOT_FOUND, like a missing order.
	OrderByAccessToken(ctx context.Context, orderID, token string) (OrderView, error)
	// AccessToken returns the order's access token (for e-mails and the checkout answer).
	AccessToken(orderID string) string
	// MarkPaid (admin): a pending order is paid outside any provider and its fulfilment starts.
	MarkPaid(ctx context.Context, orderID, paymentRef string) (OrderView, error)
	// Refund (admin): refunds the payment at the provider when asked, then revokes like a
	// provider refund.
	Refund(ctx context.Context, orderID, reason string, refundPayment bool) (OrderView, error)
	// ReleaseReview (admin): clears the hold; a paid order's fulfilment starts.
	ReleaseReview(ctx context.Context, orderID string) (OrderView, error)

	// HandlePayment applies a verified webhook event exactly once per (provider, event id).
	HandlePayment(ctx context.Context, ev PaymentEventIn) (PaymentOutcome, error)
	// ResumeFulfilment restarts the fulfilment of every paid, unfinished order (after a crash
	// between a payment and the start of its workflow). Returns how many were started.
	ResumeFulfilment(ctx context.Context) (int, error)

	// Downloads.
	DownloadLink(ctx context.Context, cmd DownloadCommand) (DownloadLink, error)
}

// ---------------------------------------------------------------------------------------------
// Fulfilment steps: called by the activities of workflows/fulfillment. Each is idempotent: running
// it again after it succeeded (an activity retried after a crash) changes nothing and returns the
// same result.

// IssueResult lists what IssueEntitlements created (or found from an earlier attempt).
type IssueResult struct {
	LicenseIDs     []string
	EntitlementIDs []string
}

// Fulfilment is the port the fulfilment and revocation workflows drive.
type Fulfilment interface {
	// MarkPaid moves a pending order to paid (no-op when already paid or fulfilled). A held order is
	// errs.Conflict code ORDER_IN_REVIEW, which is not retried.
	MarkOrderPaid(ctx context.Context, orderID string) error
	// IssueEntitlements issues, in one transaction, a license per plugin line (max activations =
	// policy × quantity; bundle plugin components too) and an entitlement per product granted.
	// Nothing is half-issued: either every one exists afterwards or none does.
	IssueEntitlements(ctx context.Context, orderID string) (IssueResult, error)
	// UnlockDownloads marks the order's entitlements downloadable.
	UnlockDownloads(ctx context.Context, orderID string) error
	// DeliveryEmail renders the delivery e-mail (keys, download links, plain text and HTML); its
	// ID is delivery-<order id>.
	DeliveryEmail(ctx context.Context, orderID string) (EmailMessage, error)
	// MarkFulfilled moves a paid order to fulfilled (no-op when already).
	MarkFulfilled(ctx context.Context, orderID string) error
	// FlagForSupport holds the order for review with reason and returns the e-mail to the
	// operator (ID support-<order id>-<n>); To is "" when no operator address is configured.
	FlagForSupport(ctx context.Context, orderID, reason string) (EmailMessage, error)
	// RevokeOrder revokes every license and entitlement of the order and moves it to status
	// (refunded or disputed) with reason. Activations and certificates stay on record.
	RevokeOrder(ctx context.Context, orderID string, status order.Status, reason string) error
	// RefundEmail renders the "order refunded" e-mail (ID refund-<order id>).
	RefundEmail(ctx context.Context, orderID string) (EmailMessage, error)
}
