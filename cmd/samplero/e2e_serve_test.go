package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/samplero/samplero/cmd/internal/devserver"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// TestE2EServe runs two `samplero serve` processes on one fresh PostgreSQL database and one
// Temporal dev server, sharing the PKI, signing keys and secrets through the environment, the way
// a production deployment behind a load balancer does.
func TestE2EServe(t *testing.T) {
	requireTemporal(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := freshDatabase(ctx, t)
	bin := buildBinary(t)

	// One Temporal dev server, in memory (serve only starts workflows; nothing here needs a worker).
	tbin, err := devserver.FindOrInstall(ctx, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tport := freePort(t)
	temporal, err := devserver.Start(devserver.Options{Binary: tbin, Port: tport, UIPort: freePort(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer temporal.Stop(10 * time.Second)

	shared := t.TempDir()
	secret := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	lookupSecret, encSecret := hex.EncodeToString(secret(24)), base64.StdEncoding.EncodeToString(secret(32))
	env := cleanEnv(
		"SAMPLERO_DATABASE_URL="+dbURL,
		"SAMPLERO_TEMPORAL_ADDRESS="+temporal.Address(),
		"SAMPLERO_KEY_LOOKUP_SECRET="+lookupSecret,
		"SAMPLERO_KEY_ENCRYPTION_SECRET="+encSecret,
		"SAMPLERO_SIGNING_KEYS_DIR="+filepath.Join(shared, "keys"),
		"SAMPLERO_PKI_DIR="+filepath.Join(shared, "pki"),
		"SAMPLERO_LINKS_SECRET="+hex.EncodeToString(secret(24)),
		"SAMPLERO_ASSETS_DIR="+filepath.Join(shared, "assets"),
	)
	runCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("samplero %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return string(out)
	}
	up := runCmd("migrate", "up")
	if !strings.Contains(up, "applied ") || strings.Contains(up, "pending ") {
		t.Fatalf("migrate up:\n%s", up)
	}
	token := strings.TrimSpace(runCmd("admin", "token", "create", "--name", "e2e-serve"))
	if err := temporal.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	// The first instance creates the PKI and signing keys; the second finds them.
	a := startServe(ctx, t, bin, env)
	b := startServe(ctx, t, bin, env)
	t.Logf("flow 5: migrated, two serve processes ready after %v", time.Since(start).Round(time.Millisecond))
	roots := caPool(t, filepath.Join(shared, "pki", "ca-chain.pem"))
	adm := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		return adminCall(t, "http://"+a.http, token, method, path, body, want)
	}
	adm("POST", "/v1/admin/products", map[string]any{
		"slug": "e2e-serve", "name": "E2E Serve", "type": "plugin", "price_cents": 100, "currency": "USD",
		"policy": map[string]any{"max_activations": 3, "first_activation": "instant", "heartbeat_interval_s": 3600, "grace_period_s": 7200},
	}, 201)

	// A request replayed on the other instance is refused: the replay store is shared.
	lic := adm("POST", "/v1/admin/licenses", map[string]any{"product": "e2e-serve"}, 201)
	st := newMapStorage()
	onA := newClient(t, clientOpts{product: "e2e-serve", fingerprint: "e2e-serve-replay", storage: st, baseURL: "https://" + a.device, roots: roots})
	onB := newClient(t, clientOpts{product: "e2e-serve", fingerprint: "e2e-serve-replay", storage: st, baseURL: "https://" + b.device, roots: roots})
	if act, err := onA.Activate(ctx, lic["key"].(string)); err != nil || act.HTTPStatus != 201 {
		t.Fatalf("activate on A: %+v %v", act, err)
	}
	if v, err := onB.Validate(ctx); err != nil || !v.Valid || v.TrustLevel != 4 {
		t.Fatalf("validate on B of a device activated on A: %+v %v", v, err)
	}
	nonce := newNonce()
	resp, err := onA.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
	expectSent(t, "validate on A", resp, err, 200, "")
	resp, err = onB.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
	expectSent(t, "the same request replayed on B", resp, err, 409, "REPLAYED_NONCE")
	t.Log("flow 5: a request replayed on the other instance answered a signed 409 REPLAYED_NONCE")

	// 30 distinct devices at once, spread over both instances, on a 3-seat license: exactly 3.
	lic = adm("POST", "/v1/admin/licenses", map[string]any{"product": "e2e-serve"}, 201)
	const n = 30
	var wg sync.WaitGroup
	results := make([]error, n)
	statuses := make([]int, n)
	clients := make([]*samplero.Client, n)
	for i := range n {
		base := a.device
		if i%2 == 1 {
			base = b.device
		}
		clients[i] = newClient(t, clientOpts{product: "e2e-serve", fingerprint: "e2e-serve-race-" + strconv.Itoa(i), baseURL: "https://" + base, roots: roots})
		// Fetch the key list first, so that the activations themselves start together.
		if _, err := clients[i].FetchKeys(ctx); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			act, err := clients[i].Activate(ctx, lic["key"].(string))
			results[i] = err
			if err == nil {
				statuses[i] = act.HTTPStatus
			}
		}()
	}
	close(gate)
	wg.Wait()
	created := 0
	for i, err := range results {
		var p *samplero.ProblemError
		switch {
		case err == nil && statuses[i] == 201:
			created++
		case errors.As(err, &p) && p.Status == 409 && p.Code == "ACTIVATION_LIMIT_EXCEEDED":
		default:
			t.Errorf("activation %d: status %d, %v", i, statuses[i], err)
		}
	}
	if created != 3 {
		t.Fatalf("%d of %d concurrent activations succeeded on a 3-seat license, want exactly 3", created, n)
	}
	for _, inst := range []*serveProcess{a, b} {
		view := adminCall(t, "http://"+inst.http, token, "GET", "/v1/admin/licenses/"+lic["id"].(string), nil, 200)
		if view["seats_used"] != 3.0 || len(view["activations"].([]any)) != 3 {
			t.Fatalf("after the race, %s shows %v seats and %d activations", inst.http, view["seats_used"], len(view["activations"].([]any)))
		}
	}
	t.Logf("flow 5: %d concurrent activations over two instances on a 3-seat license created exactly 3", n)

	a.stop(t)
	b.stop(t)
	logs := a.out.String() + b.out.String()
	if !strings.Contains(logs, "/v1/activate") {
		t.Fatal("the serve logs do not show the requests: the scan below would prove nothing")
	}
	for label, v := range map[string]string{"admin token": token, "key lookup secret": lookupSecret, "key encryption secret": encSecret,
		"license key": lic["key"].(string), "canonical license key": strings.ReplaceAll(lic["key"].(string), "-", "")} {
		if strings.Contains(logs, v) {
			t.Errorf("the serve logs hold the %s", label)
		}
	}
	down := runCmd("migrate", "down")
	status := runCmd("migrate", "status")
	if strings.Contains(status, "applied ") || !strings.Contains(status, "pending ") {
		t.Fatalf("migrate status after down:\n%s\n(down printed:\n%s)", status, down)
	}
	t.Logf("flow 5: migrate down rolled back every migration (status: %d pending); took %v", strings.Count(status, "pending "), time.Since(start).Round(time.Millisecond))
}

// freshDatabase creates a database for this run on the test PostgreSQL server and drops it at
// the end. It skips when PostgreSQL is not reachable, unless services are required.
func freshDatabase(ctx context.Context, t *testing.T) string {
	t.Helper()
	base := os.Getenv("SAMPLERO_TEST_POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := db.PingContext(pingCtx)
	cancel()
	if err != nil {
		db.Close()
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL required (SAMPLERO_REQUIRE_SERVICES=1) but not reachable: %v", err)
		}
		t.Skipf("PostgreSQL not reachable (%v); set SAMPLERO_REQUIRE_SERVICES=1 to fail instead", err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "samplero_e2e_" + hex.EncodeToString(rnd[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

type serveProcess struct {
	cmd    *exec.Cmd
	http   string
	device string
	out    *syncBuffer
	exited chan struct{}
	err    error
}

// startServe runs `samplero serve` on free ports and waits until /readyz answers 200.
func startServe(ctx context.Context, t *testing.T, bin string, env []string) *serveProcess {
	t.Helper()
	s := &serveProcess{
		http:   "127.0.0.1:" + strconv.Itoa(freePort(t)),
		device: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		out:    &syncBuffer{},
		exited: make(chan struct{}),
	}
	s.cmd = exec.Command(bin, "serve", "--http", s.http, "--device", s.device)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("serve %s output (last 4 KiB):\n%s", s.http, tail(s.out.String(), 4096))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("serve exited before it was ready: %v\n%s", s.err, tail(s.out.String(), 4096))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+"/readyz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve was not ready within 60 s:\n%s", tail(s.out.String(), 4096))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *serveProcess) stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if s.err != nil {
			t.Errorf("serve %s exited with %v", s.http, s.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve %s did not stop within 30 s of SIGTERM", s.http)
	}
}
