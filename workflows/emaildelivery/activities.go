package emaildelivery

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Activities are the thin calls of the workflow to its ports.
type Activities struct {
	Mailer ports.Mailer
}

// Deliver sends the message once. The mailer is idempotent on the message ID where the provider
// allows it, so a retry after a lost answer does not send twice.
func (a *Activities) Deliver(ctx context.Context, in SendInput) (SendResult, error) {
	id, err := a.Mailer.Send(ctx, in.Message())
	if err != nil {
		return SendResult{}, classify(err)
	}
	return SendResult{ProviderID: id}, nil
}

// classify is the activity error classifier: it decides which failures are worth retrying. A
// permanent rejection (errs.Invalid) becomes a non-retryable ApplicationError carrying the stable
// code as its type; anything else keeps its kind as the type and is retried by the policy.
func classify(err error) error {
	kind := errs.KindOf(err)
	code := errs.CodeOf(err)
	if kind == errs.Invalid {
		return temporal.NewNonRetryableApplicationError("mail rejected permanently: "+code, code, err)
	}
	return temporal.NewApplicationErrorWithCause("mail delivery failed: "+code, code, err)
}
