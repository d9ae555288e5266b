package samplero_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

func newClock() *testClock { return &testClock{t: time.Unix(1764417600, 0)} }

func newClient(t *testing.T, f *fakeServer, store samplero.Storage, mod func(*samplero.Config)) *samplero.Client {
	t.Helper()
	cfg := f.config(store)
	if mod != nil {
		mod(&cfg)
	}
	c, err := samplero.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadString(t *testing.T, s samplero.Storage, name string) string {
	t.Helper()
	b, err := s.Load(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestFullLifecycle(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	f := newFakeServer(t, clock)
	dir := t.TempDir()
	store := samplero.FileStorage(dir)
	c := newClient(t, f, store, nil)

	if _, err := c.Validate(ctx); !errors.Is(err, samplero.ErrNotActivated) {
		t.Fatalf("validate before activation: %v", err)
	}
	res, err := c.Activate(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	if res.HTTPStatus != 201 || res.Status != "active" || res.ActivationID != "act_1" || res.LeaseInfo == nil ||
		res.HeartbeatIntervalS != 86400 || res.GracePeriodS != 604800 || res.TrustLevel != 3 || res.CertificateNotAfter.IsZero() {
		t.Fatalf("activate result %+v", res)
	}
	for _, name := range []string{samplero.StoreDeviceKey, samplero.StoreCertificate, samplero.StoreCAChain, samplero.StoreLease, samplero.StoreActivationID, samplero.StoreNewestSeen} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s not stored: %v", name, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", name, fi.Mode().Perm())
		}
	}
	if loadString(t, store, samplero.StoreActivationID) != "act_1" {
		t.Fatal("activation id not stored")
	}
	// Activating again with the same key gives the same activation (200).
	again, err := c.Activate(ctx, testLicenseKey)
	if err != nil || again.HTTPStatus != 200 || again.ActivationID != "act_1" {
		t.Fatalf("re-activate: %+v %v", again, err)
	}

	v, err := c.Validate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.ActivationID != "act_1" || v.License.Product != testProduct || v.License.ExpiresAt != nil || v.TrustLevel != 4 || v.GracePeriodRemainingS != 691200 {
		t.Fatalf("validate %+v", v)
	}
	if !f.lastMTLS {
		t.Fatal("validate did not present the client certificate")
	}

	clock.Add(time.Hour)
	oldLease := loadString(t, store, samplero.StoreLease)
	hb, err := c.Heartbeat(ctx)
	if err != nil || !hb.Valid || hb.LeaseInfo == nil {
		t.Fatalf("heartbeat %+v %v", hb, err)
	}
	if nl := loadString(t, store, samplero.StoreLease); nl == oldLease || nl != hb.Lease {
		t.Fatal("heartbeat lease not stored")
	}

	l, err := c.CheckOffline("")
	if err != nil || l.ActivationID != "act_1" || l.Product != testProduct {
		t.Fatalf("offline: %+v %v", l, err)
	}
	if _, err := c.CheckOffline("fx-pack"); err != nil {
		t.Fatalf("entitlement: %v", err)
	}
	if _, err := c.CheckOffline("other-product"); !errors.Is(err, samplero.ErrLeaseProduct) {
		t.Fatalf("other product: %v", err)
	}

	// Renew with the same key, then with a new key: the new key is stored and used.
	oldKey := loadString(t, store, samplero.StoreDeviceKey)
	if _, err := c.Renew(ctx, false); err != nil {
		t.Fatal(err)
	}
	if loadString(t, store, samplero.StoreDeviceKey) != oldKey {
		t.Fatal("key changed on renew without newKey")
	}
	rr, err := c.Renew(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if loadString(t, store, samplero.StoreDeviceKey) == oldKey || loadString(t, store, samplero.StoreCertificate) != rr.Certificate {
		t.Fatal("new key or certificate not stored")
	}
	newKey, _ := samplero.ParsePrivateKeyPEM([]byte(loadString(t, store, samplero.StoreDeviceKey)))
	tp, _ := httpsig.Thumbprint(newKey.Public())
	if rr.LeaseInfo.KeyThumbprint != tp {
		t.Fatal("lease not bound to the new key")
	}
	// The next call presents the new certificate and signs with the new key.
	if _, err := c.Validate(ctx); err != nil {
		t.Fatalf("validate after renew: %v", err)
	}
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatalf("offline after renew: %v", err)
	}

	// A new client on the same storage picks everything up.
	c2 := newClient(t, f, store, nil)
	if _, err := c2.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat from restored state: %v", err)
	}

	st, err := c.Status(ctx, testLicenseKey)
	if err != nil || st.Status != "active" || st.SeatsUsed != 1 || st.SeatsTotal != 3 || st.ExpiresAt != nil {
		t.Fatalf("status %+v %v", st, err)
	}

	d, err := c.Deactivate(ctx)
	if err != nil || d.Status != "deactivated" || d.SeatReleasedAt.IsZero() {
		t.Fatalf("deactivate %+v %v", d, err)
	}
	if _, err := c.CheckOffline(""); !errors.Is(err, samplero.ErrNoLease) {
		t.Fatalf("offline after deactivate: %v", err)
	}
	if _, err := c.Validate(ctx); !errors.Is(err, samplero.ErrNotActivated) {
		t.Fatalf("validate after deactivate: %v", err)
	}
	// No temporary files are left behind by the atomic writes.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("leftover %s", e.Name())
		}
	}
}

func TestKeyTypesActivate(t *testing.T) {
	ctx := context.Background()
	types := []samplero.KeyType{samplero.KeyP256, samplero.KeyEd25519, samplero.KeyRSA2048}
	for _, kt := range types {
		t.Run(string(kt), func(t *testing.T) {
			f := newFakeServer(t, newClock())
			c := newClient(t, f, samplero.NewMemoryStorage(), func(cfg *samplero.Config) { cfg.KeyType = kt })
			if _, err := c.Activate(ctx, testLicenseKey); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Validate(ctx); err != nil {
				t.Fatal(err)
			}
			if !f.lastMTLS {
				t.Fatal("no client certificate presented")
			}
		})
	}
}

func TestPendingClaimThenBootstrap(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	f.approval = true
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	res, err := c.Activate(ctx, testLicenseKey)
	if err != nil {
		t.Fatal(err)
	}
	if res.HTTPStatus != 202 || res.Pending == nil || res.Pending.ClaimID == "" || res.Pending.NextStep != "approve_in_account" {
		t.Fatalf("pending %+v", res)
	}
	if loadString(t, store, samplero.StoreClaimID) != res.Pending.ClaimID {
		t.Fatal("claim id not stored")
	}
	b, err := c.Bootstrap(ctx, "")
	if err != nil || b.Pending == nil {
		t.Fatalf("still pending: %+v %v", b, err)
	}
	f.mu.Lock()
	f.claims[res.Pending.ClaimID].approved = true
	f.mu.Unlock()
	b, err = c.Bootstrap(ctx, "")
	if err != nil || b.Pending != nil || b.ActivationID == "" {
		t.Fatalf("bootstrap %+v %v", b, err)
	}
	if _, err := c.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	if loadString(t, store, samplero.StoreClaimID) != "" {
		t.Fatal("claim id kept after approval")
	}
}

func TestProblemErrors(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)
	_, err := c.Activate(ctx, "VST-22222-22222-22222-22222")
	var pe *samplero.ProblemError
	if !errors.As(err, &pe) || pe.Status != 404 || pe.Code != "LICENSE_NOT_FOUND" {
		t.Fatalf("got %v", err)
	}
	f.licenseStatus = "revoked"
	if _, err := c.Activate(ctx, testLicenseKey); !errors.As(err, &pe) || pe.Code != "LICENSE_REVOKED" || pe.Status != 403 {
		t.Fatalf("got %v", err)
	}
	// An error answer that is not signed is not a ProblemError: nothing in it can be trusted.
	f.mutate = func(a *answer) { a.Drop = []string{"Signature"} }
	_, err = c.Activate(ctx, testLicenseKey)
	if errors.As(err, &pe) || !errors.Is(err, samplero.ErrUnverified) {
		t.Fatalf("unsigned problem: %v", err)
	}
}

func TestHeartbeatRevokedDropsLease(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.licenseStatus = "revoked"
	f.mu.Unlock()
	v, err := c.Validate(ctx)
	if err != nil || v.Valid || v.Status != "revoked" {
		t.Fatalf("validate %+v %v", v, err)
	}
	hb, err := c.Heartbeat(ctx)
	if err != nil || hb.Valid {
		t.Fatalf("heartbeat %+v %v", hb, err)
	}
	if _, err := c.CheckOffline(""); !errors.Is(err, samplero.ErrNoLease) {
		t.Fatalf("lease kept after a signed valid:false: %v", err)
	}
}

// TestResponseMUSTs breaks one rule of PROTOCOL.md section 3 at a time and expects the client to
// refuse the answer before using anything in it.
func TestResponseMUSTs(t *testing.T) {
	ctx := context.Background()
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		mutate func(a *answer)
		want   error
	}{
		{"wrong nonce", func(a *answer) { a.Nonce = httpsig.NewNonce() }, httpsig.ErrNonceMismatch},
		{"no nonce", func(a *answer) { a.Nonce = "" }, httpsig.ErrNonceMismatch},
		{"wrong path", func(a *answer) { a.Path = "/v1/validate" }, httpsig.ErrResponseSignature},
		{"unknown kid", func(a *answer) { a.KID = "srv-9" }, httpsig.ErrUnknownServerKey},
		{"bad signature", func(a *answer) { a.Key = otherKey }, httpsig.ErrResponseSignature},
		{"stale created", func(a *answer) { a.Created -= 301 }, samplero.ErrStaleResponse},
		{"future created", func(a *answer) { a.Created += 301 }, samplero.ErrStaleResponse},
		{"no Signature", func(a *answer) { a.Drop = []string{"Signature"} }, httpsig.ErrResponseUnsigned},
		{"no Signature-Input", func(a *answer) { a.Drop = []string{"Signature-Input"} }, httpsig.ErrResponseUnsigned},
		{"no Content-Digest", func(a *answer) { a.Drop = []string{"Content-Digest"} }, httpsig.ErrResponseUnsigned},
		{"body changed", func(a *answer) {
			a.Tamper = func(h http.Header) { h.Set("Content-Digest", httpsig.ContentDigest([]byte("{}"))) }
		}, httpsig.ErrResponseDigest},
		{"params reordered", func(a *answer) {
			a.Tamper = func(h http.Header) {
				h.Set("Signature-Input", strings.Replace(h.Get("Signature-Input"), `;keyid="srv-1";alg="ed25519"`, `;alg="ed25519";keyid="srv-1"`, 1))
			}
		}, httpsig.ErrResponseMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, newClock())
			store := samplero.NewMemoryStorage()
			c := newClient(t, f, store, nil)
			if _, err := c.Activate(ctx, testLicenseKey); err != nil {
				t.Fatal(err)
			}
			lease := loadString(t, store, samplero.StoreLease)
			f.mu.Lock()
			f.mutate = func(a *answer) {
				if a.Path == "/v1/heartbeat" {
					tc.mutate(a)
				}
			}
			f.mu.Unlock()
			_, err := c.Heartbeat(ctx)
			if !errors.Is(err, samplero.ErrUnverified) || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if loadString(t, store, samplero.StoreLease) != lease {
				t.Fatal("lease of an unverified answer stored")
			}
		})
	}
}

func TestAnswerMismatch(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
	// A validate answer for another activation is refused even though it is signed.
	f.mu.Lock()
	f.mutate = func(a *answer) {
		if a.Path == "/v1/validate" {
			a.Body = []byte(strings.Replace(string(a.Body), `"act_1"`, `"act_99"`, 1))
		}
	}
	f.mu.Unlock()
	if _, err := c.Validate(ctx); !errors.Is(err, samplero.ErrAnswerMismatch) {
		t.Fatalf("got %v", err)
	}
	// A heartbeat lease for another activation is refused.
	f.mu.Lock()
	f.mutate = nil
	f.leaseMod = func(h, cl map[string]any) { cl["sub"] = "act_99" }
	f.mu.Unlock()
	if _, err := c.Heartbeat(ctx); !errors.Is(err, samplero.ErrAnswerMismatch) {
		t.Fatalf("got %v", err)
	}
	// A product the license does not cover is refused.
	f.mu.Lock()
	f.leaseMod = nil
	f.mutate = func(a *answer) {
		if a.Path == "/v1/validate" {
			a.Body = []byte(strings.ReplaceAll(string(a.Body), testProduct, "other"))
		}
	}
	f.mu.Unlock()
	if _, err := c.Validate(ctx); !errors.Is(err, samplero.ErrAnswerMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestActivateRefusesBadLease(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	f.leaseMod = func(h, cl map[string]any) { cl["fpr"] = "someone-else-0001" }
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	if _, err := c.Activate(ctx, testLicenseKey); !errors.Is(err, samplero.ErrLeaseFingerprint) {
		t.Fatalf("got %v", err)
	}
	if loadString(t, store, samplero.StoreActivationID) != "" || loadString(t, store, samplero.StoreCertificate) != "" {
		t.Fatal("state stored from a refused activation")
	}
}

func TestSendEscapeHatch(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)
	key, _ := samplero.GenerateKey(samplero.KeyEd25519)
	body := []byte(`{"license_key":"` + testLicenseKey + `"}`)

	resp, err := c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key})
	if err != nil || resp.Verified != nil || resp.Status != 200 || resp.Info.KeyID != "srv-1" {
		t.Fatalf("plain send: %+v %v", resp, err)
	}
	nonce := httpsig.NewNonce()
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, Nonce: nonce, OmitHeaders: []string{"Signature"}})
	if err != nil || resp.Status != 401 || !strings.Contains(string(resp.Body), "SIGNATURE_REQUIRED") || resp.Verified != nil || resp.Info.Nonce != nonce {
		t.Fatalf("omit: %+v %v", resp, err)
	}
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, BodyAfterSigning: []byte(`{"license_key":"x"}`)})
	if err != nil || resp.Status != 400 || !strings.Contains(string(resp.Body), "DIGEST_MISMATCH") {
		t.Fatalf("body after signing: %+v %v", resp, err)
	}
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, Offline: true})
	if err != nil || resp.Status != 400 || !strings.Contains(string(resp.Body), "MALFORMED_SIGNATURE") {
		t.Fatalf("offline tag online: %+v %v", resp, err)
	}
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, Created: time.Unix(1764417600-301, 0)})
	if err != nil || resp.Status != 401 || !strings.Contains(string(resp.Body), "STALE_REQUEST") {
		t.Fatalf("stale: %+v %v", resp, err)
	}
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, OverrideHeaders: http.Header{"Signature-Input": {"sig1=("}}})
	if err != nil || resp.Status != 400 || resp.Info.Nonce != "" || resp.Verified == nil {
		// The server could not read a nonce, so none is echoed and the client cannot bind the answer.
		t.Fatalf("override: %+v %v", resp, err)
	}
	resp, err = c.Send(ctx, samplero.Request{Path: "/v1/status", Body: body, Key: key, SkipVerify: true})
	if err != nil || !errors.Is(resp.Verified, samplero.ErrVerifySkipped) {
		t.Fatalf("skip: %+v %v", resp, err)
	}
	if _, err := c.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`)}); !errors.Is(err, samplero.ErrNotActivated) {
		t.Fatalf("no key: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := samplero.Config{BaseURL: "https://127.0.0.1:8443", Fingerprint: testFpr}
	if _, err := samplero.New(good); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]samplero.Config{
		"http":        {BaseURL: "http://127.0.0.1:8080"},
		"no host":     {BaseURL: "https://"},
		"query":       {BaseURL: "https://a/?x=1"},
		"fingerprint": {BaseURL: "https://a", Fingerprint: "short"},
		"trusted key": {BaseURL: "https://a", TrustedKeys: []samplero.TrustedKey{{KID: "k", PublicKey: make([]byte, 3)}}},
	} {
		if _, err := samplero.New(cfg); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := samplero.New(samplero.Config{BaseURL: "http://127.0.0.1:8080", AllowPlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
}
