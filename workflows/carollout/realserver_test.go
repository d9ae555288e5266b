package carollout

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/ports"
)

// TestRealServer runs three rollouts (promote, abort, failed health check) on a throwaway
// Temporal dev server and, with SAMPLERO_RECORD_HISTORIES=1, writes their histories to testdata/
// for the replay test. It runs only when SAMPLERO_RECORD_HISTORIES or SAMPLERO_REQUIRE_SERVICES is
// set, because it needs the temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)
// and a few seconds of real soak.
func TestRealServer(t *testing.T) {
	record := os.Getenv("SAMPLERO_RECORD_HISTORIES") == "1"
	if !record && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORIES=1 to run the workflow on a dev server and record its histories")
	}
	c := dialWhenUp(t, startDevServer(t))
	pki := newFakePKI(time.Now)
	events := &fakeEvents{expiry: map[string]time.Time{}}
	w := worker.New(c, TaskQueue, worker.Options{})
	Register(w, &Activities{PKI: pki, Probe: &fakeProbe{}, MTLS: &fakeMTLS{}, Events: events})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in := Input{PreviousID: "int_old", SharePercent: 50, Soak: time.Hour, CheckEvery: time.Second, MaxValidationFailures: 1}

	run := func(id string, during func(client.WorkflowRun)) (client.WorkflowRun, Result) {
		in := in
		in.IntermediateID = id
		pki.mu.Lock()
		pki.states[id] = "staged"
		pki.mu.Unlock()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowID(id), TaskQueue: TaskQueue}, WorkflowName, in)
		if err != nil {
			t.Fatal(err)
		}
		during(r)
		var res Result
		if err := r.Get(ctx, &res); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return r, res
	}
	waitChecks := func(r client.WorkflowRun, n int) {
		for {
			v, err := c.QueryWorkflow(ctx, r.GetID(), r.GetRunID(), StateQuery)
			if err == nil {
				var st State
				if err := v.Get(&st); err == nil && st.Checks >= n {
					return
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Promote: two checks, approve; the old intermediate's last certificate expires 3 s later.
	events.mu.Lock()
	events.expiry["int_old"] = time.Now().Add(5 * time.Second)
	events.mu.Unlock()
	r1, res := run("int_a", func(r client.WorkflowRun) {
		waitChecks(r, 2)
		if err := c.SignalWorkflow(ctx, r.GetID(), r.GetRunID(), ApproveSignal, ApproveSignalPayload{By: "recorder"}); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != OutcomePromoted || res.Retired != "int_old" {
		t.Fatalf("promote: %+v", res)
	}
	// Abort: the canary (int_b, against the now active int_a) is aborted after one check.
	in.PreviousID = "int_a"
	r2, res := run("int_b", func(r client.WorkflowRun) {
		waitChecks(r, 1)
		if err := c.SignalWorkflow(ctx, r.GetID(), r.GetRunID(), AbortSignal, AbortSignalPayload{Reason: "recorded abort"}); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != OutcomeRolledBack || res.Reason != "aborted: recorded abort" {
		t.Fatalf("abort: %+v", res)
	}
	// Failed check: two validation failures of int_c after its first check.
	r3, res := run("int_c", func(r client.WorkflowRun) {
		waitChecks(r, 1)
		events.add(ports.RolloutEvent{IntermediateID: "int_c", Kind: ports.RolloutEventValidationFailure, At: time.Now()})
		events.add(ports.RolloutEvent{IntermediateID: "int_c", Kind: ports.RolloutEventValidationFailure, At: time.Now()})
	})
	if res.Outcome != OutcomeRolledBack || !strings.HasPrefix(res.Reason, "health check failed: 2 validation failures") {
		t.Fatalf("failed check: %+v", res)
	}
	if record {
		writeHistory(ctx, t, c, r1, "testdata/promote.json")
		writeHistory(ctx, t, c, r2, "testdata/abort.json")
		writeHistory(ctx, t, c, r3, "testdata/failed_check.json")
	}
}

// writeHistory saves the run's history in the JSON form ReplayWorkflowHistoryFromJSONFile reads.
func writeHistory(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, file string) {
	t.Helper()
	var hist historypb.History
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	out, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events)", file, len(hist.Events))
}

// temporalBinary finds the Temporal CLI in PATH or GOPATH/bin (as adapters/temporalclient's tests).
func temporalBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "temporal")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("the temporal CLI is not installed (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDevServer runs a throwaway Temporal dev server (in memory) and returns its address.
func startDevServer(t *testing.T) string {
	t.Helper()
	bin := temporalBinary(t)
	port := freePort(t)
	cmd := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(port), "--http-port", strconv.Itoa(freePort(t)),
		"--metrics-port", strconv.Itoa(freePort(t)), "--log-level", "error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return "127.0.0.1:" + strconv.Itoa(port)
}

// dialWhenUp connects once the dev server answers its health check.
func dialWhenUp(t *testing.T, addr string) client.Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.DialContext(ctx, client.Options{HostPort: addr})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			if err == nil {
				cancel()
				t.Cleanup(c.Close)
				return c
			}
			c.Close()
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("temporal at %s did not come up: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
