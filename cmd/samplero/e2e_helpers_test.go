package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
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

// Helpers of the end-to-end tests: they build the binary once per test process, run `samplero
// dev` (or serve) on free ports, and drive it with the SDK the way a plugin would. Every e2e skips
// only when the Temporal CLI is absent and SAMPLERO_REQUIRE_SERVICES is unset (with it set, dev
// installs the CLI itself).

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// buildBinary builds cmd/samplero once for every e2e of this test process.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "samplero-e2e-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "samplero")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// requireTemporal skips when the Temporal CLI is missing, unless services are required.
func requireTemporal(t *testing.T) {
	t.Helper()
	if devserver.Find() == "" && os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "" {
		t.Skip("the temporal CLI is not installed (go install " + devserver.CLIModule + ")")
	}
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

// cleanEnv is the test's environment without any SAMPLERO_ variable (but the services switch),
// so that a child runs with the protocol's defaults whatever the caller's shell says.
func cleanEnv(extra ...string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAMPLERO_") || strings.HasPrefix(kv, "SAMPLERO_REQUIRE_SERVICES=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

type devProcess struct {
	bin          string
	cmd          *exec.Cmd
	data         string
	http         string
	device       string
	temporalPort int
	uiPort       int
	env          []string
	stderr       *syncBuffer
	stdout       *syncBuffer
	exited       chan struct{}
	waitErr      error
	adminTok     string
}

func startDev(t *testing.T) *devProcess {
	t.Helper()
	d := newDev(t)
	d.start(t)
	return d
}

// newDev prepares a dev process on free ports and a fresh data directory; env adds SAMPLERO_
// variables to the protocol's defaults.
func newDev(t *testing.T, env ...string) *devProcess {
	t.Helper()
	requireTemporal(t)
	return &devProcess{
		bin:          buildBinary(t),
		data:         t.TempDir(),
		http:         "127.0.0.1:" + strconv.Itoa(freePort(t)),
		device:       "127.0.0.1:" + strconv.Itoa(freePort(t)),
		temporalPort: freePort(t),
		uiPort:       freePort(t),
		env:          env,
	}
}

// start runs dev with d's flags and environment and waits for its ready line. It can run again
// after dev exited (a restart on the same data directory).
func (d *devProcess) start(t *testing.T) {
	t.Helper()
	d.stderr, d.stdout, d.exited, d.waitErr = &syncBuffer{}, &syncBuffer{}, make(chan struct{}), nil
	d.cmd = exec.Command(d.bin, "dev", "--data", d.data, "--http", d.http, "--device", d.device,
		"--temporal-port", strconv.Itoa(d.temporalPort), "--temporal-ui-port", strconv.Itoa(d.uiPort))
	d.cmd.Env = cleanEnv(d.env...)
	pr, pw := io.Pipe()
	d.cmd.Stdout = io.MultiWriter(d.stdout, pw)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited, stdout, stderr := d.cmd, d.exited, d.stdout, d.stderr
	go func() {
		d.waitErr = cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("dev stdout:\n%s\ndev stderr (last 4 KiB):\n%s", stdout, tail(stderr.String(), 4096))
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
			t.Fatalf("dev exited before it was ready: %v\n%s", d.waitErr, tail(stderr.String(), 4096))
		}
	case <-time.After(90 * time.Second):
		t.Fatal("dev was not ready within 90 s")
	}
	tok, err := os.ReadFile(filepath.Join(d.data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(d.data, "admin-token")); st.Mode().Perm() != 0o600 {
		t.Errorf("admin-token has mode %v, want 0600", st.Mode().Perm())
	}
	d.adminTok = strings.TrimSpace(string(tok))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// temporalPids reads the child's pids from dev's log.
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

// waitGone waits until pid no longer exists.
func waitGone(pid int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (d *devProcess) admin(t *testing.T, method, path string, body any, want int) map[string]any {
	t.Helper()
	return adminCall(t, "http://"+d.http, d.adminTok, method, path, body, want)
}

func adminCall(t *testing.T, base, token, method, path string, body any, want int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
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

// caPool reads a PEM CA chain file into a pool.
func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", file)
	}
	return pool
}

func (d *devProcess) client(t *testing.T, product, fingerprint string) *samplero.Client {
	t.Helper()
	return d.clientWith(t, clientOpts{product: product, fingerprint: fingerprint})
}

// clientOpts vary the SDK client of a test; zero values take the defaults.
type clientOpts struct {
	product, fingerprint string
	keyType              samplero.KeyType // default P-256
	storage              samplero.Storage // default a fresh memory storage
	baseURL              string           // default dev's device listener
	roots                *x509.CertPool   // default DIR/pki/ca-chain.pem
}

func (d *devProcess) clientWith(t *testing.T, o clientOpts) *samplero.Client {
	t.Helper()
	if o.baseURL == "" {
		o.baseURL = "https://" + d.device
	}
	if o.roots == nil {
		o.roots = caPool(t, filepath.Join(d.data, "pki", "ca-chain.pem"))
	}
	return newClient(t, o)
}

func newClient(t *testing.T, o clientOpts) *samplero.Client {
	t.Helper()
	if o.storage == nil {
		o.storage = samplero.NewMemoryStorage()
	}
	if o.keyType == "" {
		o.keyType = samplero.KeyP256
	}
	c, err := samplero.New(samplero.Config{
		BaseURL:       o.baseURL,
		RootCAs:       o.roots,
		Storage:       o.storage,
		Fingerprint:   o.fingerprint,
		Platform:      "linux",
		PluginVersion: "1.0.0",
		Product:       o.product,
		DeviceName:    "e2e",
		KeyType:       o.keyType,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mapStorage is a device state that a test can copy, to keep an old certificate and key after
// the client moved on (renewal, supersede).
type mapStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

func newMapStorage() *mapStorage { return &mapStorage{data: map[string][]byte{}} }

func (m *mapStorage) Load(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.data[name]
	if !ok {
		return nil, fmt.Errorf("load %s: %w", name, os.ErrNotExist)
	}
	return bytes.Clone(d), nil
}

func (m *mapStorage) Save(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[name] = bytes.Clone(data)
	return nil
}

func (m *mapStorage) clone() *mapStorage {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := newMapStorage()
	for k, v := range m.data {
		c.data[k] = bytes.Clone(v)
	}
	return c
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// expectProblem checks that err is the SDK's *ProblemError (so the answer's signature, nonce
// and path verified) with this status and one of codes.
func expectProblem(t *testing.T, what string, err error, status int, codes ...string) {
	t.Helper()
	var p *samplero.ProblemError
	if !errors.As(err, &p) {
		t.Fatalf("%s: got %v, want a verified %d %v", what, err, status, codes)
	}
	for _, c := range codes {
		if p.Status == status && p.Code == c {
			return
		}
	}
	t.Fatalf("%s: got %d %s, want %d %v", what, p.Status, p.Code, status, codes)
}

// expectSent checks a Send result: this status and code, and an answer whose signature verified.
func expectSent(t *testing.T, what string, resp *samplero.Response, err error, status int, code string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != status || (code != "" && !strings.Contains(string(resp.Body), `"code":"`+code+`"`)) {
		t.Fatalf("%s: %d %s, want %d %s", what, resp.Status, resp.Body, status, code)
	}
	if resp.Verified != nil {
		t.Fatalf("%s: the answer's signature did not verify: %v", what, resp.Verified)
	}
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

// mailText returns the decoded text/plain part of an RFC 5322 message (the outbox writes the
// parts quoted-printable; multipart.Reader undoes it).
func mailText(t *testing.T, raw string) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("the e-mail does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("e-mail Content-Type: %v", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		return string(b)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no text/plain part in the e-mail: %v", err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(p)
			return string(b)
		}
	}
}
