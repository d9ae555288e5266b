package emaildelivery

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/ports"
)

// Register registers the workflow and its activity under their explicit names on w (a worker
// polling TaskQueue), with mailer behind the activity.
func Register(w worker.Worker, mailer ports.Mailer) {
	w.RegisterWorkflowWithOptions(Send, workflow.RegisterOptions{Name: WorkflowName})
	acts := &Activities{Mailer: mailer}
	w.RegisterActivityWithOptions(acts.Deliver, activity.RegisterOptions{Name: DeliverActivityName})
}
