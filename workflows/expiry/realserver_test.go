package expiry

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

	"github.com/samplero/samplero/core/errs"
)

// TestRealServer runs the workflow on a throwaway Temporal dev server and, with
// SAMPLERO_RECORD_HISTORIES=1, writes its history to testdata/ for the replay test. It runs only
// when SAMPLERO_RECORD_HISTORIES or SAMPLERO_REQUIRE_SERVICES is set, because it needs the temporal
// CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) and a real retry pause (10 s).
func TestRealServer(t *testing.T) {
	record := os.Getenv("SAMPLERO_RECORD_HISTORIES") == "1"
	if !record && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("set SAMPLERO_RECORD_HISTORIES=1 to run the workflow on a dev server and record its history")
	}
	c := dialWhenUp(t, startDevServer(t))
	lic := &fakeLicensing{sent: 2, fails: []error{errs.E(errs.Unavailable, errs.CodeUnavailable, "database down")}}
	w := worker.New(c, TaskQueue, worker.Options{})
	Register(w, lic)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: WorkflowIDPrefix + "-recorded", TaskQueue: TaskQueue}, WorkflowName, SendNoticesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var res SendNoticesResult
	if err := run.Get(ctx, &res); err != nil || res.Sent != 2 {
		t.Fatalf("result %+v, %v", res, err)
	}
	calls := lic.times()
	if len(calls) != 2 || !calls[1].After(calls[0]) || !res.At.Equal(calls[1]) {
		t.Fatalf("attempt times %v, result at %v: each attempt must decide for its own time", calls, res.At)
	}
	if record {
		writeHistory(ctx, t, c, run, "testdata/send_notices_retried.json")
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
