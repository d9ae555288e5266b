package samplero_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

type listKey struct {
	kid, status, notBefore string
	pub                    ed25519.PublicKey
}

func keyListBody(issuer string, keys ...listKey) []byte {
	var ks []map[string]any
	for _, k := range keys {
		ks = append(ks, map[string]any{
			"kid": k.kid, "alg": "ed25519", "public_key": base64.StdEncoding.EncodeToString(k.pub),
			"not_before": k.notBefore, "not_after": nil, "status": k.status, "endorsement": "",
		})
	}
	b, _ := json.Marshal(map[string]any{"issuer": issuer, "keys": ks, "ca_chain": ""})
	return b
}

func (f *fakeServer) setSigner(kid string, key ed25519.PrivateKey, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kid, f.key, f.keysBody = kid, key, body
}

func TestTrustOnFirstUse(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, func(cfg *samplero.Config) { cfg.TrustedKeys = nil; cfg.Issuer = "" })
	// Activate fetches the key list first (nothing is trusted yet), then checks the lease's iss
	// against the list's issuer.
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
	if loadString(t, store, samplero.StoreKeyList) == "" {
		t.Fatal("key list not stored")
	}
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatal(err)
	}
	// The issuer of the trusted list is enforced afterwards.
	f.mu.Lock()
	f.leaseMod = func(h, cl map[string]any) { cl["iss"] = "https://other.test" }
	f.mu.Unlock()
	if _, err := c.Heartbeat(ctx); !errors.Is(err, samplero.ErrLeaseIssuer) {
		t.Fatalf("got %v", err)
	}

	// Without pinned TLS made by the client itself, nothing is trusted on first use.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.rootCAs()}}
	c2 := newClient(t, f, samplero.NewMemoryStorage(), func(cfg *samplero.Config) {
		cfg.TrustedKeys = nil
		cfg.HTTPClient = &http.Client{Transport: tr}
	})
	if _, err := c2.FetchKeys(ctx); !errors.Is(err, samplero.ErrNoTrustedKeys) {
		t.Fatalf("got %v", err)
	}
	if _, err := c2.Status(ctx, testLicenseKey); !errors.Is(err, samplero.ErrNoTrustedKeys) {
		t.Fatalf("got %v", err)
	}
}

func TestKeyRotationAndRollback(t *testing.T) {
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	store := samplero.NewMemoryStorage()
	c := newClient(t, f, store, nil)
	pub1 := f.key.Public().(ed25519.PublicKey)
	key1 := f.key
	pub2, key2, _ := ed25519.GenerateKey(rand.Reader)

	v1 := keyListBody(testIssuer, listKey{"srv-1", "active", "2026-01-01T00:00:00Z", pub1})
	v15 := keyListBody(testIssuer, listKey{"srv-1", "active", "2026-01-01T00:00:00Z", pub1}, listKey{"srv-2", "next", "2026-06-01T00:00:00Z", pub2})
	v2 := keyListBody(testIssuer, listKey{"srv-1", "retired", "2026-01-01T00:00:00Z", pub1}, listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2})

	f.setSigner("srv-1", key1, v1)
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	// srv-2 is not trusted yet: an answer it signs is refused.
	f.setSigner("srv-2", key2, v2)
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("unannounced key: %v", err)
	}
	// Announced as next by a list srv-1 signs, it becomes trusted and can take over.
	f.setSigner("srv-1", key1, v15)
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	f.setSigner("srv-2", key2, v2)
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatalf("activate with rotated key: %v", err)
	}
	// srv-1 is retired now, even though it is built into the client: its answers are refused.
	f.setSigner("srv-1", key1, v15)
	if _, err := c.Validate(ctx); !errors.Is(err, httpsig.ErrUnknownServerKey) {
		t.Fatalf("retired key: %v", err)
	}
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("old list signed by a retired key: %v", err)
	}
	// An older list signed by the current key is still refused (srv-1 would come back).
	f.setSigner("srv-2", key2, keyListBody(testIssuer, listKey{"srv-1", "active", "2026-01-01T00:00:00Z", pub1}, listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2}))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListRollback) {
		t.Fatalf("retired key back: %v", err)
	}
	f.setSigner("srv-2", key2, keyListBody(testIssuer, listKey{"srv-1", "retired", "2026-01-01T00:00:00Z", pub1}, listKey{"srv-2", "active", "2026-05-01T00:00:00Z", pub2}))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListRollback) {
		t.Fatalf("older not_before: %v", err)
	}
	// A list that drops the active key is refused; so is another issuer.
	_, key3, _ := ed25519.GenerateKey(rand.Reader)
	pub3 := key3.Public().(ed25519.PublicKey)
	f.setSigner("srv-2", key2, keyListBody(testIssuer, listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2}, listKey{"srv-3", "next", "2026-09-01T00:00:00Z", pub3}))
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatalf("dropping a retired key is fine: %v", err)
	}
	f.setSigner("srv-2", key2, keyListBody(testIssuer, listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2}))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListRollback) {
		t.Fatalf("next key dropped: %v", err)
	}
	f.setSigner("srv-2", key2, keyListBody("https://other.test", listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2}, listKey{"srv-3", "next", "2026-09-01T00:00:00Z", pub3}))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("issuer: %v", err)
	}
	// The signer must be the list's active key, not a next one.
	f.setSigner("srv-3", key3, keyListBody(testIssuer, listKey{"srv-2", "active", "2026-06-01T00:00:00Z", pub2}, listKey{"srv-3", "next", "2026-09-01T00:00:00Z", pub3}))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("next key signing the list: %v", err)
	}
}
