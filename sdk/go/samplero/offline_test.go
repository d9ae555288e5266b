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

func TestOfflineActivation(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	f := newFakeServer(t, clock)
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	file, err := c.OfflineActivationRequest(testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	var req samplero.OfflineFile
	_ = json.Unmarshal(file, &req)
	if !strings.HasSuffix(req.Headers["Signature-Input"], `;tag="samplero-offline"`) {
		t.Fatalf("no offline tag: %s", req.Headers["Signature-Input"])
	}
	// The same request is refused online.
	h := http.Header{}
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	if _, err := httpsig.ParseRequest("POST", "/v1/activate", h, false); err == nil {
		t.Fatal("offline request accepted online")
	}

	// The owner uploads it two days later; the device imports the answer a day after that.
	clock.Add(48 * time.Hour)
	answer := upload(t, f, file)
	clock.Add(24 * time.Hour)

	// A tampered answer is refused.
	var ans samplero.OfflineFile
	_ = json.Unmarshal(answer, &ans)
	bad := ans
	bad.Status = 200
	badJSON, _ := json.Marshal(bad)
	if _, err := c.ImportOfflineActivation(ctx, badJSON); !errors.Is(err, samplero.ErrUnverified) {
		t.Fatalf("tampered status: %v", err)
	}

	res, err := c.ImportOfflineActivation(ctx, answer)
	if err != nil {
		t.Fatal(err)
	}
	if res.HTTPStatus != 201 || res.ActivationID == "" {
		t.Fatalf("%+v", res)
	}
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatal(err)
	}
	// The answer binds to the one request: importing it again finds nothing pending.
	if _, err := c.ImportOfflineActivation(ctx, answer); err == nil {
		t.Fatal("answer imported twice")
	}
}

func TestOfflineActivationAnswerForAnotherRequest(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)
	first, err := c.OfflineActivationRequest(testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	answer := upload(t, f, first)
	// A newer request replaces the pending nonce: the old answer no longer matches.
	if _, err := c.OfflineActivationRequest(testLicenseKey); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportOfflineActivation(ctx, answer); !errors.Is(err, httpsig.ErrNonceMismatch) {
		t.Fatalf("got %v", err)
	}
	// A problem answer is reported as such once verified.
	wrong, _ := c.OfflineActivationRequest("VST-22222-22222-22222-22222")
	_, err = c.ImportOfflineActivation(ctx, upload(t, f, wrong))
	var pe *samplero.ProblemError
	if !errors.As(err, &pe) || pe.Code != "LICENSE_NOT_FOUND" {
		t.Fatalf("got %v", err)
	}
}
