package samplero_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// upload plays the customer portal: it replays the device's file against the fake server in
// offline mode and packs the signed answer into an answer file.
func upload(t *testing.T, f *fakeServer, file []byte) []byte {
	t.Helper()
	var req samplero.OfflineFile
	if err := json.Unmarshal(file, &req); err != nil || req.Version != 1 || req.Path != "/v1/activate" {
		t.Fatalf("request file %s: %v", file, err)
	}
	body, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, req.Path, bytes.NewReader(body))
	for k, v := range req.Headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.mu.Lock()
	f.offline = true
	f.mu.Unlock()
	f.ServeHTTP(rec, r)
	f.mu.Lock()
	f.offline = false
	f.mu.Unlock()
	ans := samplero.OfflineFile{Version: 1, Status: rec.Code, Headers: map[string]string{}, Body: base64.StdEncoding.EncodeToString(rec.Body.Bytes())}
	for _, h := range []string{"Content-Digest", "Signature-Input", "Signature"} {
		ans.Headers[h] = rec.Header().Get(h)
	}
	out, _ := json.Marshal(ans)
	return out
}

// requestFile decodes a request file and its body.
func requestFile(t *testing.T, file []byte) (samplero.OfflineFile, map[string]string, *httpsig.ParsedRequest) {
	t.Helper()
	var req samplero.OfflineFile
	if err := json.Unmarshal(file, &req); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	pr, err := httpsig.ParseRequest("POST", req.Path, h, true)
	if err != nil {
		t.Fatalf("offline request does not parse offline: %v", err)
	}
	if !pr.DigestMatches(raw) {
		t.Fatal("digest does not cover the body")
	}
	return req, body, pr
}

func TestOfflineActivation(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	f := newFakeServer(t, clock)
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	file, err := c.OfflineActivationRequest(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 0 {
		t.Fatalf("writing the request used the network: %v", f.requests)
	}
	req, body, pr := requestFile(t, file)
	if req.Version != 1 || req.Path != "/v1/activate" || req.Status != 0 || len(req.Headers) != 3 {
		t.Fatalf("request file shape: %s", file)
	}
	if !strings.HasSuffix(req.Headers["Signature-Input"], `;tag="samplero-offline"`) || pr.Params.Tag != httpsig.OfflineTag {
		t.Fatalf("no offline tag: %s", req.Headers["Signature-Input"])
	}
	if body["license_key"] != testLicenseKey || body["device_fingerprint"] != testFpr || body["product"] != testProduct || !strings.Contains(body["csr"], "CERTIFICATE REQUEST") {
		t.Fatalf("body: %v", body)
	}
	// The device key is generated and kept, as Activate does: the request is signed with it.
	key, err := samplero.ParsePrivateKeyPEM([]byte(loadString(t, store, samplero.StoreDeviceKey)))
	if err != nil {
		t.Fatal(err)
	}
	if tp, _ := httpsig.Thumbprint(key.Public()); tp != pr.Params.KeyID || pr.Verify(key.Public()) != nil {
		t.Fatalf("request not signed with the stored device key")
	}
	if !strings.Contains(loadString(t, store, samplero.StoreOfflineRequest), pr.Params.Nonce) {
		t.Fatal("the request's nonce is not kept for the answer")
	}
	// The same request is refused online.
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	if _, err := httpsig.ParseRequest("POST", "/v1/activate", h, false); err == nil {
		t.Fatal("offline request accepted online")
	}

	// The owner uploads it two days later; the device applies the answer a day after that.
	clock.Add(48 * time.Hour)
	answer := upload(t, f, file)
	clock.Add(24 * time.Hour)

	// A tampered answer is refused.
	var ans samplero.OfflineFile
	_ = json.Unmarshal(answer, &ans)
	bad := ans
	bad.Status = 200
	badJSON, _ := json.Marshal(bad)
	if _, err := c.ApplyOfflineActivationAnswer(ctx, badJSON); !errors.Is(err, samplero.ErrUnverified) {
		t.Fatalf("tampered status: %v", err)
	}

	seen := len(f.requests)
	res, err := c.ApplyOfflineActivationAnswer(ctx, answer)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != seen {
		t.Fatalf("applying the answer used the network: %v", f.requests[seen:])
	}
	if res.HTTPStatus != 201 || res.ActivationID == "" || res.LeaseInfo == nil {
		t.Fatalf("%+v", res)
	}
	if got := loadString(t, store, samplero.StoreActivationID); got != res.ActivationID {
		t.Fatalf("stored activation %q", got)
	}
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatal(err)
	}
	// The answer binds to the one request: applying it again finds nothing pending.
	if _, err := c.ApplyOfflineActivationAnswer(ctx, answer); err == nil {
		t.Fatal("answer applied twice")
	}
	// The stored activation is an ordinary one: once online, the device validates over mTLS with
	// the key it wrote the request with.
	v, err := c.Validate(ctx)
	if err != nil || !v.Valid || v.ActivationID != res.ActivationID || !f.lastMTLS {
		t.Fatalf("validate after offline activation: %+v %v", v, err)
	}
}

func TestOfflineActivationAnswerForAnotherRequest(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	first, err := c.OfflineActivationRequest(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	answer := upload(t, f, first)
	// A newer request replaces the pending nonce, with the same device key: the old answer no
	// longer matches.
	second, err := c.OfflineActivationRequest(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	_, _, p1 := requestFile(t, first)
	_, _, p2 := requestFile(t, second)
	if p1.Params.KeyID != p2.Params.KeyID || p1.Params.Nonce == p2.Params.Nonce {
		t.Fatalf("second request: key %s→%s, nonce %s→%s", p1.Params.KeyID, p2.Params.KeyID, p1.Params.Nonce, p2.Params.Nonce)
	}
	if _, err := c.ApplyOfflineActivationAnswer(ctx, answer); !errors.Is(err, httpsig.ErrNonceMismatch) {
		t.Fatalf("got %v", err)
	}
	// A problem answer is reported as such once verified, and activates nothing.
	wrong, _ := c.OfflineActivationRequest(ctx, "VST-22222-22222-22222-22222")
	_, err = c.ApplyOfflineActivationAnswer(ctx, upload(t, f, wrong))
	var pe *samplero.ProblemError
	if !errors.As(err, &pe) || pe.Code != "LICENSE_NOT_FOUND" || pe.Status != 404 {
		t.Fatalf("got %v", err)
	}
	if loadString(t, store, samplero.StoreActivationID) != "" {
		t.Fatal("a problem answer stored an activation")
	}
}

// The answer must be created within the request's lifetime: not before the request, not more
// than 7 days after it, not in the device's future; and signed for /v1/activate.
func TestOfflineActivationAnswerBinding(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(a *answer, requestCreated int64)
		apply  time.Duration // from the request to applying the answer
		want   error
	}{
		{"before the request", func(a *answer, rc int64) { a.Created = rc - 3600 }, time.Hour, samplero.ErrStaleResponse},
		{"8 days after the request", func(a *answer, rc int64) { a.Created = rc + 8*86400 }, 8*24*time.Hour + time.Minute, samplero.ErrStaleResponse},
		{"ahead of the device clock", func(a *answer, rc int64) { a.Created = rc + 86400 }, time.Hour, samplero.ErrStaleResponse},
		{"another path", func(a *answer, _ int64) { a.Path = "/v1/bootstrap" }, time.Hour, samplero.ErrUnverified},
		{"untrusted key", func(a *answer, _ int64) { a.KID = "srv-unknown" }, time.Hour, samplero.ErrUnverified},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clock := newClock()
			f := newFakeServer(t, clock)
			store := samplero.NewMemoryStorage()
			c := newClient(t, f, store, nil)
			file, err := c.OfflineActivationRequest(ctx, testLicenseKey)
			if err != nil {
				t.Fatal(err)
			}
			rc := clock.Now().Unix()
			f.mutate = func(a *answer) { tc.mutate(a, rc) }
			answer := upload(t, f, file)
			clock.Add(tc.apply)
			if _, err := c.ApplyOfflineActivationAnswer(ctx, answer); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if loadString(t, store, samplero.StoreActivationID) != "" {
				t.Fatal("a refused answer stored an activation")
			}
		})
	}
}

// A product that needs the owner's approval answers 202 offline too: the claim id is stored for
// Bootstrap, as after an online Activate.
func TestOfflineActivationPending(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	f.approval = true
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	file, err := c.OfflineActivationRequest(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ApplyOfflineActivationAnswer(ctx, upload(t, f, file))
	if err != nil {
		t.Fatal(err)
	}
	if res.HTTPStatus != 202 || res.Pending == nil || res.Pending.ClaimID == "" {
		t.Fatalf("%+v", res)
	}
	if got := loadString(t, store, samplero.StoreClaimID); got != res.Pending.ClaimID {
		t.Fatalf("stored claim %q, want %q", got, res.Pending.ClaimID)
	}
}

func TestOfflineActivationBadInput(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)

	// No request written yet.
	if _, err := c.ApplyOfflineActivationAnswer(ctx, []byte(`{}`)); err == nil {
		t.Fatal("an answer without a pending request was accepted")
	}
	if _, err := c.OfflineActivationRequest(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{
		"not JSON":        `samplero`,
		"version 2":       `{"samplero_offline":2,"status":201,"headers":{},"body":""}`,
		"no status":       `{"samplero_offline":1,"headers":{},"body":""}`,
		"body not base64": `{"samplero_offline":1,"status":201,"headers":{},"body":"%%%"}`,
		"unsigned":        `{"samplero_offline":1,"status":201,"headers":{},"body":"e30="}`,
	} {
		if _, err := c.ApplyOfflineActivationAnswer(ctx, []byte(file)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// A cancelled context stops both calls.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.OfflineActivationRequest(done, testLicenseKey); !errors.Is(err, context.Canceled) {
		t.Fatalf("request with a cancelled context: %v", err)
	}
	if _, err := c.ApplyOfflineActivationAnswer(done, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("answer with a cancelled context: %v", err)
	}
	// Without a fingerprint there is nothing to activate.
	nofp := newClient(t, f, samplero.NewMemoryStorage(), func(cfg *samplero.Config) { cfg.Fingerprint = "" })
	if _, err := nofp.OfflineActivationRequest(ctx, testLicenseKey); err == nil {
		t.Fatal("request without a fingerprint")
	}
}
