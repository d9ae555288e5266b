package boot

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/adapters/temporalclient"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/carollout"
	"github.com/samplero/samplero/workflows/emaildelivery"
	"github.com/samplero/samplero/workflows/expiry"
	"github.com/samplero/samplero/workflows/fulfillment"
)

// workerOptions poll with more goroutines than the SDK's default of two per kind: a burst of paid
// orders is some twenty workflow and activity tasks per order, each a long poll answered by the
// server, and two pollers left most of a burst waiting in the queue (docs/performance.md).
var workerOptions = worker.Options{
	MaxConcurrentWorkflowTaskPollers: 8,
	MaxConcurrentActivityTaskPollers: 8,
}

// StartWorker starts a worker on the samplero task queue with every workflow registered. Stop it
// with the returned function (it waits for running activities to finish).
func StartWorker(tc *temporalclient.Client, mailer ports.Mailer, fulfil ports.Fulfilment, lic ports.Licensing, rollout *carollout.Activities, log *slog.Logger) (stop func(), err error) {
	w := worker.New(tc.SDK(), emaildelivery.TaskQueue, workerOptions)
	emaildelivery.Register(w, mailer)
	fulfillment.Register(w, fulfil)
	expiry.Register(w, lic)
	carollout.Register(w, rollout)
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	log.Info("worker started", "task_queue", emaildelivery.TaskQueue)
	return w.Stop, nil
}

// RunWorker runs a worker until ctx ends.
func RunWorker(ctx context.Context, tc *temporalclient.Client, mailer ports.Mailer, fulfil ports.Fulfilment, lic ports.Licensing, rollout *carollout.Activities, log *slog.Logger) error {
	stop, err := StartWorker(tc, mailer, fulfil, lic, rollout, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	log.Info("worker stopped")
	return nil
}
