package remotesigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const (
	testToken  = "tok-0123456789abcdef0123456789abcdef"
	testSecret = "sec-0123456789abcdef0123456789abcdef"
)

// memCA is a small in-memory ports.CAKeyStore: a root and intermediates with keys.
type memCA struct {
	mu     sync.Mutex
	root   *x509.Certificate
	ints   []ports.CAIntermediate
	keys   map[string]crypto.Signer
	shares map[string]int
	down   bool
}

func (m *memCA) Intermediates(context.Context) ([]ports.CAIntermediate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, io.ErrUnexpectedEOF
	}
	return append([]ports.CAIntermediate(nil), m.ints...), nil
}
func (m *memCA) Root(context.Context) (*x509.Certificate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, io.ErrUnexpectedEOF
	}
	return m.root, nil
}
func (m *memCA) Signer(_ context.Context, id string) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate CA")
	}
	return k, nil
}
func (m *memCA) Shares(context.Context) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shares, nil
}
func (m *memCA) setState(id, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ints {
		if m.ints[i].ID == id {
			m.ints[i].State = state
		}
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string, serial int64) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * 365 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// newMemCA makes a root, an active intermediate "int_a", a canary "int_c" (share 5) and a retired
// "int_r".
func newMemCA(t *testing.T) (*memCA, *ecdsa.PrivateKey) {
	t.Helper()
	rootKey := mustKey(t)
	rt := caTemplate("test root", 1)
	root := mustCert(t, rt, rt, rootKey.Public(), rootKey)
	m := &memCA{root: root, keys: map[string]crypto.Signer{}, shares: map[string]int{"int_c": 5}}
	for i, st := range []struct{ id, state string }{{"int_a", "active"}, {"int_c", "canary"}, {"int_r", "retired"}} {
		k := mustKey(t)
		c := mustCert(t, caTemplate(st.id, int64(10+i)), root, k.Public(), rootKey)
		m.ints = append(m.ints, ports.CAIntermediate{ID: st.id, Cert: c, State: st.state})
		m.keys[st.id] = k
	}
	return m, rootKey
}

type fixture struct {
	ca     *memCA
	clock  *portstest.FakeClock
	server *Server
	ts     *httptest.Server
}

func newFixture(t *testing.T, mod func(*ServerOptions)) *fixture {
	t.Helper()
	ca, _ := newMemCA(t)
	clock := portstest.NewFakeClock(t0)
	o := ServerOptions{CA: ca, Token: testToken, HMACSecret: testSecret, Clock: clock}
	if mod != nil {
		mod(&o)
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &fixture{ca: ca, clock: clock, server: s, ts: ts}
}

func (f *fixture) client(t *testing.T, mod func(*ClientOptions)) *Client {
	t.Helper()
	o := ClientOptions{BaseURL: f.ts.URL, Token: testToken, HMACSecret: testSecret, Clock: f.clock}
	if mod != nil {
		mod(&o)
	}
	c, err := NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signed is a raw request with the given pieces; each test spoils one of them.
type signed struct {
	method, path, token, ts, nonce, sig string
	body                                []byte
}

func (f *fixture) good(path string, body []byte) signed {
	ts := strconv.FormatInt(f.clock.Now().Unix(), 10)
	nonce := "nonce-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-abcdef"
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	return signed{method: method, path: path, token: testToken, ts: ts, nonce: nonce, body: body,
		sig: macHex([]byte(testSecret), ts, nonce, body)}
}

func (f *fixture) do(t *testing.T, s signed) (int, string) {
	t.Helper()
	req, err := http.NewRequest(s.method, f.ts.URL+s.path, bytes.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	for h, v := range map[string]string{HeaderTimestamp: s.ts, HeaderNonce: s.nonce, HeaderSignature: s.sig} {
		if v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorResponse
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e.Error
}

func signBody(id string) []byte {
	d := sha256.Sum256([]byte("tbs"))
	b, _ := json.Marshal(signRequest{IntermediateID: id, Digest: base64.StdEncoding.EncodeToString(d[:]), Hash: "SHA-256"})
	return b
}

func TestServerAuthentication(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name  string
		spoil func(*signed)
	}{
		{"missing token", func(s *signed) { s.token = "" }},
		{"wrong token", func(s *signed) { s.token = testToken[:len(testToken)-1] + "X" }},
		{"token as HMAC secret", func(s *signed) { s.token = testSecret }},
		{"missing timestamp", func(s *signed) { s.ts = "" }},
		{"missing nonce", func(s *signed) { s.nonce = "" }},
		{"missing signature", func(s *signed) { s.sig = "" }},
		{"bad HMAC", func(s *signed) { s.sig = macHex([]byte("another-secret-0123456789abcdef01"), s.ts, s.nonce, s.body) }},
		{"HMAC over another body", func(s *signed) { s.body = signBody("int_c") }},
		{"HMAC of another nonce", func(s *signed) { s.nonce += "x" }},
		{"stale timestamp", func(s *signed) {
			s.ts = strconv.FormatInt(t0.Add(-61*time.Second).Unix(), 10)
			s.sig = macHex([]byte(testSecret), s.ts, s.nonce, s.body)
		}},
		{"future timestamp", func(s *signed) {
			s.ts = strconv.FormatInt(t0.Add(61*time.Second).Unix(), 10)
			s.sig = macHex([]byte(testSecret), s.ts, s.nonce, s.body)
		}},
		{"timestamp in milliseconds", func(s *signed) {
			s.ts = strconv.FormatInt(t0.UnixMilli(), 10)
			s.sig = macHex([]byte(testSecret), s.ts, s.nonce, s.body)
		}},
		{"short nonce", func(s *signed) {
			s.nonce = "abc"
			s.sig = macHex([]byte(testSecret), s.ts, s.nonce, s.body)
		}},
	}
	for _, path := range []string{pathIntermediates, pathRoot, pathSign} {
		for _, tc := range cases {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				var body []byte
				if path == pathSign {
					body = signBody("int_a")
				}
				s := f.good(path, body)
				tc.spoil(&s)
				if code, e := f.do(t, s); code != http.StatusUnauthorized || e != "unauthorized" {
					t.Fatalf("got %d %q, want 401 unauthorized", code, e)
				}
			})
		}
		// The same request unspoiled passes: the failures above come from the spoiled piece.
		t.Run(path+"/good", func(t *testing.T) {
			var body []byte
			if path == pathSign {
				body = signBody("int_a")
			}
			if code, e := f.do(t, f.good(path, body)); code != http.StatusOK {
				t.Fatalf("got %d %q, want 200", code, e)
			}
		})
	}
}

func TestServerWindowEdges(t *testing.T) {
	f := newFixture(t, nil)
	for _, d := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		s := f.good(pathRoot, nil)
		s.ts = strconv.FormatInt(t0.Add(d).Unix(), 10)
		s.sig = macHex([]byte(testSecret), s.ts, s.nonce, s.body)
		if code, _ := f.do(t, s); code != http.StatusOK {
			t.Fatalf("timestamp %v from now: got %d, want 200 (inside the window)", d, code)
		}
	}
}

func TestServerRefusesReplayedNonce(t *testing.T) {
	f := newFixture(t, nil)
	s := f.good(pathSign, signBody("int_a"))
	if code, _ := f.do(t, s); code != http.StatusOK {
		t.Fatalf("first: %d", code)
	}
	if code, e := f.do(t, s); code != http.StatusUnauthorized || e != "unauthorized" {
		t.Fatalf("replay: got %d %q, want 401", code, e)
	}
	// The nonce is spent for every path, not only the one it was first used on.
	s2 := f.good(pathRoot, nil)
	s2.nonce = s.nonce
	s2.sig = macHex([]byte(testSecret), s2.ts, s2.nonce, nil)
	if code, _ := f.do(t, s2); code != http.StatusUnauthorized {
		t.Fatalf("nonce reused on another path: got %d, want 401", code)
	}
	// Once the timestamp has left the window the entry is gone, and the timestamp check alone
	// refuses the replay.
	f.clock.Advance(61 * time.Second)
	if code, _ := f.do(t, s); code != http.StatusUnauthorized {
		t.Fatalf("replay after the window: got %d, want 401", code)
	}
	f.do(t, f.good(pathRoot, nil)) // sweeps
	if n := f.server.nonces.len(); n != 1 {
		t.Fatalf("nonce cache holds %d entries after the window, want 1 (only the newest)", n)
	}
}

func TestServerNonceCacheBounded(t *testing.T) {
	f := newFixture(t, func(o *ServerOptions) { o.MaxNonces = 2 })
	for i := 0; i < 2; i++ {
		if code, _ := f.do(t, f.good(pathRoot, nil)); code != http.StatusOK {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	// Full of live nonces: refuse rather than forget one (which would allow its replay).
	if code, e := f.do(t, f.good(pathRoot, nil)); code != http.StatusServiceUnavailable || e != "busy" {
		t.Fatalf("full cache: got %d %q, want 503 busy", code, e)
	}
	f.clock.Advance(61 * time.Second)
	if code, _ := f.do(t, f.good(pathRoot, nil)); code != http.StatusOK {
		t.Fatalf("after expiry: got %d, want 200", code)
	}
}

func TestServerHealthAndMethods(t *testing.T) {
	f := newFixture(t, nil)
	resp, err := http.Get(f.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	f.ca.mu.Lock()
	f.ca.down = true
	f.ca.mu.Unlock()
	resp, err = http.Get(f.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the backend down: %d, want 503", resp.StatusCode)
	}
	s := f.good(pathSign, nil)
	s.method = http.MethodGet
	if code, _ := f.do(t, s); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/sign: %d, want 405", code)
	}
}

func TestServerSignChecks(t *testing.T) {
	f := newFixture(t, nil)
	d := sha256.Sum256([]byte("x"))
	for _, tc := range []struct {
		name string
		req  signRequest
		code int
		err  string
	}{
		{"retired", signRequest{"int_r", base64.StdEncoding.EncodeToString(d[:]), "SHA-256"}, 409, "intermediate_retired"},
		{"unknown", signRequest{"int_x", base64.StdEncoding.EncodeToString(d[:]), "SHA-256"}, 404, "intermediate_not_found"},
		{"hash", signRequest{"int_a", base64.StdEncoding.EncodeToString(d[:]), "MD5"}, 400, "unsupported_hash"},
		{"digest length", signRequest{"int_a", base64.StdEncoding.EncodeToString(d[:]), "SHA-384"}, 400, "invalid_digest"},
		{"digest encoding", signRequest{"int_a", "!!", "SHA-256"}, 400, "invalid_digest"},
	} {
		body, _ := json.Marshal(tc.req)
		if code, e := f.do(t, f.good(pathSign, body)); code != tc.code || e != tc.err {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, code, e, tc.code, tc.err)
		}
	}
}

func TestClientIssuesThroughSigner(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, nil)
	ctx := context.Background()
	ints, err := c.Intermediates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ints) != 3 || ints[0].ID != "int_a" || ints[0].State != "active" || ints[2].State != "retired" {
		t.Fatalf("intermediates: %+v", ints)
	}
	shares, err := c.Shares(ctx)
	if err != nil || shares["int_c"] != 5 || len(shares) != 1 {
		t.Fatalf("shares %v %v", shares, err)
	}
	root, err := c.Root(ctx)
	if err != nil || !root.Equal(f.ca.root) {
		t.Fatalf("root: %v", err)
	}
	signer, err := c.Signer(ctx, "int_a")
	if err != nil {
		t.Fatal(err)
	}
	leafKey := mustKey(t)
	leaf := mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "samplero-device"},
		NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ints[0].Cert, leafKey.Public(), signer)
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(ints[0].Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: t0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf signed through the signer does not verify: %v", err)
	}
	if _, err := c.Signer(ctx, "int_nope"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown intermediate: %v, want not_found", err)
	}
	// A retired intermediate is listed (the port lists every one) but the signer will not sign.
	r, err := c.Signer(ctx, "int_r")
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := r.Sign(rand.Reader, d[:], crypto.SHA256); errs.KindOf(err) != errs.Unavailable || errs.CodeOf(err) != CodeSignerUnavailable {
		t.Fatalf("retired: %v, want %s", err, CodeSignerUnavailable)
	}
}

// swappedKeys is a backend whose signer answers with another key: the client must notice.
type swappedKeys struct {
	*memCA
	other crypto.Signer
}

func (s swappedKeys) Signer(context.Context, string) (crypto.Signer, error) { return s.other, nil }

func TestClientRejectsSignatureFromWrongKey(t *testing.T) {
	ca, _ := newMemCA(t)
	clock := portstest.NewFakeClock(t0)
	srv, err := NewServer(ServerOptions{CA: swappedKeys{ca, mustKey(t)}, Token: testToken, HMACSecret: testSecret, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c, err := NewClient(ClientOptions{BaseURL: ts.URL, Token: testToken, HMACSecret: testSecret, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Signer(context.Background(), "int_a")
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("signature from the wrong key: %v, want unavailable", err)
	}
}

func TestClientRefusesIntermediateNotFromRoot(t *testing.T) {
	ca, _ := newMemCA(t)
	k := mustKey(t)
	rogue := mustCert(t, caTemplate("rogue", 50), caTemplate("rogue", 50), k.Public(), k)
	ca.ints = append(ca.ints, ports.CAIntermediate{ID: "int_rogue", Cert: rogue, State: "active"})
	clock := portstest.NewFakeClock(t0)
	srv, _ := NewServer(ServerOptions{CA: ca, Token: testToken, HMACSecret: testSecret, Clock: clock})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c, _ := NewClient(ClientOptions{BaseURL: ts.URL, Token: testToken, HMACSecret: testSecret, Clock: clock})
	if _, err := c.Intermediates(context.Background()); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("rogue intermediate: %v, want unavailable", err)
	}
}

func TestClientCacheAndStaleness(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, func(o *ClientOptions) { o.CacheTTL = 5 * time.Second; o.MaxStale = time.Minute })
	ctx := context.Background()
	if _, err := c.Intermediates(ctx); err != nil {
		t.Fatal(err)
	}
	f.ca.setState("int_c", "active")
	ints, _ := c.Intermediates(ctx)
	if ints[1].State != "canary" {
		t.Fatalf("within the TTL the cached state is served, got %s", ints[1].State)
	}
	f.clock.Advance(5 * time.Second)
	ints, _ = c.Intermediates(ctx)
	if ints[1].State != "active" {
		t.Fatalf("after the TTL the new state shows, got %s", ints[1].State)
	}
	// The signer goes away: the last hierarchy serves for MaxStale, then errors are Unavailable.
	f.ts.Close()
	f.clock.Advance(30 * time.Second)
	if _, err := c.Root(ctx); err != nil {
		t.Fatalf("stale within MaxStale: %v", err)
	}
	f.clock.Advance(31 * time.Second)
	_, err := c.Root(ctx)
	if errs.KindOf(err) != errs.Unavailable || errs.CodeOf(err) != CodeSignerUnavailable {
		t.Fatalf("beyond MaxStale: %v, want %s", err, CodeSignerUnavailable)
	}
}

func TestClientWrongCredentialsAreUnavailable(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t, func(o *ClientOptions) { o.HMACSecret = "wrong-secret-0123456789abcdef012345" })
	_, err := c.Root(context.Background())
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("got %v, want unavailable", err)
	}
}

func TestNewClientChecks(t *testing.T) {
	clock := portstest.NewFakeClock(t0)
	for _, tc := range []struct {
		url, token string
		ok         bool
	}{
		{"https://signer.internal:9443", testToken, true},
		{"http://127.0.0.1:9443", testToken, true},
		{"http://[::1]:9443", testToken, true},
		{"http://localhost:9443", testToken, true},
		{"http://signer.internal:9443", testToken, false},
		{"ftp://signer.internal", testToken, false},
		{"https://signer.internal", "short", false},
	} {
		_, err := NewClient(ClientOptions{BaseURL: tc.url, Token: tc.token, HMACSecret: testSecret, Clock: clock})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	if _, err := NewServer(ServerOptions{CA: &memCA{}, Token: testToken, HMACSecret: testToken, Clock: clock}); err == nil {
		t.Error("server accepted the token as HMAC secret")
	}
}

// tlsPair issues a certificate from ca for cn with the given usage, ready for tls.
func tlsPair(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, cn string, usage x509.ExtKeyUsage, serial int64) tls.Certificate {
	t.Helper()
	k := mustKey(t)
	c := mustCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca, k.Public(), caKey)
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func selfCA(t *testing.T, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	k := mustKey(t)
	tmpl := caTemplate(cn, 2)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	return mustCert(t, tmpl, tmpl, k.Public(), k), k
}

func TestMutualTLSRequiredWhenConfigured(t *testing.T) {
	ca, _ := newMemCA(t)
	clock := portstest.NewFakeClock(time.Now())
	srv, err := NewServer(ServerOptions{CA: ca, Token: testToken, HMACSecret: testSecret, Clock: clock, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	serverCA, serverCAKey := selfCA(t, "signer server CA")
	clientCA, clientCAKey := selfCA(t, "signer client CA")
	otherCA, otherCAKey := selfCA(t, "device CA")
	clientPool := x509.NewCertPool()
	clientPool.AddCert(clientCA)
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = ServerTLSConfig(tlsPair(t, serverCA, serverCAKey, "signer", x509.ExtKeyUsageServerAuth, 3), clientPool)
	ts.StartTLS()
	defer ts.Close()

	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(serverCA)
	newClient := func(certs ...tls.Certificate) *Client {
		c, err := NewClient(ClientOptions{BaseURL: ts.URL, Token: testToken, HMACSecret: testSecret, Clock: clock,
			TLS: &tls.Config{RootCAs: serverRoots, Certificates: certs}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	if _, err := newClient().Root(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("no client certificate: %v, want unavailable", err)
	}
	if _, err := newClient(tlsPair(t, otherCA, otherCAKey, "device", x509.ExtKeyUsageClientAuth, 4)).Root(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("certificate from another CA: %v, want unavailable", err)
	}
	good := newClient(tlsPair(t, clientCA, clientCAKey, "samplero-server", x509.ExtKeyUsageClientAuth, 5))
	if _, err := good.Root(ctx); err != nil {
		t.Fatalf("good client certificate: %v", err)
	}
	// The handler's own check: served without TLS, RequireClientCert still refuses.
	plain := httptest.NewServer(srv.Handler())
	defer plain.Close()
	c, _ := NewClient(ClientOptions{BaseURL: plain.URL, Token: testToken, HMACSecret: testSecret, Clock: clock})
	if _, err := c.Root(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("plain HTTP with RequireClientCert: %v, want unavailable", err)
	}
}
