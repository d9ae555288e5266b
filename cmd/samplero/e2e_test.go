package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/samplero/samplero/cmd/internal/boot"
	"github.com/samplero/samplero/cmd/internal/devserver"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// The end-to-end test builds the binary, runs `samplero dev` on free ports with a fresh data
// directory (real SQLite, real Temporal dev server as a child process, real TLS), and drives it
// with the SDK the way a plugin would. It skips only when the Temporal CLI is absent and
// SAMPLERO_REQUIRE_SERVICES is unset (with it set, dev installs the CLI itself).

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type devProcess struct {
	bin      string
	cmd      *exec.Cmd
	data     string
	http     string
	device   string
	uiPort   int
	stderr   *syncBuffer
	stdout   *syncBuffer
	exited   chan struct{}
	waitErr  error
	adminTok string
}

func startDev(t *testing.T) *devProcess {
	t.Helper()
	if devserver.Find() == "" && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("the temporal CLI is not installed (go install " + devserver.CLIModule + ")")
	}
	bin := filepath.Join(t.TempDir(), "samplero")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	d := &devProcess{
		bin:    bin,
		data:   t.TempDir(),
		http:   "127.0.0.1:" + strconv.Itoa(freePort(t)),
		device: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		uiPort: freePort(t),
		stderr: &syncBuffer{},
		stdout: &syncBuffer{},
		exited: make(chan struct{}),
	}
	d.cmd = exec.Command(bin, "dev", "--data", d.data, "--http", d.http, "--device", d.device,
		"--temporal-port", strconv.Itoa(freePort(t)), "--temporal-ui-port", strconv.Itoa(d.uiPort))
	// The defaults of the protocol: rate limits and mTLS on, whatever the caller's environment says.
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAMPLERO_") || strings.HasPrefix(kv, "SAMPLERO_REQUIRE_SERVICES=") {
			env = append(env, kv)
		}
	}
	d.cmd.Env = env
	pr, pw := io.Pipe()
	d.cmd.Stdout = io.MultiWriter(d.stdout, pw)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		pw.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("dev stdout:\n%s\ndev stderr (last 4 KiB):\n%s", d.stdout, tail(d.stderr.String(), 4096))
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), boot.ReadyLine) {
				found = true
				ready <- true
			}
		}
		if !found {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("dev exited before it was ready: %v", d.waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev was not ready within 60 s")
	}
	tok, err := os.ReadFile(filepath.Join(d.data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(d.data, "admin-token")); st.Mode().Perm() != 0o600 {
		t.Errorf("admin-token has mode %v, want 0600", st.Mode().Perm())
	}
	d.adminTok = strings.TrimSpace(string(tok))
	return d
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// temporalPid reads the child's pid from dev's log.
func (d *devProcess) temporalPids(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		var rec struct {
			Msg string `json:"msg"`
			Pid int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "temporal dev server started" {
			pids = append(pids, rec.Pid)
		}
	}
	if len(pids) == 0 {
		t.Fatal("dev did not log the temporal pid")
	}
	return pids
}

func (d *devProcess) admin(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+d.http+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.adminTok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

func (d *devProcess) client(t *testing.T, product, fingerprint string) *samplero.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(d.data, "pki", "ca-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("DIR/pki/ca-chain.pem holds no certificate")
	}
	c, err := samplero.New(samplero.Config{
		BaseURL:       "https://" + d.device,
		RootCAs:       pool,
		Storage:       samplero.NewMemoryStorage(),
		Fingerprint:   fingerprint,
		Platform:      "linux",
		PluginVersion: "1.0.0",
		Product:       product,
		DeviceName:    "e2e",
		KeyType:       samplero.KeyP256,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func TestEndToEnd(t *testing.T) {
	start := time.Now()
	d := startDev(t)
	t.Logf("dev ready after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Readiness covers the database and Temporal.
	res, err := http.Get("http://" + d.http + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", res, err)
	}
	res.Body.Close()
	// The Temporal Web UI answers on its port.
	res, err = http.Get("http://127.0.0.1:" + strconv.Itoa(d.uiPort) + "/")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("Temporal UI: %v %v", res, err)
	}
	res.Body.Close()

	t.Run("activate validate heartbeat replay deactivate", func(t *testing.T) {
		d.admin(t, "POST", "/v1/admin/products", map[string]any{
			"slug": "e2e-synth", "name": "E2E Synth", "type": "plugin", "price_cents": 4900, "currency": "USD",
			"policy": map[string]any{"max_activations": 2, "first_activation": "instant", "heartbeat_interval_s": 86400, "grace_period_s": 604800},
		}, 201)
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-synth", "owner_email": "buyer@example.com"}, 201)
		key, _ := lic["key"].(string)
		if !strings.HasPrefix(key, "VST-") {
			t.Fatalf("license key %q", key)
		}
		c := d.client(t, "e2e-synth", "e2e-device-0001")
		act, err := c.Activate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if act.HTTPStatus != 201 || act.ActivationID == "" || act.LeaseInfo == nil || act.TrustLevel != 3 {
			t.Fatalf("activate: %+v", act)
		}
		val, err := c.Validate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !val.Valid || val.Status != "active" || val.TrustLevel != 4 || val.ActivationID != act.ActivationID {
			t.Fatalf("validate over mTLS: %+v", val)
		}
		hb, err := c.Heartbeat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hb.Valid || hb.LeaseInfo == nil || hb.TrustLevel != 4 {
			t.Fatalf("heartbeat: %+v", hb)
		}
		if _, err := c.CheckOffline(""); err != nil {
			t.Fatalf("the stored lease does not verify offline: %v", err)
		}

		// The same signed request twice: the second is a replay, refused with a signed 409.
		nonce := newNonce()
		first, err := c.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
		if err != nil || first.Status != 200 || first.Verified != nil {
			t.Fatalf("first request: %+v %v", first, err)
		}
		again, err := c.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		if again.Status != 409 || !strings.Contains(string(again.Body), "REPLAYED_NONCE") || again.Verified != nil {
			t.Fatalf("replay: %d %s (verified: %v)", again.Status, again.Body, again.Verified)
		}

		// The admin view shows the activation; deactivating frees the seat.
		view := d.admin(t, "GET", "/v1/admin/licenses/"+lic["id"].(string), nil, 200)
		if view["seats_used"].(float64) != 1 {
			t.Fatalf("seats_used %v", view["seats_used"])
		}
		dr, err := c.Deactivate(ctx)
		if err != nil || dr.Status != "deactivated" || dr.SeatsUsed != 0 {
			t.Fatalf("deactivate: %+v %v", dr, err)
		}
		st, err := d.client(t, "e2e-synth", "e2e-device-0002").Status(ctx, key)
		if err != nil || st.SeatsUsed != 0 || st.Status != "active" {
			t.Fatalf("status: %+v %v", st, err)
		}
	})

	t.Run("owner approval mail goes through Temporal to the outbox", func(t *testing.T) {
		d.admin(t, "POST", "/v1/admin/products", map[string]any{
			"slug": "e2e-pack", "name": "E2E Pack", "type": "sample_pack", "price_cents": 1900, "currency": "EUR",
			"policy": map[string]any{"max_activations": 1, "first_activation": "owner_approval", "heartbeat_interval_s": 3600, "grace_period_s": 7200},
		}, 201)
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-pack", "owner_email": "owner@example.com"}, 201)
		c := d.client(t, "e2e-pack", "e2e-device-0003")
		act, err := c.Activate(ctx, lic["key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if act.HTTPStatus != 202 || act.Pending == nil {
			t.Fatalf("activate on owner_approval: %+v", act)
		}
		mail := waitForMail(t, filepath.Join(d.data, "outbox"), "owner@example.com", 30*time.Second)
		if !strings.Contains(mail, "To: <owner@example.com>") || !strings.Contains(mail, "multipart/alternative") {
			t.Fatalf("confirmation e-mail:\n%s", mail)
		}
		// An admin approves; the device then bootstraps to an active activation.
		d.admin(t, "POST", "/v1/admin/claims/"+act.Pending.ClaimID+"/approve", map[string]any{}, 200)
		boot, err := c.Bootstrap(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if boot.ActivationID == "" || boot.Pending != nil {
			t.Fatalf("bootstrap after approval: %+v", boot)
		}
		if v, err := c.Validate(ctx); err != nil || !v.Valid || v.TrustLevel != 4 {
			t.Fatalf("validate after bootstrap: %+v %v", v, err)
		}
	})

	t.Run("reference client CLI", func(t *testing.T) {
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-synth"}, 201)
		state := t.TempDir()
		cli := func(args ...string) map[string]any {
			t.Helper()
			args = append(args, "--server", "https://"+d.device, "--ca", filepath.Join(d.data, "pki", "ca-chain.pem"),
				"--state", state, "--product", "e2e-synth", "--fingerprint", "e2e-cli-device")
			out, err := exec.CommandContext(ctx, d.bin, append([]string{"device"}, args...)...).Output()
			if err != nil {
				t.Fatalf("samplero device %v: %v\n%s", args, err, out)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("samplero device %v printed %s", args, out)
			}
			return res
		}
		act := cli("activate", "--license-key", lic["key"].(string), "--key-type", "ed25519")
		if act["status"] != "active" || act["activation_id"] == "" {
			t.Fatalf("activate: %v", act)
		}
		if v := cli("validate"); v["valid"] != true || v["trust_level"] != float64(4) {
			t.Fatalf("validate: %v", v)
		}
		if h := cli("heartbeat"); h["valid"] != true {
			t.Fatalf("heartbeat: %v", h)
		}
		if r := cli("renew"); r["certificate_serial"] == "" || r["certificate_serial"] == act["certificate_serial"] {
			t.Fatalf("renew: %v", r)
		}
		if st := cli("status", "--license-key", lic["key"].(string)); st["seats_used"] != float64(1) {
			t.Fatalf("status: %v", st)
		}
		// A revoked license answers a signed valid:false, and reinstating restores the device.
		d.admin(t, "POST", "/v1/admin/licenses/"+lic["id"].(string)+"/revoke", map[string]any{"reason": "e2e"}, 200)
		if v := cli("validate"); v["valid"] != false || v["status"] != "revoked" {
			t.Fatalf("validate after revoke: %v", v)
		}
		d.admin(t, "POST", "/v1/admin/licenses/"+lic["id"].(string)+"/reinstate", map[string]any{}, 200)
		if v := cli("validate"); v["valid"] != true {
			t.Fatalf("validate after reinstate: %v", v)
		}
	})

	t.Run("temporal dev server is restarted when it dies", func(t *testing.T) {
		before := d.temporalPids(t)
		if err := syscall.Kill(-before[len(before)-1], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(45 * time.Second)
		for {
			pids := d.temporalPids(t)
			if len(pids) > len(before) {
				res, err := http.Get("http://" + d.http + "/readyz")
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 200 {
						break
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("dev did not restart Temporal and become ready again within 45 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// SIGTERM: dev shuts down gracefully and takes the Temporal dev server with it.
	pids := d.temporalPids(t)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of SIGTERM")
	}
	if d.waitErr != nil {
		t.Errorf("dev exited with %v", d.waitErr)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("temporal pid %d is still there after dev stopped (kill 0: %v)", pid, err)
		}
	}
	if _, err := net.DialTimeout("tcp", d.http, time.Second); err == nil {
		t.Error("the HTTP listener still accepts after dev stopped")
	}
	t.Logf("end-to-end took %v", time.Since(start).Round(time.Millisecond))
}

// waitForMail waits for an outbox file addressed to rcpt and returns it.
func waitForMail(t *testing.T, dir, rcpt string, wait time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && strings.Contains(string(b), rcpt) {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no e-mail to %s in %s within %v", rcpt, dir, wait)
	return ""
}
