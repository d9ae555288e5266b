package emaildelivery

import (
	"context"
	"os"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/errs"
)

// Histories recorded from a real Temporal server. Each must keep replaying against the current
// workflow code: a change that breaks one needs workflow.GetVersion.
var recordedHistories = []string{
	"testdata/send_retried.json", // one temporary failure, then delivered
}

func TestReplayRecordedHistories(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(Send, workflow.RegisterOptions{Name: WorkflowName})
	for _, file := range recordedHistories {
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
			t.Errorf("%s does not replay: %v", file, err)
		}
	}
}

// TestRecordHistory records testdata/send_retried.json from a Temporal server. It runs only when
// SAMPLERO_RECORD_HISTORY names the server's frontend (e.g. 127.0.0.1:7233 of
// `temporal server start-dev`).
func TestRecordHistory(t *testing.T) {
	addr := os.Getenv("SAMPLERO_RECORD_HISTORY")
	if addr == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORY=host:port to record a history")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	queue := "record-" + time.Now().Format("150405.000")
	w := worker.New(c, queue, worker.Options{})
	Register(w, &scriptedMailer{fails: []error{errs.E(errs.Unavailable, errs.CodeUnavailable, "smtp down")}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	id := WorkflowID("msg_recorded_" + queue)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, WorkflowName, testInput)
	if err != nil {
		t.Fatal(err)
	}
	var res SendResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	var hist historypb.History
	iter := c.GetWorkflowHistory(ctx, id, run.GetRunID(), false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	out, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recordedHistories[0], append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
