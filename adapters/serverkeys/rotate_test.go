package serverkeys_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/ports/portstest"
)

// testRoot is an offline root as init-root makes it: ECDSA P-384, self-signed CA.
type testRoot struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newRoot(t *testing.T) testRoot {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test Root"},
		NotBefore:             t0.AddDate(-1, 0, 0),
		NotAfter:              t0.AddDate(20, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testRoot{key: key, cert: cert}
}

// statuses renders Published as "kid:status" in order.
func statuses(k *serverkeys.Keys) []string {
	var out []string
	for _, p := range k.Published() {
		out = append(out, p.KID+":"+p.Status)
	}
	return out
}

func activeKID(k *serverkeys.Keys) string {
	kid, _ := k.Active()
	return kid
}

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

// leaseKID signs a lease and returns the kid of its header.
func leaseKID(t *testing.T, k *serverkeys.Keys) string {
	t.Helper()
	token, err := k.SignLease(context.Background(), sampleClaims())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h struct {
		KID string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.KID
}

func TestRotationTimeline(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	var horizonCalls atomic.Int32
	k, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithLeaseHorizon(func(context.Context) (time.Duration, error) {
		horizonCalls.Add(1)
		return 30 * 24 * time.Hour, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)

	// rotate-signing-key on the same directory, as another process would do it.
	nb := t0.Add(7 * 24 * time.Hour)
	b, err := serverkeys.CreateNext(dir, nb, serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	if b.KID == a || !b.NotBefore.Equal(nb) || !b.NotAfter.Equal(nb.Add(serverkeys.DefaultValidity)) {
		t.Fatalf("next key %+v", b)
	}
	// Not seen before the next directory check, a second later.
	mustEqual(t, "before reload", statuses(k), []string{a + ":active"})
	clk.Advance(time.Second)
	mustEqual(t, "after reload", statuses(k), []string{a + ":active", b.KID + ":next"})
	mustEqual(t, "signer", leaseKID(t, k), a)

	// One second before not_before: still a. At not_before: b, without a restart.
	clk.Set(nb.Add(-time.Second))
	mustEqual(t, "just before", activeKID(k), a)
	clk.Set(nb)
	mustEqual(t, "active at not_before", activeKID(k), b.KID)
	mustEqual(t, "lease signer", leaseKID(t, k), b.KID)
	mustEqual(t, "at not_before", statuses(k), []string{b.KID + ":active", a + ":retired"})

	// Retired a stays published until retired_at (= nb) + the lease horizon (30 days here, the
	// longest grace period), asked for only when the drop-out comes due.
	clk.Set(nb.Add(20 * 24 * time.Hour))
	mustEqual(t, "day 20", statuses(k), []string{b.KID + ":active", a + ":retired"})
	if n := horizonCalls.Load(); n != 1 {
		t.Fatalf("horizon asked %d times by day 20, want once (when the 7-day floor passed)", n)
	}
	clk.Set(nb.Add(30*24*time.Hour - time.Second))
	mustEqual(t, "day 30 - 1s", statuses(k), []string{b.KID + ":active", a + ":retired"})
	clk.Set(nb.Add(30 * 24 * time.Hour))
	mustEqual(t, "day 30", statuses(k), []string{b.KID + ":active"})

	// A restart computes the same state from the files alone.
	again, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithLeaseHorizon(func(context.Context) (time.Duration, error) { return 30 * 24 * time.Hour, nil }))
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "reopened", statuses(again), []string{b.KID + ":active"})
}

func TestLeaseHorizonGrowsAndFails(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	horizon := 10 * 24 * time.Hour
	var fail atomic.Bool
	var mu sync.Mutex
	k, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithLeaseHorizon(func(context.Context) (time.Duration, error) {
		if fail.Load() {
			return 0, errors.New("database down")
		}
		mu.Lock()
		defer mu.Unlock()
		return horizon, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)
	b, err := serverkeys.CreateNext(dir, t0.Add(time.Hour), serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(time.Hour))
	mustEqual(t, "switched", activeKID(k), b.KID)

	// Horizon 10 days at first; a product with a 40-day grace appears before a's drop-out: asked
	// again when it comes due, the key stays.
	clk.Set(t0.Add(time.Hour + 8*24*time.Hour))
	mustEqual(t, "day 8", len(k.Published()), 2)
	mu.Lock()
	horizon = 40 * 24 * time.Hour
	mu.Unlock()
	clk.Set(t0.Add(time.Hour + 10*24*time.Hour + 2*time.Minute))
	mustEqual(t, "day 10 with a longer grace", statuses(k), []string{b.KID + ":active", a + ":retired"})
	// The lookup fails: the key stays published (never dropped on doubt).
	fail.Store(true)
	clk.Set(t0.Add(time.Hour + 41*24*time.Hour))
	mustEqual(t, "lookup failing", statuses(k), []string{b.KID + ":active", a + ":retired"})
	fail.Store(false)
	clk.Advance(2 * time.Minute)
	mustEqual(t, "lookup back", statuses(k), []string{b.KID + ":active"})

	// A horizon shorter than the default grace is raised to it.
	if serverkeys.DefaultLeaseHorizon != 7*24*time.Hour {
		t.Fatal("DefaultLeaseHorizon is the default grace period")
	}
}

func TestReloadWithoutRestart(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	var logs bytes.Buffer
	var logMu sync.Mutex
	k, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)

	// An operator retires a at once (a leaked key) and adds c valid from now: both in one second.
	c, err := serverkeys.CreateNext(dir, t0, serverkeys.DefaultValidity, portstest.NewFakeClock(t0))
	if err == nil {
		t.Fatalf("a next key with the active key's not_before was accepted: %+v", c)
	}
	clk.Advance(10 * time.Second)
	mustEqual(t, "checked", activeKID(k), a) // the directory is checked now
	c, err = serverkeys.CreateNext(dir, clk.Now(), serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "same second", activeKID(k), a) // not checked again within the second
	clk.Advance(time.Second)
	mustEqual(t, "after a second", activeKID(k), c.KID)

	// A half-written file does not replace good keys; once whole, it is read.
	bad := filepath.Join(dir, "AAAAAAAAAAAAAAAAAAAAAA.json")
	if err := os.WriteFile(bad, []byte(`{"kid": "AAAA`), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	mustEqual(t, "bad file ignored", activeKID(k), c.KID)
	logMu.Lock()
	if !strings.Contains(logs.String(), "does not load") {
		t.Fatalf("no error logged: %s", logs.String())
	}
	logMu.Unlock()
	if err := k.Reload(); err == nil {
		t.Fatal("Reload accepted a broken directory")
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	rewrite(t, dir, a, func(m map[string]any) { m["retired_at"] = clk.Now().Format(time.RFC3339) })
	clk.Advance(time.Second)
	mustEqual(t, "operator-retired key", statuses(k), []string{c.KID + ":active", a + ":retired"})
	// The operator retires c too: nothing would be active, so the change is refused and logged.
	rewrite(t, dir, c.KID, func(m map[string]any) { m["retired_at"] = clk.Now().Format(time.RFC3339) })
	clk.Advance(time.Second)
	mustEqual(t, "refused: no active key left", activeKID(k), c.KID)
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestCreateNextRules(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	if _, err := serverkeys.Open(dir, "iss", clk); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	for name, nb := range map[string]time.Time{
		"in the past":    clk.Now().Add(-time.Second),
		"not a second":   clk.Now().Add(time.Hour + time.Millisecond),
		"before current": t0,
	} {
		if _, err := serverkeys.CreateNext(dir, nb, serverkeys.DefaultValidity, clk); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
	if _, err := serverkeys.CreateNext(dir, clk.Now().Add(time.Hour), time.Minute, clk); err == nil {
		t.Fatal("a one-minute validity was accepted")
	}
	b, err := serverkeys.CreateNext(dir, clk.Now().Add(time.Hour), 24*time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serverkeys.CreateNext(dir, clk.Now().Add(2*time.Hour), 24*time.Hour, clk); err == nil || !strings.Contains(err.Error(), b.KID) {
		t.Fatalf("a second next key: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, b.KID+".json")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatal("next key file is not 0600")
	}
	got, err := serverkeys.ClaimsFor(dir, b.KID)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("ClaimsFor: %+v %v", got, err)
	}
	if _, err := serverkeys.ClaimsFor(dir, "BBBBBBBBBBBBBBBBBBBBBB"); err == nil {
		t.Fatal("ClaimsFor an unknown kid")
	}
	if _, err := serverkeys.ClaimsFor(dir, "../x"); err == nil {
		t.Fatal("ClaimsFor a path")
	}
}

func TestEndorsementGate(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	root := newRoot(t)
	k, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithRoot(root.cert))
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)
	if p := k.Published()[0]; p.Endorsement != nil {
		t.Fatal("endorsement before any was installed")
	}
	// dev endorses what it has.
	done, err := serverkeys.EndorseAll(dir, root.key, root.cert, clk)
	if err != nil || !reflect.DeepEqual(done, []string{a}) {
		t.Fatalf("EndorseAll: %v %v", done, err)
	}
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	pa := k.Published()[0]
	if pa.Endorsement == nil || serverkeys.VerifyEndorsement(root.cert, *pa.Endorsement, serverkeys.ClaimsOf(pa)) != nil {
		t.Fatal("published endorsement missing or not verifying")
	}

	// b is due but not endorsed: a keeps signing, b stays next.
	nb := t0.Add(24 * time.Hour)
	b, err := serverkeys.CreateNext(dir, nb, serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(nb.Add(time.Hour))
	mustEqual(t, "unendorsed successor", statuses(k), []string{a + ":active", b.KID + ":next"})

	// The offline root endorses the request; install-endorsement an hour later: b takes over then.
	req, err := serverkeys.ParseRequest(b.Request())
	if err != nil || !reflect.DeepEqual(req, b) {
		t.Fatalf("request round trip: %+v %v", req, err)
	}
	e, err := serverkeys.Endorse(root.key, root.cert, req)
	if err != nil {
		t.Fatal(err)
	}
	// Installing another root's endorsement fails.
	other := newRoot(t)
	eOther, err := serverkeys.Endorse(other.key, other.cert, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := serverkeys.Install(dir, eOther, root.cert, clk); !errors.Is(err, serverkeys.ErrEndorsementSignature) {
		t.Fatalf("another root's endorsement: %v", err)
	}
	kid, changed, err := serverkeys.Install(dir, e, root.cert, clk)
	if err != nil || kid != b.KID || !changed {
		t.Fatalf("install: %s %v %v", kid, changed, err)
	}
	if _, changed, err := serverkeys.Install(dir, e, root.cert, clk); err != nil || changed {
		t.Fatalf("install again: changed=%v err=%v", changed, err)
	}
	clk.Advance(time.Second)
	mustEqual(t, "endorsed successor", statuses(k), []string{b.KID + ":active", a + ":retired"})
	// retired_at is the install time (a signed until then), not not_before.
	st, err := serverkeys.State(dir, root.cert, nb.Add(time.Hour+time.Second+serverkeys.DefaultLeaseHorizon-2*time.Second))
	if err != nil || len(st) != 2 {
		t.Fatalf("state before drop-out: %+v %v", st, err)
	}
	st, err = serverkeys.State(dir, root.cert, nb.Add(time.Hour+serverkeys.DefaultLeaseHorizon))
	if err != nil || len(st) != 1 || st[0].KID != b.KID || !st[0].Endorsed {
		t.Fatalf("state after drop-out: %+v %v", st, err)
	}

	// An endorsement file that does not verify under the server's root is not published and does
	// not count: c, endorsed by another root, cannot take over from the endorsed b.
	nc := clk.Now().Add(time.Hour).Truncate(time.Second)
	c, err := serverkeys.CreateNext(dir, nc, serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	eC, err := serverkeys.Endorse(other.key, other.cert, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := serverkeys.Install(dir, eC, other.cert, clk); err != nil { // the wrong root at hand
		t.Fatal(err)
	}
	clk.Set(nc.Add(time.Minute))
	mustEqual(t, "foreign endorsement", statuses(k), []string{b.KID + ":active", c.KID + ":next", a + ":retired"})
	for _, p := range k.Published() {
		if p.KID == c.KID && p.Endorsement != nil {
			t.Fatal("an endorsement by another root was published")
		}
	}
}

func TestUnendorsedDeploymentsRotateByDate(t *testing.T) {
	// Without any endorsement (a deployment whose clients pin keys, not the root), a successor
	// takes over at its not_before.
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	k, err := serverkeys.Open(dir, "iss", clk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := serverkeys.CreateNext(dir, t0.Add(time.Hour), serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(time.Hour))
	mustEqual(t, "switched", activeKID(k), b.KID)
}

func TestConcurrentSigningAcrossRotation(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	k, err := serverkeys.Open(dir, "iss", clk)
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)
	b, err := serverkeys.CreateNext(dir, t0.Add(time.Minute), serverkeys.DefaultValidity, clk)
	if err != nil {
		t.Fatal(err)
	}
	pubs := map[string]ed25519.PublicKey{}
	clk.Advance(time.Second)
	for _, p := range k.Published() {
		pubs[p.KID] = ed25519.PublicKey(p.PublicKey)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				kid, signer := k.Active()
				sig, err := signer.Sign(nil, []byte("m"), crypto.Hash(0))
				if err != nil || (kid != a && kid != b.KID) || !ed25519.Verify(pubs[kid], []byte("m"), sig) {
					bad.Add(1)
				}
				_ = k.Published()
			}
		}()
	}
	for range 120 {
		clk.Advance(time.Second)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d signatures by a key that is not the one named", bad.Load())
	}
	mustEqual(t, "after", activeKID(k), b.KID)
}

func TestExpiryWarnings(t *testing.T) {
	dir := keysDir(t)
	clk := portstest.NewFakeClock(t0)
	var logs bytes.Buffer
	var mu sync.Mutex
	k, err := serverkeys.Open(dir, "iss", clk, serverkeys.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&logs, &mu}, nil))))
	if err != nil {
		t.Fatal(err)
	}
	a := activeKID(k)
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	clk.Set(t0.Add(serverkeys.DefaultValidity - 31*24*time.Hour))
	_ = activeKID(k)
	if strings.Contains(read(), "near") {
		t.Fatal("warned 31 days ahead")
	}
	clk.Set(t0.Add(serverkeys.DefaultValidity - 29*24*time.Hour))
	_ = activeKID(k)
	if !strings.Contains(read(), "not_after is near") {
		t.Fatalf("no warning 29 days ahead: %s", read())
	}
	// Past not_after with no successor, the key still signs (and says so).
	clk.Set(t0.Add(serverkeys.DefaultValidity + time.Hour))
	if got := activeKID(k); got != a {
		t.Fatalf("active %s", got)
	}
	if !strings.Contains(read(), "past its not_after and still signs") {
		t.Fatalf("no error past not_after: %s", read())
	}
}
