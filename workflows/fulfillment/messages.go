// Package fulfillment is the durable fulfilment of a paid order and the revocation of a refunded or
// disputed one. Each is a Temporal workflow whose steps are thin, idempotent activities over
// ports.Fulfilment; the e-mails go out through the emaildelivery child workflow.
//
// Fulfil (workflow ID fulfillment/<order id>) runs MarkOrderPaid → IssueEntitlements →
// UnlockDownloads → DeliveryEmail → emaildelivery.Send → MarkFulfilled. Every step may run again
// after a crash or a retry and changes nothing the second time, so a resumed run completes the order
// exactly once. A step that fails for good (a non-retryable error, or a day of retries) stops the
// run: an order refunded meanwhile (ORDER_REVOKED) ends as "revoked"; an order already held for
// review (ORDER_IN_REVIEW) ends as "held"; anything else is flagged for support, the operator is
// e-mailed, and the run fails so that it shows as failed in the Temporal UI.
//
// Revoke (workflow ID revocation/<order id>) runs RevokeOrder → RefundEmail → emaildelivery.Send.
//
// Both answer the query "progress" with a Progress.
//
// # Changing these workflows
//
// Recorded histories in testdata/ must keep replaying (replay_test.go). The registered names below
// are part of every history and never change. A change to the commands a running workflow issues
// (a step added, removed, reordered, or given other options) goes behind workflow.GetVersion:
//
//   - Every step that is expected to change is wrapped in GetVersion from its first release, with
//     minSupported = maxSupported = 1 (see the change IDs in workflow.go and revocation.go). No
//     history without the marker exists, so DefaultVersion is not supported: a history that lacks
//     the marker fails loudly instead of running an untested branch.
//   - To change such a step, keep the old code in the branch of the versions still running, write the
//     new code for version N+1 and raise maxSupported to N+1. A new step gets its own change ID
//     (minSupported workflow.DefaultVersion, so runs recorded before it skip it).
//   - Record a new history (SAMPLERO_RECORD_HISTORIES=1 go test -run TestRealServer ./workflows/fulfillment/)
//     next to the old ones, and keep the old ones: they prove the runs still open replay.
//   - Raise minSupported and delete an old branch only when no run of that version can still be
//     open (a run lasts at most a day of retries per step).
package fulfillment

import "github.com/samplero/samplero/workflows/emaildelivery"

// The registered names are part of every recorded history: never change them.
const (
	// TaskQueue is the queue every Samplero worker polls.
	TaskQueue = emaildelivery.TaskQueue

	FulfilWorkflowName = "fulfillment.Fulfil"
	RevokeWorkflowName = "fulfillment.Revoke"

	MarkOrderPaidActivityName     = "fulfillment.MarkOrderPaid"
	IssueEntitlementsActivityName = "fulfillment.IssueEntitlements"
	UnlockDownloadsActivityName   = "fulfillment.UnlockDownloads"
	DeliveryEmailActivityName     = "fulfillment.DeliveryEmail"
	MarkFulfilledActivityName     = "fulfillment.MarkFulfilled"
	FlagForSupportActivityName    = "fulfillment.FlagForSupport"
	RevokeOrderActivityName       = "fulfillment.RevokeOrder"
	RefundEmailActivityName       = "fulfillment.RefundEmail"

	// ProgressQuery is the query both workflows answer with a Progress.
	ProgressQuery = "progress"
)

// WorkflowID is the deterministic ID of the fulfilment of order orderID.
func WorkflowID(orderID string) string { return "fulfillment/" + orderID }

// RevocationID is the deterministic ID of the revocation of order orderID.
func RevocationID(orderID string) string { return "revocation/" + orderID }

// Error codes the workflows branch on (returned by the commerce core).
const (
	// CodeOrderRevoked: the order was refunded or disputed while it was being fulfilled.
	CodeOrderRevoked = "ORDER_REVOKED"
	// CodeOrderInReview: the order is held for review; an admin's release starts a new run.
	CodeOrderInReview = "ORDER_IN_REVIEW"
	// CodeStepTimedOut: a step kept failing with retryable errors until its time ran out.
	CodeStepTimedOut = "STEP_TIMED_OUT"
	// CodeEmailIncomplete: the core rendered an e-mail without an ID or a recipient.
	CodeEmailIncomplete = "EMAIL_INCOMPLETE"
	// CodeInvalidInput: the workflow was started with an input it cannot run.
	CodeInvalidInput = "INVALID_WORKFLOW_INPUT"
)

// Outcomes reported in results and in Progress.Outcome.
const (
	OutcomeFulfilled         = "fulfilled"
	OutcomeRevoked           = "revoked"             // Fulfil: refunded while fulfilling; Revoke: done
	OutcomeHeld              = "held"                // Fulfil: the order is held for review
	OutcomeFlaggedForSupport = "flagged_for_support" // Fulfil: stopped, order held, operator told
	OutcomeFailed            = "failed"              // even flagging failed, or Revoke failed
)

// Step names reported in Progress.Step and Progress.Completed.
const (
	StepMarkPaid          = "mark_paid"
	StepIssueEntitlements = "issue_entitlements"
	StepUnlockDownloads   = "unlock_downloads"
	StepDeliveryEmail     = "delivery_email"
	StepSendDelivery      = "send_delivery_email"
	StepMarkFulfilled     = "mark_fulfilled"
	StepFlagForSupport    = "flag_for_support"
	StepSendSupport       = "send_support_email"
	StepRevokeOrder       = "revoke_order"
	StepRefundEmail       = "refund_email"
	StepSendRefund        = "send_refund_email"
)

// FulfilInput is Fulfil's one input.
type FulfilInput struct {
	OrderID string `json:"order_id"`
}

// FulfilResult is Fulfil's one result (a run that fails returns none; query its progress).
type FulfilResult struct {
	OrderID    string   `json:"order_id"`
	Outcome    string   `json:"outcome"`
	LicenseIDs []string `json:"license_ids,omitempty"`
	EmailID    string   `json:"email_id,omitempty"`
}

// RevokeInput is Revoke's one input, and the input of the RevokeOrder activity.
type RevokeInput struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"` // refunded | disputed
	Reason  string `json:"reason,omitempty"`
}

// RevokeResult is Revoke's one result.
type RevokeResult struct {
	OrderID string `json:"order_id"`
	Outcome string `json:"outcome"`
	EmailID string `json:"email_id,omitempty"`
}

// Progress is the answer of the "progress" query.
type Progress struct {
	Step       string   `json:"step"`      // the step running now; "" once the run has ended
	Completed  []string `json:"completed"` // steps done, in order
	LicenseIDs []string `json:"license_ids,omitempty"`
	EmailID    string   `json:"email_id,omitempty"` // the customer e-mail's message ID
	Outcome    string   `json:"outcome,omitempty"`  // set when the run has ended
	Error      string   `json:"error,omitempty"`    // "CODE: message" of the failure that stopped it
}

// OrderInput is the input of the activities that need only the order.
type OrderInput struct {
	OrderID string `json:"order_id"`
}

// FlagInput is the input of FlagForSupport.
type FlagInput struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

// IssueOutput is what IssueEntitlements returns: a workflow message, separate from
// ports.IssueResult so that recorded payloads stay stable if the port grows.
type IssueOutput struct {
	LicenseIDs     []string `json:"license_ids"`
	EntitlementIDs []string `json:"entitlement_ids"`
}
