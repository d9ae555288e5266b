package temporalclient

import (
	"context"
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/workflows/expiry"
)

// EnsureExpirySchedule creates the Temporal schedule expiry.ScheduleID ("expiry-notices") that
// starts expiry.SendNotices every day at 09:00 UTC on the task queue "samplero". An existing
// schedule with that ID is left as it is, whatever it says (an operator may have paused it or moved
// its hour in the Temporal UI), so every process may call this at start. Unavailable when Temporal
// cannot be reached.
func (c *Client) EnsureExpirySchedule(ctx context.Context) error {
	_, err := c.sdk.ScheduleClient().Create(ctx, expiryScheduleOptions())
	if err == nil || errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return nil
	}
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not create the expiry schedule", err)
}

// expiryScheduleOptions is the schedule as created:
//   - once a day at 09:00:00 UTC (the time zone is named, so the spec never moves with a server's);
//   - a run still going when the next is due is not doubled (SKIP): the run is idempotent and
//     catches up everything due anyway;
//   - after an outage of Temporal, a run missed within the last day is started late; older ones
//     are dropped, since a later run sends whatever they would have;
//   - a run gets at most 23 hours, so it never meets the next one.
func expiryScheduleOptions() client.ScheduleOptions {
	at := func(v int) []client.ScheduleRange { return []client.ScheduleRange{{Start: v}} }
	return client.ScheduleOptions{
		ID: expiry.ScheduleID,
		Spec: client.ScheduleSpec{
			Calendars: []client.ScheduleCalendarSpec{{
				Hour: at(9), Minute: at(0), Second: at(0),
				Comment: "daily at 09:00 UTC",
			}},
			TimeZoneName: "UTC",
		},
		Action: &client.ScheduleWorkflowAction{
			ID:                       expiry.WorkflowIDPrefix,
			Workflow:                 expiry.WorkflowName,
			Args:                     []any{expiry.SendNoticesInput{}},
			TaskQueue:                expiry.TaskQueue,
			WorkflowExecutionTimeout: 23 * time.Hour,
		},
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: 24 * time.Hour,
		Note:          "created by samplero: e-mails license expiry notices (workflows/expiry)",
	}
}
