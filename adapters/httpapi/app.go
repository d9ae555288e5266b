// Package httpapi is the Fiber adapter of the device API (PROTOCOL.md sections 2, 3 and 6), the admin
// API (section 9), the commerce API (admin catalog, coupons and orders; public catalog, checkout,
// orders and downloads; payment webhooks), health, readiness and metrics. It parses requests, runs
// the checks of section 2 in their order, calls ports.Licensing and ports.Commerce, renders the
// answer and signs every device response.
//
// One app serves both listeners: the plain HTTP listener and the TLS device listener (where the
// client certificate comes from the TLS connection state). Errors are mapped to RFC 9457 problems in
// exactly one place (errorHandler).
package httpapi

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/samplero/samplero/ports"
)

// Deps are the ports and settings the HTTP adapter needs. Licensing, Keys, Nonces and Clock are
// required; Limiter is required when rate limits are enabled; AdminTokens is required for the admin
// API (without it every admin call answers 401). Commerce is optional: without it no commerce route
// is served.
type Deps struct {
	Licensing   ports.Licensing
	Keys        ports.ServerKeys
	Issuer      ports.CertificateIssuer
	Nonces      ports.NonceStore
	Limiter     ports.RateLimiter
	AdminTokens ports.AdminTokenRepo
	Clock       ports.Clock
	// Ready reports whether the process can serve (database, replay store, …); nil means always ready.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// Registry receives the adapter's collectors and is served at /metrics; nil creates a private one.
	Registry *prometheus.Registry
	// OnServerError is told about every 5xx answer and recovered panic (Sentry); may be nil.
	OnServerError func(ctx context.Context, err error)

	// Commerce serves the commerce routes; nil serves none of them.
	Commerce ports.Commerce
	// Files serves GET /v1/files/{token} (the local object store's signed links); nil answers 404.
	Files ports.FileServer
	// StripeWebhook verifies a Stripe webhook (raw body, Stripe-Signature header) and maps it; nil
	// answers 503 STRIPE_NOT_CONFIGURED.
	StripeWebhook func(payload []byte, signatureHeader string) (ports.PaymentEventIn, error)
	// Customers serves sign-in (/v1/auth/*) and the customer API (/v1/me/*); nil answers 503
	// CUSTOMERS_NOT_CONFIGURED on those routes (POST /v1/recover needs only Licensing).
	Customers ports.Customers

	Config Config
}

// RateLimits configures the limits of the device API. The per-address limit runs before anything
// else; the per-license and per-activation limits run after the checks of section 2.
type RateLimits struct {
	Enabled       bool
	PerAddress    ports.Limit
	PerLicense    ports.Limit
	PerActivation ports.Limit
}

// Config holds the adapter's settings; start from DefaultConfig.
type Config struct {
	// RequireMTLS refuses validate, heartbeat, deactivate and renew without a client certificate.
	RequireMTLS bool
	RateLimits  RateLimits
	// TrustedProxies are the peer addresses whose X-Forwarded-For and (with ProxyToken) X-Client-Cert
	// headers are believed. Empty: no proxy is trusted and both headers are ignored.
	TrustedProxies []netip.Prefix
	// ProxyToken must equal the X-Proxy-Token header of a trusted proxy for X-Client-Cert to count.
	// Empty: X-Client-Cert is ignored.
	ProxyToken string
	// PublicPathPrefix is the prefix a proxy strips from device paths before they reach us; it is put
	// back in front of the path the signatures cover.
	PublicPathPrefix string
	// ReplayTTL is how long a (keyid, nonce) pair is remembered (PROTOCOL.md: 600 s).
	ReplayTTL time.Duration
	// MTLSURL is the device base URL of the TLS listener, returned as mtls_url by activate when the
	// licensing service's grant does not name one; "" = null.
	MTLSURL string
	// BodyLimit is the largest body read for any route but the asset upload; device bodies above
	// httpsig.MaxBodyBytes but below it get the signed 413 of the protocol.
	BodyLimit int

	// PublicURL is the base of the order_url of checkout answers, e.g. http://127.0.0.1:8080; ""
	// answers a path relative to this server.
	PublicURL string
	// WebhookSecret keys the generic payment webhook's HMAC; "" answers 503 WEBHOOK_NOT_CONFIGURED.
	WebhookSecret string
	// WebhookAllowlist limits the generic webhook to these client addresses; empty admits any.
	WebhookAllowlist []netip.Prefix
	// WebhookMaxSkew is how far the generic webhook's timestamp may be from our clock (300 s).
	WebhookMaxSkew time.Duration
	// MaxAssetBytes is the largest asset upload (2 GiB); larger uploads get 413.
	MaxAssetBytes int64
}

// DefaultConfig returns the production defaults: mTLS required, rate limits on, no trusted proxy.
func DefaultConfig() Config {
	return Config{
		RequireMTLS: true,
		RateLimits: RateLimits{
			Enabled:       true,
			PerAddress:    ports.Limit{Max: 300, Window: time.Minute},
			PerLicense:    ports.Limit{Max: 120, Window: time.Minute},
			PerActivation: ports.Limit{Max: 60, Window: time.Minute},
		},
		ReplayTTL:      600 * time.Second,
		BodyLimit:      1 << 20,
		WebhookMaxSkew: 300 * time.Second,
		MaxAssetBytes:  2 << 30,
	}
}

// api carries the dependencies of every handler.
type api struct {
	deps    Deps
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	marks   bodyMarks // bodies refused before they were read (commerce_body.go)
}

// New builds the app with every route of this adapter. It fails when a required dependency is
// missing or the active server key cannot sign responses (Ed25519 is the only response algorithm).
func New(deps Deps) (*fiber.App, error) {
	switch {
	case deps.Licensing == nil:
		return nil, errors.New("httpapi: Licensing is required")
	case deps.Keys == nil:
		return nil, errors.New("httpapi: Keys is required")
	case deps.Nonces == nil:
		return nil, errors.New("httpapi: Nonces is required")
	case deps.Clock == nil:
		return nil, errors.New("httpapi: Clock is required")
	case deps.Issuer == nil:
		return nil, errors.New("httpapi: Issuer is required")
	case deps.Config.RateLimits.Enabled && deps.Limiter == nil:
		return nil, errors.New("httpapi: Limiter is required when rate limits are enabled")
	}
	kid, signer := deps.Keys.Active()
	if kid == "" || signer == nil {
		return nil, errors.New("httpapi: Keys has no active key")
	}
	if _, ok := signer.(ed25519.PrivateKey); !ok {
		return nil, fmt.Errorf("httpapi: the active server key %q is a %T, not an ed25519.PrivateKey", kid, signer)
	}
	cfg := deps.Config
	if cfg.ReplayTTL <= 0 {
		cfg.ReplayTTL = 600 * time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.WebhookMaxSkew <= 0 {
		cfg.WebhookMaxSkew = 300 * time.Second
	}
	if cfg.MaxAssetBytes <= 0 {
		cfg.MaxAssetBytes = 2 << 30
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	a := &api{deps: deps, cfg: cfg, log: deps.Logger, metrics: m}

	app := fiber.New(fiber.Config{
		AppName:               "samplero",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		ErrorHandler:          a.serverError,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		// Bodies are read raw (c.Request().Body()): Fiber must not decode Content-Encoding, which the
		// device API refuses anyway.
		//
		// Bodies are streamed so that an asset upload (up to MaxAssetBytes) goes to the object store
		// without being held in memory. fasthttp then no longer enforces BodyLimit itself: the
		// bodyLimit middleware does, for every other route, before any handler reads the body.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
	})
	app.Server().HeaderReceived = a.headerReceived
	a.routes(app)
	return app, nil
}

// routes lists every route of the adapter on one screen.
func (a *api) routes(app *fiber.App) {
	app.Use(a.edge)      // request id, access log, metrics, panic recovery, error rendering
	app.Use(a.bodyLimit) // BodyLimit for every route but the asset upload (bodies are streamed)

	app.Get("/healthz", a.healthz)
	app.Get("/readyz", a.readyz)
	app.Get("/metrics", a.metricsHandler())

	// Device API (PROTOCOL.md section 6): every answer signed (section 3).
	app.Post("/v1/activate", a.device(ports.OpActivate, a.activate))
	app.Post("/v1/bootstrap", a.device(ports.OpBootstrap, a.bootstrap))
	app.Post("/v1/validate", a.device(ports.OpValidate, a.validate))
	app.Post("/v1/heartbeat", a.device(ports.OpHeartbeat, a.heartbeat))
	app.Post("/v1/deactivate", a.device(ports.OpDeactivate, a.deactivate))
	app.Post("/v1/certificates/renew", a.device(ports.OpRenew, a.renew))
	app.Post("/v1/status", a.device(ports.OpStatus, a.status))
	app.Get("/v1/keys", a.signed(a.keys))
	app.Get("/v1/pki/crl/:file", a.public, a.crl) // crl.go: revocation lists for TLS proxies ({id}.crl, {id}.pem)

	// Admin API (PROTOCOL.md section 9).
	admin := app.Group("/v1/admin", a.adminAuth)
	admin.Post("/products", a.putProduct)
	admin.Post("/licenses", a.createLicense)
	admin.Get("/licenses", a.listLicenses)
	admin.Get("/licenses/:id", a.getLicense)
	admin.Post("/licenses/:id/:action<regex(^(revoke|suspend|reinstate)$)>", a.changeLicenseStatus)
	admin.Get("/activations", a.listActivations)
	admin.Post("/activations/:id/release-seat", a.releaseSeat)
	admin.Post("/claims/:id/:decision<regex(^(approve|reject)$)>", a.decideClaim)

	// Signed download links of the local object store.
	app.Get("/v1/files/:token", a.public, a.serveFile)

	// Customer sign-in and license recovery (auth.go; per-address rate limit like the public routes).
	app.Post("/v1/auth/email-link", a.public, a.authEmailLink)
	app.Post("/v1/auth/verify", a.public, a.authVerify)
	app.Post("/v1/auth/password", a.public, a.authPassword)
	app.Post("/v1/auth/sign-out", a.public, a.customer, a.authSignOut)
	app.Post("/v1/auth/sign-out-everywhere", a.public, a.customer, a.authSignOutEverywhere)
	app.Post("/v1/recover", a.public, a.recoverLicenses)

	// Customer API (me.go): the signed-in customer's own objects (bearer token or session cookie).
	me := app.Group("/v1/me", a.public, a.customer)
	me.Get("", a.meAccount)
	me.Put("/password", a.mePassword)
	me.Get("/licenses", a.meLicenses)
	me.Get("/licenses/:ref", a.meLicense)
	me.Post("/licenses/:id/reveal-key", a.meRevealKey)
	me.Post("/licenses/:id/reissue-key", a.meReissueKey)
	me.Patch("/devices/:id", a.meRenameDevice)
	me.Post("/devices/:id/revoke", a.meRevokeDevice)
	me.Post("/devices/:id/release-seat", a.meReleaseSeat)
	me.Get("/claims", a.meClaims)
	me.Post("/claims/:id/:decision<regex(^(approve|reject)$)>", a.meDecideClaim)
	me.Post("/offline-activations", a.offlineActivation) // offline.go: air-gapped activation (PROTOCOL.md section 8)

	if a.deps.Commerce == nil {
		return
	}
	// Commerce, admin: catalog, coupons, orders (POST /v1/admin/products is above).
	admin.Get("/products", a.adminListProducts)
	admin.Get("/products/:slug", a.adminGetProduct)
	admin.Patch("/products/:slug", a.adminUpdateProduct)
	admin.Delete("/products/:slug", a.adminDeleteProduct)
	admin.Post("/products/:slug/publish", a.adminPublishProduct(true))
	admin.Post("/products/:slug/unpublish", a.adminPublishProduct(false))
	admin.Post("/products/:slug/versions", a.adminCreateVersion)
	admin.Patch("/products/:slug/versions/:id", a.adminUpdateVersion)
	admin.Delete("/products/:slug/versions/:id", a.adminDeleteVersion)
	admin.Put("/products/:slug/versions/:id/asset", a.adminUploadAsset) // streamed, up to MaxAssetBytes
	admin.Get("/coupons", a.adminListCoupons)
	admin.Post("/coupons", a.adminCreateCoupon)
	admin.Get("/coupons/:id", a.adminGetCoupon)
	admin.Patch("/coupons/:id", a.adminUpdateCoupon)
	admin.Delete("/coupons/:id", a.adminDeleteCoupon)
	admin.Get("/orders", a.adminListOrders)
	admin.Post("/orders", a.adminCreateOrder)
	admin.Get("/orders/:id", a.adminGetOrder)
	admin.Post("/orders/:id/mark-paid", a.adminMarkPaid)
	admin.Post("/orders/:id/refund", a.adminRefund)
	admin.Post("/orders/:id/release", a.adminRelease)

	// Commerce, public (per-address rate limit).
	app.Get("/v1/catalog/products", a.public, a.catalogList)
	app.Get("/v1/catalog/products/:slug", a.public, a.catalogProduct)
	app.Get("/v1/catalog/products/:slug/versions", a.public, a.catalogVersions)
	app.Get("/v1/catalog/products/:slug/versions/latest", a.public, a.catalogLatest)
	app.Post("/v1/checkout", a.public, a.checkout)
	app.Get("/v1/orders/:id", a.public, a.customerOrder)
	app.Post("/v1/orders/:id/downloads", a.public, a.orderDownload)
	app.Post("/v1/downloads", a.public, a.licenseDownload)

	// Customer API, commerce (me_orders.go): the customer's orders and downloads.
	me.Get("/orders", a.meOrders)
	me.Get("/orders/:id", a.meOrder)
	me.Get("/downloads", a.meDownloads)
	me.Post("/downloads", a.meDownload)

	// Payment webhooks (not rate limited: a provider delivers bursts and retries what fails).
	app.Post("/v1/webhooks/stripe", a.stripeWebhook)
	app.Post("/v1/webhooks/payment", a.paymentWebhook)
}
