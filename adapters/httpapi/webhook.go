package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Payment webhooks: Stripe's (PROTOCOL.md section 9) and a generic HMAC-signed one for other
// providers. Both verify, map the event to ports.PaymentEventIn and hand it to
// Commerce.HandlePayment, which applies it exactly once per (provider, event id): a redelivery is
// acknowledged with duplicate:true and changes nothing.

const (
	codeStripeNotConfigured   = "STRIPE_NOT_CONFIGURED"
	codeWebhookNotConfigured  = "WEBHOOK_NOT_CONFIGURED"
	codeWebhookSignature      = "WEBHOOK_SIGNATURE_INVALID"
	codeWebhookSourceRefused  = "WEBHOOK_SOURCE_FORBIDDEN"
	codeWebhookHeadersMissing = "WEBHOOK_HEADERS_MISSING"
	codeWebhookTimestamp      = "WEBHOOK_TIMESTAMP_OUT_OF_WINDOW"

	headerStripeSignature  = "Stripe-Signature"
	headerWebhookTimestamp = "X-Webhook-Timestamp"
	headerWebhookID        = "X-Webhook-Id"
	headerWebhookSignature = "X-Webhook-Signature"

	maxWebhookIDLen = 200
)

type webhookAnswer struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate"`
}

// webhookBody returns the raw body, refusing one above webhookBodyLimit.
func webhookBody(c *fiber.Ctx) ([]byte, error) {
	b := c.Request().Body()
	if len(b) > webhookBodyLimit {
		return nil, errs.E(errs.TooLarge, codeBodyTooLarge, "the webhook body exceeds 1 MiB")
	}
	// The verified event outlives nothing but this call; the copy keeps Fiber's buffer from
	// escaping into whatever the parser retains.
	return bytes.Clone(b), nil
}

// handlePayment applies a verified event and answers the provider.
func (a *api) handlePayment(c *fiber.Ctx, ev ports.PaymentEventIn) error {
	out, err := a.deps.Commerce.HandlePayment(c.UserContext(), ev)
	if err != nil {
		// errs.Unavailable is a 503: the provider delivers the event again later.
		return err
	}
	return render(c, fiber.StatusOK, webhookAnswer{Received: true, Duplicate: out.Duplicate})
}

// stripeWebhook: POST /v1/webhooks/stripe. A missing or bad Stripe-Signature is 400 (PROTOCOL.md
// section 9), whatever kind the verifier gives it, so Stripe shows the failure on the endpoint.
func (a *api) stripeWebhook(c *fiber.Ctx) error {
	if a.deps.StripeWebhook == nil {
		return errs.E(errs.Unavailable, codeStripeNotConfigured, "Stripe webhooks are not configured on this server")
	}
	body, err := webhookBody(c)
	if err != nil {
		return err
	}
	sig := strings.Clone(c.Get(headerStripeSignature))
	if sig == "" {
		return errs.E(errs.Invalid, codeWebhookSignature, "the Stripe-Signature header is missing")
	}
	ev, err := a.deps.StripeWebhook(body, sig)
	if err != nil {
		switch errs.KindOf(err) {
		case errs.Invalid, errs.Unauthenticated, errs.Forbidden:
			code := errs.CodeOf(err)
			if code == "" || code == errs.CodeInternal {
				code = codeWebhookSignature
			}
			return errs.Wrap(errs.Invalid, code, "the Stripe event does not verify", err)
		}
		return err
	}
	return a.handlePayment(c, ev)
}

// genericEvent is the generic webhook's body. Unknown fields are allowed: a provider adding one must
// not make every delivery fail.
type genericEvent struct {
	Event *string `json:"event"`
	Data  struct {
		OrderID           string `json:"order_id"`
		PaymentID         string `json:"payment_id"`
		AmountCents       *int64 `json:"amount_cents"`
		Currency          string `json:"currency"`
		DiscountCents     int64  `json:"discount_cents"`
		Email             string `json:"email"`
		ChargeAmountCents *int64 `json:"charge_amount_cents"`
	} `json:"data"`
}

// genericTypes maps the generic events to the normalised ones; others are acknowledged and ignored.
var genericTypes = map[string]string{
	"payment.succeeded":          ports.PaymentSucceeded,
	"payment.refunded":           ports.PaymentRefunded,
	"payment.partially_refunded": ports.PaymentPartialRefund,
	"payment.disputed":           ports.PaymentDisputed,
	"payment.failed":             ports.PaymentCheckoutExpired,
}

// paymentWebhook: POST /v1/webhooks/payment, the generic provider. The checks run in this order:
// configuration, source address, headers present, signature, timestamp window; only then is the
// body read as an event. The event id (X-Webhook-Id) is the replay key, applied by HandlePayment.
func (a *api) paymentWebhook(c *fiber.Ctx) error {
	if a.cfg.WebhookSecret == "" {
		return errs.E(errs.Unavailable, codeWebhookNotConfigured, "the payment webhook is not configured on this server")
	}
	if !a.webhookSourceAllowed(c) {
		return errs.E(errs.Forbidden, codeWebhookSourceRefused, "this source may not deliver webhooks")
	}
	tsHeader := strings.TrimSpace(c.Get(headerWebhookTimestamp))
	id := strings.TrimSpace(c.Get(headerWebhookID))
	sig := strings.TrimSpace(c.Get(headerWebhookSignature))
	ts, tsErr := strconv.ParseInt(tsHeader, 10, 64)
	if tsHeader == "" || id == "" || sig == "" || tsErr != nil || ts < 0 {
		return errs.E(errs.Unauthenticated, codeWebhookHeadersMissing,
			"X-Webhook-Timestamp (unix seconds), X-Webhook-Id and X-Webhook-Signature are required")
	}
	if len(id) > maxWebhookIDLen {
		return errs.E(errs.Unauthenticated, codeWebhookHeadersMissing, "X-Webhook-Id is too long")
	}
	body, err := webhookBody(c)
	if err != nil {
		return err
	}
	if !validWebhookSignature(a.cfg.WebhookSecret, tsHeader, id, body, sig) {
		return errs.E(errs.Unauthenticated, codeWebhookSignature, "the webhook signature does not verify")
	}
	if ts > 1e12 { // milliseconds
		ts /= 1000
	}
	skew := a.deps.Clock.Now().Sub(time.Unix(ts, 0))
	if skew < 0 {
		skew = -skew
	}
	if skew > a.cfg.WebhookMaxSkew {
		return errs.E(errs.Unauthenticated, codeWebhookTimestamp, "the webhook timestamp is outside the allowed window")
	}
	ev, err := genericEventIn(body, strings.Clone(id))
	if err != nil {
		return err
	}
	return a.handlePayment(c, ev)
}

// validWebhookSignature checks hex(HMAC-SHA-256(secret, "<timestamp>.<id>.<body>")) against sig
// (optional "sha256=" prefix, either case of hex) in constant time.
func validWebhookSignature(secret, ts, id string, body []byte, sig string) bool {
	sig = strings.TrimSpace(sig)
	if len(sig) >= 7 && strings.EqualFold(sig[:7], "sha256=") {
		sig = sig[7:]
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// webhookSourceAllowed applies WebhookAllowlist to the client address, which is the TCP peer unless
// that is a trusted proxy (then the right-most X-Forwarded-For entry that is not one): an entry a
// client wrote itself is never believed.
func (a *api) webhookSourceAllowed(c *fiber.Ctx) bool {
	if len(a.cfg.WebhookAllowlist) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(a.clientAddr(c))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.cfg.WebhookAllowlist {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// genericEventIn maps a verified generic body.
func genericEventIn(body []byte, id string) (ports.PaymentEventIn, error) {
	var g genericEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&g); err != nil {
		return ports.PaymentEventIn{}, jsonValidation(err)
	}
	if g.Event == nil || *g.Event == "" {
		return ports.PaymentEventIn{}, errs.Validation("event is required")
	}
	d := g.Data
	ev := ports.PaymentEventIn{
		Provider: "generic", EventID: id, RawType: *g.Event, OrderID: d.OrderID, PaymentRef: d.PaymentID,
		Currency: strings.ToUpper(strings.TrimSpace(d.Currency)), DiscountCents: d.DiscountCents,
		CustomerEmail: strings.TrimSpace(d.Email),
	}
	typ, known := genericTypes[*g.Event]
	if !known {
		ev.Type = ports.PaymentIgnored
		return ev, nil
	}
	ev.Type = typ
	switch typ {
	case ports.PaymentSucceeded:
		if err := required(field{"data.order_id", d.OrderID != ""}, field{"data.payment_id", d.PaymentID != ""},
			field{"data.amount_cents", d.AmountCents != nil}, field{"data.currency", ev.Currency != ""}); err != nil {
			return ev, err
		}
	case ports.PaymentRefunded, ports.PaymentPartialRefund, ports.PaymentDisputed:
		if d.OrderID == "" && d.PaymentID == "" {
			return ev, errs.Validation("data.order_id or data.payment_id is required")
		}
	case ports.PaymentCheckoutExpired:
		if err := required(field{"data.order_id", d.OrderID != ""}); err != nil {
			return ev, err
		}
	}
	if d.AmountCents != nil {
		if *d.AmountCents < 0 || d.DiscountCents < 0 {
			return ev, errs.Validation("amounts must not be negative")
		}
		ev.AmountCents = *d.AmountCents
	}
	switch {
	case d.ChargeAmountCents != nil:
		ev.ChargeAmountCents = *d.ChargeAmountCents
	case typ == ports.PaymentRefunded:
		// The event says the refund is full: the whole charge came back.
		ev.ChargeAmountCents = ev.AmountCents
	}
	return ev, nil
}
