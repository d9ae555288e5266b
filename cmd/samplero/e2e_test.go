package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/samplero"
)

// The end-to-end test builds the binary, runs `samplero dev` on free ports with a fresh data
// directory (real SQLite, real Temporal dev server as a child process, real TLS), and drives it
// with the SDK the way a plugin would. The helpers are in e2e_helpers_test.go; the flows of the
// protocol beyond this smoke test are in e2e_flows_test.go, e2e_serve_test.go and e2e_mail_test.go.

func TestEndToEnd(t *testing.T) {
	start := time.Now()
	d := startDev(t)
	t.Logf("dev ready after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Readiness covers the database and Temporal.
	res, err := http.Get("http://" + d.http + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v", res, err)
	}
	res.Body.Close()
	// The Temporal Web UI answers on its port.
	res, err = http.Get("http://127.0.0.1:" + strconv.Itoa(d.uiPort) + "/")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("Temporal UI: %v %v", res, err)
	}
	res.Body.Close()

	t.Run("activate validate heartbeat replay deactivate", func(t *testing.T) {
		d.admin(t, "POST", "/v1/admin/products", map[string]any{
			"slug": "e2e-synth", "name": "E2E Synth", "type": "plugin", "price_cents": 4900, "currency": "USD",
			"policy": map[string]any{"max_activations": 2, "first_activation": "instant", "heartbeat_interval_s": 86400, "grace_period_s": 604800},
		}, 201)
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-synth", "owner_email": "buyer@example.com"}, 201)
		key, _ := lic["key"].(string)
		if !strings.HasPrefix(key, "VST-") {
			t.Fatalf("license key %q", key)
		}
		c := d.client(t, "e2e-synth", "e2e-device-0001")
		act, err := c.Activate(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if act.HTTPStatus != 201 || act.ActivationID == "" || act.LeaseInfo == nil || act.TrustLevel != 3 {
			t.Fatalf("activate: %+v", act)
		}
		val, err := c.Validate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !val.Valid || val.Status != "active" || val.TrustLevel != 4 || val.ActivationID != act.ActivationID {
			t.Fatalf("validate over mTLS: %+v", val)
		}
		hb, err := c.Heartbeat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hb.Valid || hb.LeaseInfo == nil || hb.TrustLevel != 4 {
			t.Fatalf("heartbeat: %+v", hb)
		}
		if _, err := c.CheckOffline(""); err != nil {
			t.Fatalf("the stored lease does not verify offline: %v", err)
		}

		// The same signed request twice: the second is a replay, refused with a signed 409.
		nonce := newNonce()
		first, err := c.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
		if err != nil || first.Status != 200 || first.Verified != nil {
			t.Fatalf("first request: %+v %v", first, err)
		}
		again, err := c.Send(ctx, samplero.Request{Path: "/v1/validate", Body: []byte(`{}`), Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		if again.Status != 409 || !strings.Contains(string(again.Body), "REPLAYED_NONCE") || again.Verified != nil {
			t.Fatalf("replay: %d %s (verified: %v)", again.Status, again.Body, again.Verified)
		}

		// The admin view shows the activation; deactivating frees the seat.
		view := d.admin(t, "GET", "/v1/admin/licenses/"+lic["id"].(string), nil, 200)
		if view["seats_used"].(float64) != 1 {
			t.Fatalf("seats_used %v", view["seats_used"])
		}
		dr, err := c.Deactivate(ctx)
		if err != nil || dr.Status != "deactivated" || dr.SeatsUsed != 0 {
			t.Fatalf("deactivate: %+v %v", dr, err)
		}
		st, err := d.client(t, "e2e-synth", "e2e-device-0002").Status(ctx, key)
		if err != nil || st.SeatsUsed != 0 || st.Status != "active" {
			t.Fatalf("status: %+v %v", st, err)
		}
	})

	t.Run("owner approval mail goes through Temporal to the outbox", func(t *testing.T) {
		d.admin(t, "POST", "/v1/admin/products", map[string]any{
			"slug": "e2e-pack", "name": "E2E Pack", "type": "sample_pack", "price_cents": 1900, "currency": "EUR",
			"policy": map[string]any{"max_activations": 1, "first_activation": "owner_approval", "heartbeat_interval_s": 3600, "grace_period_s": 7200},
		}, 201)
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-pack", "owner_email": "owner@example.com"}, 201)
		c := d.client(t, "e2e-pack", "e2e-device-0003")
		act, err := c.Activate(ctx, lic["key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if act.HTTPStatus != 202 || act.Pending == nil {
			t.Fatalf("activate on owner_approval: %+v", act)
		}
		mail := waitForMail(t, filepath.Join(d.data, "outbox"), "owner@example.com", 30*time.Second)
		if !strings.Contains(mail, "To: <owner@example.com>") || !strings.Contains(mail, "multipart/alternative") {
			t.Fatalf("confirmation e-mail:\n%s", mail)
		}
		// An admin approves; the device then bootstraps to an active activation.
		d.admin(t, "POST", "/v1/admin/claims/"+act.Pending.ClaimID+"/approve", map[string]any{}, 200)
		boot, err := c.Bootstrap(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if boot.ActivationID == "" || boot.Pending != nil {
			t.Fatalf("bootstrap after approval: %+v", boot)
		}
		if v, err := c.Validate(ctx); err != nil || !v.Valid || v.TrustLevel != 4 {
			t.Fatalf("validate after bootstrap: %+v %v", v, err)
		}
	})

	t.Run("reference client CLI", func(t *testing.T) {
		lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-synth"}, 201)
		state := t.TempDir()
		cli := func(args ...string) map[string]any {
			t.Helper()
			args = append(args, "--server", "https://"+d.device, "--ca", filepath.Join(d.data, "pki", "ca-chain.pem"),
				"--state", state, "--product", "e2e-synth", "--fingerprint", "e2e-cli-device")
			out, err := exec.CommandContext(ctx, d.bin, append([]string{"device"}, args...)...).Output()
			if err != nil {
				t.Fatalf("samplero device %v: %v\n%s", args, err, out)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("samplero device %v printed %s", args, out)
			}
			return res
		}
		act := cli("activate", "--license-key", lic["key"].(string), "--key-type", "ed25519")
		if act["status"] != "active" || act["activation_id"] == "" {
			t.Fatalf("activate: %v", act)
		}
		if v := cli("validate"); v["valid"] != true || v["trust_level"] != float64(4) {
			t.Fatalf("validate: %v", v)
		}
		if h := cli("heartbeat"); h["valid"] != true {
			t.Fatalf("heartbeat: %v", h)
		}
		if r := cli("renew"); r["certificate_serial"] == "" || r["certificate_serial"] == act["certificate_serial"] {
			t.Fatalf("renew: %v", r)
		}
		if st := cli("status", "--license-key", lic["key"].(string)); st["seats_used"] != float64(1) {
			t.Fatalf("status: %v", st)
		}
		// A revoked license answers a signed valid:false, and reinstating restores the device.
		d.admin(t, "POST", "/v1/admin/licenses/"+lic["id"].(string)+"/revoke", map[string]any{"reason": "e2e"}, 200)
		if v := cli("validate"); v["valid"] != false || v["status"] != "revoked" {
			t.Fatalf("validate after revoke: %v", v)
		}
		d.admin(t, "POST", "/v1/admin/licenses/"+lic["id"].(string)+"/reinstate", map[string]any{}, 200)
		if v := cli("validate"); v["valid"] != true {
			t.Fatalf("validate after reinstate: %v", v)
		}
	})

	t.Run("temporal dev server is restarted when it dies", func(t *testing.T) {
		before := d.temporalPids(t)
		if err := syscall.Kill(-before[len(before)-1], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(45 * time.Second)
		for {
			pids := d.temporalPids(t)
			if len(pids) > len(before) {
				res, err := http.Get("http://" + d.http + "/readyz")
				if err == nil {
					res.Body.Close()
					if res.StatusCode == 200 {
						break
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("dev did not restart Temporal and become ready again within 45 s")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// SIGTERM: dev shuts down gracefully and takes the Temporal dev server with it.
	pids := d.temporalPids(t)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of SIGTERM")
	}
	if d.waitErr != nil {
		t.Errorf("dev exited with %v", d.waitErr)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("temporal pid %d is still there after dev stopped (kill 0: %v)", pid, err)
		}
	}
	if _, err := net.DialTimeout("tcp", d.http, time.Second); err == nil {
		t.Error("the HTTP listener still accepts after dev stopped")
	}
	t.Logf("end-to-end took %v", time.Since(start).Round(time.Millisecond))
}
