// Package filemail is the Mailer of `samplero dev`: every message becomes one RFC 5322 file in an
// outbox directory, named after the message ID, so a developer (or a test) can read what would
// have been sent. Writing the same ID twice writes nothing new.
package filemail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Outbox writes messages into one directory.
type Outbox struct {
	dir   string
	from  string
	clock ports.Clock
}

var _ ports.Mailer = (*Outbox)(nil)

// Options configure an Outbox. Zero values take the defaults.
type Options struct {
	From  string      // default "Samplero <noreply@samplero.localhost>"
	Clock ports.Clock // for the Date header; default the system clock
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns an outbox writing into dir, which it creates.
func New(dir string, opts Options) (*Outbox, error) {
	if opts.From == "" {
		opts.From = "Samplero <noreply@samplero.localhost>"
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if _, err := mail.ParseAddress(opts.From); err != nil {
		return nil, fmt.Errorf("filemail: bad from address: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filemail: %w", err)
	}
	return &Outbox{dir: dir, from: opts.From, clock: opts.Clock}, nil
}

// Dir is the outbox directory.
func (o *Outbox) Dir() string { return o.dir }

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// FileName is the file a message ID is written to: the ID itself when it is a safe file name,
// otherwise a hash of it.
func FileName(messageID string) string {
	if safeID.MatchString(messageID) && !strings.HasPrefix(messageID, ".") {
		return messageID + ".eml"
	}
	sum := sha256.Sum256([]byte(messageID))
	return hex.EncodeToString(sum[:16]) + ".eml"
}

// providerID is the Message-ID of the file, derived from the message ID alone so that a repeated
// Send answers the same without reading the file.
func providerID(messageID string) string {
	sum := sha256.Sum256([]byte(messageID))
	return "<" + hex.EncodeToString(sum[:16]) + "@outbox.samplero.localhost>"
}

// Send writes msg to the outbox. The file appears whole or not at all (written aside, then linked
// into place, which refuses to replace an existing file), so concurrent sends of one ID leave one
// file. A recipient that is not an address, or a header with a line break, is errs.Invalid.
func (o *Outbox) Send(ctx context.Context, msg ports.EmailMessage) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "send cancelled", err)
	}
	if msg.ID == "" {
		return "", errs.Validation("an e-mail needs an id")
	}
	id := providerID(msg.ID)
	final := filepath.Join(o.dir, FileName(msg.ID))
	if _, err := os.Stat(final); err == nil {
		return id, nil
	}
	raw, err := o.render(msg, id)
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	if err := tmp.Close(); err != nil {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	if err := os.Link(tmp.Name(), final); err != nil && !errors.Is(err, os.ErrExist) {
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "outbox not writable", err)
	}
	return id, nil
}

func (o *Outbox) render(msg ports.EmailMessage, messageID string) ([]byte, error) {
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, "INVALID_RECIPIENT", "the recipient is not an e-mail address", err)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") || strings.ContainsAny(msg.Template, "\r\n") {
		return nil, errs.Validation("header values may not contain line breaks")
	}
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", o.from)
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	header("Date", o.clock.Now().UTC().Format(time.RFC1123Z))
	header("Message-ID", messageID)
	header("MIME-Version", "1.0")
	header("X-Samplero-Message-Id", mime.QEncoding.Encode("utf-8", msg.ID))
	if msg.Template != "" {
		header("X-Samplero-Template", msg.Template)
	}
	if msg.HTML == "" {
		header("Content-Type", "text/plain; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, msg.Text); err != nil {
			return nil, errs.Internalf("filemail: %v", err)
		}
		return b.Bytes(), nil
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, content string }{
		{"text/plain; charset=utf-8", msg.Text},
		{"text/html; charset=utf-8", msg.HTML},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, errs.Internalf("filemail: %v", err)
		}
		if err := writeQP(w, part.content); err != nil {
			return nil, errs.Internalf("filemail: %v", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, errs.Internalf("filemail: %v", err)
	}
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

// writeQP writes s quoted-printable with CRLF line ends, as RFC 5322 wants on the wire.
func writeQP(w io.Writer, s string) error {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	qp := quotedprintable.NewWriter(w)
	if _, err := io.WriteString(qp, s); err != nil {
		return err
	}
	return qp.Close()
}
