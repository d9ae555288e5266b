// Package devtemporal is for the workflows' tests that run on a real Temporal: it starts a throwaway
// dev server (the Temporal CLI, in memory) and writes a run's history in the JSON form the replay
// tests read. One copy for every workflow package, instead of one per package.
package devtemporal

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
)

// Client starts a dev server for t and returns a client connected to it once it answers its health
// check. Both are stopped when t ends.
func Client(t *testing.T) client.Client {
	t.Helper()
	return dialWhenUp(t, startDevServer(t))
}

// WriteHistory saves the run's history to file in the JSON form ReplayWorkflowHistoryFromJSONFile reads.
func WriteHistory(ctx context.Context, t *testing.T, c client.Client, run client.WorkflowRun, file string) {
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
