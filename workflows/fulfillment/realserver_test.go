package fulfillment

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/workflows/emaildelivery"
	"github.com/samplero/samplero/workflows/internal/devtemporal"
)

// TestRealServer runs the workflows on a throwaway Temporal dev server, checks what they did, and,
// with SAMPLERO_RECORD_HISTORIES=1, writes their histories to testdata/ for the replay test. It runs
// only when SAMPLERO_RECORD_HISTORIES or SAMPLERO_REQUIRE_SERVICES is set, because it needs the
// temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) and real retry pauses.
func TestRealServer(t *testing.T) {
	record := os.Getenv("SAMPLERO_RECORD_HISTORIES") == "1"
	if !record && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORIES=1 to run the workflows on a dev server and record their histories")
	}
	c := devtemporal.Client(t)
	f, mailer := newFake(), newMailer()
	w := worker.New(c, TaskQueue, worker.Options{})
	emaildelivery.Register(w, mailer)
	Register(w, f)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	start := func(id, workflow string, in any) client.WorkflowRun {
		t.Helper()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue}, workflow, in)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	progress := func(run client.WorkflowRun) Progress {
		t.Helper()
		v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), ProgressQuery)
		if err != nil {
			t.Fatalf("query %s: %v", run.GetID(), err)
		}
		var p Progress
		if err := v.Get(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	save := func(run client.WorkflowRun, file string) {
		t.Helper()
		if record {
			devtemporal.WriteHistory(ctx, t, c, run, file)
		}
	}

	t.Run("retried then fulfilled", func(t *testing.T) {
		f.fail("IssueEntitlements", errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"))
		run := start(WorkflowID("ord_retried"), FulfilWorkflowName, FulfilInput{OrderID: "ord_retried"})
		var res FulfilResult
		if err := run.Get(ctx, &res); err != nil || res.Outcome != OutcomeFulfilled || len(res.LicenseIDs) != 2 {
			t.Fatalf("result %+v, %v", res, err)
		}
		if f.count("IssueEntitlements") != 2 {
			t.Fatalf("IssueEntitlements ran %d times, want 2", f.count("IssueEntitlements"))
		}
		if p := progress(run); len(p.Completed) != len(allSteps) || p.Outcome != OutcomeFulfilled {
			t.Fatalf("progress %+v", p)
		}
		save(run, "testdata/fulfil_retried.json")
	})

	t.Run("flagged for support", func(t *testing.T) {
		f.fail("UnlockDownloads", errs.E(errs.Conflict, "ENTITLEMENT_STATE", "the entitlements cannot be unlocked"))
		run := start(WorkflowID("ord_flagged"), FulfilWorkflowName, FulfilInput{OrderID: "ord_flagged"})
		if err := run.Get(ctx, nil); err == nil || !strings.Contains(err.Error(), "flagged for support") {
			t.Fatalf("run error %v, want flagged for support", err)
		}
		// The run ends once the operator's alert has started; the alert completes on its own.
		if err := c.GetWorkflow(ctx, emaildelivery.WorkflowID("support-ord_flagged-1"), "").Get(ctx, nil); err != nil {
			t.Fatalf("operator alert: %v", err)
		}
		if _, ok := mailer.message("support-ord_flagged-1"); !ok {
			t.Fatalf("no operator alert; delivered %q", mailer.delivered())
		}
		if p := progress(run); p.Outcome != OutcomeFlaggedForSupport || !strings.HasPrefix(p.Error, "ENTITLEMENT_STATE: ") {
			t.Fatalf("progress %+v", p)
		}
		save(run, "testdata/fulfil_flagged.json")
	})

	t.Run("revoked while fulfilling", func(t *testing.T) {
		f.fail("MarkFulfilled", errs.E(errs.Conflict, CodeOrderRevoked, "the order was refunded"))
		run := start(WorkflowID("ord_revoked"), FulfilWorkflowName, FulfilInput{OrderID: "ord_revoked"})
		var res FulfilResult
		if err := run.Get(ctx, &res); err != nil || res.Outcome != OutcomeRevoked {
			t.Fatalf("result %+v, %v", res, err)
		}
		save(run, "testdata/fulfil_revoked.json")
	})

	t.Run("delivery e-mail already sent", func(t *testing.T) {
		// A delivery child that ran before (a reset or a restarted run): the server refuses the new
		// child with ChildWorkflowExecutionAlreadyStartedError, which counts as sent.
		earlier := emaildelivery.SendInput{MessageID: "delivery-ord_sent", To: "buyer@example.com", Subject: "earlier", Text: "earlier"}
		mail, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: emaildelivery.WorkflowID(earlier.MessageID), TaskQueue: TaskQueue}, emaildelivery.WorkflowName, earlier)
		if err != nil {
			t.Fatal(err)
		}
		if err := mail.Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
		run := start(WorkflowID("ord_sent"), FulfilWorkflowName, FulfilInput{OrderID: "ord_sent"})
		var res FulfilResult
		if err := run.Get(ctx, &res); err != nil || res.Outcome != OutcomeFulfilled {
			t.Fatalf("result %+v, %v", res, err)
		}
		mailer.mu.Lock()
		tries := mailer.tries["delivery-ord_sent"]
		mailer.mu.Unlock()
		if tries != 1 {
			t.Fatalf("delivery e-mail sent %d times, want 1", tries)
		}
		save(run, "testdata/fulfil_email_already_sent.json")
	})

	t.Run("revocation", func(t *testing.T) {
		run := start(RevocationID("ord_disputed"), RevokeWorkflowName, RevokeInput{OrderID: "ord_disputed", Status: "disputed", Reason: "chargeback"})
		var res RevokeResult
		if err := run.Get(ctx, &res); err != nil || res.Outcome != OutcomeRevoked || res.EmailID != "refund-ord_disputed" {
			t.Fatalf("result %+v, %v", res, err)
		}
		if _, ok := mailer.message("refund-ord_disputed"); !ok {
			t.Fatalf("no refund e-mail; delivered %q", mailer.delivered())
		}
		save(run, "testdata/revoke.json")
	})
}
