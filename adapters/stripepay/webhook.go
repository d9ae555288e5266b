package stripepay

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Tolerance is how old a webhook's signed timestamp may be (Stripe's own default).
const Tolerance = webhook.DefaultTolerance

// Stripe event types the adapter maps; every other type is acknowledged as ignored.
const (
	evCheckoutCompleted      = "checkout.session.completed"
	evCheckoutAsyncSucceeded = "checkout.session.async_payment_succeeded"
	evCheckoutAsyncFailed    = "checkout.session.async_payment_failed"
	evCheckoutExpired        = "checkout.session.expired"
	evChargeRefunded         = "charge.refunded"
	evDisputeCreated         = "charge.dispute.created"
)

// ParseWebhook verifies a webhook delivery (the raw body and its Stripe-Signature header) and maps
// it to a PaymentEventIn. Events of any Stripe API version are accepted: only the few fields needed
// are read, with this package's own structs, from the event's raw data object, so a field Stripe
// renamed in a version stripe-go does not know cannot break the mapping of the others.
//
// Errors: a missing or wrong signature, or a timestamp older than Tolerance by the adapter's clock,
// is errs.Invalid code WEBHOOK_SIGNATURE_INVALID; a correctly signed body that is not a usable
// event is errs.Invalid code WEBHOOK_PAYLOAD_INVALID; no configured secret is errs.Unavailable code
// WEBHOOK_NOT_CONFIGURED (Stripe keeps retrying, and the events arrive once it is configured).
func (s *Stripe) ParseWebhook(payload []byte, signatureHeader string) (ports.PaymentEventIn, error) {
	if s.webhookSecret == "" {
		// An empty HMAC key is one anybody can sign with: never verify against it.
		return ports.PaymentEventIn{}, errs.E(errs.Unavailable, CodeWebhookNotConfigured, "the Stripe webhook secret is not configured")
	}
	// The timestamp window is checked below with the injected clock rather than inside stripe-go,
	// which reads the wall clock; the signature itself is stripe-go's check.
	var env envelope
	ev, err := webhook.ConstructEventWithOptions(payload, signatureHeader, s.webhookSecret,
		webhook.ConstructEventOptions{IgnoreTolerance: true, IgnoreAPIVersionMismatch: true})
	switch {
	case err == nil:
		env.ID, env.Type = ev.ID, string(ev.Type)
		if ev.Data != nil {
			env.Data.Object = ev.Data.Raw
		}
	case isSignatureError(err):
		return ports.PaymentEventIn{}, errs.Wrap(errs.Invalid, CodeSignatureInvalid, "the Stripe-Signature header is missing or does not match", err)
	default:
		// The signature held but stripe-go could not decode the envelope into its Event (events of
		// API versions before 2017-05-25 carry "request" as a string, for one). Verify once more,
		// independently of the error path above, and read the envelope with our own struct.
		if verr := webhook.ValidatePayloadIgnoringTolerance(payload, signatureHeader, s.webhookSecret); verr != nil {
			return ports.PaymentEventIn{}, errs.Wrap(errs.Invalid, CodeSignatureInvalid, "the Stripe-Signature header is missing or does not match", verr)
		}
		if err := s.checkFresh(signatureHeader); err != nil {
			return ports.PaymentEventIn{}, err
		}
		if jerr := json.Unmarshal(payload, &env); jerr != nil {
			return ports.PaymentEventIn{}, errs.Wrap(errs.Invalid, CodePayloadInvalid, "the webhook body is not a Stripe event", jerr)
		}
	}
	// A stale delivery is refused as a signature problem whatever its body holds.
	if err := s.checkFresh(signatureHeader); err != nil {
		return ports.PaymentEventIn{}, err
	}
	if env.ID == "" || env.Type == "" {
		return ports.PaymentEventIn{}, errs.E(errs.Invalid, CodePayloadInvalid, "the event has no id or type")
	}
	out := ports.PaymentEventIn{Provider: Provider, EventID: env.ID, RawType: env.Type, Type: ports.PaymentIgnored}
	raw := env.Data.Object
	switch out.RawType {
	case evCheckoutCompleted, evCheckoutAsyncSucceeded, evCheckoutAsyncFailed, evCheckoutExpired:
		var cs checkoutSession
		if err := decodeObject(raw, &cs); err != nil {
			return ports.PaymentEventIn{}, err
		}
		cs.fill(&out)
		switch out.RawType {
		case evCheckoutCompleted:
			// An unpaid completed session is a delayed payment method (SEPA, ACH…): the order is
			// paid when async_payment_succeeded arrives, not now.
			if cs.PaymentStatus == "paid" || cs.PaymentStatus == "no_payment_required" {
				out.Type = ports.PaymentSucceeded
			}
		case evCheckoutAsyncSucceeded:
			out.Type = ports.PaymentSucceeded
		default:
			out.Type = ports.PaymentCheckoutExpired
		}
	case evChargeRefunded:
		var ch charge
		if err := decodeObject(raw, &ch); err != nil {
			return ports.PaymentEventIn{}, err
		}
		out.PaymentRef = ch.PaymentIntent.ID
		if out.PaymentRef == "" {
			out.PaymentRef = ch.ID // a charge made without a payment intent (legacy Charges API)
		}
		out.OrderID = ch.Metadata[MetaOrderID]
		out.AmountCents = ch.AmountRefunded
		out.ChargeAmountCents = ch.Amount
		out.Currency = strings.ToUpper(ch.Currency)
		if ch.Refunded || ch.AmountRefunded >= ch.Amount {
			out.Type = ports.PaymentRefunded
		} else {
			out.Type = ports.PaymentPartialRefund
		}
	case evDisputeCreated:
		var d dispute
		if err := decodeObject(raw, &d); err != nil {
			return ports.PaymentEventIn{}, err
		}
		// PaymentEventIn has no charge field: the charge stands in for a missing payment intent.
		out.PaymentRef = d.PaymentIntent.ID
		if out.PaymentRef == "" {
			out.PaymentRef = d.Charge.ID
		}
		out.OrderID = d.Metadata[MetaOrderID]
		out.AmountCents = d.Amount
		out.Currency = strings.ToUpper(d.Currency)
		out.Type = ports.PaymentDisputed
	}
	return out, nil
}

// checkFresh refuses a signature whose timestamp is older than Tolerance by the adapter's clock.
func (s *Stripe) checkFresh(header string) error {
	signedAt, ok := signedTimestamp(header)
	if !ok || s.clock.Now().Sub(signedAt) > Tolerance {
		return errs.E(errs.Invalid, CodeSignatureInvalid, "the webhook signature is too old")
	}
	return nil
}

// isSignatureError says whether stripe-go refused the signature rather than the body.
func isSignatureError(err error) bool {
	return errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
		errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld)
}

// signedTimestamp reads t= of a Stripe-Signature header the way stripe-go does (the last one wins),
// after stripe-go has verified that the signature covers it.
func signedTimestamp(header string) (time.Time, bool) {
	var at time.Time
	found := false
	for _, pair := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || k != "t" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		at, found = time.Unix(n, 0), true
	}
	return at, found
}

func decodeObject(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errs.E(errs.Invalid, CodePayloadInvalid, "the event has no data object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return errs.Wrap(errs.Invalid, CodePayloadInvalid, "the event's data object does not have the expected shape", err)
	}
	return nil
}

// envelope is the part of an event every API version shares.
type envelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// expandable is a Stripe reference that is either an id string or, when expanded, an object with
// an id (or null).
type expandable struct{ ID string }

func (e *expandable) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		e.ID = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &e.ID)
	default:
		var obj struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return err
		}
		e.ID = obj.ID
		return nil
	}
}

// metadata is Stripe metadata. Values are strings in every API version; anything else is dropped
// rather than failing the whole event.
type metadata map[string]string

func (m *metadata) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = make(metadata, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			(*m)[k] = s
		}
	}
	return nil
}

// checkoutSession holds the fields of a Checkout Session the mapping reads. They have the same
// names and meanings from API version 2019 to 2025 ("basil").
type checkoutSession struct {
	ID                string     `json:"id"`
	PaymentStatus     string     `json:"payment_status"`
	Metadata          metadata   `json:"metadata"`
	ClientReferenceID string     `json:"client_reference_id"`
	CustomerEmail     string     `json:"customer_email"`
	PaymentIntent     expandable `json:"payment_intent"`
	AmountTotal       int64      `json:"amount_total"`
	Currency          string     `json:"currency"`
	CustomerDetails   *struct {
		Email string `json:"email"`
	} `json:"customer_details"`
	TotalDetails *struct {
		AmountDiscount int64 `json:"amount_discount"`
	} `json:"total_details"`
}

func (cs checkoutSession) fill(out *ports.PaymentEventIn) {
	out.SessionID = cs.ID
	out.OrderID = cs.Metadata[MetaOrderID]
	if out.OrderID == "" {
		out.OrderID = cs.ClientReferenceID
	}
	out.Products = cs.Metadata[MetaProducts]
	if cs.CustomerDetails != nil {
		out.CustomerEmail = cs.CustomerDetails.Email
	}
	if out.CustomerEmail == "" {
		out.CustomerEmail = cs.CustomerEmail
	}
	out.PaymentRef = cs.PaymentIntent.ID
	out.AmountCents = cs.AmountTotal
	if cs.TotalDetails != nil {
		out.DiscountCents = cs.TotalDetails.AmountDiscount
	}
	out.Currency = strings.ToUpper(cs.Currency)
}

// charge holds the fields of a Charge the refund mapping reads.
type charge struct {
	ID             string     `json:"id"`
	Amount         int64      `json:"amount"`
	AmountRefunded int64      `json:"amount_refunded"`
	Refunded       bool       `json:"refunded"`
	Currency       string     `json:"currency"`
	PaymentIntent  expandable `json:"payment_intent"`
	Metadata       metadata   `json:"metadata"`
}

// dispute holds the fields of a Dispute the mapping reads.
type dispute struct {
	ID            string     `json:"id"`
	Amount        int64      `json:"amount"`
	Currency      string     `json:"currency"`
	Charge        expandable `json:"charge"`
	PaymentIntent expandable `json:"payment_intent"`
	Metadata      metadata   `json:"metadata"`
}
