package emaildelivery

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// deliverOptions is the retry policy of a delivery, declared beside the call: a mail provider that
// is down is retried with growing pauses (2 s doubling up to 5 min) for up to a day; a permanent
// rejection (errs.Invalid) is not retried at all (see classify).
var deliverOptions = workflow.ActivityOptions{
	ScheduleToCloseTimeout: 24 * time.Hour,
	StartToCloseTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2.0,
		MaximumInterval:    5 * time.Minute,
		MaximumAttempts:    0, // unlimited within ScheduleToCloseTimeout
	},
}

// Send delivers one message through the Deliver activity and records the provider's message id.
func Send(ctx workflow.Context, in SendInput) (SendResult, error) {
	ctx = workflow.WithActivityOptions(ctx, deliverOptions)
	var res SendResult
	if err := workflow.ExecuteActivity(ctx, DeliverActivityName, in).Get(ctx, &res); err != nil {
		return SendResult{}, err
	}
	workflow.GetLogger(ctx).Info("e-mail delivered", "message_id", in.MessageID, "template", in.Template, "provider_id", res.ProviderID)
	return res, nil
}
