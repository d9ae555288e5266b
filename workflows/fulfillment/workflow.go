package fulfillment

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// stepOptions is the retry policy of every step of both workflows, declared beside the calls: a
// store or provider that is down is retried with growing pauses (1 s doubling up to 1 min) for up to
// a day; a failure retrying cannot change is not retried at all (see classify). A step is a single
// port call, so a minute is ample for one attempt.
var stepOptions = workflow.ActivityOptions{
	StartToCloseTimeout:    time.Minute,
	ScheduleToCloseTimeout: 24 * time.Hour,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2.0,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    0, // unlimited within ScheduleToCloseTimeout
	},
}

// Change IDs of workflow.GetVersion (see the package doc). Version 1 is the only one so far.
const (
	// changeDeliveryViaChild: version 1 sends the delivery e-mail through the emaildelivery child.
	changeDeliveryViaChild = "delivery-via-child"
	// changeRefundViaChild: version 1 sends the refund e-mail through the emaildelivery child.
	changeRefundViaChild = "refund-email-via-child"
)

// Fulfil fulfils one paid order: it marks it paid, issues its licenses and entitlements, unlocks
// its downloads, e-mails the customer and marks it fulfilled. See the package doc for how it ends
// when a step fails for good.
func Fulfil(ctx workflow.Context, in FulfilInput) (FulfilResult, error) {
	p := newProgress()
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, p.snapshot); err != nil {
		return FulfilResult{}, err
	}
	if in.OrderID == "" {
		p.Error = CodeInvalidInput + ": no order id"
		p.end(OutcomeFailed)
		return FulfilResult{}, temporal.NewNonRetryableApplicationError("fulfilment needs an order id", CodeInvalidInput, nil)
	}
	ctx = workflow.WithActivityOptions(ctx, stepOptions)
	err := fulfilSteps(ctx, in.OrderID, p)
	result := FulfilResult{OrderID: in.OrderID, LicenseIDs: p.LicenseIDs, EmailID: p.EmailID}
	if err == nil {
		p.end(OutcomeFulfilled)
		result.Outcome = OutcomeFulfilled
		workflow.GetLogger(ctx).Info("order fulfilled", "order_id", in.OrderID, "licenses", len(p.LicenseIDs))
		return result, nil
	}
	if temporal.IsCanceledError(err) {
		p.end(OutcomeFailed)
		return FulfilResult{}, err
	}
	code, msg := describe(err)
	p.Error = code + ": " + msg
	switch code {
	case CodeOrderRevoked:
		// A refund or dispute won the race: the revocation workflow takes care of the order, and
		// there is nothing left to fulfil or to flag.
		workflow.GetLogger(ctx).Info("order revoked while fulfilling", "order_id", in.OrderID, "step", p.Step)
		p.end(OutcomeRevoked)
		result.Outcome = OutcomeRevoked
		return result, nil
	case CodeOrderInReview:
		// Held already (an amount mismatch, a partial refund…) with its own reason and alert;
		// flagging would overwrite both. The run fails so that the admin's release can start a new
		// one under the same workflow ID.
		p.end(OutcomeHeld)
		return FulfilResult{}, temporal.NewNonRetryableApplicationError("the order is held for review", code, err)
	}
	return FulfilResult{}, flagForSupport(ctx, in.OrderID, p, code, err)
}

// fulfilSteps runs the steps in order and returns the first failure that retrying did not cure.
func fulfilSteps(ctx workflow.Context, orderID string, p *Progress) error {
	ord := OrderInput{OrderID: orderID}
	if err := runStep(ctx, p, StepMarkPaid, MarkOrderPaidActivityName, ord, nil); err != nil {
		return err
	}
	var issued IssueOutput
	if err := runStep(ctx, p, StepIssueEntitlements, IssueEntitlementsActivityName, ord, &issued); err != nil {
		return err
	}
	p.LicenseIDs = issued.LicenseIDs
	if err := runStep(ctx, p, StepUnlockDownloads, UnlockDownloadsActivityName, ord, nil); err != nil {
		return err
	}
	var msg emaildelivery.SendInput
	if err := runStep(ctx, p, StepDeliveryEmail, DeliveryEmailActivityName, ord, &msg); err != nil {
		return err
	}
	p.EmailID = msg.MessageID
	p.Step = StepSendDelivery
	_ = workflow.GetVersion(ctx, changeDeliveryViaChild, 1, 1)
	// Waits for the delivery: the order is fulfilled only once the customer has the keys.
	if err := sendEmail(ctx, msg, true); err != nil {
		return err
	}
	p.done(StepSendDelivery)
	return runStep(ctx, p, StepMarkFulfilled, MarkFulfilledActivityName, ord, nil)
}

// flagForSupport holds the order for review, e-mails the operator when one is configured, and
// returns the non-retryable error that ends the run as failed. Nothing was half-issued: issuing is
// one transaction in the core, so the order has either all its licenses or none.
func flagForSupport(ctx workflow.Context, orderID string, p *Progress, code string, cause error) error {
	log := workflow.GetLogger(ctx)
	var alert emaildelivery.SendInput
	failedStep := p.Step
	if err := runStep(ctx, p, StepFlagForSupport, FlagForSupportActivityName, FlagInput{OrderID: orderID, Reason: p.Error}, &alert); err != nil {
		p.end(OutcomeFailed)
		log.Error("fulfilment failed and the order could not be flagged", "order_id", orderID, "reason", p.Error, "error", err)
		return temporal.NewNonRetryableApplicationError("fulfilment failed ("+p.Error+") and the order could not be flagged for support", code, err)
	}
	if alert.To != "" {
		p.Step = StepSendSupport
		// Waits only for the alert's start: the run must end promptly, because until it does an
		// admin's release of the order (a new run under the same ID) is refused, and a slow mail
		// provider may be retried for a day. The abandoned child keeps delivering.
		if err := sendEmail(ctx, alert, false); err != nil {
			// The order is held either way; the admin's list of held orders still shows it.
			log.Error("the support alert could not be sent", "order_id", orderID, "message_id", alert.MessageID, "error", err)
		} else {
			p.done(StepSendSupport)
		}
	}
	p.end(OutcomeFlaggedForSupport)
	log.Warn("fulfilment stopped; order flagged for support", "order_id", orderID, "step", failedStep, "reason", p.Error)
	return temporal.NewNonRetryableApplicationError("fulfilment stopped at "+failedStep+"; the order is flagged for support: "+p.Error, code, cause)
}

// runStep runs one activity with the step's progress around it.
func runStep(ctx workflow.Context, p *Progress, step, activity string, in, out any) error {
	p.Step = step
	if err := workflow.ExecuteActivity(ctx, activity, in).Get(ctx, out); err != nil {
		return err
	}
	p.done(step)
	return nil
}

// sendEmail sends msg through the emaildelivery child workflow. The child's ID comes from the
// message ID, so a message is delivered once however often a (reset or restarted) parent asks: a
// child that already ran or is still running counts as sent. A child that failed may run again (a
// restarted fulfilment after the operator fixed the cause). The child outlives its parent
// (ABANDON). With delivered the call waits until the provider accepted the message; otherwise only
// until the child has started.
func sendEmail(ctx workflow.Context, msg emaildelivery.SendInput, delivered bool) error {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            emaildelivery.WorkflowID(msg.MessageID),
		TaskQueue:             emaildelivery.TaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
	})
	child := workflow.ExecuteChildWorkflow(cctx, emaildelivery.WorkflowName, msg)
	var err error
	if delivered {
		err = child.Get(ctx, nil)
	} else {
		err = child.GetChildWorkflowExecution().Get(ctx, nil)
	}
	if alreadyStarted(err) {
		workflow.GetLogger(ctx).Info("e-mail already sent or being sent", "message_id", msg.MessageID)
		return nil
	}
	return err
}

// alreadyStarted recognises a child start refused because its ID is taken. A server reports it as
// ChildWorkflowExecutionAlreadyStartedError; the test environment as the service error.
func alreadyStarted(err error) bool {
	if err == nil {
		return false
	}
	var child *temporal.ChildWorkflowExecutionAlreadyStartedError
	var service *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &child) || errors.As(err, &service)
}

// describe turns a step's failure into a stable code and a message fit for the operator: the
// classifier's ApplicationError type and message, or STEP_TIMED_OUT when retries ran out of time.
func describe(err error) (code, msg string) {
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		msg = "a step kept failing for a day"
		var last *temporal.ApplicationError
		if errors.As(timeout, &last) {
			msg += " (last: " + last.Type() + ": " + last.Message() + ")"
		}
		return CodeStepTimedOut, msg
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type(), app.Message()
	}
	return errs.CodeInternal, "unexpected failure"
}

func newProgress() *Progress { return &Progress{Completed: []string{}} }

func (p *Progress) done(step string) {
	p.Completed = append(p.Completed, step)
	p.Step = ""
}

func (p *Progress) end(outcome string) {
	p.Step = ""
	p.Outcome = outcome
}

// snapshot is the query handler: a copy, so that the answer does not share slices with the run.
func (p *Progress) snapshot() (Progress, error) {
	c := *p
	c.Completed = append([]string{}, p.Completed...)
	c.LicenseIDs = append([]string(nil), p.LicenseIDs...)
	return c, nil
}
