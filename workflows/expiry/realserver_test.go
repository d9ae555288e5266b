package expiry

import (
	"context"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/workflows/internal/devtemporal"
)

// TestRealServer runs the workflow on a throwaway Temporal dev server and, with
// SAMPLERO_RECORD_HISTORIES=1, writes its history to testdata/ for the replay test. It runs only
// when SAMPLERO_RECORD_HISTORIES or SAMPLERO_REQUIRE_SERVICES is set, because it needs the temporal
// CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) and a real retry pause (10 s).
func TestRealServer(t *testing.T) {
	record := os.Getenv("SAMPLERO_RECORD_HISTORIES") == "1"
	if !record && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORIES=1 to run the workflow on a dev server and record its history")
	}
	c := devtemporal.Client(t)
	lic := &fakeLicensing{sent: 2, fails: []error{errs.E(errs.Unavailable, errs.CodeUnavailable, "database down")}}
	w := worker.New(c, TaskQueue, worker.Options{})
	Register(w, lic)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowIDPrefix + "-recorded", TaskQueue: TaskQueue}, WorkflowName, SendNoticesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var res SendNoticesResult
	if err := run.Get(ctx, &res); err != nil || res.Sent != 2 {
		t.Fatalf("result %+v, %v", res, err)
	}
	calls := lic.times()
	if len(calls) != 2 || !calls[1].After(calls[0]) || !res.At.Equal(calls[1]) {
		t.Fatalf("attempt times %v, result at %v: each attempt must decide for its own time", calls, res.At)
	}
	if record {
		devtemporal.WriteHistory(ctx, t, c, run, "testdata/send_notices_retried.json")
	}
}
