package temporalclient

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// temporalBinary finds the Temporal CLI in PATH or GOPATH/bin. Without it the test skips, unless
// SAMPLERO_REQUIRE_SERVICES is set (CI), where it fails.
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
	if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
		t.Fatal("the temporal CLI is not installed (go install github.com/temporalio/cli/cmd/temporal@v1.5.1)")
	}
	t.Skip("the temporal CLI is not installed")
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

func dialWhenUp(t *testing.T, addr string) *Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := Dial(ctx, Options{Address: addr})
		cancel()
		if err == nil {
			if err = c.Healthy(context.Background()); err == nil {
				t.Cleanup(c.Close)
				return c
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporal at %s did not come up: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type countingMailer struct {
	mu   sync.Mutex
	sent map[string]int
}

func (m *countingMailer) Send(_ context.Context, msg ports.EmailMessage) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent[msg.ID]++
	return "p-" + msg.ID, nil
}

func TestSendEmailStartsOnceAndDelivers(t *testing.T) {
	c := dialWhenUp(t, startDevServer(t))
	mailer := &countingMailer{sent: map[string]int{}}
	w := worker.New(c.SDK(), emaildelivery.TaskQueue, worker.Options{})
	emaildelivery.Register(w, mailer)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := ports.EmailMessage{ID: "msg_once", To: "a@example.com", Subject: "s", Text: "t"}
	// Twice while it may still run, and once more after it finished: one delivery.
	for i := 0; i < 2; i++ {
		if err := c.SendEmail(ctx, msg); err != nil {
			t.Fatalf("SendEmail #%d: %v", i+1, err)
		}
	}
	var res emaildelivery.SendResult
	if err := c.SDK().GetWorkflow(ctx, emaildelivery.WorkflowID(msg.ID), "").Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.ProviderID != "p-msg_once" {
		t.Fatalf("provider id %q", res.ProviderID)
	}
	if err := c.SendEmail(ctx, msg); err != nil {
		t.Fatalf("SendEmail after completion: %v", err)
	}
	mailer.mu.Lock()
	n := mailer.sent[msg.ID]
	mailer.mu.Unlock()
	if n != 1 {
		t.Fatalf("delivered %d times, want 1", n)
	}
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	c, err := Dial(ctx, Options{Address: addr})
	if err == nil {
		err = c.Healthy(ctx)
		c.Close()
	}
	if err == nil {
		t.Fatal("want an error for an unreachable frontend")
	}
}
