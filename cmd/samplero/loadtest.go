package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// loadReport is what `samplero loadtest` prints.
type loadReport struct {
	Action      string         `json:"action"`
	Concurrency int            `json:"concurrency,omitempty"`
	Devices     int            `json:"devices,omitempty"`
	Seconds     float64        `json:"seconds"`
	Ops         int64          `json:"ops"`
	Errors      map[string]int `json:"errors,omitempty"`
	PerSecond   float64        `json:"ops_per_second"`
	P50Ms       float64        `json:"p50_ms,omitempty"`
	P90Ms       float64        `json:"p90_ms,omitempty"`
	P99Ms       float64        `json:"p99_ms,omitempty"`
	MaxMs       float64        `json:"max_ms,omitempty"`
	// VerifiedAnswers is how many answers were verified in full by the SDK (one in VerifyEvery).
	VerifiedAnswers int64 `json:"verified_answers,omitempty"`
	VerifyEvery     int   `json:"verify_every,omitempty"`
	// LoadCPU is the CPU the load generator ran on (-1: not pinned).
	LoadCPU int `json:"load_cpu"`
	// Ceiling is the stdlib crypto ceiling measured on ServerCPU (see measureCeiling).
	Ceiling          *ceilingReport `json:"ceiling,omitempty"`
	PercentOfCeiling float64        `json:"percent_of_ceiling,omitempty"`
	// ServerVmHWMKB is the server's peak resident set after the run, from /proc/PID/status.
	ServerVmHWMKB int64 `json:"server_vmhwm_kb,omitempty"`
	Warmup        int   `json:"warmup_requests,omitempty"`
	SeatsUsed     int   `json:"seats_used_before,omitempty"`
}

// ceilingReport is the cost of the cryptography every validate needs on the server: one P-256
// verification (SHA-256 of a signature base, then ECDSA) plus one Ed25519 signature, measured
// with the standard library on one thread pinned to the server's CPU.
type ceilingReport struct {
	CPU       int     `json:"cpu"`
	Seconds   float64 `json:"seconds"`
	Pairs     int64   `json:"pairs"`
	PerSecond float64 `json:"pairs_per_second"`
	MicrosEa  float64 `json:"microseconds_per_pair"`
}

// loadAdmin is the slice of the admin API the load test needs.
type loadAdmin struct {
	base, token string
}

func (a loadAdmin) post(ctx context.Context, path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: %d %s", path, res.StatusCode, raw)
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}

// pinProcess pins every thread of this process to cpu; threads started later inherit it.
// sched_setaffinity acts on one thread, hence the walk over /proc/self/task.
func pinProcess(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pinning to CPU %d: %w", cpu, err)
		}
	}
	return nil
}

// measureCeiling runs P-256 verify + Ed25519 sign pairs for d on one OS thread pinned to cpu and
// reports how many fit in a second: the most validations per second that CPU could answer if the
// server did nothing but the cryptography the protocol demands (TLS and everything else aside).
func measureCeiling(cpu int, d time.Duration) (*ceilingReport, error) {
	dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, srv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	// Bases of the sizes the protocol produces (section 2 and 3 signature bases).
	reqBase := []byte(strings.Repeat("r", 230))
	respBase := []byte(strings.Repeat("s", 250))
	sum := sha256.Sum256(reqBase)
	sig, err := ecdsa.SignASN1(rand.Reader, dev, sum[:])
	if err != nil {
		return nil, err
	}
	type result struct {
		r   *ceilingReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread stays locked and is discarded when this goroutine ends, so its affinity
		// does not leak into the load generator.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- result{err: fmt.Errorf("pinning the ceiling thread to CPU %d: %w", cpu, err)}
			return
		}
		var n int64
		start := time.Now()
		for time.Since(start) < d {
			for i := 0; i < 64; i++ {
				h := sha256.Sum256(reqBase)
				if !ecdsa.VerifyASN1(&dev.PublicKey, h[:], sig) {
					done <- result{err: errors.New("ceiling: verification failed")}
					return
				}
				_ = ed25519.Sign(srv, respBase)
			}
			n += 64
		}
		el := time.Since(start).Seconds()
		done <- result{r: &ceilingReport{CPU: cpu, Seconds: el, Pairs: n, PerSecond: float64(n) / el, MicrosEa: el * 1e6 / float64(n)}}
	}()
	res := <-done
	return res.r, res.err
}

// serverVmHWM reads the peak resident set (kB) of pid.
func serverVmHWM(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

// runLoadtest drives a running server through the SDK, as a plugin would: real TLS with client
// certificates, a fresh nonce and signature on every request, the server's default replay store.
// It creates a product and a license through the admin API, activates devices, then runs the
// chosen call from --concurrency goroutines for --duration and prints throughput and latency
// percentiles. So that the client is not what gets measured, it answers one in --verify-every
// through the SDK's full checks (signature, nonce, path, created, activation, product) and only the
// status of the others, it pins itself to --cpu, and every worker has devices of its own (a device
// is one connection). Under dev, run the server with SAMPLERO_RATE_LIMITS=off, or the per-address
// limit is what gets measured.
//
// `ceiling` measures only the crypto ceiling on --server-cpu; validate, heartbeat and activate
// measure it first when --server-cpu is given.
func runLoadtest(ctx context.Context, l config.Loadtest, out io.Writer) error {
	r := loadReport{Action: l.Action, LoadCPU: -1, VerifyEvery: l.VerifyEvery}
	if l.CPU >= 0 {
		if err := pinProcess(l.CPU); err != nil {
			return err
		}
		r.LoadCPU = l.CPU
	}
	if l.Action == "ceiling" {
		if l.ServerCPU < 0 {
			return errors.New("loadtest ceiling needs --server-cpu")
		}
		c, err := measureCeiling(l.ServerCPU, l.Duration)
		if err != nil {
			return err
		}
		printJSON(out, c)
		return nil
	}
	if l.ServerCPU >= 0 {
		c, err := measureCeiling(l.ServerCPU, 2*time.Second)
		if err != nil {
			return err
		}
		r.Ceiling = c
	}

	tok, err := os.ReadFile(l.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("--admin-token-file: %w", err)
	}
	pem, err := os.ReadFile(l.CAFile)
	if err != nil {
		return fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--ca %s holds no PEM certificate", l.CAFile)
	}
	admin := loadAdmin{base: strings.TrimSuffix(l.AdminURL, "/"), token: strings.TrimSpace(string(tok))}
	slug := "loadtest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := admin.post(ctx, "/v1/admin/products", map[string]any{
		"slug": slug, "name": "Load test", "type": "plugin", "price_cents": 0, "currency": "USD",
		"policy": map[string]any{"max_activations": 1000000, "first_activation": "instant", "heartbeat_interval_s": 86400, "grace_period_s": 604800},
	}); err != nil {
		return err
	}
	lic, err := admin.post(ctx, "/v1/admin/licenses", map[string]any{"product": slug})
	if err != nil {
		return err
	}
	key, _ := lic["key"].(string)
	plain := strings.HasPrefix(l.Server, "http://")
	// The server keys are fetched once (trust on first use, over the pinned TLS chain) and then
	// built into every client, as a vendor ships them: devices then do not each fetch the list.
	boot, err := samplero.New(samplero.Config{BaseURL: l.Server, RootCAs: pool, AllowPlainHTTP: plain})
	if err != nil {
		return err
	}
	list, err := boot.FetchKeys(ctx)
	if err != nil {
		return fmt.Errorf("fetching the server keys: %w", err)
	}
	var trusted []samplero.TrustedKey
	for _, k := range list.Keys {
		raw, err := base64.StdEncoding.DecodeString(k.PublicKey)
		if err == nil && len(raw) == ed25519.PublicKeySize && (k.Status == "active" || k.Status == "next") {
			trusted = append(trusted, samplero.TrustedKey{KID: k.KID, PublicKey: raw})
		}
	}
	var seq atomic.Int64
	// Activation calls present no client certificate, so the activating clients of one worker
	// can share a pooled connection (a plugin activates once; a fleet reuses nothing, but a
	// handshake per activation would measure TLS, not activation).
	newClient := func(hc *http.Client) (*samplero.Client, error) {
		return samplero.New(samplero.Config{
			BaseURL:        l.Server,
			RootCAs:        pool,
			Fingerprint:    fmt.Sprintf("%s-%08d", slug, seq.Add(1)),
			Platform:       "linux",
			PluginVersion:  "loadtest",
			Product:        slug,
			AllowPlainHTTP: plain,
			HTTPClient:     hc,
			TrustedKeys:    trusted,
			Issuer:         list.Issuer,
		})
	}
	plainClient := func() *http.Client {
		return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}}
	}
	activateMany := func(n int) error {
		var wg sync.WaitGroup
		var failed atomic.Value
		next := atomic.Int64{}
		for w := 0; w < l.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := plainClient()
				for next.Add(1) <= int64(n) && failed.Load() == nil {
					c, err := newClient(hc)
					if err == nil {
						_, err = c.Activate(ctx, key)
					}
					if err != nil {
						failed.Store(err)
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			return err
		}
		return nil
	}

	// Devices for validate and heartbeat: at least one per worker, and worker w uses only the
	// devices i with i % concurrency == w, so that no device's connection is shared.
	var devices []*samplero.Client
	if l.Action != "activate" {
		n := max(l.Devices, l.Concurrency)
		for i := 0; i < n; i++ {
			c, err := newClient(nil)
			if err != nil {
				return err
			}
			if _, err := c.Activate(ctx, key); err != nil {
				return fmt.Errorf("activating device %d: %w", i+1, err)
			}
			devices = append(devices, c)
		}
		r.Devices = n
	} else if l.SeatsUsed > 0 {
		if err := activateMany(l.SeatsUsed); err != nil {
			return fmt.Errorf("activating the %d earlier devices: %w", l.SeatsUsed, err)
		}
		r.SeatsUsed = l.SeatsUsed
	}
	device := func(worker, n int) *samplero.Client {
		per := (len(devices) - worker + l.Concurrency - 1) / l.Concurrency
		return devices[worker+(n%per)*l.Concurrency]
	}
	validateBody, _ := json.Marshal(map[string]string{"product": slug, "plugin_version": "loadtest"})
	heartbeatBody, _ := json.Marshal(map[string]string{"plugin_version": "loadtest"})
	path, body := "/v1/validate", validateBody
	if l.Action == "heartbeat" {
		path, body = "/v1/heartbeat", heartbeatBody
	}
	// The unverified requests go out through a transport of their own per device, presenting the
	// certificate the SDK holds, with headers the SDK's httpsig package signed: a fresh nonce and
	// signature each, prepared before the run (see prepare) so that signing does not slow the load.
	senders := make([]*quickSender, len(devices))
	for i, c := range devices {
		qs, err := newQuickSender(c, pool, strings.TrimSuffix(l.Server, "/")+path, path, body)
		if err != nil {
			return err
		}
		senders[i] = qs
	}
	var verified atomic.Int64
	// quick sends one signed request and checks only the status of the answer.
	quick := func(ctx context.Context, worker, n int) error {
		per := (len(devices) - worker + l.Concurrency - 1) / l.Concurrency
		return senders[worker+(n%per)*l.Concurrency].send(ctx)
	}
	op := func(ctx context.Context, worker, n int, hc *http.Client) error {
		full := n%l.VerifyEvery == 0
		if full {
			verified.Add(1)
		}
		switch l.Action {
		case "validate":
			c := device(worker, n)
			if full {
				_, err := c.Validate(ctx)
				return err
			}
			return quick(ctx, worker, n)
		case "heartbeat":
			c := device(worker, n)
			if full {
				_, err := c.Heartbeat(ctx)
				return err
			}
			return quick(ctx, worker, n)
		default:
			// A fresh key, CSR and certificate every time; the SDK verifies every answer here
			// (the certificate and lease must match the new key).
			verified.Add(1)
			c, err := newClient(hc)
			if err != nil {
				return err
			}
			_, err = c.Activate(ctx, key)
			return err
		}
	}

	if l.Action == "validate" && l.Warmup > 0 {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		var warmErrs atomic.Int64
		for w := 0; w < l.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; next.Add(1) <= int64(l.Warmup); i++ {
					if quick(ctx, w, i) != nil {
						warmErrs.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if n := warmErrs.Load(); n > 0 {
			return fmt.Errorf("%d of the %d warm-up requests failed", n, l.Warmup)
		}
		r.Warmup = l.Warmup
	}

	if l.Action != "activate" {
		// Enough signed requests for every device to answer at 10,000 per second in total,
		// within the 300 s window their created allows (later ones are signed as they go).
		perSender := int(min(l.Duration, 240*time.Second).Seconds()*10000)/len(senders) + 1
		for _, qs := range senders {
			if err := qs.prepare(perSender); err != nil {
				return err
			}
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errCounts = map[string]int{}
		wg        sync.WaitGroup
	)
	verified.Store(0)
	start := time.Now()
	for w := 0; w < l.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := plainClient()
			var mine []time.Duration
			for n := 0; runCtx.Err() == nil; n++ {
				t0 := time.Now()
				err := op(runCtx, w, n, hc)
				if runCtx.Err() != nil {
					break // cut off by the end of the run, not an answer
				}
				mine = append(mine, time.Since(t0))
				if err != nil {
					code := "OTHER"
					var p *samplero.ProblemError
					if errors.As(err, &p) {
						code = p.Code
					}
					mu.Lock()
					errCounts[code]++
					mu.Unlock()
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(p * float64(len(latencies)-1))
		return float64(latencies[i].Microseconds()) / 1000
	}
	r.Concurrency = l.Concurrency
	r.Seconds, r.Ops, r.Errors = elapsed.Seconds(), int64(len(latencies)), errCounts
	r.PerSecond = float64(len(latencies)) / elapsed.Seconds()
	r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs = pct(0.50), pct(0.90), pct(0.99), pct(1)
	r.VerifiedAnswers = verified.Load()
	if r.Ceiling != nil && r.Ceiling.PerSecond > 0 {
		r.PercentOfCeiling = 100 * r.PerSecond / r.Ceiling.PerSecond
	}
	if l.ServerPID > 0 {
		hwm, err := serverVmHWM(l.ServerPID)
		if err != nil {
			return fmt.Errorf("--server-pid: %w", err)
		}
		r.ServerVmHWMKB = hwm
	}
	printJSON(out, r)
	return nil
}

// quickSender sends one device's signed requests without the SDK's answer checks (only the status
// is read); the load test verifies a sample of answers through the SDK instead.
type quickSender struct {
	hc        *http.Client
	url, path string
	body      []byte
	key       crypto.Signer
	ready     []http.Header
}

func newQuickSender(c *samplero.Client, pool *x509.CertPool, url, path string, body []byte) (*quickSender, error) {
	cert, err := c.ClientCertificate()
	if err != nil || cert == nil {
		return nil, fmt.Errorf("device has no client certificate: %v", err)
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("device key is not a crypto.Signer")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}},
		MaxIdleConnsPerHost: 4,
	}
	return &quickSender{hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, url: url, path: path, body: body, key: key}, nil
}

// sign makes the headers of one request: a fresh nonce, created now.
func (q *quickSender) sign() (http.Header, error) {
	h, err := httpsig.SignRequest(http.MethodPost, q.path, q.body,
		httpsig.RequestParams{Created: time.Now().Unix(), Nonce: httpsig.NewNonce()}, q.key)
	if err != nil {
		return nil, err
	}
	h.Set("Content-Type", "application/json")
	return h, nil
}

// prepare signs n requests ahead.
func (q *quickSender) prepare(n int) error {
	q.ready = make([]http.Header, 0, n)
	for range n {
		h, err := q.sign()
		if err != nil {
			return err
		}
		q.ready = append(q.ready, h)
	}
	return nil
}

func (q *quickSender) send(ctx context.Context) error {
	var h http.Header
	if len(q.ready) > 0 {
		h, q.ready = q.ready[len(q.ready)-1], q.ready[:len(q.ready)-1]
	} else {
		var err error
		if h, err = q.sign(); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(q.body))
	if err != nil {
		return err
	}
	req.Header = h
	resp, err := q.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &samplero.ProblemError{Status: resp.StatusCode, Code: "HTTP_" + strconv.Itoa(resp.StatusCode)}
	}
	return nil
}
