package carollout

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Change IDs of workflow.GetVersion. Every step expected to change is wrapped from the first
// release with minSupported = maxSupported = 1, so a history without the marker fails loudly.
const (
	changeSelfTest    = "carollout-self-test"
	changeHealthCheck = "carollout-health-check"
	changeRetire      = "carollout-retire"
)

// retireMargin is added to the last certificate's expiry before retiring: clocks of devices and
// servers differ by a little, and a retired intermediate is no longer trusted.
const retireMargin = time.Minute

// maxTimer bounds one wait for the retirement; the expiry is asked again after it, so a
// certificate issued late (a retried issuance) is not cut off.
const maxTimer = 30 * 24 * time.Hour

// Retry policies, declared beside the calls that use them.
var (
	// stateOptions: a state change is one atomic, idempotent write to the PKI directory; a lock
	// held by another step or a full disk is retried for an hour.
	stateOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	}
	// selfTestOptions: five attempts over about 15 s, for a listener blip or a CA that has not
	// reloaded the state file yet; after them the self-test has failed.
	selfTestOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 4 * time.Second, MaximumAttempts: 5},
	}
	// checkOptions: a check that cannot run (the database is down) is no evidence either way: it
	// is retried a few times, then skipped until the next one.
	checkOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: 10 * time.Second, MaximumAttempts: 3},
	}
	// expiryOptions: one database query, retried for an hour.
	expiryOptions = workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute},
	}
)

// rollout is one run's state, shared with the query handlers.
type rollout struct {
	in      Input
	st      State
	figures ports.RolloutFigures
	abort   workflow.ReceiveChannel
	approve workflow.ReceiveChannel
}

// Rollout is the workflow (see the package doc).
func Rollout(ctx workflow.Context, in Input) (Result, error) {
	in, err := normalize(in)
	if err != nil {
		return Result{}, err
	}
	r := &rollout{
		in:      in,
		st:      State{Phase: PhaseStaged, IntermediateID: in.IntermediateID, PreviousID: in.PreviousID, Share: in.SharePercent},
		abort:   workflow.GetSignalChannel(ctx, AbortSignal),
		approve: workflow.GetSignalChannel(ctx, ApproveSignal),
	}
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (State, error) { return r.st, nil }); err != nil {
		return Result{}, err
	}
	if err := workflow.SetQueryHandler(ctx, FiguresQuery, func() (ports.RolloutFigures, error) { return r.figures, nil }); err != nil {
		return Result{}, err
	}

	if err := r.setState(ctx, in.IntermediateID, string(authority.StateCanary), in.SharePercent, "rollout: canary"); err != nil {
		return Result{}, err
	}
	now := workflow.Now(ctx)
	r.st.Phase, r.st.CanaryStarted, r.st.SoakUntil = PhaseCanary, now, now.Add(in.Soak)

	_ = workflow.GetVersion(ctx, changeSelfTest, 1, 1)
	var test SelfTestResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, selfTestOptions), SelfTestActivityName,
		SelfTestInput{IntermediateID: in.IntermediateID}).Get(ctx, &test); err != nil {
		test = SelfTestResult{Detail: "the self-test could not run: " + errorMessage(err)}
	}
	r.st.SelfTest = test.Detail
	if !test.Passed {
		return r.rollBack(ctx, "self-test failed: "+test.Detail)
	}

	for {
		approved, aborted, reason := r.waitDuringSoak(ctx)
		if aborted {
			return r.rollBack(ctx, "aborted: "+reason)
		}
		healthy, ran, why := r.check(ctx)
		if ran && !healthy {
			return r.rollBack(ctx, "health check failed: "+why)
		}
		if approved {
			// The operator's approval stands even when the last check could not run: the
			// operator sees the figures in the query before approving.
			return r.promote(ctx, "approved"+reason)
		}
		if in.AutoPromote && ran && !workflow.Now(ctx).Before(r.st.SoakUntil) {
			return r.promote(ctx, "soak passed healthy")
		}
	}
}

// normalize applies the defaults and refuses an input no rollout can run with.
func normalize(in Input) (Input, error) {
	bad := func(msg string) error { return temporal.NewNonRetryableApplicationError(msg, "INVALID_ROLLOUT", nil) }
	if in.IntermediateID == "" || in.PreviousID == "" {
		return in, bad("a rollout needs the new intermediate and the active one it replaces")
	}
	if in.IntermediateID == in.PreviousID {
		return in, bad("the new intermediate is the active one")
	}
	if in.SharePercent == 0 {
		in.SharePercent = DefaultSharePercent
	}
	if in.SharePercent < 1 || in.SharePercent > authority.MaxShare {
		return in, bad("the canary share is a percentage from 1 to 100")
	}
	if in.CheckEvery <= 0 {
		in.CheckEvery = DefaultCheckEvery
	}
	if in.Soak < 0 || in.MaxIssuanceErrors < 0 || in.MaxValidationFailures < 0 || in.MaxChainFailures < 0 {
		return in, bad("soak and thresholds cannot be negative")
	}
	return in, nil
}

// waitDuringSoak waits for the next check time or a signal, whichever comes first.
func (r *rollout) waitDuringSoak(ctx workflow.Context) (approved, aborted bool, reason string) {
	wait := r.in.CheckEvery
	// The soak's end is a check time of its own, so that auto-promotion is not late by up to one
	// interval.
	if left := r.st.SoakUntil.Sub(workflow.Now(ctx)); left > 0 && left < wait {
		wait = left
	}
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
	sel.AddReceive(r.approve, func(c workflow.ReceiveChannel, _ bool) {
		var p ApproveSignalPayload
		c.Receive(ctx, &p)
		approved = true
		if p.By != "" {
			reason = " by " + p.By
		}
	})
	sel.AddReceive(r.abort, func(c workflow.ReceiveChannel, _ bool) {
		var p AbortSignalPayload
		c.Receive(ctx, &p)
		aborted, reason = true, p.Reason
		if reason == "" {
			reason = "operator signal"
		}
	})
	sel.Select(ctx)
	return approved, aborted, reason
}

// check runs one health check: ran is false when it could not run.
func (r *rollout) check(ctx workflow.Context) (healthy, ran bool, why string) {
	_ = workflow.GetVersion(ctx, changeHealthCheck, 1, 1)
	var res CheckHealthResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, checkOptions), CheckHealthActivityName,
		CheckHealthInput{IntermediateID: r.in.IntermediateID, Since: r.st.CanaryStarted}).Get(ctx, &res)
	if err != nil {
		workflow.GetLogger(ctx).Warn("health check could not run", "error", err)
		return false, false, ""
	}
	r.st.Checks++
	r.figures = res.Figures
	f := res.Figures
	switch {
	case f.IssuanceErrors > r.in.MaxIssuanceErrors:
		return false, true, fmt.Sprintf("%d issuance errors (at most %d allowed)", f.IssuanceErrors, r.in.MaxIssuanceErrors)
	case f.ValidationFailures > r.in.MaxValidationFailures:
		return false, true, fmt.Sprintf("%d validation failures (at most %d allowed)", f.ValidationFailures, r.in.MaxValidationFailures)
	case f.ChainFailures > r.in.MaxChainFailures:
		return false, true, fmt.Sprintf("%d chain check failures (at most %d allowed): %s", f.ChainFailures, r.in.MaxChainFailures, res.ChainDetail)
	}
	return true, true, ""
}

// promote makes the new intermediate active (the previous one retiring), then retires the
// previous one after its last certificate expires, unless an abort rolls the promotion back first.
func (r *rollout) promote(ctx workflow.Context, reason string) (Result, error) {
	if err := r.setState(ctx, r.in.IntermediateID, string(authority.StateActive), 0, "rollout: promoted ("+reason+")"); err != nil {
		return Result{}, err
	}
	r.st.Phase, r.st.Outcome, r.st.Reason = PhasePromoted, OutcomePromoted, reason
	retired, aborted, why, err := r.retireAfterLastCertificate(ctx, r.in.PreviousID, true)
	if err != nil {
		return Result{}, err
	}
	if aborted {
		return r.rollBack(ctx, "aborted after promotion: "+why)
	}
	r.st.Phase = PhaseDone
	return Result{Outcome: OutcomePromoted, Reason: reason, Retired: retired, Figures: r.figures}, nil
}

// rollBack moves the new intermediate to rolled_back (the previous one issues again; after a
// promotion the hierarchy's rules make it active again) and retires the new one after its last
// certificate expires.
func (r *rollout) rollBack(ctx workflow.Context, reason string) (Result, error) {
	workflow.GetLogger(ctx).Warn("rolling back", "intermediate", r.in.IntermediateID, "reason", reason)
	if err := r.setState(ctx, r.in.IntermediateID, string(authority.StateRolledBack), 0, "rollout: "+reason); err != nil {
		return Result{}, err
	}
	r.st.Phase, r.st.Outcome, r.st.Reason = PhaseRolledBack, OutcomeRolledBack, reason
	retired, _, _, err := r.retireAfterLastCertificate(ctx, r.in.IntermediateID, false)
	if err != nil {
		return Result{}, err
	}
	r.st.Phase = PhaseDone
	return Result{Outcome: OutcomeRolledBack, Reason: reason, Retired: retired, Figures: r.figures}, nil
}

// retireAfterLastCertificate waits until the last certificate of id has expired and retires id.
// With abortable, an abort signal ends the wait first (aborted true, nothing retired).
func (r *rollout) retireAfterLastCertificate(ctx workflow.Context, id string, abortable bool) (retired string, aborted bool, reason string, err error) {
	_ = workflow.GetVersion(ctx, changeRetire, 1, 1)
	for {
		var last LastCertExpiryResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, expiryOptions), LastCertExpiryActivityName,
			LastCertExpiryInput{IntermediateID: id}).Get(ctx, &last); err != nil {
			return "", false, "", err
		}
		now := workflow.Now(ctx)
		retireAt := now
		if !last.NotAfter.IsZero() {
			retireAt = last.NotAfter.Add(retireMargin)
		}
		r.st.RetireAt = retireAt
		if !now.Before(retireAt) {
			if err := r.setState(ctx, id, string(authority.StateRetired), 0, "rollout: last certificate expired"); err != nil {
				return "", false, "", err
			}
			r.st.Retired = id
			return id, false, "", nil
		}
		wait := min(retireAt.Sub(now), maxTimer)
		timerCtx, cancel := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
		if abortable {
			sel.AddReceive(r.abort, func(c workflow.ReceiveChannel, _ bool) {
				var p AbortSignalPayload
				c.Receive(ctx, &p)
				aborted, reason = true, p.Reason
				if reason == "" {
					reason = "operator signal"
				}
			})
		}
		sel.Select(ctx)
		cancel()
		if aborted {
			return "", true, reason, nil
		}
	}
}

func (r *rollout) setState(ctx workflow.Context, id, state string, share int, note string) error {
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, stateOptions), SetStateActivityName,
		SetStateInput{ID: id, State: state, Share: share, Note: note}).Get(ctx, nil)
}

// errorMessage is the message of an activity's failure without the SDK's wrapping.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}
