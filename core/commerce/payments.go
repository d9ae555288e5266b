package commerce

import (
	"context"
	"fmt"
	"strings"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Outcomes of a payment event, as recorded with the event and returned to the webhook.
const (
	OutcomeFulfilling   = "fulfilling"    // the order is paid; its fulfilment started
	OutcomeHeld         = "held"          // the order is held for review; the operator was told
	OutcomeRevoking     = "revoking"      // the order's revocation started
	OutcomeFailed       = "failed"        // the pending order failed (checkout expired, refunded unpaid)
	OutcomeIgnored      = "ignored"       // nothing to do
	OutcomeUnknownOrder = "unknown_order" // the event names no order we know (acknowledged)
)

// effects are what a use case does after its transaction committed: starting processes is not a
// database write, and the transaction may run its function more than once.
type effects struct {
	fulfil       string // order id whose fulfilment starts
	revoke       string // order id whose revocation starts
	revokeStatus order.Status
	revokeReason string
	emails       []ports.EmailMessage
}

// run applies the effects. E-mails to the operator are best effort (logged); a process that does
// not start is UNAVAILABLE, so that the webhook answers 503 and the provider delivers again (the
// duplicate then starts it, see HandlePayment).
func (s *Service) run(ctx context.Context, fx effects) error {
	for _, m := range fx.emails {
		if m.To == "" {
			continue
		}
		if err := s.d.Processes.SendEmail(ctx, m); err != nil {
			s.log.Error("sending e-mail failed", "email", m.ID, "err", err)
		}
	}
	if fx.fulfil != "" {
		if err := s.startFulfilment(ctx, fx.fulfil); err != nil {
			return err
		}
	}
	if fx.revoke != "" {
		if err := s.startRevocation(ctx, fx.revoke, fx.revokeStatus, fx.revokeReason); err != nil {
			return err
		}
	}
	return nil
}

func knownEventType(t string) bool {
	switch t {
	case ports.PaymentSucceeded, ports.PaymentRefunded, ports.PaymentPartialRefund, ports.PaymentDisputed,
		ports.PaymentCheckoutExpired, ports.PaymentIgnored:
		return true
	}
	return false
}

// refundKind turns a refund event into a full or partial one: an adapter that calls a refund full
// while the amounts say otherwise is corrected, since revoking on a partial refund cannot be undone
// by the customer.
func refundKind(ev ports.PaymentEventIn) string {
	if ev.Type == ports.PaymentRefunded && ev.ChargeAmountCents > 0 && ev.AmountCents < ev.ChargeAmountCents {
		return ports.PaymentPartialRefund
	}
	return ev.Type
}

// HandlePayment implements ports.Commerce. In one transaction it records the event (the unique
// (provider, event id) decides which of any number of concurrent deliveries acts), applies it to
// the row-locked order and writes the outcome; processes start after the commit.
//
// A duplicate does nothing, except that a paid order whose fulfilment never completed (or a paid
// order whose refund never started its revocation) has that process started again: starting it is
// idempotent, and this heals a crash or a failed start between the commit and the start, which
// made the first delivery answer 503.
func (s *Service) HandlePayment(ctx context.Context, ev ports.PaymentEventIn) (ports.PaymentOutcome, error) {
	ev.Provider = strings.TrimSpace(ev.Provider)
	ev.EventID = strings.TrimSpace(ev.EventID)
	if ev.Provider == "" || ev.EventID == "" {
		return ports.PaymentOutcome{}, errs.Validation("a payment event needs a provider and an event id")
	}
	if !knownEventType(ev.Type) {
		return ports.PaymentOutcome{}, errs.Validation("unknown payment event type " + ev.Type)
	}
	var out ports.PaymentOutcome
	var fx effects
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		out, fx = ports.PaymentOutcome{}, effects{}
		o, found, err := s.eventOrder(ctx, ev)
		if err != nil {
			return err
		}
		rec := order.PaymentEvent{Provider: ev.Provider, EventID: ev.EventID, Type: firstNonEmpty(ev.RawType, ev.Type), OrderID: ev.OrderID, ReceivedAt: s.now()}
		if found {
			rec.OrderID = o.ID
		}
		fresh, err := s.d.Events.Record(ctx, rec)
		if err != nil {
			return portFailure("recording payment event", err)
		}
		if !fresh {
			out.Duplicate = true
			prev, err := s.d.Events.Get(ctx, ev.Provider, ev.EventID)
			if err != nil {
				return portFailure("loading payment event", err)
			}
			out.Outcome, out.OrderID = prev.Outcome, prev.OrderID
			if found {
				out.OrderID = o.ID
				s.heal(ev, o, &fx)
			}
			return nil
		}
		if found {
			// Lock and reload: what eventOrder read may have changed before the lock.
			if o, err = s.lockOrder(ctx, o.ID); err != nil {
				return err
			}
		}
		switch refundKind(ev) {
		case ports.PaymentSucceeded:
			err = s.paymentSucceeded(ctx, ev, o, found, &out, &fx)
		case ports.PaymentRefunded:
			err = s.paymentReversed(ctx, ev, o, found, order.StatusRefunded, &out, &fx)
		case ports.PaymentDisputed:
			err = s.paymentReversed(ctx, ev, o, found, order.StatusDisputed, &out, &fx)
		case ports.PaymentPartialRefund:
			err = s.partialRefund(ctx, ev, o, found, &out, &fx)
		case ports.PaymentCheckoutExpired:
			err = s.checkoutExpired(ctx, o, found, &out)
		default:
			out.Outcome = OutcomeIgnored
			if found {
				out.OrderID = o.ID
			}
		}
		if err != nil {
			return err
		}
		if err := s.d.Events.SetOutcome(ctx, ev.Provider, ev.EventID, out.Outcome); err != nil {
			return portFailure("recording payment outcome", err)
		}
		return nil
	})
	if err != nil {
		return ports.PaymentOutcome{}, err
	}
	s.log.Info("payment event", "provider", ev.Provider, "event", ev.EventID, "type", ev.Type,
		"order", out.OrderID, "outcome", out.Outcome, "duplicate", out.Duplicate)
	return out, s.run(ctx, fx)
}

// eventOrder finds the order an event concerns, without locking it: refunds and disputes by the
// payment they reverse, other events by the order id of their metadata, then the Checkout Session,
// then the payment (an order created for a Payment Link carries both).
func (s *Service) eventOrder(ctx context.Context, ev ports.PaymentEventIn) (order.Order, bool, error) {
	type lookup func() (order.Order, error)
	byID := func() (order.Order, error) {
		if ev.OrderID == "" {
			return order.Order{}, errs.E(errs.NotFound, errs.CodeNotFound, "no order id")
		}
		return s.d.Orders.Get(ctx, ev.OrderID)
	}
	bySession := func() (order.Order, error) {
		if ev.SessionID == "" {
			return order.Order{}, errs.E(errs.NotFound, errs.CodeNotFound, "no session id")
		}
		return s.d.Orders.ByCheckoutSession(ctx, ev.SessionID)
	}
	byPayment := func() (order.Order, error) {
		if ev.PaymentRef == "" {
			return order.Order{}, errs.E(errs.NotFound, errs.CodeNotFound, "no payment reference")
		}
		return s.d.Orders.ByPaymentRef(ctx, ev.Provider, ev.PaymentRef)
	}
	lookups := []lookup{byID, bySession, byPayment}
	switch ev.Type {
	case ports.PaymentRefunded, ports.PaymentPartialRefund, ports.PaymentDisputed:
		lookups = []lookup{byPayment, byID}
	}
	for _, find := range lookups {
		o, err := find()
		if err == nil {
			return o, true, nil
		}
		if !repoMissing(err) {
			return o, false, portFailure("finding the event's order", err)
		}
	}
	return order.Order{}, false, nil
}

// heal is the duplicate path: restart what the first delivery should have started.
func (s *Service) heal(ev ports.PaymentEventIn, o order.Order, fx *effects) {
	switch refundKind(ev) {
	case ports.PaymentSucceeded:
		if unfinished(o) {
			fx.fulfil = o.ID
		}
	case ports.PaymentRefunded:
		if order.IsPaid(o.Status) {
			fx.revoke, fx.revokeStatus, fx.revokeReason = o.ID, order.StatusRefunded, reversalReason(ev, order.StatusRefunded)
		}
	case ports.PaymentDisputed:
		if order.IsPaid(o.Status) {
			fx.revoke, fx.revokeStatus, fx.revokeReason = o.ID, order.StatusDisputed, reversalReason(ev, order.StatusDisputed)
		}
	}
}

// recordPayment copies what the provider reported onto the order, also when the payment is held:
// a later refund finds the order by its payment reference, and the admin sees what was paid.
func recordPayment(o *order.Order, ev ports.PaymentEventIn) {
	o.PaymentProvider = ev.Provider
	if ev.PaymentRef != "" {
		o.PaymentRef = ev.PaymentRef
	}
	o.PaidAmountCents = ev.AmountCents
	o.PaidCurrency = strings.ToUpper(strings.TrimSpace(ev.Currency))
	if o.CheckoutSessionID == "" {
		o.CheckoutSessionID = ev.SessionID
	}
}

// amountCovers reports whether what was paid, plus the discount the provider granted, covers the
// order's total in its currency.
func amountCovers(ev ports.PaymentEventIn, o order.Order) bool {
	if !strings.EqualFold(strings.TrimSpace(ev.Currency), o.Currency) || ev.AmountCents < 0 {
		return false
	}
	discount := max(ev.DiscountCents, 0)
	// amount + discount ≥ total, written so that it cannot overflow.
	return discount >= o.TotalCents || ev.AmountCents >= o.TotalCents-discount
}

// paymentSucceeded applies payment.succeeded.
func (s *Service) paymentSucceeded(ctx context.Context, ev ports.PaymentEventIn, o order.Order, found bool, out *ports.PaymentOutcome, fx *effects) error {
	isNew := false
	if !found {
		// A Payment Link's order id may be the link's client_reference_id (the vendor's own
		// tracking value): when the event lists products, they make the order.
		if ev.Products == "" {
			out.Outcome = OutcomeUnknownOrder
			s.log.Warn("payment for an unknown order", "provider", ev.Provider, "event", ev.EventID, "order", ev.OrderID, "session", ev.SessionID)
			return s.alertUnknown(ev, "The payment names an order that does not exist.", fx)
		}
		var err error
		o, err = s.paymentLinkOrder(ctx, ev)
		if err != nil {
			if _, domain := errs.As(err); !domain || errs.KindOf(err) == errs.Internal {
				return err
			}
			// The buyer paid, but the link's products cannot make an order: nothing can be
			// delivered automatically, so an operator must look at it.
			out.Outcome = OutcomeUnknownOrder
			s.log.Warn("payment link without a valid order", "provider", ev.Provider, "event", ev.EventID, "err", err)
			msg := "A Payment Link was paid, but no order could be made of it: "
			if e, ok := errs.As(err); ok {
				msg += e.Message
			}
			return s.alertUnknown(ev, msg, fx)
		}
		isNew = true
	}
	out.OrderID = o.ID
	now := s.now()
	switch o.Status {
	case order.StatusPaid, order.StatusFulfilled:
		out.Outcome = OutcomeIgnored
		if unfinished(o) {
			fx.fulfil = o.ID
		}
		return nil
	case order.StatusRefunded, order.StatusDisputed:
		out.Outcome = OutcomeIgnored
		return nil
	case order.StatusFailed:
		if o.ReviewReason != "" {
			out.Outcome = OutcomeIgnored
			return nil
		}
		recordPayment(&o, ev)
		return s.hold(ctx, &o, order.ReviewPaidAfterFailure, "late-payment", ev, out, fx,
			"A payment arrived for an order that had already failed (its checkout expired). The order is held: release it to deliver, or refund the payment.")
	}
	// pending
	if o.ReviewReason != "" {
		out.Outcome = OutcomeIgnored
		return nil
	}
	recordPayment(&o, ev)
	if !amountCovers(ev, o) {
		o.ReviewReason = order.ReviewAmountMismatch
		if isNew {
			return s.holdNew(ctx, &o, ev, out, fx)
		}
		return s.hold(ctx, &o, order.ReviewAmountMismatch, "amount", ev, out, fx,
			"The amount or currency paid does not cover the order. The order is held and nothing was delivered: release it to deliver anyway, or refund the payment.")
	}
	if err := order.Transition(&o, order.StatusPaid, now); err != nil {
		return err
	}
	out.Outcome = OutcomeFulfilling
	fx.fulfil = o.ID
	if isNew {
		return s.insertOrder(ctx, &o)
	}
	return s.saveOrder(ctx, &o)
}

// holdNew inserts a Payment Link order held for an amount mismatch.
func (s *Service) holdNew(ctx context.Context, o *order.Order, ev ports.PaymentEventIn, out *ports.PaymentOutcome, fx *effects) error {
	if err := s.insertOrder(ctx, o); err != nil {
		return err
	}
	out.Outcome, out.OrderID = OutcomeHeld, o.ID
	m, err := s.supportEmail(*o, "amount", "Order held: amount mismatch",
		"The amount or currency paid through a Payment Link does not cover the order. The order is held and nothing was delivered: release it to deliver anyway, or refund the payment.", &ev)
	if err != nil {
		return err
	}
	fx.emails = append(fx.emails, m)
	return nil
}

func (s *Service) insertOrder(ctx context.Context, o *order.Order) error {
	ins, err := s.d.Orders.Insert(ctx, *o)
	if err != nil {
		return portFailure("inserting order", err)
	}
	o.Number = ins.Number
	return nil
}

// hold stores the order held for review with reason and queues the operator's e-mail
// (support-<order id>-<tag>).
func (s *Service) hold(ctx context.Context, o *order.Order, reason, tag string, ev ports.PaymentEventIn, out *ports.PaymentOutcome, fx *effects, explain string) error {
	o.ReviewReason = reason
	if err := s.saveOrder(ctx, o); err != nil {
		return err
	}
	out.Outcome, out.OrderID = OutcomeHeld, o.ID
	m, err := s.supportEmail(*o, tag, "Order held for review: "+strings.ReplaceAll(reason, "_", " "), explain, &ev)
	if err != nil {
		return err
	}
	fx.emails = append(fx.emails, m)
	return nil
}

// alertUnknown queues the operator's e-mail about a payment without an order.
func (s *Service) alertUnknown(ev ports.PaymentEventIn, explain string, fx *effects) error {
	m, err := s.unknownPaymentEmail(ev, explain)
	if err != nil {
		return err
	}
	fx.emails = append(fx.emails, m)
	return nil
}

// paymentLinkOrder builds (without storing) the order of a paid Payment Link: its products and
// quantities from metadata.samplero_products, the buyer's e-mail and the currency from the event,
// the prices from the catalog. Payment Links are sold at the catalog price; a discount the
// provider granted counts in the amount check, not in the order.
func (s *Service) paymentLinkOrder(ctx context.Context, ev ports.PaymentEventIn) (order.Order, error) {
	lines, err := order.ParseProductsSpec(ev.Products)
	if err != nil {
		return order.Order{}, err
	}
	email, err := order.NormalizeEmail(ev.CustomerEmail)
	if err != nil {
		return order.Order{}, err
	}
	currency := strings.ToUpper(strings.TrimSpace(ev.Currency))
	if currency == "" {
		return order.Order{}, errs.E(errs.Invalid, order.CodeCurrencyMismatch, "the payment names no currency")
	}
	if lines, currency, err = s.priceLines(ctx, lines, currency, false); err != nil {
		return order.Order{}, err
	}
	now := s.now()
	o := order.Order{
		ID: order.NewOrderID(), CustomerEmail: email, Source: order.SourcePaymentLink, Currency: currency,
		Lines: lines, Status: order.StatusPending, CheckoutSessionID: ev.SessionID, CreatedAt: now, UpdatedAt: now,
	}
	if err := order.SetTotals(&o, 0); err != nil {
		return order.Order{}, err
	}
	return o, nil
}

func reversalReason(ev ports.PaymentEventIn, status order.Status) string {
	what := "refunded"
	if status == order.StatusDisputed {
		what = "disputed"
	}
	return fmt.Sprintf("payment %s (%s %s)", what, ev.Provider, firstNonEmpty(ev.RawType, ev.Type))
}

// paymentReversed applies a full refund or a dispute: a paid order's revocation starts after the
// commit (the workflow revokes the licenses and marks the order). A payment we held and never
// accepted is reversed without anything to revoke: a refunded one fails the order, a disputed one
// stays held and the operator is told.
func (s *Service) paymentReversed(ctx context.Context, ev ports.PaymentEventIn, o order.Order, found bool, status order.Status, out *ports.PaymentOutcome, fx *effects) error {
	if !found {
		out.Outcome = OutcomeUnknownOrder
		s.log.Warn("payment reversal for an unknown order", "provider", ev.Provider, "event", ev.EventID, "payment", ev.PaymentRef)
		return nil
	}
	out.OrderID = o.ID
	switch {
	case order.IsPaid(o.Status):
		out.Outcome = OutcomeRevoking
		fx.revoke, fx.revokeStatus, fx.revokeReason = o.ID, status, reversalReason(ev, status)
		return nil
	case order.IsRevoked(o.Status) || o.ReviewReason == "":
		out.Outcome = OutcomeIgnored
		return nil
	case status == order.StatusRefunded:
		// A held payment given back: the order will never be paid.
		o.ReviewReason = ""
		if o.Status == order.StatusPending {
			if err := s.failPending(ctx, &o, "payment refunded before it was accepted"); err != nil {
				return err
			}
		} else {
			o.StatusReason = "payment refunded before it was accepted"
			if err := s.saveOrder(ctx, &o); err != nil {
				return err
			}
		}
		out.Outcome = OutcomeFailed
		return nil
	}
	o.ReviewReason = order.ReviewDisputed
	return s.hold(ctx, &o, order.ReviewDisputed, "dispute", ev, out, fx,
		"The customer disputed a payment that was held and never accepted. Nothing was delivered; answer the dispute at the payment provider.")
}

// partialRefund holds a paid order for review: whether to revoke is the vendor's decision.
func (s *Service) partialRefund(ctx context.Context, ev ports.PaymentEventIn, o order.Order, found bool, out *ports.PaymentOutcome, fx *effects) error {
	if !found {
		out.Outcome = OutcomeUnknownOrder
		s.log.Warn("partial refund for an unknown order", "provider", ev.Provider, "event", ev.EventID, "payment", ev.PaymentRef)
		return nil
	}
	out.OrderID = o.ID
	if !order.IsPaid(o.Status) {
		out.Outcome = OutcomeIgnored
		return nil
	}
	return s.hold(ctx, &o, order.ReviewPartialRefund, "partial-refund-"+ev.EventID, ev, out, fx,
		"Part of the payment was refunded. The licenses stay active; refund the rest to revoke them, or release the hold.")
}

// checkoutExpired fails a pending order whose Checkout Session expired and gives its coupon back.
func (s *Service) checkoutExpired(ctx context.Context, o order.Order, found bool, out *ports.PaymentOutcome) error {
	if !found {
		out.Outcome = OutcomeUnknownOrder
		return nil
	}
	out.OrderID = o.ID
	if o.Status != order.StatusPending || o.ReviewReason != "" {
		out.Outcome = OutcomeIgnored
		return nil
	}
	if err := s.failPending(ctx, &o, "checkout_expired"); err != nil {
		return err
	}
	out.Outcome = OutcomeFailed
	return nil
}

// ResumeFulfilment implements ports.Commerce: starts the fulfilment of every paid, unheld,
// unfinished order (at most 500 per call; starting a running one is a no-op). It starts as many
// as it can and reports the first failure as UNAVAILABLE.
func (s *Service) ResumeFulfilment(ctx context.Context) (int, error) {
	ids, err := s.d.Orders.Unfinished(ctx, 500)
	if err != nil {
		return 0, portFailure("listing unfinished orders", err)
	}
	started := 0
	var first error
	for _, id := range ids {
		if err := s.startFulfilment(ctx, id); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		started++
	}
	return started, first
}
