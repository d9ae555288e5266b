package fulfillment

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/ports"
)

// Register registers both workflows and their activities under their explicit names on w (a worker
// polling TaskQueue), with f behind the activities. The worker must also run emaildelivery, whose
// workflow the e-mails are sent through.
func Register(w worker.Worker, f ports.Fulfilment) { register(w, f) }

// workflowRegistry is what registerWorkflows needs: a worker, a test environment or a replayer.
type workflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// registry is what register needs: a worker or a test environment.
type registry interface {
	workflowRegistry
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

func register(r registry, f ports.Fulfilment) {
	registerWorkflows(r)
	acts := &Activities{Fulfilment: f}
	for name, fn := range map[string]any{
		MarkOrderPaidActivityName:     acts.MarkOrderPaid,
		IssueEntitlementsActivityName: acts.IssueEntitlements,
		UnlockDownloadsActivityName:   acts.UnlockDownloads,
		DeliveryEmailActivityName:     acts.DeliveryEmail,
		MarkFulfilledActivityName:     acts.MarkFulfilled,
		FlagForSupportActivityName:    acts.FlagForSupport,
		RevokeOrderActivityName:       acts.RevokeOrder,
		RefundEmailActivityName:       acts.RefundEmail,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

func registerWorkflows(r workflowRegistry) {
	r.RegisterWorkflowWithOptions(Fulfil, workflow.RegisterOptions{Name: FulfilWorkflowName})
	r.RegisterWorkflowWithOptions(Revoke, workflow.RegisterOptions{Name: RevokeWorkflowName})
}
