package temporalclient

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/expiry"
)

// expiryLicensing implements only SendExpiryNotices (the embedded nil interface panics on
// anything else).
type expiryLicensing struct {
	ports.Licensing
	mu    sync.Mutex
	calls int
}

func (l *expiryLicensing) SendExpiryNotices(context.Context, time.Time) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	return 4, nil
}

func TestEnsureExpirySchedule(t *testing.T) {
	c := dialWhenUp(t, startDevServer(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.EnsureExpirySchedule(ctx); err != nil {
		t.Fatal(err)
	}
	h := c.SDK().ScheduleClient().GetHandle(ctx, expiry.ScheduleID)
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || act.Workflow != expiry.WorkflowName || act.TaskQueue != "samplero" || act.ID != expiry.WorkflowIDPrefix {
		t.Fatalf("action %+v", d.Schedule.Action)
	}
	if p := d.Schedule.Policy; p == nil || p.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP || p.CatchupWindow != 24*time.Hour {
		t.Fatalf("policy %+v", d.Schedule.Policy)
	}
	// The next runs are every day at 09:00:00 UTC.
	next := d.Info.NextActionTimes
	if len(next) < 3 {
		t.Fatalf("next action times %v", next)
	}
	if wait := time.Until(next[0]); wait <= 0 || wait > 24*time.Hour {
		t.Fatalf("first run at %v", next[0])
	}
	for i, at := range next {
		u := at.UTC()
		if u.Hour() != 9 || u.Minute() != 0 || u.Second() != 0 || (i > 0 && !at.Equal(next[i-1].Add(24*time.Hour))) {
			t.Fatalf("run %d at %v (all: %v)", i, u, next)
		}
	}

	// Calling it again succeeds and leaves an operator's change alone.
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "paused by an operator"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureExpirySchedule(ctx); err != nil {
		t.Fatalf("second EnsureExpirySchedule: %v", err)
	}
	if d, err = h.Describe(ctx); err != nil || !d.Schedule.State.Paused || d.Schedule.State.Note != "paused by an operator" {
		t.Fatalf("after a second ensure: %+v %v", d.Schedule.State, err)
	}
	if err := h.Unpause(ctx, client.ScheduleUnpauseOptions{}); err != nil {
		t.Fatal(err)
	}

	// What the schedule starts is the expiry workflow, and it runs on a worker with it registered.
	lic := &expiryLicensing{}
	w := worker.New(c.SDK(), expiry.TaskQueue, worker.Options{})
	expiry.Register(w, lic)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}); err != nil {
		t.Fatal(err)
	}
	var runID string
	for runID == "" {
		if ctx.Err() != nil {
			t.Fatal("the triggered run never showed")
		}
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RecentActions) > 0 && d.Info.RecentActions[0].StartWorkflowResult != nil {
			runID = d.Info.RecentActions[0].StartWorkflowResult.WorkflowID
		} else {
			time.Sleep(50 * time.Millisecond) // polling a real server, not waiting for the clock
		}
	}
	if !strings.HasPrefix(runID, expiry.WorkflowIDPrefix+"-") {
		t.Fatalf("workflow id %q", runID)
	}
	var res expiry.SendNoticesResult
	if err := c.SDK().GetWorkflow(ctx, runID, "").Get(ctx, &res); err != nil || res.Sent != 4 {
		t.Fatalf("run %+v %v", res, err)
	}
	lic.mu.Lock()
	defer lic.mu.Unlock()
	if lic.calls != 1 {
		t.Fatalf("SendExpiryNotices called %d times", lic.calls)
	}
}
