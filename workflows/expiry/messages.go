// Package expiry is the daily run of the licensing context's expiry notices: a Temporal schedule
// (ScheduleID, created by adapters/temporalclient's EnsureExpirySchedule, daily at 09:00 UTC)
// starts SendNotices, whose one activity calls ports.Licensing.SendExpiryNotices with the time of
// the activity's attempt. The licensing core e-mails each owner once per license and notice
// (e-mail IDs expiring-<license id> and expired-<license id>), so a retried activity, a run the
// schedule catches up after an outage, or a run started by hand sends nothing twice.
//
// # Changing this workflow
//
// The registered names below are part of every recorded history and never change. The recorded
// histories in testdata/ must keep replaying (replay_test.go); a change to the commands the
// workflow issues goes behind workflow.GetVersion, and a new history is recorded next to the old
// ones with SAMPLERO_RECORD_HISTORIES=1 go test -run TestRealServer ./workflows/expiry/.
package expiry

import (
	"time"

	"github.com/samplero/samplero/workflows/emaildelivery"
)

// The registered names are part of every recorded history: never change them.
const (
	// TaskQueue is the queue every Samplero worker polls.
	TaskQueue = emaildelivery.TaskQueue
	// WorkflowName is the registered name of SendNotices.
	WorkflowName = "expiry.SendNotices"
	// SendActivityName is the registered name of Activities.SendExpiryNotices.
	SendActivityName = "expiry.SendExpiryNotices"
)

// ScheduleID is the ID of the Temporal schedule that starts SendNotices every day. Its runs get
// the workflow ID WorkflowIDPrefix followed by the scheduled time (Temporal appends it).
const (
	ScheduleID       = "expiry-notices"
	WorkflowIDPrefix = "expiry-notices"
)

// SendNoticesInput is the workflow's one input (and its activity's). It carries nothing today: the
// time comes from the activity, so that a retry a few hours later sees the licenses as they are
// then. A struct, not nothing, so that fields can be added without a new signature.
type SendNoticesInput struct{}

// SendNoticesResult is the workflow's one result (and its activity's).
type SendNoticesResult struct {
	// Sent is how many notices the (successful attempt of the) activity recorded.
	Sent int `json:"sent"`
	// At is the time the notices were decided for.
	At time.Time `json:"at"`
}
