package expiry

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/ports"
)

// Register registers the workflow and its activity under their explicit names on w (a worker
// polling TaskQueue), with lic behind the activity. The worker must also run emaildelivery: the
// notices are sent through its workflow.
func Register(w worker.Worker, lic ports.Licensing) { register(w, lic) }

// workflowRegistry is what registerWorkflows needs: a worker, a test environment or a replayer.
type workflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// registry is what register needs: a worker or a test environment.
type registry interface {
	workflowRegistry
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

func register(r registry, lic ports.Licensing) {
	registerWorkflows(r)
	acts := &Activities{Licensing: lic}
	r.RegisterActivityWithOptions(acts.SendExpiryNotices, activity.RegisterOptions{Name: SendActivityName})
}

func registerWorkflows(r workflowRegistry) {
	r.RegisterWorkflowWithOptions(SendNotices, workflow.RegisterOptions{Name: WorkflowName})
}
