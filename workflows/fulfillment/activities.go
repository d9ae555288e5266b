package fulfillment

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// Activities are the thin calls of the workflows to ports.Fulfilment. Every port method is
// idempotent on the order ID, which is the key a retried or resumed activity presents again.
type Activities struct {
	Fulfilment ports.Fulfilment
}

// MarkOrderPaid moves the order to paid (a no-op when it already is).
func (a *Activities) MarkOrderPaid(ctx context.Context, in OrderInput) error {
	return classify(a.Fulfilment.MarkOrderPaid(ctx, in.OrderID))
}

// IssueEntitlements issues the order's licenses and entitlements (or finds those of an earlier
// attempt).
func (a *Activities) IssueEntitlements(ctx context.Context, in OrderInput) (IssueOutput, error) {
	res, err := a.Fulfilment.IssueEntitlements(ctx, in.OrderID)
	if err != nil {
		return IssueOutput{}, classify(err)
	}
	return IssueOutput{LicenseIDs: res.LicenseIDs, EntitlementIDs: res.EntitlementIDs}, nil
}

// UnlockDownloads marks the order's entitlements downloadable.
func (a *Activities) UnlockDownloads(ctx context.Context, in OrderInput) error {
	return classify(a.Fulfilment.UnlockDownloads(ctx, in.OrderID))
}

// DeliveryEmail renders the customer's delivery e-mail. The rendered message travels as an
// emaildelivery.SendInput, the child workflow's own message type.
func (a *Activities) DeliveryEmail(ctx context.Context, in OrderInput) (emaildelivery.SendInput, error) {
	msg, err := a.Fulfilment.DeliveryEmail(ctx, in.OrderID)
	if err != nil {
		return emaildelivery.SendInput{}, classify(err)
	}
	if err := complete(msg); err != nil {
		return emaildelivery.SendInput{}, classify(err)
	}
	return emaildelivery.InputFrom(msg), nil
}

// MarkFulfilled moves the order to fulfilled (a no-op when it already is).
func (a *Activities) MarkFulfilled(ctx context.Context, in OrderInput) error {
	return classify(a.Fulfilment.MarkFulfilled(ctx, in.OrderID))
}

// FlagForSupport holds the order for review and renders the operator's alert; its To is "" when no
// operator address is configured, and the workflow then sends nothing.
func (a *Activities) FlagForSupport(ctx context.Context, in FlagInput) (emaildelivery.SendInput, error) {
	msg, err := a.Fulfilment.FlagForSupport(ctx, in.OrderID, in.Reason)
	if err != nil {
		return emaildelivery.SendInput{}, classify(err)
	}
	if msg.To != "" {
		if err := complete(msg); err != nil {
			return emaildelivery.SendInput{}, classify(err)
		}
	}
	return emaildelivery.InputFrom(msg), nil
}

// RevokeOrder revokes the order's licenses and entitlements and records its new status.
func (a *Activities) RevokeOrder(ctx context.Context, in RevokeInput) error {
	status := order.Status(in.Status)
	if status != order.StatusRefunded && status != order.StatusDisputed {
		return classify(errs.Validation("a revocation's status is refunded or disputed, not " + in.Status))
	}
	return classify(a.Fulfilment.RevokeOrder(ctx, in.OrderID, status, in.Reason))
}

// RefundEmail renders the customer's "order refunded" e-mail.
func (a *Activities) RefundEmail(ctx context.Context, in OrderInput) (emaildelivery.SendInput, error) {
	msg, err := a.Fulfilment.RefundEmail(ctx, in.OrderID)
	if err != nil {
		return emaildelivery.SendInput{}, classify(err)
	}
	if err := complete(msg); err != nil {
		return emaildelivery.SendInput{}, classify(err)
	}
	return emaildelivery.InputFrom(msg), nil
}

// complete refuses a message the child workflow could not deliver: without an ID its workflow ID
// would be "email/" for every order, and without a recipient the mailer could only reject it.
func complete(msg ports.EmailMessage) error {
	if msg.ID == "" || msg.To == "" {
		return errs.E(errs.Invalid, CodeEmailIncomplete, "the rendered e-mail has no id or no recipient")
	}
	return nil
}

// classify is the activity error classifier: it decides which failures are worth retrying. Errors
// that retrying cannot change (bad input, a missing or forbidden order, a state conflict such as a
// refunded or held order, something gone) become non-retryable ApplicationErrors; anything else (a
// database or provider that is down, an unexpected failure) is retried by the policy declared beside
// the call. The stable code is the error type, which the workflow branches on; the message is the
// domain error's client-safe message, and the full error stays as the cause for the history.
func classify(err error) error {
	if err == nil {
		return nil
	}
	code := errs.CodeOf(err)
	msg := "unexpected failure"
	if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
		msg = e.Message
	}
	switch errs.KindOf(err) {
	case errs.Invalid, errs.NotFound, errs.Conflict, errs.Forbidden, errs.Gone:
		return temporal.NewNonRetryableApplicationError(msg, code, err)
	}
	return temporal.NewApplicationErrorWithCause(msg, code, err)
}
