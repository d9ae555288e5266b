package expiry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// fakeLicensing implements only SendExpiryNotices (the embedded nil interface panics on anything
// else, which is the point: the workflow calls nothing else). It answers with the scripted errors
// in turn, then with sent.
type fakeLicensing struct {
	ports.Licensing
	mu    sync.Mutex
	fails []error
	sent  int
	calls []time.Time
}

func (f *fakeLicensing) SendExpiryNotices(_ context.Context, now time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, now)
	if len(f.fails) > 0 {
		err := f.fails[0]
		f.fails = f.fails[1:]
		return 0, err
	}
	return f.sent, nil
}

func (f *fakeLicensing) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

func newEnv(t *testing.T, lic ports.Licensing) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	register(env, lic)
	return env
}

func TestSendNoticesCallsTheLicensingCoreWithTheActivityTime(t *testing.T) {
	lic := &fakeLicensing{sent: 3}
	env := newEnv(t, lic)
	before := time.Now().UTC().Truncate(time.Second)
	env.ExecuteWorkflow(WorkflowName, SendNoticesInput{})
	after := time.Now().UTC()
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, err %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res SendNoticesResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	calls := lic.times()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	// The time is the activity attempt's start, in whole seconds and UTC, and is reported.
	now := calls[0]
	if now.Before(before) || now.After(after) || now.Location() != time.UTC || now.Nanosecond() != 0 {
		t.Fatalf("time %v, want within [%v, %v] in whole UTC seconds", now, before, after)
	}
	if res.Sent != 3 || !res.At.Equal(now) {
		t.Fatalf("result %+v", res)
	}
}

func TestSendNoticesRetriesTemporaryFailures(t *testing.T) {
	lic := &fakeLicensing{sent: 1, fails: []error{
		errs.E(errs.Unavailable, errs.CodeUnavailable, "database down"),
		errs.Internalf("licensing: something broke: %w", errors.New("secret detail")),
	}}
	env := newEnv(t, lic)
	env.ExecuteWorkflow(WorkflowName, SendNoticesInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	if n := len(lic.times()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	var res SendNoticesResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Sent != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
}

func TestSendNoticesStopsOnAPermanentFailure(t *testing.T) {
	lic := &fakeLicensing{fails: []error{errs.Validation("expiry notice must be expiring or expired")}}
	env := newEnv(t, lic)
	env.ExecuteWorkflow(WorkflowName, SendNoticesInput{})
	err := env.GetWorkflowError()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != errs.CodeValidationFailed || !app.NonRetryable() {
		t.Fatalf("error %v", err)
	}
	if n := len(lic.times()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestClassify(t *testing.T) {
	err := classify(errs.Internalf("licensing: opening license key: %w", errors.New("vault key abc123 rejected")))
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.NonRetryable() || app.Type() != errs.CodeInternal || strings.Contains(app.Message(), "abc123") {
		t.Fatalf("classified %v", err)
	}
	if err := classify(errs.E(errs.Unavailable, errs.CodeUnavailable, "temporal is unavailable")); !errors.As(err, &app) || app.NonRetryable() {
		t.Fatalf("unavailable classified %v", err)
	}
	for _, k := range []errs.Kind{errs.Invalid, errs.NotFound, errs.Conflict, errs.Forbidden, errs.Gone} {
		if err := classify(errs.E(k, "SOME_CODE", "no")); !errors.As(err, &app) || !app.NonRetryable() || app.Type() != "SOME_CODE" {
			t.Fatalf("%s classified %v", k, err)
		}
	}
}
