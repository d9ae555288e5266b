package boot

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/cmd/internal/config"
)

// devServer builds a dev-configured Server on a fresh SQLite database, without Temporal (nothing
// here starts a workflow or asks for readiness).
func devServer(t *testing.T, env map[string]string) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]string{"dev", "--data", dir, "--http", "127.0.0.1:0", "--device", "127.0.0.1:0"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := OpenStore(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := Build(ctx, cfg, NewLogger(io.Discard), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var fiberParam = regexp.MustCompile(`:([a-z_]+)(<[^>]*>)?`)

// docs/openapi.yaml documents every route the app serves, and nothing it does not.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	s := devServer(t, nil)
	served := map[string]bool{}
	for _, r := range s.App.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "USE" || r.Path == "/" {
			continue
		}
		served[strings.ToLower(r.Method)+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	spec, err := os.ReadFile("../../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	inPaths, path := false, ""
	for _, line := range strings.Split(string(spec), "\n") {
		switch {
		case line == "paths:":
			inPaths = true
		case !inPaths:
		case strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case path != "" && regexp.MustCompile(`^    (get|post|put|patch|delete):$`).MatchString(line):
			documented[strings.TrimSuffix(strings.TrimSpace(line), ":")+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("docs/openapi.yaml is out of date\nserved, not documented: %v\ndocumented, not served: %v", missing, extra)
	}
}

// The device listener speaks TLS with a certificate for localhost that chains to DIR/pki, asks
// for (but does not require) a client certificate, and both listeners serve the app.
func TestListenersServeTLSAndPlain(t *testing.T) {
	s := devServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()

	chain, err := os.ReadFile(filepath.Join(s.Cfg.PKIDir, "ca-chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(chain)
	var requested bool
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:    pool,
		ServerName: "localhost",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			requested = true
			return &tls.Certificate{}, nil
		},
	}}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for _, url := range []string{"https://" + l.Device.Addr().String() + "/healthz", "http://" + l.HTTP.Addr().String() + "/healthz"} {
		res, err := client.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", url, res.StatusCode)
		}
	}
	if !requested {
		t.Error("the device listener did not ask for a client certificate")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestServerHosts(t *testing.T) {
	got := serverHosts("0.0.0.0:8443", "https://licenses.example.com/base")
	want := []string{"localhost", "127.0.0.1", "::1", "licenses.example.com"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("hosts %v, want %v", got, want)
	}
}

// With SAMPLERO_REDIS_URL the replay store and the limiter live in Redis, and readiness checks it.
func TestRedisSharedStores(t *testing.T) {
	url := os.Getenv("SAMPLERO_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	cfg := config.Config{Command: "serve", RedisURL: config.Secret(url)}
	sh, err := sharedStores(context.Background(), cfg, nil)
	if err != nil {
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
			t.Fatal(err)
		}
		t.Skipf("redis: %v", err)
	}
	defer sh.close()
	if sh.ping == nil || sh.limiter == nil || sh.nonces == nil {
		t.Fatalf("redis stores incomplete: %+v", sh)
	}
	if err := sh.ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	nonce := "boot-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i, want := range []bool{true, false} {
		fresh, err := sh.nonces.Reserve(context.Background(), "boot-test", nonce, time.Minute)
		if err != nil || fresh != want {
			t.Fatalf("reserve #%d: fresh=%v err=%v", i+1, fresh, err)
		}
	}
	bad := config.Config{Command: "serve", RedisURL: config.Secret("redis://:hunter2-SECRET@127.0.0.1:1/0")}
	if _, err := sharedStores(context.Background(), bad, nil); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("unreachable redis: %v", err)
	}
}

// migrate and admin token create work on the SQLite database of a dev data directory; the token
// is printed once and only its hash is stored.
func TestMigrateAndAdminToken(t *testing.T) {
	dir := t.TempDir()
	parse := func(args ...string) config.Config {
		t.Helper()
		cfg, err := config.Parse(args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	ctx := context.Background()
	var out strings.Builder
	if err := Migrate(ctx, parse("migrate", "up", "--data", dir), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate up printed %q", out.String())
	}
	out.Reset()
	if err := AdminTokenCreate(ctx, parse("admin", "token", "create", "--name", "ops", "--data", dir), &out); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "sat_") || len(token) < 40 {
		t.Fatalf("token %q", token)
	}
	store, err := OpenStore(ctx, parse("migrate", "status", "--data", dir), false)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sum := sha256.Sum256([]byte(token))
	got, err := store.AdminTokens().ByHash(ctx, sum[:])
	if err != nil || got.Name != "ops" {
		t.Fatalf("stored token: %+v %v", got, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "samplero.db"))
	if strings.Contains(string(raw), token) {
		t.Fatal("the token itself is in the database")
	}
}

func TestMTLSURL(t *testing.T) {
	for _, tc := range []struct{ public, device, want string }{
		{"http://127.0.0.1:8080", "127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"https://licenses.example.com/", "0.0.0.0:8443", "https://licenses.example.com"},
	} {
		if got := mtlsURL(config.Config{PublicURL: tc.public, DeviceAddr: tc.device}); got != tc.want {
			t.Errorf("mtlsURL(%q, %q) = %q, want %q", tc.public, tc.device, got, tc.want)
		}
	}
}
