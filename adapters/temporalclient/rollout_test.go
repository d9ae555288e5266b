package temporalclient

import (
	"context"
	"crypto"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/workflows/carollout"
)

// rolloutPKI accepts every state change and remembers the last state of each intermediate.
type rolloutPKI struct {
	ports.PKI
	mu     sync.Mutex
	states map[string]string
}

func (p *rolloutPKI) SetIntermediateState(_ context.Context, req ports.SetIntermediateStateRequest) (ports.StateChangeResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states[req.ID] = req.State
	return ports.StateChangeResult{}, nil
}

func (p *rolloutPKI) state(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.states[id]
}

type acceptingProbe struct{}

func (acceptingProbe) IssueProbeCertificate(_ context.Context, id string, _ crypto.PublicKey) (ports.IssuedCertificate, error) {
	return ports.IssuedCertificate{Serial: "01", DER: []byte{0x30}, IssuerID: id}, nil
}
func (acceptingProbe) CheckChain(context.Context, string) error { return nil }
func (acceptingProbe) Probe(context.Context, []byte, crypto.Signer) (ports.MTLSProbeResult, error) {
	return ports.MTLSProbeResult{Accepted: true, Detail: "ok"}, nil
}

func TestRolloutStartStatusApproveAbort(t *testing.T) {
	c := dialWhenUp(t, startDevServer(t))
	pki := &rolloutPKI{states: map[string]string{}}
	w := worker.New(c.SDK(), carollout.TaskQueue, worker.Options{})
	carollout.Register(w, &carollout.Activities{PKI: pki, Probe: acceptingProbe{}, MTLS: acceptingProbe{}, Events: portstest.NewMemRolloutEvents(nil)})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	in := carollout.Input{IntermediateID: "int_new", PreviousID: "int_old", SharePercent: 50, Soak: time.Hour, CheckEvery: 200 * time.Millisecond}
	if _, err := c.StartRollout(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartRollout(ctx, in); errs.CodeOf(err) != CodeRolloutRunning {
		t.Fatalf("second start: %v, want %s", err, CodeRolloutRunning)
	}
	var st RolloutStatus
	for st.State.Checks < 2 {
		var err error
		if st, err = c.RolloutStatus(ctx, "int_new"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Status != "Running" || st.State.Phase != carollout.PhaseCanary || st.State.Share != 50 || st.Figures.ChainChecks < 2 || st.Result != nil {
		t.Fatalf("status during the canary: %+v", st)
	}
	if err := c.ApproveRollout(ctx, "int_new", "test"); err != nil {
		t.Fatal(err)
	}
	var res carollout.Result
	if err := c.SDK().GetWorkflow(ctx, carollout.WorkflowID("int_new"), "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	st, err := c.RolloutStatus(ctx, "int_new")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "Completed" || st.Result == nil || st.Result.Outcome != carollout.OutcomePromoted || st.State.Retired != "int_old" {
		t.Fatalf("status after approval: %+v", st)
	}
	if pki.state("int_new") != "active" || pki.state("int_old") != "retired" {
		t.Fatalf("states %v", pki.states)
	}
	if err := c.AbortRollout(ctx, "int_new", "late"); errs.CodeOf(err) != CodeRolloutClosed {
		t.Fatalf("abort of a finished rollout: %v", err)
	}
	if err := c.AbortRollout(ctx, "int_none", ""); errs.CodeOf(err) != CodeRolloutNotFound {
		t.Fatalf("abort of no rollout: %v", err)
	}
	if _, err := c.RolloutStatus(ctx, "int_none"); errs.CodeOf(err) != CodeRolloutNotFound {
		t.Fatalf("status of no rollout: %v", err)
	}

	// A second rollout, aborted during its canary.
	in.IntermediateID, in.PreviousID = "int_third", "int_new"
	if _, err := c.StartRollout(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := c.AbortRollout(ctx, "int_third", "testing abort"); err != nil {
		t.Fatal(err)
	}
	if err := c.SDK().GetWorkflow(ctx, carollout.WorkflowID("int_third"), "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != carollout.OutcomeRolledBack || res.Reason != "aborted: testing abort" || pki.state("int_third") != "retired" {
		t.Fatalf("aborted rollout: %+v, state %s", res, pki.state("int_third"))
	}
}

func TestRolloutRefusesBadInput(t *testing.T) {
	c := &Client{} // never reaches the server
	ctx := context.Background()
	if _, err := c.StartRollout(ctx, carollout.Input{IntermediateID: "x"}); errs.KindOf(err) != errs.Invalid {
		t.Errorf("start without previous: %v", err)
	}
	for name, err := range map[string]error{"approve": c.ApproveRollout(ctx, "", ""), "abort": c.AbortRollout(ctx, "", "")} {
		if errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s without id: %v", name, err)
		}
	}
	if _, err := c.RolloutStatus(ctx, ""); errs.KindOf(err) != errs.Invalid {
		t.Errorf("status without id: %v", err)
	}
}
