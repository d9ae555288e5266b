package temporalclient

import (
	"context"
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/carollout"
)

// Codes of the rollout calls.
const (
	// CodeRolloutRunning: a rollout of the intermediate is already running.
	CodeRolloutRunning = "ROLLOUT_RUNNING"
	// CodeRolloutNotFound: no rollout of the intermediate was ever started (or its history is gone).
	CodeRolloutNotFound = "ROLLOUT_NOT_FOUND"
	// CodeRolloutClosed: the rollout has finished; signals no longer reach it.
	CodeRolloutClosed = "ROLLOUT_CLOSED"
)

// RolloutStatus is what `samplero pki rollout status` shows.
type RolloutStatus struct {
	WorkflowID string
	RunID      string
	// Status is Temporal's execution status: Running, Completed, Failed, Terminated, …
	Status  string
	State   carollout.State
	Figures ports.RolloutFigures
	// Result is set when the run completed.
	Result *carollout.Result
	// Failure is the run's failure message when it failed.
	Failure string
}

// StartRollout starts carollout/<in.IntermediateID>. A running rollout of the same intermediate
// refuses the start (errs.Conflict ROLLOUT_RUNNING); a finished one does not, so a rollout that
// failed (the canary refused) can be started again.
func (c *Client) StartRollout(ctx context.Context, in carollout.Input) (string, error) {
	if in.IntermediateID == "" || in.PreviousID == "" {
		return "", errs.Validation("a rollout needs the new intermediate and the active one it replaces")
	}
	opts := client.StartWorkflowOptions{
		ID:                                       carollout.WorkflowID(in.IntermediateID),
		TaskQueue:                                carollout.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
	run, err := c.sdk.ExecuteWorkflow(ctx, opts, carollout.WorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return "", errs.E(errs.Conflict, CodeRolloutRunning, "a rollout of "+in.IntermediateID+" is already running")
	}
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not start the rollout", err)
	}
	return run.GetRunID(), nil
}

// ApproveRollout sends the approve signal to the running rollout of intermediateID.
func (c *Client) ApproveRollout(ctx context.Context, intermediateID, by string) error {
	return c.signalRollout(ctx, intermediateID, carollout.ApproveSignal, carollout.ApproveSignalPayload{By: by})
}

// AbortRollout sends the abort signal to the running rollout of intermediateID.
func (c *Client) AbortRollout(ctx context.Context, intermediateID, reason string) error {
	return c.signalRollout(ctx, intermediateID, carollout.AbortSignal, carollout.AbortSignalPayload{Reason: reason})
}

func (c *Client) signalRollout(ctx context.Context, id, signal string, payload any) error {
	if id == "" {
		return errs.Validation("name the intermediate of the rollout")
	}
	err := c.sdk.SignalWorkflow(ctx, carollout.WorkflowID(id), "", signal, payload)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// Temporal answers NotFound for a closed run too: tell them apart for the operator.
		if d, derr := c.sdk.DescribeWorkflowExecution(ctx, carollout.WorkflowID(id), ""); derr == nil &&
			d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return errs.E(errs.Conflict, CodeRolloutClosed, "the rollout of "+id+" has finished")
		}
		return errs.E(errs.NotFound, CodeRolloutNotFound, "no rollout of "+id+" is running")
	}
	if err != nil {
		return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not signal the rollout", err)
	}
	return nil
}

// RolloutStatus describes the latest rollout of intermediateID: its execution status, and its
// state and figures (queries, answered by a worker, also after the run finished).
func (c *Client) RolloutStatus(ctx context.Context, intermediateID string) (RolloutStatus, error) {
	if intermediateID == "" {
		return RolloutStatus{}, errs.Validation("name the intermediate of the rollout")
	}
	id := carollout.WorkflowID(intermediateID)
	d, err := c.sdk.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return RolloutStatus{}, errs.E(errs.NotFound, CodeRolloutNotFound, "no rollout of "+intermediateID+" was started")
	}
	if err != nil {
		return RolloutStatus{}, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not read the rollout", err)
	}
	info := d.GetWorkflowExecutionInfo()
	st := RolloutStatus{WorkflowID: id, RunID: info.GetExecution().GetRunId(), Status: statusName(info.GetStatus())}
	for query, into := range map[string]any{carollout.StateQuery: &st.State, carollout.FiguresQuery: &st.Figures} {
		v, err := c.sdk.QueryWorkflow(ctx, id, st.RunID, query)
		if err != nil {
			return RolloutStatus{}, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not query the rollout (is a worker running?)", err)
		}
		if err := v.Get(into); err != nil {
			return RolloutStatus{}, errs.Internalf("temporalclient: rollout %s answer: %w", query, err)
		}
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var res carollout.Result
		if err := c.sdk.GetWorkflow(ctx, id, st.RunID).Get(ctx, &res); err == nil {
			st.Result = &res
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		if err := c.sdk.GetWorkflow(ctx, id, st.RunID).Get(ctx, nil); err != nil {
			st.Failure = err.Error()
		}
	}
	return st, nil
}

// statusName is Temporal's status without its enum prefix: "Running", "Completed", …
func statusName(s enumspb.WorkflowExecutionStatus) string { return s.String() }
