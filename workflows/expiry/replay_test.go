package expiry

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories recorded from a real Temporal server (TestRealServer). Each must keep replaying
// against the current workflow code: a change that breaks one needs workflow.GetVersion.
var recordedHistories = []string{
	"testdata/send_notices_retried.json", // one temporary failure, then two notices sent
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
