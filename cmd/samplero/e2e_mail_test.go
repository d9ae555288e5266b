package main

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestE2EMailSurvivesKill: dev delivers through an SMTP relay that refuses the first delivery
// with a temporary failure; dev is killed (SIGKILL) while the e-mail workflow waits for its retry
// and restarted on the same data directory. The retry then delivers exactly one e-mail, and the
// license and the claim are still there.
func TestE2EMailSurvivesKill(t *testing.T) {
	relay := startRelay(t, 1)
	start := time.Now()
	d := newDev(t, "SAMPLERO_SMTP_URL=smtp://127.0.0.1:"+strconv.Itoa(relay.port()))
	d.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	d.admin(t, "POST", "/v1/admin/products", map[string]any{
		"slug": "e2e-smtp", "name": "E2E SMTP", "type": "plugin", "price_cents": 100, "currency": "USD",
		"policy": map[string]any{"max_activations": 1, "first_activation": "owner_approval", "heartbeat_interval_s": 3600, "grace_period_s": 7200},
	}, 201)
	owner := "relay-owner@example.com"
	lic := d.admin(t, "POST", "/v1/admin/licenses", map[string]any{"product": "e2e-smtp", "owner_email": owner}, 201)
	licID := lic["id"].(string)
	c := d.client(t, "e2e-smtp", "e2e-smtp-device")
	act, err := c.Activate(ctx, lic["key"].(string))
	if err != nil || act.HTTPStatus != 202 || act.Pending == nil {
		t.Fatalf("activate: %+v %v", act, err)
	}
	claimID := act.Pending.ClaimID

	// The first delivery is refused with 421; the activity's next attempt is 2 s later.
	if !relay.waitFor(func() bool { return relay.refused >= 1 }, 30*time.Second) {
		t.Fatal("no delivery attempt reached the relay within 30 s")
	}
	time.Sleep(300 * time.Millisecond) // the failure is reported to Temporal
	if relay.count(owner) != 0 {
		t.Fatal("the relay accepted a message before the kill: the test proves nothing")
	}
	pids := d.temporalPids(t)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	// dev's Temporal child runs in its own process group; it is tied to dev by a parent-death
	// signal. If it outlived dev, kill it, as an operator would, before restarting.
	for _, pid := range pids {
		if !waitGone(pid, 5*time.Second) {
			t.Logf("temporal pid %d outlived dev's SIGKILL; killing its group", pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			if !waitGone(pid, 5*time.Second) {
				t.Fatalf("temporal pid %d does not die", pid)
			}
		}
	}
	if relay.count(owner) != 0 {
		t.Fatal("the relay accepted a message while dev was down")
	}
	t.Logf("flow 6: dev killed with SIGKILL after %d refused delivery, Temporal child gone; restarting on the same data dir", relay.refusedCount())

	d.start(t)
	if !relay.waitFor(func() bool { return relay.countLocked(owner) >= 1 }, 60*time.Second) {
		t.Fatal("the e-mail was not delivered within 60 s of the restart")
	}
	// A second delivery of the same message would come at once or after the next back-off.
	time.Sleep(3 * time.Second)
	if n := relay.count(owner); n != 1 {
		t.Fatalf("%d e-mails to %s, want exactly 1", n, owner)
	}
	if text := mailText(t, relay.message(owner)); confirmLink.FindString(text) == "" || !strings.Contains(text, "e2e-smtp-device") {
		t.Fatalf("the delivered e-mail has no confirmation link or does not name the device:\n%s", text)
	}

	// The data survived the kill: the license, and the claim still pending for this device.
	view := d.admin(t, "GET", "/v1/admin/licenses/"+licID, nil, 200)
	if view["status"] != "active" || view["owner_email"] != owner {
		t.Fatalf("the license after the restart: %v", view)
	}
	b, err := c.Bootstrap(ctx, "")
	if err != nil || b.Pending == nil || b.Pending.ClaimID != claimID {
		t.Fatalf("bootstrap after the restart: %+v %v (want the claim still pending)", b, err)
	}
	d.admin(t, "POST", "/v1/admin/claims/"+claimID+"/approve", map[string]any{}, 200)
	if b, err := c.Bootstrap(ctx, ""); err != nil || b.ActivationID == "" {
		t.Fatalf("bootstrap after approval: %+v %v", b, err)
	}
	t.Logf("flow 6: after the restart the retry delivered exactly one e-mail (%d refused before); license and claim survived; took %v",
		relay.refusedCount(), time.Since(start).Round(time.Millisecond))
}

// relay is a minimal SMTP server: it answers 421 to the first failFirst transactions, then
// accepts and records every message.
type relay struct {
	ln        net.Listener
	failFirst int

	mu       sync.Mutex
	attempts int
	refused  int
	accepted []string
}

func startRelay(t *testing.T, failFirst int) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, failFirst: failFirst}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(conn)
		}
	}()
	return r
}

func (r *relay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *relay) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	say := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
	say("220 e2e-relay ESMTP")
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-e2e-relay")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			r.mu.Lock()
			r.attempts++
			fail := r.attempts <= r.failFirst
			if fail {
				r.refused++
			}
			r.mu.Unlock()
			if fail {
				say("421 4.3.2 service not available, try again later")
				return
			}
			say("250 2.1.0 ok")
		case strings.HasPrefix(cmd, "RCPT TO"):
			say("250 2.1.5 ok")
		case cmd == "DATA":
			say("354 end with <CRLF>.<CRLF>")
			var msg strings.Builder
			for {
				l, err := rd.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			r.mu.Lock()
			r.accepted = append(r.accepted, msg.String())
			r.mu.Unlock()
			say("250 2.0.0 queued")
		case cmd == "RSET", cmd == "NOOP":
			say("250 2.0.0 ok")
		case cmd == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 command not implemented")
		}
	}
}

// waitFor polls cond (called under the relay's lock) until it holds or wait passes.
func (r *relay) waitFor(cond func() bool, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (r *relay) refusedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// countLocked counts accepted messages to rcpt; the caller holds the lock.
func (r *relay) countLocked(rcpt string) int {
	n := 0
	for _, m := range r.accepted {
		if strings.Contains(m, rcpt) {
			n++
		}
	}
	return n
}

func (r *relay) count(rcpt string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countLocked(rcpt)
}

func (r *relay) message(rcpt string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.accepted {
		if strings.Contains(m, rcpt) {
			return m
		}
	}
	return ""
}
