package smtpmail

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// fakeRelay is a tiny SMTP server on 127.0.0.1: it accepts every recipient except those whose
// local part is "reject" (550) or "later" (451), and records the DATA it receives.
type fakeRelay struct {
	ln   net.Listener
	mu   sync.Mutex
	data []string
}

func startRelay(t *testing.T) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1: %v", err)
	}
	r := &fakeRelay{ln: ln}
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

func (r *fakeRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *fakeRelay) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	reply := func(s string) { conn.Write([]byte(s + "\r\n")) }
	reply("220 localhost ESMTP fake")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			reply("250-localhost")
			reply("250 8BITMIME")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			switch {
			case strings.Contains(cmd, "<REJECT@"):
				reply("550 5.1.1 no such user")
			case strings.Contains(cmd, "<LATER@"):
				reply("451 4.3.0 try again later")
			default:
				reply("250 ok")
			}
		case cmd == "DATA":
			reply("354 go ahead")
			var b strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			r.mu.Lock()
			r.data = append(r.data, b.String())
			r.mu.Unlock()
			reply("250 2.0.0 queued")
		case cmd == "QUIT":
			reply("221 bye")
			return
		default:
			reply("250 ok")
		}
	}
}

func (r *fakeRelay) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.data...)
}

func newMailer(t *testing.T, r *fakeRelay) *Mailer {
	t.Helper()
	m, err := New("smtp://127.0.0.1:"+strconv.Itoa(r.port()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSendDelivers(t *testing.T) {
	r := startRelay(t)
	m := newMailer(t, r)
	id, err := m.Send(context.Background(), ports.EmailMessage{
		ID: "msg_1", To: "buyer@example.com", Subject: "Your keys", Text: "plain body", HTML: "<p>html body</p>", Template: "delivery",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("relay received %d messages", len(got))
	}
	for _, want := range []string{"Message-ID: " + id, "Subject: Your keys", "multipart/alternative", "plain body", "html body", "X-Samplero-Template: delivery"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("message lacks %q:\n%s", want, got[0])
		}
	}
	again, err := m.Send(context.Background(), ports.EmailMessage{ID: "msg_1", To: "buyer@example.com", Subject: "Your keys", Text: "x"})
	if err != nil || again != id {
		t.Fatalf("a retry of the same message has provider id %q (%v), want %q", again, err, id)
	}
}

func TestPermanentAndTemporaryFailures(t *testing.T) {
	r := startRelay(t)
	m := newMailer(t, r)
	_, err := m.Send(context.Background(), ports.EmailMessage{ID: "m2", To: "reject@example.com", Subject: "s", Text: "t"})
	if errs.KindOf(err) != errs.Invalid {
		t.Fatalf("550: %v, want kind invalid", err)
	}
	_, err = m.Send(context.Background(), ports.EmailMessage{ID: "m3", To: "later@example.com", Subject: "s", Text: "t"})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("451: %v, want kind unavailable", err)
	}
	_, err = m.Send(context.Background(), ports.EmailMessage{ID: "m4", To: "no address", Subject: "s", Text: "t"})
	if errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad address: %v, want kind invalid", err)
	}
	r.ln.Close()
	_, err = m.Send(context.Background(), ports.EmailMessage{ID: "m5", To: "a@example.com", Subject: "s", Text: "t"})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("relay down: %v, want kind unavailable", err)
	}
}

func TestNewRejectsBadURLsWithoutLeakingPasswords(t *testing.T) {
	for _, u := range []string{"http://host:25", "smtp://", "smtp://u:s3cret@host:notaport", "::"} {
		_, err := New(u, Options{})
		if err == nil {
			t.Errorf("%q accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := New("smtps://user:pw@mail.example.com", Options{}); err != nil {
		t.Fatalf("smtps URL refused: %v", err)
	}
}
