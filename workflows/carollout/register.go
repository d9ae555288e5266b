package carollout

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register registers the workflow and its activities under their explicit names on w (a worker
// polling TaskQueue), with acts behind the activities.
func Register(w worker.Worker, acts *Activities) { register(w, acts) }

// workflowRegistry is what registerWorkflows needs: a worker, a test environment or a replayer.
type workflowRegistry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// registry is what register needs: a worker or a test environment.
type registry interface {
	workflowRegistry
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

func register(r registry, acts *Activities) {
	registerWorkflows(r)
	r.RegisterActivityWithOptions(acts.SetState, activity.RegisterOptions{Name: SetStateActivityName})
	r.RegisterActivityWithOptions(acts.SelfTest, activity.RegisterOptions{Name: SelfTestActivityName})
	r.RegisterActivityWithOptions(acts.CheckHealth, activity.RegisterOptions{Name: CheckHealthActivityName})
	r.RegisterActivityWithOptions(acts.LastCertificateExpiry, activity.RegisterOptions{Name: LastCertExpiryActivityName})
}

func registerWorkflows(r workflowRegistry) {
	r.RegisterWorkflowWithOptions(Rollout, workflow.RegisterOptions{Name: WorkflowName})
}
