package filemail

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func newOutbox(t *testing.T) *Outbox {
	t.Helper()
	o, err := New(filepath.Join(t.TempDir(), "outbox"), Options{Clock: portstest.NewFakeClock(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var msg = ports.EmailMessage{
	ID:       "msg_abc",
	To:       "Buyer <buyer@example.com>",
	Subject:  "Your keys — Ünïcode",
	Text:     "Key: VST-AAAAA-BBBBB-CCCCC-DDDDD\nThanks.",
	HTML:     "<p>Key: <b>VST-AAAAA-BBBBB-CCCCC-DDDDD</b></p>",
	Template: "delivery",
}

func TestSendWritesMultipartAlternative(t *testing.T) {
	o := newOutbox(t)
	id, err := o.Send(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(o.Dir(), "msg_abc.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Message-ID"); got != id {
		t.Fatalf("Message-ID %q, provider id %q", got, id)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != msg.Subject {
		t.Fatalf("subject %q (%v)", subject, err)
	}
	if to, err := m.Header.AddressList("To"); err != nil || to[0].Address != "buyer@example.com" {
		t.Fatalf("to %v (%v)", to, err)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("date %v (%v)", d, err)
	}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/alternative" {
		t.Fatalf("content type %q (%v)", mediaType, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Type")+"|"+strings.ReplaceAll(string(body), "\r\n", "\n"))
	}
	want := []string{"text/plain; charset=utf-8|" + msg.Text, "text/html; charset=utf-8|" + msg.HTML}
	if strings.Join(parts, "\n--\n") != strings.Join(want, "\n--\n") {
		t.Fatalf("parts:\n%q\nwant\n%q", parts, want)
	}
}

func TestSendIsIdempotentOnID(t *testing.T) {
	o := newOutbox(t)
	ctx := context.Background()
	first, err := o.Send(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.Dir(), FileName(msg.ID))
	before, _ := os.ReadFile(path)
	changed := msg
	changed.Subject = "something else"
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = o.Send(ctx, changed)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != first {
			t.Fatalf("provider id %q, want %q", id, first)
		}
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("a repeated send rewrote the file")
	}
	entries, _ := os.ReadDir(o.Dir())
	if len(entries) != 1 {
		t.Fatalf("%d files in the outbox, want 1", len(entries))
	}
}

func TestConcurrentFirstSendsLeaveOneFile(t *testing.T) {
	o := newOutbox(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := o.Send(context.Background(), msg); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, _ := os.ReadDir(o.Dir())
	if len(entries) != 1 || entries[0].Name() != "msg_abc.eml" {
		t.Fatalf("outbox holds %v", entries)
	}
}

func TestTextOnlyAndUnsafeIDs(t *testing.T) {
	o := newOutbox(t)
	m := ports.EmailMessage{ID: "email/../../etc", To: "a@example.com", Subject: "s", Text: "plain"}
	if _, err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	name := FileName(m.ID)
	if strings.ContainsAny(name, "/\\") || !strings.HasSuffix(name, ".eml") {
		t.Fatalf("file name %q", name)
	}
	raw, err := os.ReadFile(filepath.Join(o.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "Content-Type: text/plain; charset=utf-8\r\n") || !strings.HasSuffix(string(raw), "\r\n\r\nplain") {
		t.Fatalf("text-only message:\n%s", raw)
	}
}

func TestPermanentRejections(t *testing.T) {
	o := newOutbox(t)
	for name, m := range map[string]ports.EmailMessage{
		"bad recipient":    {ID: "x1", To: "not an address", Subject: "s", Text: "t"},
		"header injection": {ID: "x2", To: "a@example.com", Subject: "s\r\nBcc: evil@example.com", Text: "t"},
	} {
		if _, err := o.Send(context.Background(), m); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: error %v, want kind invalid", name, err)
		}
	}
	if entries, _ := os.ReadDir(o.Dir()); len(entries) != 0 {
		t.Fatalf("rejected messages left %v", entries)
	}
}
