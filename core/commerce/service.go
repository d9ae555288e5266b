// Package commerce is the commerce context's use cases: the catalog (products, versions, assets),
// coupons, orders and checkout, payment events (exactly once per provider event), refunds and
// disputes, downloads, and the fulfilment steps that workflows/fulfillment drives. The rules live in
// packages catalog and order; this package loads and stores records through the ports, inside one
// transaction per use case, and reaches the licensing context only through ports.Licensing.
package commerce

import (
	"io"
	"log/slog"
	"time"

	"github.com/samplero/samplero/ports"
)

// Config is the service's configuration, read by cmd.
type Config struct {
	// PublicURL is the base of links in e-mails and checkout answers, e.g. http://127.0.0.1:8080.
	PublicURL string
	// VendorName names the vendor in e-mails.
	VendorName string
	// OperatorEmail receives support alerts (held orders, failed fulfilment); "" = none.
	OperatorEmail string
	// AccessSecret keys the order access tokens put in delivery e-mails (HMAC-SHA-256); 32 bytes.
	AccessSecret []byte
	// DownloadTTL is how long a download link works; default 1 hour.
	DownloadTTL time.Duration
	// SuccessURL and CancelURL are the default Checkout return pages; {ORDER_ID} is replaced.
	SuccessURL string
	CancelURL  string
	// Logger receives what is logged rather than returned. Nil discards.
	Logger *slog.Logger
}

// Deps are the driven ports the service calls.
type Deps struct {
	Clock        ports.Clock
	Tx           ports.Tx
	Catalog      ports.CatalogRepo
	Orders       ports.OrderRepo
	Coupons      ports.CouponRepo
	Entitlements ports.EntitlementRepo
	Events       ports.PaymentEventRepo
	Downloads    ports.DownloadRepo
	Licensing    ports.Licensing
	Objects      ports.ObjectStore
	// Payments is the payment provider; nil when none is configured (checkout is then refused with
	// PAYMENTS_UNAVAILABLE, while admin orders, coupons and webhooks of the generic provider work).
	Payments  ports.Payments
	Processes ports.Processes
	Emails    ports.EmailRenderer
	Config    Config
}

// Service implements ports.Commerce and ports.Fulfilment.
type Service struct {
	d   Deps
	log *slog.Logger
}

var (
	_ ports.Commerce   = (*Service)(nil)
	_ ports.Fulfilment = (*Service)(nil)
)

// New returns the service. Every dependency but Payments is required.
func New(d Deps) *Service {
	log := d.Config.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.Config.DownloadTTL <= 0 {
		d.Config.DownloadTTL = time.Hour
	}
	return &Service{d: d, log: log}
}

// now is the service's time: UTC, whole seconds (see licensing).
func (s *Service) now() time.Time { return s.d.Clock.Now().UTC().Truncate(time.Second) }
