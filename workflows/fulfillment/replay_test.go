package fulfillment

import (
	"os"
	"testing"

	"go.temporal.io/sdk/worker"
)

// recordedHistories were recorded from real runs on a Temporal dev server by TestRealServer. Each
// must keep replaying against the current workflow code: a change that breaks one needs
// workflow.GetVersion (see the package doc). Keep old files when adding new ones.
var recordedHistories = []string{
	"testdata/fulfil_retried.json",            // IssueEntitlements fails once (UNAVAILABLE), then fulfilled
	"testdata/fulfil_flagged.json",            // UnlockDownloads fails for good → flagged, operator e-mailed, run failed
	"testdata/fulfil_revoked.json",            // MarkFulfilled answers ORDER_REVOKED → outcome revoked
	"testdata/fulfil_email_already_sent.json", // the delivery child already ran → counted as sent
	"testdata/revoke.json",                    // revocation of a disputed order, refund e-mail sent
}

func TestReplayRecordedHistories(t *testing.T) {
	replayer := worker.NewWorkflowReplayer()
	registerWorkflows(replayer)
	for _, file := range recordedHistories {
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s is missing (record it: SAMPLERO_RECORD_HISTORIES=1 go test -run TestRealServer)", file)
			continue
		}
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
			t.Errorf("%s does not replay: %v", file, err)
		}
	}
}
