package carollout

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories recorded from a real Temporal server (TestRealServer). Each must keep replaying
// against the current workflow code: a change that breaks one needs workflow.GetVersion.
var recordedHistories = []string{
	"testdata/promote.json",      // canary, self-test, checks, approve, promote, old retired after its last certificate
	"testdata/abort.json",        // canary, a check, abort signal, rolled back, retired
	"testdata/failed_check.json", // canary, validation failures over the threshold, rolled back
}

func TestReplayRecordedHistories(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	registerWorkflows(replayer)
	for _, file := range recordedHistories {
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
			t.Errorf("%s does not replay: %v", file, err)
		}
	}
}
