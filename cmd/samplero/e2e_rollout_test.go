package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/samplero"
)

var (
	rolloutNewIntRE = regexp.MustCompile(`New intermediate key (int_[0-9a-f]{16})`)
	rolloutPhaseRE  = regexp.MustCompile(`(?m)^phase\s+(\S+)`)
)

// rolloutDevice is one device of the rollout run and the intermediate that signed its
// certificate.
type rolloutDevice struct {
	phase   string
	client  *samplero.Client
	storage *mapStorage
	issuer  string // the certificate's issuer now
	first   string // the issuer of the certificate it got at activation
}

// TestE2ERollout rolls a second intermediate out on `samplero dev` with the real CLI steps and the
// rollout workflow: devices activated before the rollout, during the canary (from each
// intermediate: 50 %), after the promotion, during a second rollout and after its abort all keep
// validating over mutual TLS.
func TestE2ERollout(t *testing.T) {
	start := time.Now()
	d := startDev(t)
	t.Logf("dev ready after %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	secrets := &secretSet{}
	pkiDir := filepath.Join(d.data, "pki")
	media := t.TempDir()
	temporal := "127.0.0.1:" + strconv.Itoa(d.temporalPort)

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(d.bin, args...)
		cmd.Env = cleanEnv()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("samplero %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	// newIntermediate installs a new intermediate with the real steps (dev's root signs it).
	newIntermediate := func() string {
		t.Helper()
		out := cli("pki", "new-intermediate", "--data", d.data)
		m := rolloutNewIntRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("new-intermediate printed no id:\n%s", out)
		}
		id := m[1]
		cert, bundle := filepath.Join(media, id+".pem"), filepath.Join(media, id+".tar.gz")
		cli("pki", "rollout", "dev-sign-intermediate", "--data", d.data, "--csr", filepath.Join(pkiDir, "intermediates", id, "csr.pem"), "--out", cert)
		cli("pki", "bundle", "build", "--cert", cert, "--root-cert", filepath.Join(pkiDir, "root.pem"), "--out", bundle)
		cli("pki", "bundle", "verify", bundle)
		cli("pki", "bundle", "install", bundle, "--data", d.data)
		return id
	}
	status := func(id string) string {
		t.Helper()
		return cli("pki", "rollout", "status", "--id", id, "--temporal", temporal)
	}
	// waitPhase waits until the workflow reports phase, then until dev's CA has picked the new
	// state.json up: a running server looks at it at most once a second (docs/pki-runbook.md).
	waitPhase := func(id, phase string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out := status(id)
			if m := rolloutPhaseRE.FindStringSubmatch(out); m != nil && m[1] == phase {
				time.Sleep(1500 * time.Millisecond)
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout of %s did not reach %s:\n%s", id, phase, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The issuer of a device's certificate, by the authority key id of the certificate and the
	// subject key ids of the intermediates installed in dev's PKI directory.
	issuerOf := func(st *mapStorage) string {
		t.Helper()
		raw, err := st.Load(samplero.StoreCertificate)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(raw)
		if b == nil {
			t.Fatal("the device stores no certificate")
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(filepath.Join(pkiDir, "intermediates"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(pkiDir, "intermediates", e.Name(), "cert.pem"))
			if err != nil {
				continue
			}
			cb, _ := pem.Decode(data)
			if cb == nil {
				continue
			}
			ic, err := x509.ParseCertificate(cb.Bytes)
			if err == nil && bytes.Equal(ic.SubjectKeyId, leaf.AuthorityKeyId) {
				return e.Name()
			}
		}
		t.Fatalf("no installed intermediate signed the certificate of %s", leaf.Subject)
		return ""
	}

	slug := "e2e-rollout"
	d.product(t, slug, "instant", map[string]any{"max_activations": 200})
	_, key := d.license(t, secrets, map[string]any{"product": slug, "owner_email": "rollout@example.com"})
	var devices []*rolloutDevice
	n := 0
	activate := func(phase string) *rolloutDevice {
		t.Helper()
		n++
		st := newMapStorage()
		c := d.clientWith(t, clientOpts{product: slug, fingerprint: fmt.Sprintf("rollout-%s-%d", phase, n), storage: st})
		act, err := c.Activate(ctx, key)
		if err != nil {
			t.Fatalf("activate %s #%d: %v", phase, n, err)
		}
		if act.TrustLevel != 3 {
			t.Fatalf("activate %s #%d: %+v", phase, n, act)
		}
		dev := &rolloutDevice{phase: phase, client: c, storage: st, issuer: issuerOf(st)}
		dev.first = dev.issuer
		devices = append(devices, dev)
		return dev
	}
	// validateAll validates every device so far over mutual TLS (trust level 4) and counts them.
	failures := 0
	validateAll := func(when string) {
		t.Helper()
		for _, dev := range devices {
			v, err := dev.client.Validate(ctx)
			if err != nil || !v.Valid || v.TrustLevel != 4 {
				failures++
				t.Errorf("%s: device of phase %s (issuer %s) does not validate over mTLS: %+v %v", when, dev.phase, dev.issuer, v, err)
			}
		}
	}
	countBy := func(phase string) map[string]int {
		m := map[string]int{}
		for _, dev := range devices {
			if phase == "" || dev.phase == phase {
				m[dev.first]++
			}
		}
		return m
	}

	// Before the rollout: dev's own intermediate.
	for range 3 {
		activate("before")
	}
	first := devices[0].issuer
	int2 := newIntermediate()
	t.Logf("installed %s beside dev's %s", int2, first)
	validateAll("staged")

	out := cli("pki", "rollout", "start", "--data", d.data, "--id", int2, "--share", "50", "--soak", "1h",
		"--check-every", "1s", "--wait", "--temporal", temporal)
	if !strings.Contains(out, "Self-test passed") || !strings.Contains(out, "replacing "+first) {
		t.Fatalf("rollout start:\n%s", out)
	}
	t.Logf("rollout start:\n%s", out)

	// During the canary: the share is deterministic per activation; at 50 % a dozen activations
	// come from both intermediates (each side missing has odds of 1 in 4096).
	for i := 0; i < 30 && (countBy("canary")[int2] < 2 || countBy("canary")[first] < 2); i++ {
		activate("canary")
	}
	if c := countBy("canary"); c[int2] == 0 || c[first] == 0 {
		t.Fatalf("canary activations by issuer: %v, want some from each", c)
	}
	validateAll("canary")
	t.Logf("rollout status during the canary:\n%s", status(int2))

	cli("pki", "rollout", "approve", "--id", int2, "--by", "e2e", "--temporal", temporal)
	promoted := waitPhase(int2, "promoted")
	t.Logf("rollout status after approval:\n%s", promoted)
	for range 3 {
		if dev := activate("promoted"); dev.issuer != int2 {
			t.Errorf("after the promotion a device got a certificate from %s, want %s", dev.issuer, int2)
		}
	}
	validateAll("promoted")

	// A second rollout, aborted: its canary's devices keep validating and are told to renew.
	int3 := newIntermediate()
	out = cli("pki", "rollout", "start", "--data", d.data, "--id", int3, "--share", "50", "--soak", "1h",
		"--check-every", "1s", "--wait", "--temporal", temporal)
	if !strings.Contains(out, "Self-test passed") || !strings.Contains(out, "replacing "+int2) {
		t.Fatalf("second rollout start:\n%s", out)
	}
	for i := 0; i < 30 && countBy("aborted canary")[int3] < 2; i++ {
		activate("aborted canary")
	}
	if countBy("aborted canary")[int3] == 0 {
		t.Fatalf("no device of the second canary came from %s: %v", int3, countBy("aborted canary"))
	}
	cli("pki", "rollout", "abort", "--id", int3, "--reason", "e2e abort", "--temporal", temporal)
	rolled := waitPhase(int3, "rolled_back")
	t.Logf("rollout status after the abort:\n%s", rolled)
	for range 3 {
		if dev := activate("after rollback"); dev.issuer != int2 {
			t.Errorf("after the rollback a device got a certificate from %s, want %s", dev.issuer, int2)
		}
	}
	validateAll("after rollback")
	renewHints := 0
	for _, dev := range devices {
		hb, err := dev.client.Heartbeat(ctx)
		if err != nil || !hb.Valid {
			t.Errorf("heartbeat of a device of phase %s: %+v %v", dev.phase, hb, err)
			continue
		}
		if hb.RenewCertificate != (dev.issuer == int3) {
			t.Errorf("device of phase %s from %s: renew_certificate %v", dev.phase, dev.issuer, hb.RenewCertificate)
		}
		if hb.RenewCertificate {
			renewHints++
		}
	}
	// The ones told to renew do, from the active intermediate, and keep validating.
	for _, dev := range devices {
		if dev.issuer != int3 {
			continue
		}
		if _, err := dev.client.Renew(ctx, false); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if dev.issuer = issuerOf(dev.storage); dev.issuer != int2 {
			t.Errorf("renewed from %s, want %s", dev.issuer, int2)
		}
	}
	validateAll("after renewals")

	final := status(int3)
	if !strings.Contains(final, "validation failures 0") {
		t.Errorf("the aborted canary recorded validation failures:\n%s", final)
	}
	if !strings.Contains(status(int2), "validation failures 0") {
		t.Errorf("the promoted intermediate recorded validation failures:\n%s", status(int2))
	}
	phases := []string{"before", "canary", "promoted", "aborted canary", "after rollback"}
	for _, p := range phases {
		t.Logf("devices activated %-15s by issuer: %v", p+":", countBy(p))
	}
	t.Logf("%d devices, %d told to renew after the rollback, %d validation failures (over mTLS, across promote and rollback), %v",
		len(devices), renewHints, failures, time.Since(start).Round(time.Millisecond))
	if failures != 0 {
		t.Fatalf("%d validation failures", failures)
	}
}
