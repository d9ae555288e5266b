package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// loadReport is what `samplero loadtest` prints.
type loadReport struct {
	Action      string         `json:"action"`
	Concurrency int            `json:"concurrency"`
	Devices     int            `json:"devices"`
	Seconds     float64        `json:"seconds"`
	Ops         int64          `json:"ops"`
	Errors      map[string]int `json:"errors"`
	PerSecond   float64        `json:"ops_per_second"`
	P50Ms       float64        `json:"p50_ms"`
	P90Ms       float64        `json:"p90_ms"`
	P99Ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
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

// runLoadtest drives a running server: it creates a product and a license through the admin API,
// activates devices, then runs the chosen call from --concurrency goroutines for --duration and
// prints throughput and latency percentiles. Under dev, run it with SAMPLERO_RATE_LIMITS=off on
// the server, or the per-address limit is what gets measured.
func runLoadtest(ctx context.Context, l config.Loadtest, out io.Writer) error {
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
	var seq atomic.Int64
	newClient := func() (*samplero.Client, error) {
		return samplero.New(samplero.Config{
			BaseURL:        l.Server,
			RootCAs:        pool,
			Fingerprint:    fmt.Sprintf("%s-%08d", slug, seq.Add(1)),
			Platform:       "linux",
			PluginVersion:  "loadtest",
			Product:        slug,
			AllowPlainHTTP: strings.HasPrefix(l.Server, "http://"),
		})
	}

	var devices []*samplero.Client
	if l.Action != "activate" {
		for i := 0; i < l.Devices; i++ {
			c, err := newClient()
			if err != nil {
				return err
			}
			if _, err := c.Activate(ctx, key); err != nil {
				return fmt.Errorf("activating device %d: %w", i+1, err)
			}
			devices = append(devices, c)
		}
	}
	op := func(ctx context.Context, worker, n int) error {
		switch l.Action {
		case "validate":
			_, err := devices[(worker+n)%len(devices)].Validate(ctx)
			return err
		case "heartbeat":
			_, err := devices[(worker+n)%len(devices)].Heartbeat(ctx)
			return err
		default:
			c, err := newClient()
			if err != nil {
				return err
			}
			_, err = c.Activate(ctx, key)
			return err
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
	start := time.Now()
	for w := 0; w < l.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for n := 0; runCtx.Err() == nil; n++ {
				t0 := time.Now()
				err := op(runCtx, w, n)
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
	r := loadReport{
		Action: l.Action, Concurrency: l.Concurrency, Devices: len(devices),
		Seconds: elapsed.Seconds(), Ops: int64(len(latencies)), Errors: errCounts,
		PerSecond: float64(len(latencies)) / elapsed.Seconds(),
		P50Ms:     pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: pct(1),
	}
	printJSON(out, r)
	return nil
}
