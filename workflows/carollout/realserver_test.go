package carollout

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/internal/devtemporal"
)

// TestRealServer runs three rollouts (promote, abort, failed health check) on a throwaway
// Temporal dev server and, with SAMPLERO_RECORD_HISTORIES=1, writes their histories to testdata/
// for the replay test. It runs only when SAMPLERO_RECORD_HISTORIES or SAMPLERO_REQUIRE_SERVICES is
// set, because it needs the temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)
// and a few seconds of real soak.
func TestRealServer(t *testing.T) {
	record := os.Getenv("SAMPLERO_RECORD_HISTORIES") == "1"
	if !record && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORIES=1 to run the workflow on a dev server and record its histories")
	}
	c := devtemporal.Client(t)
	pki := newFakePKI(time.Now)
	events := &fakeEvents{expiry: map[string]time.Time{}}
	w := worker.New(c, TaskQueue, worker.Options{})
	Register(w, &Activities{PKI: pki, Probe: &fakeProbe{}, MTLS: &fakeMTLS{}, Events: events})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := Input{PreviousID: "int_old", SharePercent: 50, Soak: time.Hour, CheckEvery: time.Second, MaxValidationFailures: 1}

	run := func(id string, during func(client.WorkflowRun)) (client.WorkflowRun, Result) {
		in := in
		in.IntermediateID = id
		pki.mu.Lock()
		pki.states[id] = "staged"
		pki.mu.Unlock()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowID(id), TaskQueue: TaskQueue}, WorkflowName, in)
		if err != nil {
			t.Fatal(err)
		}
		during(r)
		var res Result
		if err := r.Get(ctx, &res); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return r, res
	}
	waitChecks := func(r client.WorkflowRun, n int) {
		for {
			v, err := c.QueryWorkflow(ctx, r.GetID(), r.GetRunID(), StateQuery)
			if err == nil {
				var st State
				if err := v.Get(&st); err == nil && st.Checks >= n {
					return
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Promote: two checks, approve; the old intermediate's last certificate expires 3 s later.
	events.mu.Lock()
	events.expiry["int_old"] = time.Now().Add(5 * time.Second)
	events.mu.Unlock()
	r1, res := run("int_a", func(r client.WorkflowRun) {
		waitChecks(r, 2)
		if err := c.SignalWorkflow(ctx, r.GetID(), r.GetRunID(), ApproveSignal, ApproveSignalPayload{By: "recorder"}); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != OutcomePromoted || res.Retired != "int_old" {
		t.Fatalf("promote: %+v", res)
	}
	// Abort: the canary (int_b, against the now active int_a) is aborted after one check.
	in.PreviousID = "int_a"
	r2, res := run("int_b", func(r client.WorkflowRun) {
		waitChecks(r, 1)
		if err := c.SignalWorkflow(ctx, r.GetID(), r.GetRunID(), AbortSignal, AbortSignalPayload{Reason: "recorded abort"}); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != OutcomeRolledBack || res.Reason != "aborted: recorded abort" {
		t.Fatalf("abort: %+v", res)
	}
	// Failed check: two validation failures of int_c after its first check.
	r3, res := run("int_c", func(r client.WorkflowRun) {
		waitChecks(r, 1)
		events.add(ports.RolloutEvent{IntermediateID: "int_c", Kind: ports.RolloutEventValidationFailure, At: time.Now()})
		events.add(ports.RolloutEvent{IntermediateID: "int_c", Kind: ports.RolloutEventValidationFailure, At: time.Now()})
	})
	if res.Outcome != OutcomeRolledBack || !strings.HasPrefix(res.Reason, "health check failed: 2 validation failures") {
		t.Fatalf("failed check: %+v", res)
	}
	if record {
		devtemporal.WriteHistory(ctx, t, c, r1, "testdata/promote.json")
		devtemporal.WriteHistory(ctx, t, c, r2, "testdata/abort.json")
		devtemporal.WriteHistory(ctx, t, c, r3, "testdata/failed_check.json")
	}
}
