// Package devserver runs the Temporal CLI's development server as a supervised child process of
// `samplero dev`: found in PATH or GOPATH/bin (installed with `go install` when missing), started
// in its own process group so that nothing outlives dev, restarted when it dies, and stopped with
// SIGTERM to the whole group (then SIGKILL) when dev stops.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
)

// CLIModule is the Temporal CLI version known to build here (DEPENDENCIES.md).
const CLIModule = "github.com/temporalio/cli/cmd/temporal@v1.5.1"

// Find returns the path of the temporal binary in PATH or $(go env GOPATH)/bin, or "".
func Find() string {
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	if p := filepath.Join(goBin(), "temporal"); isExecutable(p) {
		return p
	}
	return ""
}

func goBin() string {
	if out, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		return strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), string(os.PathListSeparator))
		return filepath.Join(first, "bin")
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FindOrInstall returns the temporal binary, installing it with `go install` first when it is
// missing; the installation's progress streams to progress.
func FindOrInstall(ctx context.Context, progress io.Writer) (string, error) {
	if p := Find(); p != "" {
		return p, nil
	}
	fmt.Fprintf(progress, "samplero: the Temporal CLI is missing; running go install %s (several minutes the first time)\n", CLIModule)
	cmd := exec.CommandContext(ctx, "go", "install", "-v", CLIModule)
	cmd.Stdout, cmd.Stderr = progress, progress
	cmd.Env = os.Environ()
	if os.Getenv("GOPROXY") == "" {
		cmd.Env = append(cmd.Env, "GOPROXY=https://proxy.golang.org")
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w", CLIModule, err)
	}
	if p := Find(); p != "" {
		return p, nil
	}
	return "", errors.New("go install succeeded but temporal is neither in PATH nor in GOPATH/bin")
}

// Options configure the dev server.
type Options struct {
	Binary string
	Port   int    // frontend gRPC port on 127.0.0.1
	UIPort int    // Web UI port on 127.0.0.1
	DBFile string // persistent state; "" keeps it in memory
	Output io.Writer
	Logger *slog.Logger
}

// Server is a running, supervised dev server.
type Server struct {
	opts Options

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	done     chan struct{} // closed when the supervisor has stopped for good
	restarts int
}

// Start launches the server and its supervisor. It does not wait for the frontend: use WaitReady.
func Start(opts Options) (*Server, error) {
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// A port already taken (often by a Temporal left over from another run) would make the child
	// fail and the health check succeed against the stranger: refuse early and say why.
	for _, port := range []int{opts.Port, opts.UIPort} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil, fmt.Errorf("temporal dev server: port %d on 127.0.0.1 is in use (choose another with --temporal-port / --temporal-ui-port)", port)
		}
		ln.Close()
	}
	s := &Server{opts: opts, done: make(chan struct{})}
	cmd, err := s.spawn()
	if err != nil {
		return nil, err
	}
	go s.supervise(cmd)
	return s, nil
}

// Address is the frontend's host:port.
func (s *Server) Address() string { return "127.0.0.1:" + strconv.Itoa(s.opts.Port) }

// UIURL is the Web UI's URL.
func (s *Server) UIURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.opts.UIPort) }

// Pid is the process id of the current child (also its process group id); 0 when none runs.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Restarts counts how often the supervisor restarted the child.
func (s *Server) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

func (s *Server) spawn() (*exec.Cmd, error) {
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(s.opts.Port),
		"--ui-ip", "127.0.0.1", "--ui-port", strconv.Itoa(s.opts.UIPort),
		"--log-level", "warn"}
	if s.opts.DBFile != "" {
		args = append(args, "--db-filename", s.opts.DBFile)
	}
	cmd := exec.Command(s.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = s.opts.Output, s.opts.Output
	// Its own process group: a signal to -pid reaches every process it starts, and a Ctrl-C in the
	// terminal reaches dev first, which then stops the group in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.opts.Binary, err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	s.opts.Logger.Info("temporal dev server started", "pid", cmd.Process.Pid, "address", s.Address())
	return cmd, nil
}

// supervise waits for the child and restarts it, with a growing pause, until Stop.
func (s *Server) supervise(cmd *exec.Cmd) {
	defer close(s.done)
	backoff := time.Second
	for {
		err := cmd.Wait()
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			return
		}
		s.opts.Logger.Warn("temporal dev server exited; restarting", "err", err, "in", backoff)
		time.Sleep(backoff)
		if backoff < 10*time.Second {
			backoff *= 2
		}
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		s.restarts++
		s.mu.Unlock()
		next, err := s.spawn()
		if err != nil {
			s.opts.Logger.Error("temporal dev server does not start", "err", err)
			continue
		}
		cmd = next
	}
}

// WaitReady waits until the frontend answers its health check through the SDK client.
func (s *Server) WaitReady(ctx context.Context) error {
	for {
		err := CheckHealth(ctx, s.Address())
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal at %s is not ready: %w", s.Address(), err)
		case <-s.done:
			return errors.New("temporal dev server stopped")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CheckHealth dials addr and asks the frontend's health service once.
func CheckHealth(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// Stop ends the supervisor and the child's process group: SIGTERM, then SIGKILL after grace.
func (s *Server) Stop(grace time.Duration) {
	s.mu.Lock()
	s.stopping = true
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(grace):
		s.opts.Logger.Warn("temporal dev server ignores SIGTERM; killing it", "pid", pgid)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
	// Anything of the group still alive (it should not be) goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// quietLogger silences the SDK client's own logging during health probes.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
