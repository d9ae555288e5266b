// Package stripepay is the Stripe payment provider (github.com/stripe/stripe-go/v76): hosted Checkout
// Sessions and refunds (ports.Payments), and the verification and mapping of Stripe's webhook events
// to ports.PaymentEventIn.
//
// The adapter holds its own API client (client.New with its own backends): stripe-go's package
// globals (stripe.Key, stripe.SetBackend) are never touched, so two adapters with different keys or
// base URLs can live in one process, as the tests and stripe-mock need.
package stripepay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Stable error codes of this adapter.
const (
	CodeProviderUnavailable  = "PAYMENT_PROVIDER_UNAVAILABLE"
	CodeProviderRejected     = "PAYMENT_PROVIDER_REJECTED"
	CodeSignatureInvalid     = "WEBHOOK_SIGNATURE_INVALID"
	CodePayloadInvalid       = "WEBHOOK_PAYLOAD_INVALID"
	CodeWebhookNotConfigured = "WEBHOOK_NOT_CONFIGURED"
)

// Metadata keys Samplero writes on Stripe objects and reads back from webhook events.
const (
	MetaOrderID   = "samplero_order_id"
	MetaReference = "samplero_reference"
	MetaProduct   = "samplero_product"
	MetaProducts  = "samplero_products" // Payment Links: "slug:qty,slug:qty"
	MetaReason    = "samplero_reason"
)

// Provider is the name recorded with every event of this adapter.
const Provider = "stripe"

// Options configure the adapter. Zero values take the defaults.
type Options struct {
	// SecretKey is the API key (sk_… or rk_…). "" leaves CreateCheckout and Refund unavailable while
	// webhooks still verify, which is enough for a dev server fed with test events.
	SecretKey string
	// APIBase is the API's base URL; "" is Stripe itself. Tests point it at stripe-mock.
	APIBase string
	// WebhookSecret is the endpoint's signing secret (whsec_…). Without it every webhook is refused.
	WebhookSecret string
	HTTPClient    *http.Client // default: a client with a 80 s timeout, like stripe-go's
	Logger        *slog.Logger
	Clock         ports.Clock // the webhook timestamp window is measured with it; default wall clock
	// NetworkRetries is how often stripe-go retries a call that failed on the network or was
	// answered 503, 409 or a lock timeout (safe: every call carries an idempotency key). 0 is the
	// default of 2; a negative value disables retries.
	NetworkRetries int
}

// Stripe talks to one Stripe account.
type Stripe struct {
	api           *client.API
	hasKey        bool
	webhookSecret string
	clock         ports.Clock
	log           *slog.Logger
}

var _ ports.Payments = (*Stripe)(nil)

// New builds the adapter. It does not call Stripe.
func New(o Options) (*Stripe, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 80 * time.Second}
	}
	cfg := &stripe.BackendConfig{
		HTTPClient:    o.HTTPClient,
		LeveledLogger: slogLeveled{o.Logger.With("component", "stripe")},
	}
	switch {
	case o.NetworkRetries < 0:
		cfg.MaxNetworkRetries = stripe.Int64(0)
	case o.NetworkRetries > 0:
		cfg.MaxNetworkRetries = stripe.Int64(int64(o.NetworkRetries))
	}
	if o.APIBase != "" {
		u, err := url.Parse(o.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("stripepay: API base %q is not an http(s) URL", o.APIBase)
		}
		cfg.URL = stripe.String(strings.TrimRight(o.APIBase, "/"))
	}
	// Only the API backend is ever used; the connect and uploads backends keep Stripe's URLs.
	backends := &stripe.Backends{
		API:     stripe.GetBackendWithConfig(stripe.APIBackend, cfg),
		Connect: stripe.GetBackendWithConfig(stripe.ConnectBackend, &stripe.BackendConfig{HTTPClient: o.HTTPClient, LeveledLogger: cfg.LeveledLogger}),
		Uploads: stripe.GetBackendWithConfig(stripe.UploadsBackend, &stripe.BackendConfig{HTTPClient: o.HTTPClient, LeveledLogger: cfg.LeveledLogger}),
	}
	return &Stripe{
		api:           client.New(o.SecretKey, backends),
		hasKey:        o.SecretKey != "",
		webhookSecret: o.WebhookSecret,
		clock:         o.Clock,
		log:           o.Logger,
	}, nil
}

// CreateCheckout creates a Checkout Session (mode payment) for a pending order. The idempotency key
// is derived from the order id, so a retry (ours or stripe-go's) returns the same session for 24 h
// instead of a second one; a discount becomes a one-off coupon created under its own key first.
func (s *Stripe) CreateCheckout(ctx context.Context, req ports.CheckoutRequest) (ports.CheckoutSession, error) {
	if err := validateCheckout(req); err != nil {
		return ports.CheckoutSession{}, err
	}
	if !s.hasKey {
		return ports.CheckoutSession{}, notConfigured()
	}
	currency := strings.ToLower(req.Currency)
	p := &stripe.CheckoutSessionParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(req.OrderID),
		SuccessURL:        stripe.String(req.SuccessURL),
		CancelURL:         stripe.String(req.CancelURL),
		// The payment intent carries the order too, so the Dashboard and later refunds or disputes
		// of that payment can be traced to the order without the session.
		PaymentIntentData: &stripe.CheckoutSessionPaymentIntentDataParams{
			Metadata: map[string]string{MetaOrderID: req.OrderID},
		},
	}
	if req.CustomerEmail != "" {
		p.CustomerEmail = stripe.String(req.CustomerEmail)
	}
	p.AddMetadata(MetaOrderID, req.OrderID)
	if req.Reference != "" {
		p.AddMetadata(MetaReference, metaValue(req.Reference))
		p.PaymentIntentData.Metadata[MetaReference] = metaValue(req.Reference)
	}
	for _, l := range req.Lines {
		name := l.Name
		if strings.TrimSpace(name) == "" {
			name = l.Product
		}
		p.LineItems = append(p.LineItems, &stripe.CheckoutSessionLineItemParams{
			PriceData: &stripe.CheckoutSessionLineItemPriceDataParams{
				Currency:   stripe.String(currency),
				UnitAmount: stripe.Int64(l.UnitPriceCents),
				ProductData: &stripe.CheckoutSessionLineItemPriceDataProductDataParams{
					Name:     stripe.String(name),
					Metadata: map[string]string{MetaProduct: metaValue(l.Product)},
				},
			},
			Quantity: stripe.Int64(int64(l.Quantity)),
		})
	}
	if req.DiscountCents > 0 {
		couponID, err := s.discountCoupon(ctx, req, currency)
		if err != nil {
			return ports.CheckoutSession{}, err
		}
		p.Discounts = []*stripe.CheckoutSessionDiscountParams{{Coupon: stripe.String(couponID)}}
	}
	p.Context = ctx
	p.SetIdempotencyKey("samplero-checkout-" + req.OrderID)
	sess, err := s.api.CheckoutSessions.New(p)
	if err != nil {
		return ports.CheckoutSession{}, s.mapError("create checkout session", err)
	}
	if sess.ID == "" || sess.URL == "" {
		return ports.CheckoutSession{}, errs.E(errs.Unavailable, CodeProviderUnavailable,
			"the payment provider returned a checkout session without an id or URL")
	}
	out := ports.CheckoutSession{ID: sess.ID, URL: sess.URL}
	if sess.ExpiresAt > 0 {
		out.ExpiresAt = time.Unix(sess.ExpiresAt, 0).UTC()
	}
	return out, nil
}

// discountCoupon creates the one-off coupon that carries an order's discount: Checkout takes a
// discount only as a coupon or promotion code, never as a plain amount. max_redemptions 1 keeps a
// leaked coupon id from being reused on another session.
func (s *Stripe) discountCoupon(ctx context.Context, req ports.CheckoutRequest, currency string) (string, error) {
	name := "Order discount"
	if req.Reference != "" {
		name = "Discount " + req.Reference
	}
	cp := &stripe.CouponParams{
		AmountOff:      stripe.Int64(req.DiscountCents),
		Currency:       stripe.String(currency),
		Duration:       stripe.String(string(stripe.CouponDurationOnce)),
		MaxRedemptions: stripe.Int64(1),
		Name:           stripe.String(truncate(name, 40)), // Stripe's limit for coupon names
	}
	cp.AddMetadata(MetaOrderID, req.OrderID)
	cp.Context = ctx
	cp.SetIdempotencyKey("samplero-discount-" + req.OrderID)
	c, err := s.api.Coupons.New(cp)
	if err != nil {
		return "", s.mapError("create discount coupon", err)
	}
	if c.ID == "" {
		return "", errs.E(errs.Unavailable, CodeProviderUnavailable, "the payment provider returned a coupon without an id")
	}
	return c.ID, nil
}

// refundReasons are the reasons Stripe accepts on a new refund; anything else goes to metadata.
var refundReasons = map[string]stripe.RefundReason{
	"duplicate":             stripe.RefundReasonDuplicate,
	"fraudulent":            stripe.RefundReasonFraudulent,
	"requested_by_customer": stripe.RefundReasonRequestedByCustomer,
}

// Refund refunds the whole payment: paymentRef is a payment intent (pi_…) or, for charges made
// without one, a charge (ch_…). A payment Stripe reports as already refunded counts as done, so an
// admin refund after a Dashboard refund, or a retry after a lost answer, is not an error.
func (s *Stripe) Refund(ctx context.Context, paymentRef, reason string) error {
	paymentRef = strings.TrimSpace(paymentRef)
	p := &stripe.RefundParams{}
	switch {
	case strings.HasPrefix(paymentRef, "pi_"):
		p.PaymentIntent = stripe.String(paymentRef)
	case strings.HasPrefix(paymentRef, "ch_") || strings.HasPrefix(paymentRef, "py_"):
		p.Charge = stripe.String(paymentRef)
	default:
		return errs.Validation("the payment reference is not a Stripe payment intent or charge")
	}
	if !s.hasKey {
		return notConfigured()
	}
	reason = strings.TrimSpace(reason)
	if r, ok := refundReasons[strings.ToLower(reason)]; ok {
		p.Reason = stripe.String(string(r))
	} else if reason != "" {
		p.AddMetadata(MetaReason, metaValue(reason))
	}
	p.Context = ctx
	p.SetIdempotencyKey("samplero-refund-" + paymentRef)
	if _, err := s.api.Refunds.New(p); err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.Code == stripe.ErrorCodeChargeAlreadyRefunded {
			s.log.InfoContext(ctx, "stripe: payment already refunded", "payment_ref", paymentRef)
			return nil
		}
		return s.mapError("refund", err)
	}
	return nil
}

func validateCheckout(req ports.CheckoutRequest) error {
	switch {
	case strings.TrimSpace(req.OrderID) == "":
		return errs.Validation("the checkout has no order id")
	case len(req.Lines) == 0:
		return errs.Validation("the checkout has no line items")
	case !isCurrency(req.Currency):
		return errs.Validation("the currency must be a three-letter ISO 4217 code")
	case req.SuccessURL == "" || req.CancelURL == "":
		return errs.Validation("the checkout needs a success URL and a cancel URL")
	case req.DiscountCents < 0:
		return errs.Validation("the discount cannot be negative")
	}
	var subtotal int64
	for _, l := range req.Lines {
		if strings.TrimSpace(l.Product) == "" && strings.TrimSpace(l.Name) == "" {
			return errs.Validation("a line item has neither a name nor a product")
		}
		if l.Quantity < 1 {
			return errs.Validation("a line item quantity must be at least 1")
		}
		if l.UnitPriceCents < 0 {
			return errs.Validation("a line item price cannot be negative")
		}
		subtotal += l.UnitPriceCents * int64(l.Quantity)
	}
	if req.DiscountCents > subtotal {
		return errs.Validation("the discount is larger than the order")
	}
	return nil
}

func isCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

func notConfigured() error {
	return errs.E(errs.Unavailable, CodeProviderUnavailable, "the payment provider is not configured")
}

// secretRE finds anything shaped like a Stripe key or webhook secret, so that no message we pass on
// can carry one even if Stripe (or a proxy in front of it) echoes it.
var secretRE = regexp.MustCompile(`\b(sk|rk|pk|whsec)_[A-Za-z0-9_*]+`)

// mapError turns a stripe-go failure into the port's vocabulary: the provider being unreachable,
// overloaded or failing (network, 5xx, 429) is Unavailable and worth retrying later; a 4xx is a
// rejection of what we sent, reported with Stripe's own message.
func (s *Stripe) mapError(op string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		// Network errors, timeouts, cancelled contexts and bodies that are not Stripe's JSON.
		s.log.Warn("stripe: call failed", "op", op, "err", scrub(err.Error()))
		return errs.Wrap(errs.Unavailable, CodeProviderUnavailable, "the payment provider is unavailable", errors.New(scrub(err.Error())))
	}
	cause := fmt.Errorf("stripe %s: status %d type %s code %s request %s: %s",
		op, se.HTTPStatusCode, se.Type, se.Code, se.RequestID, scrub(se.Msg))
	s.log.Warn("stripe: call refused", "op", op, "status", se.HTTPStatusCode, "type", string(se.Type),
		"code", string(se.Code), "request_id", se.RequestID)
	switch {
	case se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode >= 500 || se.HTTPStatusCode == 0 ||
		se.Type == stripe.ErrorTypeAPI:
		return errs.Wrap(errs.Unavailable, CodeProviderUnavailable, "the payment provider is unavailable", cause)
	case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
		// Stripe's text names the (masked) key; the client needs only to know it was refused.
		return errs.Wrap(errs.Invalid, CodeProviderRejected, "the payment provider refused our credentials", cause)
	default:
		msg := scrub(strings.TrimSpace(se.Msg))
		if msg == "" {
			msg = "the payment provider rejected the request"
		} else {
			msg = "the payment provider rejected the request: " + msg
		}
		return errs.Wrap(errs.Invalid, CodeProviderRejected, msg, cause)
	}
}

func scrub(s string) string { return secretRE.ReplaceAllString(s, "[redacted]") }

// metaValue keeps a metadata value within Stripe's 500-character limit.
func metaValue(v string) string { return truncate(v, 500) }

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// slogLeveled routes stripe-go's printf-style logging to slog. stripe-go logs every request at info
// level, which is debug detail for us; its "errors" are failures we return and map ourselves.
type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) Debugf(format string, v ...any) { s.l.Debug(scrub(fmt.Sprintf(format, v...))) }
func (s slogLeveled) Infof(format string, v ...any)  { s.l.Debug(scrub(fmt.Sprintf(format, v...))) }
func (s slogLeveled) Warnf(format string, v ...any)  { s.l.Warn(scrub(fmt.Sprintf(format, v...))) }
func (s slogLeveled) Errorf(format string, v ...any) { s.l.Warn(scrub(fmt.Sprintf(format, v...))) }
