package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// TestE2EFlows runs the device flows of the protocol against one `samplero dev` (real SQLite,
// real Temporal dev server, real TLS with mTLS), the independent flows in parallel, and ends with
// the checks on what dev leaves behind: no license key or admin token in the database file or in
// its logs, no signature in its logs, and a graceful shutdown that completes a request in flight.
func TestE2EFlows(t *testing.T) {
	start := time.Now()
	d := startDev(t)
	t.Logf("dev ready after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	secrets := &secretSet{}
	secrets.add("admin token", d.adminTok)

	res, err := http.Get("http://" + d.http + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", res, err)
	}
	res.Body.Close()
	t.Log("flow 7: /readyz answered 200")

	t.Run("parallel", func(t *testing.T) {
		for _, kt := range []samplero.KeyType{samplero.KeyP256, samplero.KeyEd25519, samplero.KeyRSA2048} {
			t.Run("device lifecycle "+string(kt), func(t *testing.T) {
				t.Parallel()
				deviceLifecycle(ctx, t, d, kt, secrets)
			})
		}
		t.Run("owner approval through the e-mail link", func(t *testing.T) {
			t.Parallel()
			ownerApproval(ctx, t, d, secrets)
		})
		t.Run("grace period and recovery", func(t *testing.T) {
			t.Parallel()
			gracePeriod(ctx, t, d, secrets)
		})
		t.Run("SDK rejects a swapped answer", func(t *testing.T) {
			t.Parallel()
			swappedAnswers(ctx, t, d, secrets)
		})
		t.Run("seed anti-forgery scenarios", func(t *testing.T) {
			t.Parallel()
			antiForgery(ctx, t, d, secrets)
		})
	})
	if t.Failed() {
		return
	}

	// Graceful shutdown: a request whose body is still arriving when SIGTERM comes completes.
	inFlight := beginSlowAdminRequest(t, d, secrets)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listeners close at once; only then is the rest of the body sent.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.http, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the HTTP listener still accepts 5 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	status := inFlight()
	if status != 201 {
		t.Fatalf("the request in flight at SIGTERM answered %d, want 201", status)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of SIGTERM")
	}
	if d.waitErr != nil {
		t.Errorf("dev exited with %v", d.waitErr)
	}
	t.Log("flow 7: graceful shutdown completed the request in flight (201) and dev exited cleanly")

	// Nothing secret at rest: the SQLite files hold no license key (canonical or dashed) and no
	// admin token; the logs hold neither, nor any Signature value.
	var db []byte
	for _, name := range []string{"samplero.db", "samplero.db-wal", "samplero.db-shm"} {
		b, err := os.ReadFile(filepath.Join(d.data, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	logs := d.stdout.String() + d.stderr.String()
	// Controls: the scans look at the real data (the owner's address is stored in plain text, the
	// request log names the admin paths), so a miss below means something.
	if !strings.Contains(string(db), "approver-flow2@example.com") || !strings.Contains(logs, "/v1/admin/licenses/lic_") {
		t.Fatalf("the scans do not see the data they should (%d bytes of database, %d of logs)", len(db), len(logs))
	}
	keys, sigs := secrets.snapshot()
	if len(sigs) < 10 {
		t.Fatalf("only %d signature values were collected", len(sigs))
	}
	var keyCount int
	for label, v := range keys {
		if strings.HasPrefix(label, "license key") {
			keyCount++
		}
		if strings.Contains(string(db), v) {
			t.Errorf("the database holds the %s in plain text", label)
		}
		if strings.Contains(logs, v) {
			t.Errorf("dev's logs hold the %s", label)
		}
	}
	for _, s := range sigs {
		if strings.Contains(logs, s) {
			t.Errorf("dev's logs hold a Signature value (%.16s…)", s)
		}
	}
	t.Logf("flow 7: %d license keys (canonical and dashed) and the admin token are in neither the database (%d bytes) nor the logs; %d Signature values are not in the logs",
		keyCount, len(db), len(sigs))
	t.Logf("e2e flows took %v", time.Since(start).Round(time.Millisecond))
}

// secretSet collects what must never be at rest in plain text or in logs.
type secretSet struct {
	mu   sync.Mutex
	vals map[string]string
	sigs map[string]bool
}

func (s *secretSet) add(label, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vals == nil {
		s.vals = map[string]string{}
	}
	s.vals[label] = v
}

// addKey records a license key both dashed (as shown) and canonical (as looked up).
func (s *secretSet) addKey(key string) {
	s.add("license key "+key, key)
	s.add("canonical license key "+key, strings.ReplaceAll(key, "-", ""))
}

// addSignatures records the base64 values of a Signature header.
func (s *secretSet) addSignatures(h http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sigs == nil {
		s.sigs = map[string]bool{}
	}
	for _, v := range h.Values("Signature") {
		if i, j := strings.Index(v, ":"), strings.LastIndex(v, ":"); i >= 0 && j > i+1 {
			s.sigs[v[i+1:j]] = true
		}
	}
}

func (s *secretSet) snapshot() (map[string]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := map[string]string{}
	for k, v := range s.vals {
		vals[k] = v
	}
	var sigs []string
	for k := range s.sigs {
		sigs = append(sigs, k)
	}
	return vals, sigs
}

// send is Client.Send that records the answer's signature.
func send(ctx context.Context, c *samplero.Client, s *secretSet, r samplero.Request) (*samplero.Response, error) {
	resp, err := c.Send(ctx, r)
	if err == nil {
		s.addSignatures(resp.Header)
	}
	return resp, err
}

func (d *devProcess) product(t *testing.T, slug, first string, policy map[string]any) {
	t.Helper()
	p := map[string]any{"max_activations": 1, "first_activation": first, "heartbeat_interval_s": 3600, "grace_period_s": 7200}
	for k, v := range policy {
		p[k] = v
	}
	d.admin(t, "POST", "/v1/admin/products", map[string]any{
		"slug": slug, "name": "E2E " + slug, "type": "plugin", "price_cents": 900, "currency": "USD", "policy": p,
	}, 201)
}

func (d *devProcess) license(t *testing.T, s *secretSet, body map[string]any) (id, key string) {
	t.Helper()
	lic := d.admin(t, "POST", "/v1/admin/licenses", body, 201)
	id, _ = lic["id"].(string)
	key, _ = lic["key"].(string)
	if id == "" || key == "" {
		t.Fatalf("license: %v", lic)
	}
	s.addKey(key)
	return id, key
}

// activationOf finds an activation in the admin view of a license.
func (d *devProcess) activationOf(t *testing.T, licID, actID string) map[string]any {
	t.Helper()
	view := d.admin(t, "GET", "/v1/admin/licenses/"+licID, nil, 200)
	acts, _ := view["activations"].([]any)
	for _, a := range acts {
		if m, _ := a.(map[string]any); m["id"] == actID {
			return m
		}
	}
	t.Fatalf("activation %s is not in the view of %s: %v", actID, licID, view)
	return nil
}

// deviceLifecycle is flow 1 for one key type.
func deviceLifecycle(ctx context.Context, t *testing.T, d *devProcess, kt samplero.KeyType, s *secretSet) {
	slug := "e2e-life-" + strings.ToLower(string(kt))
	// One seat, one free transfer per 30 days: the supersede below uses it, so the deactivation
	// after it keeps the seat held.
	d.product(t, slug, "instant", map[string]any{"transfers_per_30d": 1})
	licID, key := d.license(t, s, map[string]any{"product": slug, "owner_email": "life-" + string(kt) + "@example.com"})
	fp := "e2e-" + string(kt) + "-device-a"
	stA := newMapStorage()
	a := d.clientWith(t, clientOpts{product: slug, fingerprint: fp, keyType: kt, storage: stA})

	act, err := a.Activate(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if act.HTTPStatus != 201 || act.ActivationID == "" || act.TrustLevel != 3 || act.LeaseInfo == nil {
		t.Fatalf("activate: %+v", act)
	}
	val, err := a.Validate(ctx)
	if err != nil || !val.Valid || val.Status != "active" || val.TrustLevel != 4 || val.ActivationID != act.ActivationID {
		t.Fatalf("validate over mTLS: %+v %v", val, err)
	}

	// Refusals of the signature checks, each a signed answer bound to its request.
	nonce := newNonce()
	resp, err := send(ctx, a, s, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
	expectSent(t, "first of a replayed pair", resp, err, 200, "")
	resp, err = send(ctx, a, s, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
	expectSent(t, "replay", resp, err, 409, "REPLAYED_NONCE")
	resp, err = send(ctx, a, s, samplero.Request{Path: "/v1/heartbeat", Body: []byte(`{}`), BodyAfterSigning: []byte(`{"plugin_version":"9.9.9"}`)})
	expectSent(t, "body tampered after signing", resp, err, 400, "DIGEST_MISMATCH")
	resp, err = send(ctx, a, s, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Created: time.Now().Add(-301 * time.Second)})
	expectSent(t, "created 301 s ago", resp, err, 401, "STALE_REQUEST")

	hb, err := a.Heartbeat(ctx)
	if err != nil || !hb.Valid || hb.TrustLevel != 4 || hb.LeaseInfo == nil || hb.Recovered {
		t.Fatalf("heartbeat: %+v %v", hb, err)
	}

	// The license is full: another device is refused.
	_, err = d.clientWith(t, clientOpts{product: slug, fingerprint: fp + "-other", keyType: kt}).Activate(ctx, key)
	expectProblem(t, "another device on a full license", err, 409, "ACTIVATION_LIMIT_EXCEEDED")

	// The same device again: the same activation.
	again, err := a.Activate(ctx, key)
	if err != nil || again.HTTPStatus != 200 || again.ActivationID != act.ActivationID {
		t.Fatalf("the same device again: %+v %v", again, err)
	}

	// A new key on the same fingerprint supersedes the old activation; the old certificate is done.
	b := d.clientWith(t, clientOpts{product: slug, fingerprint: fp, keyType: kt})
	actB, err := b.Activate(ctx, key)
	if err != nil || actB.HTTPStatus != 201 || actB.ActivationID == act.ActivationID {
		t.Fatalf("a new key on the same fingerprint: %+v %v", actB, err)
	}
	_, err = a.Validate(ctx)
	expectProblem(t, "the superseded certificate", err, 403, "ACTIVATION_REVOKED", "CERTIFICATE_REVOKED")
	if st := d.activationOf(t, licID, act.ActivationID)["status"]; st != "superseded" {
		t.Fatalf("the old activation is %v, want superseded", st)
	}
	if v, err := b.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("validate with the new key: %+v %v", v, err)
	}
	// The supersede was the one free transfer: the old seat was freed at once.
	if view := d.admin(t, "GET", "/v1/admin/licenses/"+licID, nil, 200); view["seats_used"] != 1.0 {
		t.Fatalf("seats_used after a supersede within the transfer limit: %v, want 1", view["seats_used"])
	}

	// Deactivating is the second transfer in 30 days on a policy of one: the seat stays held
	// until the last lease's exp, a new device is refused meanwhile, and the admin can release it.
	dr, err := b.Deactivate(ctx)
	if err != nil || dr.Status != "deactivated" || dr.TrustLevel != 4 {
		t.Fatalf("deactivate: %+v %v", dr, err)
	}
	if !dr.SeatReleasedAt.After(time.Now().Add(time.Hour)) || dr.SeatsUsed != 1 || dr.SeatsTotal != 1 {
		t.Fatalf("a transfer past the limit: seat_released_at %v, seats %d/%d; want held about 2 h", dr.SeatReleasedAt, dr.SeatsUsed, dr.SeatsTotal)
	}
	stC := newMapStorage()
	c := d.clientWith(t, clientOpts{product: slug, fingerprint: fp + "-c", keyType: kt, storage: stC})
	_, err = c.Activate(ctx, key)
	expectProblem(t, "a new device while the seat is held", err, 409, "ACTIVATION_LIMIT_EXCEEDED")
	rel := d.admin(t, "POST", "/v1/admin/activations/"+actB.ActivationID+"/release-seat", map[string]any{}, 200)
	if rel["seats_used"] != 0.0 {
		t.Fatalf("release-seat: %v", rel)
	}
	actC, err := c.Activate(ctx, key)
	if err != nil || actC.HTTPStatus != 201 {
		t.Fatalf("activate after release-seat: %+v %v", actC, err)
	}

	// Revoked: a signed valid:false; reinstated: valid again.
	d.admin(t, "POST", "/v1/admin/licenses/"+licID+"/revoke", map[string]any{"reason": "e2e"}, 200)
	if v, err := c.Validate(ctx); err != nil || v.Valid || v.Status != "revoked" {
		t.Fatalf("validate on a revoked license: %+v %v", v, err)
	}
	d.admin(t, "POST", "/v1/admin/licenses/"+licID+"/reinstate", map[string]any{}, 200)
	if v, err := c.Validate(ctx); err != nil || !v.Valid || v.Status != "active" {
		t.Fatalf("validate after reinstate: %+v %v", v, err)
	}

	// Renew with a new key: both certificates validate during the overlap; only the new renews.
	old := d.clientWith(t, clientOpts{product: slug, fingerprint: fp + "-c", keyType: kt, storage: stC.clone()})
	rn, err := c.Renew(ctx, true)
	if err != nil || rn.CertificateSerial == "" || rn.CertificateSerial == actC.CertificateSerial || rn.TrustLevel != 4 {
		t.Fatalf("renew: %+v %v", rn, err)
	}
	if v, err := c.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("validate with the renewed certificate: %+v %v", v, err)
	}
	if v, err := old.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("validate with the old certificate during the overlap: %+v %v", v, err)
	}
	// The server accepts a heartbeat with the old certificate; its lease is bound to the new key
	// (cnf), which the old copy of the device rightly refuses to store, so it is sent raw.
	resp, err = send(ctx, old, s, samplero.Request{Path: "/v1/heartbeat", Body: []byte(`{}`)})
	expectSent(t, "heartbeat with the old certificate during the overlap", resp, err, 200, "")
	if !strings.Contains(string(resp.Body), `"valid":true`) {
		t.Fatalf("heartbeat with the old certificate: %s", resp.Body)
	}
	_, err = old.Renew(ctx, false)
	expectProblem(t, "renew with the old certificate", err, 403, "CERTIFICATE_REVOKED")
	_, err = old.Deactivate(ctx)
	expectProblem(t, "deactivate with the old certificate", err, 403, "CERTIFICATE_REVOKED")
	if v, err := c.Validate(ctx); err != nil || !v.Valid {
		t.Fatalf("validate with the renewed certificate after the old one was refused: %+v %v", v, err)
	}
	if cs := d.activationOf(t, licID, actC.ActivationID)["certificate_serial"]; cs != rn.CertificateSerial {
		t.Fatalf("the admin view names certificate %v, want the renewed %s", cs, rn.CertificateSerial)
	}
	t.Logf("flow 1 (%s): activate, mTLS validate, replay 409, tamper 400, stale 401, heartbeat, seat limit 409, same device 200, supersede, held transfer, release-seat, revoke/reinstate, renew: ok", kt)
}

var confirmLink = regexp.MustCompile(`https?://[^\s"<>]+/claims/confirm\?token=[^\s"<>]+`)

// ownerApproval is flow 2.
func ownerApproval(ctx context.Context, t *testing.T, d *devProcess, s *secretSet) {
	d.product(t, "e2e-approval", "owner_approval", nil)
	owner := "approver-flow2@example.com"
	licID, key := d.license(t, s, map[string]any{"product": "e2e-approval", "owner_email": owner})
	c := d.client(t, "e2e-approval", "e2e-approval-device")
	act, err := c.Activate(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if act.HTTPStatus != 202 || act.Pending == nil || act.Pending.ClaimID == "" || act.Pending.NextStep != "approve_in_account" {
		t.Fatalf("activate on owner_approval: %+v", act)
	}
	claimID := act.Pending.ClaimID

	// The e-mail is delivered by the emaildelivery workflow: its history shows the activity.
	raw := waitForMail(t, filepath.Join(d.data, "outbox"), owner, 30*time.Second)
	history := workflowHistory(ctx, t, d, "email/claim-"+claimID)
	var hist struct {
		Events []struct {
			EventType string `json:"eventType"`
			Scheduled *struct {
				ActivityType struct {
					Name string `json:"name"`
				} `json:"activityType"`
			} `json:"activityTaskScheduledEventAttributes"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(history), &hist); err != nil {
		t.Fatalf("temporal workflow show -o json: %v\n%.2000s", err, history)
	}
	var scheduled, completed int
	for _, e := range hist.Events {
		if e.Scheduled != nil && e.Scheduled.ActivityType.Name == "emaildelivery.Deliver" {
			scheduled++
		}
		if strings.HasSuffix(e.EventType, "ACTIVITY_TASK_COMPLETED") {
			completed++
		}
	}
	if scheduled != 1 || completed != 1 {
		t.Fatalf("the history of email/claim-%s has %d emaildelivery.Deliver activities and %d completed, want 1 and 1:\n%.3000s", claimID, scheduled, completed, history)
	}
	text := mailText(t, raw)
	link := confirmLink.FindString(text)
	if link == "" || !strings.Contains(text, "e2e-approval-device") {
		t.Fatalf("the e-mail has no confirmation link or does not name the device:\n%s", text)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	token := u.Query().Get("token")
	// Links go to dev's HTTP listener (the public URL of dev).
	pageURL := "http://" + d.http + u.RequestURI()

	// GET shows the device and changes nothing.
	for range 2 {
		res, err := http.Get(pageURL)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(page), "e2e-approval-device") || !strings.Contains(string(page), `method="post"`) {
			t.Fatalf("GET confirmation page: %d\n%s", res.StatusCode, page)
		}
	}
	if b, err := c.Bootstrap(ctx, ""); err != nil || b.Pending == nil || b.Pending.ClaimID != claimID {
		t.Fatalf("bootstrap after GET of the link: %+v %v (want still 202)", b, err)
	}
	if view := d.admin(t, "GET", "/v1/admin/licenses/"+licID, nil, 200); view["seats_used"] != 0.0 {
		t.Fatalf("the GET changed the license: %v", view)
	}

	// POST from the page approves; the token is spent.
	postForm := func() (int, string) {
		res, err := http.PostForm(pageURL, url.Values{"token": {token}, "decision": {"approve"}})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if st, page := postForm(); st != 200 || !strings.Contains(page, "Device approved") {
		t.Fatalf("POST approve: %d\n%s", st, page)
	}
	if st, page := postForm(); st < 400 || st >= 500 {
		t.Fatalf("the token worked twice: %d\n%s", st, page)
	}
	boot, err := c.Bootstrap(ctx, "")
	if err != nil || boot.ActivationID == "" || boot.Pending != nil || boot.Certificate == "" {
		t.Fatalf("bootstrap after approval: %+v %v", boot, err)
	}
	if v, err := c.Validate(ctx); err != nil || !v.Valid || v.TrustLevel != 4 || v.ActivationID != boot.ActivationID {
		t.Fatalf("validate after bootstrap: %+v %v", v, err)
	}
	t.Logf("flow 2: claim %s: 202, e-mail via workflow email/claim-%s (Deliver activity in its history), GET changes nothing, POST approves once, bootstrap, validate: ok", claimID, claimID)
}

// workflowHistory returns the JSON history of a workflow, through the temporal CLI, once the
// workflow has completed.
func workflowHistory(ctx context.Context, t *testing.T, d *devProcess, id string) string {
	t.Helper()
	bin := os.Getenv("SAMPLERO_TEMPORAL_CLI")
	if bin == "" {
		bin = "temporal"
		if p, err := exec.LookPath(bin); err == nil {
			bin = p
		} else if home, err := os.UserHomeDir(); err == nil {
			bin = filepath.Join(home, "go", "bin", "temporal")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, bin, "workflow", "show", "--workflow-id", id,
			"--address", "127.0.0.1:"+strconv.Itoa(d.temporalPort), "-o", "json").CombinedOutput()
		if err == nil && (strings.Contains(string(out), "WorkflowExecutionCompleted") || strings.Contains(string(out), "WORKFLOW_EXECUTION_COMPLETED")) {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporal workflow show %s: %v\n%.2000s", id, err, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// gracePeriod is flow 3 on a policy of a 2 s heartbeat interval and a 5 s grace period.
func gracePeriod(ctx context.Context, t *testing.T, d *devProcess, s *secretSet) {
	d.product(t, "e2e-grace", "instant", map[string]any{"heartbeat_interval_s": 2, "grace_period_s": 5})
	_, key := d.license(t, s, map[string]any{"product": "e2e-grace"})
	c := d.client(t, "e2e-grace", "e2e-grace-device")
	act, err := c.Activate(ctx, key)
	activated := time.Now()
	if err != nil || act.HTTPStatus != 201 || act.HeartbeatIntervalS != 2 || act.GracePeriodS != 5 {
		t.Fatalf("activate: %+v %v", act, err)
	}
	// Poll validate: the states must come in this order, each within its window (stored times
	// have whole seconds, and a loaded machine answers late: windows have a second or two of slack).
	want := []struct {
		status string
		valid  bool
		after  time.Duration // not entered before
		by     time.Duration // entered by then
	}{{"active", true, 0, 0}, {"grace_period", true, time.Second, 4 * time.Second}, {"grace_period_expired", false, 4 * time.Second, 8 * time.Second}}
	var seen []string
	stage := 0
	if v, err := c.Validate(ctx); err != nil || !v.Valid || v.Status != "active" || v.Action != "" {
		t.Fatalf("validate at once: %+v %v", v, err)
	}
	for stage < len(want)-1 {
		v, err := c.Validate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != want[stage].status {
			if stage+1 < len(want) && v.Status == want[stage+1].status {
				stage++
				at := time.Since(activated)
				if at < want[stage].after {
					t.Fatalf("%s already %v after activation", v.Status, at)
				}
				seen = append(seen, v.Status+" at "+at.Round(100*time.Millisecond).String())
			} else {
				t.Fatalf("after %v: status %s, want %s or %s", time.Since(activated), v.Status, want[stage].status, want[min(stage+1, len(want)-1)].status)
			}
		}
		w := want[stage]
		if v.Valid != w.valid || (stage > 0 && v.Action != "heartbeat_required") || (w.status == "grace_period_expired" && v.GracePeriodRemainingS != 0) {
			t.Fatalf("after %v: %+v, want valid=%v action heartbeat_required", time.Since(activated), v, w.valid)
		}
		if stage+1 < len(want) && time.Since(activated) > want[stage+1].by {
			t.Fatalf("still %s %v after activation", v.Status, time.Since(activated))
		}
		if stage < len(want)-1 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	hb, err := c.Heartbeat(ctx)
	if err != nil || !hb.Valid || !hb.Recovered || hb.PreviousStatus != "grace_period_expired" || hb.Status != "active" {
		t.Fatalf("heartbeat after expiry: %+v %v", hb, err)
	}
	if v, err := c.Validate(ctx); err != nil || !v.Valid || v.Status != "active" {
		t.Fatalf("validate after recovery: %+v %v", v, err)
	}
	t.Logf("flow 3: active → %s (valid, heartbeat_required) → %s (invalid) → heartbeat recovered from grace_period_expired → active: ok", seen[0], seen[1])
}

// swapProxy is a TLS reverse proxy in front of dev's device endpoints that can hand a client
// the answer to another request (another nonce) or to another path.
type swapProxy struct {
	mu   sync.Mutex
	mode string // "pass", "replay" (the last recorded answer), "path" (forward to /v1/status)
	last *recorded
	s    *secretSet
}

type recorded struct {
	status int
	header http.Header
	body   []byte
}

func (p *swapProxy) ServeHTTP(w http.ResponseWriter, r *http.Request, upstream *httputil.ReverseProxy) {
	p.s.addSignatures(r.Header)
	p.mu.Lock()
	mode, last := p.mode, p.last
	p.mu.Unlock()
	if r.URL.Path == "/v1/keys" {
		mode = "pass"
	}
	switch mode {
	case "replay":
		for k, v := range last.header {
			w.Header()[k] = v
		}
		w.WriteHeader(last.status)
		w.Write(last.body)
		return
	case "path":
		r.URL.Path, r.URL.RawPath = "/v1/status", ""
	}
	rec := httptest.NewRecorder()
	upstream.ServeHTTP(rec, r)
	if r.URL.Path != "/v1/keys" {
		p.mu.Lock()
		p.last = &recorded{status: rec.Code, header: rec.Header().Clone(), body: rec.Body.Bytes()}
		p.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (p *swapProxy) set(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
}

// testServerCert makes a self-signed certificate for 127.0.0.1, and the pool that trusts it.
func testServerCert(t *testing.T) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "e2e proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// swappedAnswers is flow 4: a proxy hands the SDK a genuine signed answer of dev, but one made
// for another request; the SDK must refuse it.
func swappedAnswers(ctx context.Context, t *testing.T, d *devProcess, s *secretSet) {
	d.product(t, "e2e-proxy", "instant", nil)
	_, key := d.license(t, s, map[string]any{"product": "e2e-proxy"})
	target, _ := url.Parse("http://" + d.http)
	upstream := httputil.NewSingleHostReverseProxy(target)
	proxy := &swapProxy{mode: "pass", s: s}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxy.ServeHTTP(w, r, upstream) }))
	tlsCert, leaf := testServerCert(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	srv.StartTLS()
	defer srv.Close()
	roots := caPool(t, filepath.Join(d.data, "pki", "ca-chain.pem"))
	roots.AddCert(leaf)
	c := d.clientWith(t, clientOpts{product: "e2e-proxy", fingerprint: "e2e-proxy-device", baseURL: srv.URL, roots: roots})

	// Through the proxy untouched, answers verify: what fails below is the swap, not the proxy.
	st, err := c.Status(ctx, key)
	if err != nil || st.Status != "active" {
		t.Fatalf("status through the proxy: %+v %v", st, err)
	}
	// The previous answer (another nonce) handed to a new request.
	proxy.set("replay")
	_, err = c.Status(ctx, key)
	if !errors.Is(err, samplero.ErrUnverified) || !errors.Is(err, httpsig.ErrNonceMismatch) {
		t.Fatalf("an answer with another nonce: %v, want ErrUnverified/ErrNonceMismatch", err)
	}
	// Send signs with a key of its own (status needs no activation).
	probe, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := send(ctx, c, s, samplero.Request{Path: "/v1/status", Body: []byte(`{"license_key":"` + key + `"}`), Key: probe})
	if err != nil || !errors.Is(resp.Verified, httpsig.ErrNonceMismatch) {
		t.Fatalf("Send with a replayed answer: %v %v", resp, err)
	}
	// An answer with this request's nonce, but made for another path.
	proxy.set("path")
	resp, err = send(ctx, c, s, samplero.Request{Path: "/v1/validate", Body: []byte(`{"license_key":"` + key + `"}`), Key: probe})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || !strings.Contains(string(resp.Body), `"seats_total"`) {
		t.Fatalf("the proxy did not swap in the status answer: %d %s", resp.Status, resp.Body)
	}
	if resp.Verified == nil || errors.Is(resp.Verified, httpsig.ErrNonceMismatch) {
		t.Fatalf("an answer for another path verified as %v, want a signature failure", resp.Verified)
	}
	proxy.set("pass")
	if _, err := c.Status(ctx, key); err != nil {
		t.Fatalf("status through the proxy after the swaps: %v", err)
	}
	t.Logf("flow 4: the SDK refuses an answer with another nonce (%v) and one for another path (%v)", httpsig.ErrNonceMismatch, resp.Verified)
}

// antiForgery ports the seed's anti-forgery scenarios (seed-spec 10.3) to this protocol.
func antiForgery(ctx context.Context, t *testing.T, d *devProcess, s *secretSet) {
	d.product(t, "e2e-forgery", "instant", map[string]any{"max_activations": 2})
	licA, keyA := d.license(t, s, map[string]any{"product": "e2e-forgery"})
	licB, keyB := d.license(t, s, map[string]any{"product": "e2e-forgery"})
	c := d.client(t, "e2e-forgery", "e2e-forgery-device")
	act, err := c.Activate(ctx, keyA)
	if err != nil || act.HTTPStatus != 201 {
		t.Fatalf("activate: %+v %v", act, err)
	}
	viewB := func() string {
		v := d.admin(t, "GET", "/v1/admin/licenses/"+licB, nil, 200)
		b, _ := json.Marshal(v)
		return string(b)
	}
	beforeB := viewB()

	// A signature made over an activate for license A, the body then sent for license B: the
	// digest no longer matches; with the digest recomputed, the signature does not verify.
	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bodyFor := func(licenseKey string) []byte {
		b, _ := json.Marshal(map[string]string{"license_key": licenseKey, "device_fingerprint": "e2e-forger-device",
			"platform": "linux", "plugin_version": "1.0.0", "product": "e2e-forgery", "csr": csrFor(t, forger)})
		return b
	}
	signed, swapped := bodyFor(keyA), bodyFor(keyB)
	resp, err := send(ctx, c, s, samplero.Request{Path: "/v1/activate", Body: signed, Key: forger, NoClientCert: true, BodyAfterSigning: swapped})
	expectSent(t, "activate signed for A, sent for B", resp, err, 400, "DIGEST_MISMATCH")
	resp, err = send(ctx, c, s, samplero.Request{Path: "/v1/activate", Body: signed, Key: forger, NoClientCert: true, BodyAfterSigning: swapped,
		OverrideHeaders: http.Header{"Content-Digest": {httpsig.ContentDigest(swapped)}}})
	expectSent(t, "activate signed for A, sent for B with its digest", resp, err, 401, "INVALID_SIGNATURE")
	if after := viewB(); after != beforeB {
		t.Fatalf("a forged activate changed license B:\n%s\n%s", beforeB, after)
	}

	// An unsigned heartbeat: SIGNATURE_REQUIRED, and the heartbeat clock does not move.
	lastHB := func() any { return d.activationOf(t, licA, act.ActivationID)["last_heartbeat_at"] }
	hb0 := lastHB()
	time.Sleep(1100 * time.Millisecond) // stored times have whole seconds
	resp, err = send(ctx, c, s, samplero.Request{Path: "/v1/heartbeat", Body: []byte(`{}`), OmitHeaders: []string{"Signature", "Signature-Input", "Content-Digest"}, SkipVerify: true})
	if err != nil || resp.Status != 401 || !strings.Contains(string(resp.Body), `"SIGNATURE_REQUIRED"`) || resp.Header.Get("Signature") == "" {
		t.Fatalf("unsigned heartbeat: %v %v", resp, err)
	}
	// A heartbeat whose signature is not the device's: INVALID_SIGNATURE, and nothing moves.
	bogus := make([]byte, 64)
	_, _ = rand.Read(bogus)
	resp, err = send(ctx, c, s, samplero.Request{Path: "/v1/heartbeat", Body: []byte(`{}`),
		OverrideHeaders: http.Header{"Signature": {"sig1=:" + base64.StdEncoding.EncodeToString(bogus) + ":"}}})
	expectSent(t, "heartbeat with a bad signature", resp, err, 401, "INVALID_SIGNATURE")
	if hb1 := lastHB(); hb1 != hb0 {
		t.Fatalf("a refused heartbeat moved last_heartbeat_at from %v to %v", hb0, hb1)
	}
	if h, err := c.Heartbeat(ctx); err != nil || !h.Valid {
		t.Fatalf("a good heartbeat: %+v %v", h, err)
	}
	if hb2 := lastHB(); hb2 == hb0 {
		t.Fatalf("a good heartbeat did not move last_heartbeat_at (%v): the check above proves nothing", hb2)
	}
	t.Log("flow 8: forged license_key (DIGEST_MISMATCH, then INVALID_SIGNATURE, license B unchanged), unsigned heartbeat SIGNATURE_REQUIRED, bad signature INVALID_SIGNATURE with the heartbeat clock unmoved: ok")
}

func csrFor(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// beginSlowAdminRequest opens a raw connection to dev's HTTP listener and sends a license
// creation with half its body; the returned function sends the rest and returns the status.
func beginSlowAdminRequest(t *testing.T, d *devProcess, s *secretSet) func() int {
	t.Helper()
	body := []byte(`{"product":"e2e-grace","owner_email":"inflight@example.com"}`)
	conn, err := net.Dial("tcp", d.http)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := "POST /v1/admin/licenses HTTP/1.1\r\nHost: " + d.http + "\r\nAuthorization: Bearer " + d.adminTok +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(head), body[:10]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server has the connection and is reading the body
	return func() int {
		t.Helper()
		if _, err := conn.Write(body[10:]); err != nil {
			t.Fatalf("finishing the request in flight: %v", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("the request in flight got no answer: %v", err)
		}
		defer res.Body.Close()
		var lic map[string]any
		_ = json.NewDecoder(res.Body).Decode(&lic)
		if k, _ := lic["key"].(string); k != "" {
			s.addKey(k)
		}
		return res.StatusCode
	}
}
