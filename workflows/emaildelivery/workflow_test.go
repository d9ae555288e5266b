package emaildelivery

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// scriptedMailer answers Send with the scripted errors in turn, then succeeds.
type scriptedMailer struct {
	mu    sync.Mutex
	fails []error
	sent  []ports.EmailMessage
}

func (m *scriptedMailer) Send(_ context.Context, msg ports.EmailMessage) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	if len(m.fails) > 0 {
		err := m.fails[0]
		m.fails = m.fails[1:]
		return "", err
	}
	return "provider-" + msg.ID, nil
}

func (m *scriptedMailer) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sent)
}

var _ ports.Mailer = (*scriptedMailer)(nil)

func newEnv(t *testing.T, mailer ports.Mailer) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Send, workflow.RegisterOptions{Name: WorkflowName})
	acts := &Activities{Mailer: mailer}
	env.RegisterActivityWithOptions(acts.Deliver, activity.RegisterOptions{Name: DeliverActivityName})
	return env
}

var testInput = SendInput{
	MessageID: "msg_1",
	To:        "buyer@example.com",
	Subject:   "Your license",
	Text:      "VST-…",
	HTML:      "<p>VST-…</p>",
	Template:  "delivery",
}

func TestSendDelivers(t *testing.T) {
	mailer := &scriptedMailer{}
	env := newEnv(t, mailer)
	env.ExecuteWorkflow(WorkflowName, testInput)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res SendResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "provider-msg_1" {
		t.Fatalf("provider id = %q", res.ProviderID)
	}
	if mailer.calls() != 1 || mailer.sent[0] != testInput.Message() {
		t.Fatalf("mailer got %+v", mailer.sent)
	}
}

func TestSendRetriesTemporaryFailures(t *testing.T) {
	mailer := &scriptedMailer{fails: []error{
		errs.E(errs.Unavailable, errs.CodeUnavailable, "smtp down"),
		errors.New("connection reset"),
	}}
	env := newEnv(t, mailer)
	start := env.Now()
	env.ExecuteWorkflow(WorkflowName, testInput)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	if mailer.calls() != 3 {
		t.Fatalf("mailer called %d times, want 3", mailer.calls())
	}
	// The two pauses follow the policy: 2 s, then 4 s (the test clock skips them).
	if waited := env.Now().Sub(start); waited < 6*time.Second {
		t.Fatalf("retried after %v, want at least 6s of backoff", waited)
	}
	var res SendResult
	if err := env.GetWorkflowResult(&res); err != nil || res.ProviderID != "provider-msg_1" {
		t.Fatalf("result %+v, %v", res, err)
	}
}

func TestSendStopsOnPermanentRejection(t *testing.T) {
	mailer := &scriptedMailer{fails: []error{errs.E(errs.Invalid, "MAILBOX_UNAVAILABLE", "550 no such user")}}
	env := newEnv(t, mailer)
	env.ExecuteWorkflow(WorkflowName, testInput)
	err := env.GetWorkflowError()
	if err == nil {
		t.Fatal("workflow succeeded, want a permanent failure")
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("error %v is not an ApplicationError", err)
	}
	if !appErr.NonRetryable() || appErr.Type() != "MAILBOX_UNAVAILABLE" {
		t.Fatalf("error type %q nonretryable %v", appErr.Type(), appErr.NonRetryable())
	}
	if mailer.calls() != 1 {
		t.Fatalf("mailer called %d times, want 1", mailer.calls())
	}
}

func TestWorkflowID(t *testing.T) {
	if got := WorkflowID("msg_42"); got != "email/msg_42" {
		t.Fatalf("WorkflowID = %q", got)
	}
	msg := ports.EmailMessage{ID: "a", To: "b", Subject: "c", Text: "d", HTML: "e", Template: "f"}
	if InputFrom(msg).Message() != msg {
		t.Fatal("InputFrom and Message do not round-trip")
	}
}
