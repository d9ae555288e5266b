package carollout

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// fakePKI keeps intermediate states with the hierarchy's rules that the rollout relies on:
// active demotes the active one to retiring; rolling back an active one restores the one it
// replaced.
type fakePKI struct {
	ports.PKI // only SetIntermediateState is used
	mu        sync.Mutex
	now       func() time.Time
	states    map[string]string
	shares    map[string]int
	replaces  map[string]string
	log       []string // "id:state@offset" in order
	start     time.Time
	failOnce  error
}

func newFakePKI(now func() time.Time) *fakePKI {
	return &fakePKI{now: now, start: now(), states: map[string]string{"int_old": "active", "int_new": "staged"},
		shares: map[string]int{}, replaces: map[string]string{}}
}

func (p *fakePKI) SetIntermediateState(_ context.Context, req ports.SetIntermediateStateRequest) (ports.StateChangeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failOnce != nil {
		err := p.failOnce
		p.failOnce = nil
		return ports.StateChangeResult{}, err
	}
	var res ports.StateChangeResult
	move := func(id, to string, share int) {
		res.Changes = append(res.Changes, ports.StateChange{ID: id, From: p.states[id], To: to, Share: share})
		p.states[id], p.shares[id] = to, share
		p.log = append(p.log, id+":"+to+"@"+p.now().Sub(p.start).Round(time.Minute).String())
	}
	if p.states[req.ID] == req.State && p.shares[req.ID] == req.Share {
		return res, nil
	}
	switch req.State {
	case "active":
		for id, st := range p.states {
			if st == "active" {
				p.replaces[req.ID] = id
				move(id, "retiring", 0)
			}
		}
	case "rolled_back":
		if p.states[req.ID] == "active" {
			move(p.replaces[req.ID], "active", 0)
		}
	case "retired":
		if st := p.states[req.ID]; st != "retiring" && st != "rolled_back" {
			return res, errs.E(errs.Conflict, "ILLEGAL_INTERMEDIATE_TRANSITION", "cannot retire "+st)
		}
	}
	move(req.ID, req.State, req.Share)
	return res, nil
}

func (p *fakePKI) state(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[id]
}

func (p *fakePKI) history() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, " ")
}

// fakeProbe issues "certificates" and checks chains as told.
type fakeProbe struct {
	mu        sync.Mutex
	chainErr  error
	issueErr  error
	issuedFor []string
}

func (f *fakeProbe) IssueProbeCertificate(_ context.Context, id string, pub crypto.PublicKey) (ports.IssuedCertificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.issueErr != nil {
		return ports.IssuedCertificate{}, f.issueErr
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return ports.IssuedCertificate{}, errs.Validation("not an ECDSA key")
	}
	f.issuedFor = append(f.issuedFor, id)
	return ports.IssuedCertificate{Serial: "5E1F", DER: []byte{0x30}, IssuerID: id}, nil
}

func (f *fakeProbe) CheckChain(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chainErr
}

// fakeMTLS accepts or refuses the handshake.
type fakeMTLS struct {
	refuse bool
	err    error
}

func (f *fakeMTLS) Probe(_ context.Context, der []byte, key crypto.Signer) (ports.MTLSProbeResult, error) {
	if f.err != nil {
		return ports.MTLSProbeResult{}, f.err
	}
	if key == nil || len(der) == 0 {
		return ports.MTLSProbeResult{}, errors.New("no certificate")
	}
	if f.refuse {
		return ports.MTLSProbeResult{Detail: "remote error: tls: bad certificate"}, nil
	}
	return ports.MTLSProbeResult{Accepted: true, Detail: "GET /v1/keys 200"}, nil
}

// fakeEvents is a RolloutEventRepo with certificates given by the test.
type fakeEvents struct {
	mu      sync.Mutex
	events  []ports.RolloutEvent
	expiry  map[string]time.Time
	issued  int
	figErrs int // the next figErrs Figures calls fail (unavailable)
}

func (e *fakeEvents) Record(_ context.Context, ev ports.RolloutEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
	return nil
}

func (e *fakeEvents) Figures(_ context.Context, id string, _ time.Time) (ports.RolloutFigures, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.figErrs > 0 {
		e.figErrs--
		return ports.RolloutFigures{}, errs.E(errs.Unavailable, errs.CodeUnavailable, "database down")
	}
	f := ports.RolloutFigures{Issued: e.issued}
	for _, ev := range e.events {
		if ev.IntermediateID != id {
			continue
		}
		switch ev.Kind {
		case ports.RolloutEventIssueError:
			f.IssuanceErrors++
		case ports.RolloutEventValidationFailure:
			f.ValidationFailures++
		case ports.RolloutEventChainCheck:
			f.ChainChecks++
		case ports.RolloutEventChainFailure:
			f.ChainChecks++
			f.ChainFailures++
		}
	}
	return f, nil
}

func (e *fakeEvents) LastCertificateExpiry(_ context.Context, id string) (time.Time, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.expiry[id]
	return t, ok, nil
}

func (e *fakeEvents) add(ev ports.RolloutEvent) { _ = e.Record(context.Background(), ev) }

type harness struct {
	env    *testsuite.TestWorkflowEnvironment
	pki    *fakePKI
	probe  *fakeProbe
	mtls   *fakeMTLS
	events *fakeEvents
	start  time.Time
}

func newHarness(t *testing.T) *harness {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	h := &harness{env: env, probe: &fakeProbe{}, mtls: &fakeMTLS{}, events: &fakeEvents{expiry: map[string]time.Time{}}, start: start}
	h.pki = newFakePKI(env.Now)
	register(env, &Activities{PKI: h.pki, Probe: h.probe, MTLS: h.mtls, Events: h.events})
	return h
}

func baseInput() Input {
	return Input{IntermediateID: "int_new", PreviousID: "int_old", SharePercent: 50, Soak: 2 * time.Hour,
		CheckEvery: 10 * time.Minute, MaxIssuanceErrors: 0, MaxValidationFailures: 0, MaxChainFailures: 0}
}

func (h *harness) result(t *testing.T) Result {
	t.Helper()
	if !h.env.IsWorkflowCompleted() {
		t.Fatal("the workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var res Result
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

func (h *harness) query(t *testing.T) State {
	t.Helper()
	v, err := h.env.QueryWorkflow(StateQuery)
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Approve during the soak promotes; the old intermediate retires a minute after its last
// certificate expires (30 days later), not before.
func TestPromoteOnApproveThenRetire(t *testing.T) {
	h := newHarness(t)
	h.events.expiry["int_old"] = h.start.Add(30 * 24 * time.Hour)
	h.events.issued = 7
	var during State
	var figures ports.RolloutFigures
	h.env.RegisterDelayedCallback(func() {
		during = h.query(t)
		v, err := h.env.QueryWorkflow(FiguresQuery)
		if err != nil {
			t.Error(err)
			return
		}
		_ = v.Get(&figures)
		if got := h.pki.state("int_new"); got != "canary" {
			t.Errorf("during the soak int_new is %s, want canary", got)
		}
		h.env.SignalWorkflow(ApproveSignal, ApproveSignalPayload{By: "ops"})
	}, 35*time.Minute)
	var promoted State
	h.env.RegisterDelayedCallback(func() {
		promoted = h.query(t)
		if h.pki.state("int_old") != "retiring" {
			t.Errorf("a day after promotion int_old is %s, want retiring", h.pki.state("int_old"))
		}
	}, 24*time.Hour)
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	res := h.result(t)

	if during.Phase != PhaseCanary || during.Share != 50 || during.Checks != 3 || !strings.Contains(during.SelfTest, "accepted") {
		t.Errorf("state during the soak: %+v", during)
	}
	if figures.Issued != 7 || figures.ChainChecks != 3 {
		t.Errorf("figures during the soak: %+v (want 7 issued, 3 chain checks)", figures)
	}
	if promoted.Phase != PhasePromoted || !promoted.RetireAt.Equal(h.start.Add(30*24*time.Hour+time.Minute)) {
		t.Errorf("state after promotion: %+v", promoted)
	}
	if res.Outcome != OutcomePromoted || res.Retired != "int_old" || res.Reason != "approved by ops" {
		t.Errorf("result %+v", res)
	}
	want := "int_new:canary@0s int_old:retiring@35m0s int_new:active@35m0s int_old:retired@720h1m0s"
	if got := h.pki.history(); got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}
	if len(h.probe.issuedFor) != 1 || h.probe.issuedFor[0] != "int_new" {
		t.Errorf("self-test certificates issued from %v, want [int_new]", h.probe.issuedFor)
	}
}

// With AutoPromote the canary is promoted at the end of a healthy soak; without it the canary
// keeps waiting for the operator.
func TestAutoPromoteAfterHealthySoak(t *testing.T) {
	h := newHarness(t)
	in := baseInput()
	in.AutoPromote = true
	in.Soak = 25 * time.Minute // not a multiple of CheckEvery: the soak's end is its own check
	h.env.ExecuteWorkflow(WorkflowName, in)
	res := h.result(t)
	if res.Outcome != OutcomePromoted || res.Reason != "soak passed healthy" || res.Retired != "int_old" {
		t.Errorf("result %+v", res)
	}
	// int_old issued nothing: retired right after the promotion.
	want := "int_new:canary@0s int_old:retiring@25m0s int_new:active@25m0s int_old:retired@25m0s"
	if got := h.pki.history(); got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}

	h = newHarness(t)
	in.AutoPromote = false
	h.env.RegisterDelayedCallback(func() {
		if st := h.query(t); st.Phase != PhaseCanary || st.Checks < 10 {
			t.Errorf("without AutoPromote, 3 h in: %+v", st)
		}
		h.env.SignalWorkflow(AbortSignal, nil)
	}, 3*time.Hour)
	h.env.ExecuteWorkflow(WorkflowName, in)
	if res := h.result(t); res.Outcome != OutcomeRolledBack || res.Reason != "aborted: operator signal" {
		t.Errorf("result %+v", res)
	}
}

// Abort during the canary rolls back; the canary's certificates stay trusted until their last one
// expires, then it is retired. The old intermediate never stops being active.
func TestAbortDuringCanary(t *testing.T) {
	h := newHarness(t)
	h.events.expiry["int_new"] = h.start.Add(90 * 24 * time.Hour)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(AbortSignal, AbortSignalPayload{Reason: "customer reports"})
	}, 15*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		if st := h.query(t); st.Phase != PhaseRolledBack || st.Outcome != OutcomeRolledBack {
			t.Errorf("state after abort: %+v", st)
		}
		if h.pki.state("int_new") != "rolled_back" || h.pki.state("int_old") != "active" {
			t.Errorf("after abort: int_new %s, int_old %s", h.pki.state("int_new"), h.pki.state("int_old"))
		}
	}, 24*time.Hour)
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	res := h.result(t)
	if res.Outcome != OutcomeRolledBack || res.Reason != "aborted: customer reports" || res.Retired != "int_new" {
		t.Errorf("result %+v", res)
	}
	want := "int_new:canary@0s int_new:rolled_back@15m0s int_new:retired@2160h1m0s"
	if got := h.pki.history(); got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}
}

// An abort after the promotion rolls the new intermediate back, which makes the old one active
// again (instead of retiring it).
func TestAbortAfterPromotion(t *testing.T) {
	h := newHarness(t)
	h.events.expiry["int_old"] = h.start.Add(30 * 24 * time.Hour)
	h.events.expiry["int_new"] = h.start.Add(60 * 24 * time.Hour)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(ApproveSignal, nil) }, 5*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(AbortSignal, nil) }, 48*time.Hour)
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	res := h.result(t)
	if res.Outcome != OutcomeRolledBack || res.Retired != "int_new" || !strings.HasPrefix(res.Reason, "aborted after promotion") {
		t.Errorf("result %+v", res)
	}
	want := "int_new:canary@0s int_old:retiring@5m0s int_new:active@5m0s int_old:active@48h0m0s int_new:rolled_back@48h0m0s int_new:retired@1440h1m0s"
	if got := h.pki.history(); got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}
}

// Validation failures above the threshold, recorded by a serve process during the soak, roll
// the canary back at the next check.
func TestFailedHealthCheckRollsBack(t *testing.T) {
	h := newHarness(t)
	in := baseInput()
	in.MaxValidationFailures = 1
	in.AutoPromote = true
	h.env.RegisterDelayedCallback(func() {
		h.events.add(ports.RolloutEvent{IntermediateID: "int_new", Kind: ports.RolloutEventValidationFailure})
	}, 12*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.events.add(ports.RolloutEvent{IntermediateID: "int_new", Kind: ports.RolloutEventValidationFailure})
	}, 33*time.Minute)
	h.env.ExecuteWorkflow(WorkflowName, in)
	res := h.result(t)
	if res.Outcome != OutcomeRolledBack || res.Reason != "health check failed: 2 validation failures (at most 1 allowed)" {
		t.Errorf("result %+v", res)
	}
	if res.Figures.ValidationFailures != 2 || res.Figures.ChainChecks != 4 {
		t.Errorf("figures %+v", res.Figures)
	}
	want := "int_new:canary@0s int_new:rolled_back@40m0s int_new:retired@40m0s"
	if got := h.pki.history(); got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}
	if h.pki.state("int_old") != "active" {
		t.Errorf("int_old is %s", h.pki.state("int_old"))
	}
}

// A broken published chain fails the check (recorded as a chain failure) and rolls back; a check
// that cannot run (database down) is skipped, not counted as a failure.
func TestChainFailureAndSkippedCheck(t *testing.T) {
	h := newHarness(t)
	h.events.figErrs = 3 // the first check's three attempts fail
	h.env.RegisterDelayedCallback(func() {
		h.probe.mu.Lock()
		h.probe.chainErr = errs.E(errs.Conflict, "CHAIN_CHECK_FAILED", "chain check of int_new: the published chain does not list it")
		h.probe.mu.Unlock()
	}, 15*time.Minute)
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	res := h.result(t)
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "1 chain check failures") ||
		!strings.Contains(res.Reason, "does not list it") {
		t.Errorf("result %+v", res)
	}
	if got := h.pki.history(); !strings.Contains(got, "int_new:rolled_back@20m0s") {
		t.Errorf("state changes %s: want the rollback at the second check", got)
	}
}

// A self-test the device listener refuses rolls back at once and is recorded as a validation
// failure of the new intermediate.
func TestFailedSelfTestRollsBack(t *testing.T) {
	h := newHarness(t)
	h.mtls.refuse = true
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	res := h.result(t)
	if res.Outcome != OutcomeRolledBack || !strings.Contains(res.Reason, "self-test failed: the device listener refused certificate 5E1F") {
		t.Errorf("result %+v", res)
	}
	if len(h.events.events) != 1 || h.events.events[0].Kind != ports.RolloutEventValidationFailure {
		t.Errorf("events %+v", h.events.events)
	}
	if got, want := h.pki.history(), "int_new:canary@0s int_new:rolled_back@0s int_new:retired@0s"; got != want {
		t.Errorf("state changes\n got %s\nwant %s", got, want)
	}

	// An unreachable listener fails the self-test after its attempts, with a clear reason.
	h = newHarness(t)
	h.mtls.err = errors.New("dial tcp 127.0.0.1:1: connection refused")
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	if res := h.result(t); res.Outcome != OutcomeRolledBack || res.Reason != "self-test failed: the self-test could not run: the device listener could not be reached" {
		t.Errorf("result %+v", res)
	}
}

// A refused state change (the canary cannot start) fails the run without touching anything else.
func TestCanaryRefused(t *testing.T) {
	h := newHarness(t)
	h.pki.failOnce = errs.E(errs.Conflict, "INTERMEDIATE_NOT_VALID", "intermediate int_new is outside its validity")
	h.env.ExecuteWorkflow(WorkflowName, baseInput())
	if !h.env.IsWorkflowCompleted() {
		t.Fatal("not completed")
	}
	err := h.env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "outside its validity") {
		t.Fatalf("error %v", err)
	}
	if h.pki.history() != "" {
		t.Errorf("state changes %q", h.pki.history())
	}
}

func TestInputRefused(t *testing.T) {
	for _, in := range []Input{{}, {IntermediateID: "a", PreviousID: "a"}, {IntermediateID: "a", PreviousID: "b", SharePercent: 101},
		{IntermediateID: "a", PreviousID: "b", Soak: -time.Second}} {
		h := newHarness(t)
		h.env.ExecuteWorkflow(WorkflowName, in)
		if err := h.env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "INVALID_ROLLOUT") {
			t.Errorf("input %+v: error %v", in, err)
		}
	}
}
