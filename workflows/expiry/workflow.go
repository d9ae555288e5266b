package expiry

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// sendOptions is the retry policy of the run, declared beside the call. The activity is idempotent
// (every notice has a deterministic e-mail ID and is recorded once), so it is retried freely: a
// database or Temporal outage is retried with growing pauses (10 s doubling up to 10 min) for up to
// 12 hours, well before the next day's run. An attempt may take a while with many licenses due.
var sendOptions = workflow.ActivityOptions{
	ScheduleToCloseTimeout: 12 * time.Hour,
	StartToCloseTimeout:    30 * time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    10 * time.Second,
		BackoffCoefficient: 2.0,
		MaximumInterval:    10 * time.Minute,
		MaximumAttempts:    0, // unlimited within ScheduleToCloseTimeout
	},
}

// SendNotices runs the activity that sends the day's expiry notices.
func SendNotices(ctx workflow.Context, in SendNoticesInput) (SendNoticesResult, error) {
	ctx = workflow.WithActivityOptions(ctx, sendOptions)
	var res SendNoticesResult
	if err := workflow.ExecuteActivity(ctx, SendActivityName, in).Get(ctx, &res); err != nil {
		return SendNoticesResult{}, err
	}
	workflow.GetLogger(ctx).Info("expiry notices sent", "sent", res.Sent, "at", res.At)
	return res, nil
}
