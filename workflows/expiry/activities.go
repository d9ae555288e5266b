package expiry

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Activities are the thin calls of the workflow to ports.Licensing.
type Activities struct {
	Licensing ports.Licensing
}

// SendExpiryNotices sends the notices due at the start of this attempt (the server's record of
// when the attempt started, so that a retry decides for its own time, not the first attempt's).
func (a *Activities) SendExpiryNotices(ctx context.Context, _ SendNoticesInput) (SendNoticesResult, error) {
	now := activity.GetInfo(ctx).StartedTime
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	n, err := a.Licensing.SendExpiryNotices(ctx, now)
	if err != nil {
		return SendNoticesResult{}, classify(err)
	}
	return SendNoticesResult{Sent: n, At: now}, nil
}

// classify is the activity error classifier: a failure that another attempt cannot fix (bad
// input, a refused state) is not retried; anything else (unavailable, internal) is. An internal
// error's own text stays in the cause (for operators in the Temporal UI), not in the message.
func classify(err error) error {
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
