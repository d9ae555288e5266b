package fulfillment

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// Revoke revokes every license and entitlement of a refunded or disputed order, records the new
// status and tells the customer. Its steps use the same policy as Fulfil's. A step that fails for
// good fails the run (visible in the Temporal UI); since RevokeOrder is idempotent, starting the
// revocation again after the cause is fixed finishes it.
func Revoke(ctx workflow.Context, in RevokeInput) (RevokeResult, error) {
	p := newProgress()
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, p.snapshot); err != nil {
		return RevokeResult{}, err
	}
	if in.OrderID == "" || (in.Status != string(order.StatusRefunded) && in.Status != string(order.StatusDisputed)) {
		p.Error = CodeInvalidInput + ": an order id and a status of refunded or disputed are required"
		p.end(OutcomeFailed)
		return RevokeResult{}, temporal.NewNonRetryableApplicationError("revocation needs an order id and a status of refunded or disputed", CodeInvalidInput, nil)
	}
	ctx = workflow.WithActivityOptions(ctx, stepOptions)
	if err := revokeSteps(ctx, in, p); err != nil {
		if temporal.IsCanceledError(err) {
			p.end(OutcomeFailed)
			return RevokeResult{}, err
		}
		code, msg := describe(err)
		p.Error = code + ": " + msg
		workflow.GetLogger(ctx).Error("revocation failed", "order_id", in.OrderID, "step", p.Step, "reason", p.Error)
		failedStep := p.Step
		p.end(OutcomeFailed)
		return RevokeResult{}, temporal.NewNonRetryableApplicationError("revocation failed at "+failedStep+": "+p.Error, code, err)
	}
	p.end(OutcomeRevoked)
	workflow.GetLogger(ctx).Info("order revoked", "order_id", in.OrderID, "status", in.Status)
	return RevokeResult{OrderID: in.OrderID, Outcome: OutcomeRevoked, EmailID: p.EmailID}, nil
}

func revokeSteps(ctx workflow.Context, in RevokeInput, p *Progress) error {
	if err := runStep(ctx, p, StepRevokeOrder, RevokeOrderActivityName, in, nil); err != nil {
		return err
	}
	var msg emaildelivery.SendInput
	if err := runStep(ctx, p, StepRefundEmail, RefundEmailActivityName, OrderInput{OrderID: in.OrderID}, &msg); err != nil {
		return err
	}
	p.EmailID = msg.MessageID
	p.Step = StepSendRefund
	_ = workflow.GetVersion(ctx, changeRefundViaChild, 1, 1)
	if err := sendEmail(ctx, msg, true); err != nil {
		return err
	}
	p.done(StepSendRefund)
	return nil
}
