package devserver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// The server comes up, is restarted after it dies, and leaves no process behind after Stop.
func TestSupervisedDevServer(t *testing.T) {
	bin := Find()
	if bin == "" {
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
			t.Fatal("the temporal CLI is not installed")
		}
		t.Skip("the temporal CLI is not installed")
	}
	s, err := Start(Options{Binary: bin, Port: freePort(t), UIPort: freePort(t), DBFile: filepath.Join(t.TempDir(), "temporal.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	first := s.Pid()
	if err := syscall.Kill(-first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Restarts() == 0 || s.Pid() == first {
		if time.Now().After(deadline) {
			t.Fatal("the supervisor did not restart the server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("not ready after the restart: %v", err)
	}
	second := s.Pid()
	s.Stop(5 * time.Second)
	if alive(second) {
		t.Fatalf("pid %d still alive after Stop", second)
	}
	if err := CheckHealth(context.Background(), s.Address()); err == nil {
		t.Fatal("the frontend still answers after Stop")
	}
}

func TestStartRefusesPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	_, err = Start(Options{Binary: "/bin/false", Port: busy, UIPort: freePort(t)})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start on a busy port: %v", err)
	}
}
