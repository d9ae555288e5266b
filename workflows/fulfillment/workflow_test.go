package fulfillment

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// newEnv registers the workflows through register (so the real activities run over f) and the
// emaildelivery child over mailer.
func newEnv(t *testing.T, f *fakeFulfilment, mailer *fakeMailer) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	register(env, f)
	env.RegisterWorkflowWithOptions(emaildelivery.Send, workflow.RegisterOptions{Name: emaildelivery.WorkflowName})
	acts := &emaildelivery.Activities{Mailer: mailer}
	env.RegisterActivityWithOptions(acts.Deliver, activity.RegisterOptions{Name: emaildelivery.DeliverActivityName})
	return env
}

func progressOf(t *testing.T, env *testsuite.TestWorkflowEnvironment) Progress {
	t.Helper()
	v, err := env.QueryWorkflow(ProgressQuery)
	if err != nil {
		t.Fatalf("query progress: %v", err)
	}
	var p Progress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// appError returns the workflow's failure as an ApplicationError.
func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	if err == nil {
		t.Fatal("the workflow succeeded, want a failure")
	}
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("error %v is not an ApplicationError", err)
	}
	return app
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

var allSteps = []string{StepMarkPaid, StepIssueEntitlements, StepUnlockDownloads, StepDeliveryEmail, StepSendDelivery, StepMarkFulfilled}

func TestFulfilHappyPath(t *testing.T) {
	f, mailer := newFake(), newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res FulfilResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := FulfilResult{OrderID: "ord_1", Outcome: OutcomeFulfilled, LicenseIDs: []string{"lic_ord_1_1", "lic_ord_1_2"}, EmailID: "delivery-ord_1"}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	sameStrings(t, "calls", f.callLog(), []string{"MarkOrderPaid", "IssueEntitlements", "UnlockDownloads", "DeliveryEmail", "MarkFulfilled"})
	sameStrings(t, "delivered", mailer.delivered(), []string{"delivery-ord_1"})
	if msg, _ := mailer.message("delivery-ord_1"); msg.To != "buyer@example.com" || msg.HTML != "<p>Key: VST-AAAA</p>" || msg.Template != "delivery" {
		t.Fatalf("delivered %+v", msg)
	}
	p := progressOf(t, env)
	sameStrings(t, "completed", p.Completed, allSteps)
	if p.Step != "" || p.Outcome != OutcomeFulfilled || p.Error != "" || p.EmailID != "delivery-ord_1" || len(p.LicenseIDs) != 2 {
		t.Fatalf("progress %+v", p)
	}
}

func TestFulfilRetriesTemporaryFailures(t *testing.T) {
	f := newFake().fail("IssueEntitlements",
		errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"),
		errors.New("connection reset")) // not a domain error: Internal, retried too
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	start := env.Now()
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	if n := f.count("IssueEntitlements"); n != 3 {
		t.Fatalf("IssueEntitlements called %d times, want 3", n)
	}
	// The pauses follow the policy: 1 s, then 2 s (the test clock skips them).
	if waited := env.Now().Sub(start); waited < 3*time.Second {
		t.Fatalf("retried after %v, want at least 3s of backoff", waited)
	}
	if f.count("FlagForSupport") != 0 || f.count("MarkFulfilled") != 1 {
		t.Fatalf("calls %q", f.callLog())
	}
	sameStrings(t, "delivered", mailer.delivered(), []string{"delivery-ord_1"})
}

func TestFulfilProgressWhileRunning(t *testing.T) {
	f := newFake().fail("IssueEntitlements", errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"))
	env := newEnv(t, f, newMailer())
	var mid Progress
	// Half-way through the 1 s pause before IssueEntitlements' second attempt.
	env.RegisterDelayedCallback(func() { mid = progressOf(t, env) }, 500*time.Millisecond)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	if mid.Step != StepIssueEntitlements || mid.Outcome != "" {
		t.Fatalf("progress mid-run %+v", mid)
	}
	sameStrings(t, "completed mid-run", mid.Completed, []string{StepMarkPaid})
	if p := progressOf(t, env); p.Outcome != OutcomeFulfilled {
		t.Fatalf("final progress %+v", p)
	}
}

func TestFulfilPermanentFailureFlagsForSupport(t *testing.T) {
	f := newFake().fail("UnlockDownloads", errs.E(errs.Conflict, "ENTITLEMENT_STATE", "the entitlements are in a state that cannot be unlocked"))
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not end")
	}
	app := appError(t, env.GetWorkflowError())
	if !app.NonRetryable() || app.Type() != "ENTITLEMENT_STATE" {
		t.Fatalf("failure type %q nonretryable %v", app.Type(), app.NonRetryable())
	}
	// Not retried; flagged with the code and the safe message; nothing after the failed step.
	sameStrings(t, "calls", f.callLog(), []string{"MarkOrderPaid", "IssueEntitlements", "UnlockDownloads", "FlagForSupport"})
	reason := "ENTITLEMENT_STATE: the entitlements are in a state that cannot be unlocked"
	sameStrings(t, "reasons", f.reasons, []string{reason})
	// The operator's alert went through the emaildelivery child; the customer got nothing.
	sameStrings(t, "delivered", mailer.delivered(), []string{"support-ord_1-1"})
	if msg, _ := mailer.message("support-ord_1-1"); msg.To != "ops@example.com" {
		t.Fatalf("alert %+v", msg)
	}
	p := progressOf(t, env)
	if p.Outcome != OutcomeFlaggedForSupport || p.Error != reason || p.Step != "" {
		t.Fatalf("progress %+v", p)
	}
	sameStrings(t, "completed", p.Completed, []string{StepMarkPaid, StepIssueEntitlements, StepFlagForSupport, StepSendSupport})
}

func TestFulfilDoesNotWaitForTheOperatorAlert(t *testing.T) {
	f := newFake().fail("UnlockDownloads", errs.E(errs.Conflict, "ENTITLEMENT_STATE", "cannot unlock"))
	mailer := newMailer()
	// The alert's child retries for a while (2 s, 4 s, 8 s) and is then rejected for good.
	down := errs.E(errs.Unavailable, errs.CodeUnavailable, "smtp down")
	mailer.fails["support-ord_1-1"] = []error{down, down, down, errs.E(errs.Invalid, "MAILBOX_UNAVAILABLE", "550")}
	env := newEnv(t, f, mailer)
	var early Progress
	env.RegisterDelayedCallback(func() { early = progressOf(t, env) }, time.Second)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	// The run had ended (flagged) while the alert was still being retried, and the alert's own
	// failure does not change how the run ended.
	if early.Outcome != OutcomeFlaggedForSupport {
		t.Fatalf("progress after 1s %+v, want the run already ended", early)
	}
	if app := appError(t, env.GetWorkflowError()); app.Type() != "ENTITLEMENT_STATE" {
		t.Fatalf("failure type %q", app.Type())
	}
	if mailer.tries["support-ord_1-1"] != 4 {
		t.Fatalf("alert tried %d times, want 4 (the child kept going)", mailer.tries["support-ord_1-1"])
	}
}

func TestFulfilFlagWithoutOperatorSendsNothing(t *testing.T) {
	f := newFake().fail("IssueEntitlements", errs.E(errs.NotFound, "PRODUCT_NOT_FOUND", "a product of the order no longer exists"))
	f.operator = ""
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if app := appError(t, env.GetWorkflowError()); app.Type() != "PRODUCT_NOT_FOUND" {
		t.Fatalf("failure type %q", app.Type())
	}
	if f.count("FlagForSupport") != 1 || len(mailer.delivered()) != 0 {
		t.Fatalf("calls %q, delivered %q", f.callLog(), mailer.delivered())
	}
	if p := progressOf(t, env); p.Outcome != OutcomeFlaggedForSupport {
		t.Fatalf("progress %+v", p)
	}
}

func TestFulfilDeliveryRejectedFlagsForSupport(t *testing.T) {
	f, mailer := newFake(), newMailer()
	mailer.fails["delivery-ord_1"] = []error{errs.E(errs.Invalid, "MAILBOX_UNAVAILABLE", "550 no such user")}
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if app := appError(t, env.GetWorkflowError()); app.Type() != "MAILBOX_UNAVAILABLE" || !app.NonRetryable() {
		t.Fatalf("failure type %q nonretryable %v", app.Type(), app.NonRetryable())
	}
	if f.count("MarkFulfilled") != 0 || f.count("FlagForSupport") != 1 {
		t.Fatalf("calls %q", f.callLog())
	}
	if !strings.HasPrefix(f.reasons[0], "MAILBOX_UNAVAILABLE: ") {
		t.Fatalf("reason %q", f.reasons[0])
	}
	sameStrings(t, "delivered", mailer.delivered(), []string{"support-ord_1-1"})
	if p := progressOf(t, env); p.EmailID != "delivery-ord_1" || p.Outcome != OutcomeFlaggedForSupport {
		t.Fatalf("progress %+v", p)
	}
}

// A step that keeps failing for a day ends with a TimeoutError (ScheduleToClose) carrying the last
// failure. The test environment caps unlimited attempts at 10, so the day cannot be run there; the
// mapping that the flag reason relies on is checked directly.
func TestDescribe(t *testing.T) {
	last := classify(errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"))
	cases := []struct {
		err        error
		code, text string
	}{
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, last), CodeStepTimedOut, "a step kept failing for a day (last: UNAVAILABLE: database down)"},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil), CodeStepTimedOut, "a step kept failing for a day"},
		{classify(errs.E(errs.Conflict, "X_CONFLICT", "safe text")), "X_CONFLICT", "safe text"},
		{errors.New("panic in workflow code"), errs.CodeInternal, "unexpected failure"},
	}
	for _, c := range cases {
		if code, text := describe(c.err); code != c.code || text != c.text {
			t.Errorf("describe(%v) = %q, %q; want %q, %q", c.err, code, text, c.code, c.text)
		}
	}
}

func TestFulfilOrderRevokedMeanwhile(t *testing.T) {
	f := newFake().fail("UnlockDownloads", errs.E(errs.Conflict, CodeOrderRevoked, "the order was refunded"))
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res FulfilResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != OutcomeRevoked {
		t.Fatalf("result %+v, %v", res, err)
	}
	sameStrings(t, "calls", f.callLog(), []string{"MarkOrderPaid", "IssueEntitlements", "UnlockDownloads"})
	if len(mailer.delivered()) != 0 {
		t.Fatalf("delivered %q", mailer.delivered())
	}
	if p := progressOf(t, env); p.Outcome != OutcomeRevoked || !strings.HasPrefix(p.Error, CodeOrderRevoked) {
		t.Fatalf("progress %+v", p)
	}
}

func TestFulfilHeldOrderIsNotFlaggedAgain(t *testing.T) {
	f := newFake().fail("MarkOrderPaid", errs.E(errs.Conflict, CodeOrderInReview, "the order is held for review"))
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{OrderID: "ord_1"})
	if app := appError(t, env.GetWorkflowError()); app.Type() != CodeOrderInReview || !app.NonRetryable() {
		t.Fatalf("failure type %q", app.Type())
	}
	sameStrings(t, "calls", f.callLog(), []string{"MarkOrderPaid"})
	if len(mailer.delivered()) != 0 {
		t.Fatalf("delivered %q", mailer.delivered())
	}
	if p := progressOf(t, env); p.Outcome != OutcomeHeld {
		t.Fatalf("progress %+v", p)
	}
}

func TestFulfilNeedsAnOrderID(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, newMailer())
	env.ExecuteWorkflow(FulfilWorkflowName, FulfilInput{})
	if app := appError(t, env.GetWorkflowError()); app.Type() != CodeInvalidInput {
		t.Fatalf("failure type %q", app.Type())
	}
	if len(f.callLog()) != 0 {
		t.Fatalf("calls %q", f.callLog())
	}
}

// deliveredThenFulfil stands for a fulfilment reset or restarted after its e-mail child ran: it runs
// the delivery child first (its failure is ignored: that is a test case too), then Fulfil.
func deliveredThenFulfil(ctx workflow.Context, orderID string) (FulfilResult, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: emaildelivery.WorkflowID("delivery-" + orderID), TaskQueue: TaskQueue})
	_ = workflow.ExecuteChildWorkflow(cctx, emaildelivery.WorkflowName, emaildelivery.SendInput{MessageID: "delivery-" + orderID, To: "buyer@example.com", Subject: "earlier", Text: "earlier"}).Get(ctx, nil)
	fctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: WorkflowID(orderID), TaskQueue: TaskQueue})
	var res FulfilResult
	err := workflow.ExecuteChildWorkflow(fctx, FulfilWorkflowName, FulfilInput{OrderID: orderID}).Get(ctx, &res)
	return res, err
}

func TestFulfilCountsAnExistingEmailChildAsSent(t *testing.T) {
	f, mailer := newFake(), newMailer()
	env := newEnv(t, f, mailer)
	env.RegisterWorkflow(deliveredThenFulfil)
	env.ExecuteWorkflow(deliveredThenFulfil, "ord_1")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res FulfilResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Outcome != OutcomeFulfilled {
		t.Fatalf("result %+v, %v", res, err)
	}
	// Delivered once (by the earlier child), and the order was still marked fulfilled.
	sameStrings(t, "delivered", mailer.delivered(), []string{"delivery-ord_1"})
	if msg, _ := mailer.message("delivery-ord_1"); msg.Subject != "earlier" {
		t.Fatalf("delivered %+v, want the earlier message only", msg)
	}
	if f.count("MarkFulfilled") != 1 || f.count("FlagForSupport") != 0 {
		t.Fatalf("calls %q", f.callLog())
	}
}

func TestFulfilResendsAnEmailWhoseChildFailed(t *testing.T) {
	f, mailer := newFake(), newMailer()
	mailer.fails["delivery-ord_1"] = []error{errs.E(errs.Invalid, "MAILBOX_UNAVAILABLE", "550 no such user")}
	env := newEnv(t, f, mailer)
	env.RegisterWorkflow(deliveredThenFulfil)
	env.ExecuteWorkflow(deliveredThenFulfil, "ord_1")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	// The earlier child failed for good, so the restarted fulfilment delivered the e-mail itself.
	if mailer.tries["delivery-ord_1"] != 2 {
		t.Fatalf("delivery tried %d times, want 2", mailer.tries["delivery-ord_1"])
	}
	if msg, ok := mailer.message("delivery-ord_1"); !ok || msg.Subject != "Your order" {
		t.Fatalf("delivered %+v", msg)
	}
}

func TestRevokeHappyPath(t *testing.T) {
	f, mailer := newFake(), newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(RevokeWorkflowName, RevokeInput{OrderID: "ord_1", Status: "disputed", Reason: "chargeback"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res RevokeResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res != (RevokeResult{OrderID: "ord_1", Outcome: OutcomeRevoked, EmailID: "refund-ord_1"}) {
		t.Fatalf("result %+v", res)
	}
	sameStrings(t, "revoked", f.revoked, []string{"ord_1 disputed chargeback"})
	sameStrings(t, "calls", f.callLog(), []string{"RevokeOrder", "RefundEmail"})
	sameStrings(t, "delivered", mailer.delivered(), []string{"refund-ord_1"})
	p := progressOf(t, env)
	sameStrings(t, "completed", p.Completed, []string{StepRevokeOrder, StepRefundEmail, StepSendRefund})
	if p.Outcome != OutcomeRevoked || p.EmailID != "refund-ord_1" {
		t.Fatalf("progress %+v", p)
	}
}

func TestRevokeRetriesThenFailsForGood(t *testing.T) {
	f := newFake().fail("RevokeOrder",
		errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"),
		errs.E(errs.NotFound, errs.CodeNotFound, "no such order"))
	mailer := newMailer()
	env := newEnv(t, f, mailer)
	env.ExecuteWorkflow(RevokeWorkflowName, RevokeInput{OrderID: "ord_1", Status: "refunded"})
	if app := appError(t, env.GetWorkflowError()); app.Type() != errs.CodeNotFound || !app.NonRetryable() {
		t.Fatalf("failure type %q", app.Type())
	}
	sameStrings(t, "calls", f.callLog(), []string{"RevokeOrder", "RevokeOrder"})
	if len(mailer.delivered()) != 0 {
		t.Fatalf("delivered %q", mailer.delivered())
	}
	if p := progressOf(t, env); p.Outcome != OutcomeFailed || p.Error != "NOT_FOUND: no such order" {
		t.Fatalf("progress %+v", p)
	}
}

func TestRevokeRefusesABadStatus(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, newMailer())
	env.ExecuteWorkflow(RevokeWorkflowName, RevokeInput{OrderID: "ord_1", Status: "fulfilled"})
	if app := appError(t, env.GetWorkflowError()); app.Type() != CodeInvalidInput {
		t.Fatalf("failure type %q", app.Type())
	}
	if len(f.callLog()) != 0 {
		t.Fatalf("calls %q", f.callLog())
	}
}

func TestIDs(t *testing.T) {
	if got := WorkflowID("ord_42"); got != "fulfillment/ord_42" {
		t.Fatalf("WorkflowID = %q", got)
	}
	if got := RevocationID("ord_42"); got != "revocation/ord_42" {
		t.Fatalf("RevocationID = %q", got)
	}
}
