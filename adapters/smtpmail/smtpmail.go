// Package smtpmail delivers e-mail through an SMTP relay (github.com/wneessen/go-mail), configured
// by one URL: smtp://user:pass@host:port (STARTTLS when the server offers it) or smtps://… (TLS
// from the first byte).
package smtpmail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Mailer sends through one relay.
type Mailer struct {
	host    string
	opts    []gomail.Option
	from    string
	timeout time.Duration
}

var _ ports.Mailer = (*Mailer)(nil)

// Options configure a Mailer. Zero values take the defaults.
type Options struct {
	From    string        // default "Samplero <noreply@samplero.localhost>"
	Timeout time.Duration // per send; default 30 s
}

// New parses rawURL and returns a Mailer. The URL's password is never part of an error.
func New(rawURL string, o Options) (*Mailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("smtpmail: SAMPLERO_SMTP_URL does not parse")
	}
	if o.From == "" {
		o.From = "Samplero <noreply@samplero.localhost>"
	}
	if _, err := mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("smtpmail: bad from address: %w", err)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	var opts []gomail.Option
	defaultPort := 587
	switch u.Scheme {
	case "smtp":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case "smtps":
		opts = append(opts, gomail.WithSSL())
		defaultPort = 465
	default:
		return nil, fmt.Errorf("smtpmail: scheme %q is not smtp or smtps", u.Scheme)
	}
	port := defaultPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, errors.New("smtpmail: bad port")
		}
	}
	if u.Hostname() == "" {
		return nil, errors.New("smtpmail: the URL names no host")
	}
	opts = append(opts, gomail.WithPort(port), gomail.WithTimeout(o.Timeout))
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthPlain),
			gomail.WithUsername(u.User.Username()),
			gomail.WithPassword(pass))
	}
	return &Mailer{host: u.Hostname(), opts: opts, from: o.From, timeout: o.Timeout}, nil
}

// messageID is derived from the message ID alone, so that a retried send carries the same
// Message-ID and receivers that deduplicate on it show one message.
func messageID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + "@samplero.localhost"
}

// Send delivers msg with one SMTP session. A permanent refusal (a 5xx reply) or an address that
// does not parse is errs.Invalid; everything else (4xx, network, TLS) is errs.Unavailable.
func (m *Mailer) Send(ctx context.Context, msg ports.EmailMessage) (string, error) {
	if msg.ID == "" {
		return "", errs.Validation("an e-mail needs an id")
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		return "", errs.Validation("header values may not contain line breaks")
	}
	gm := gomail.NewMsg()
	if err := gm.From(m.from); err != nil {
		return "", errs.Internalf("smtpmail: from: %v", err)
	}
	if err := gm.To(msg.To); err != nil {
		return "", errs.Wrap(errs.Invalid, "INVALID_RECIPIENT", "the recipient is not an e-mail address", err)
	}
	gm.Subject(msg.Subject)
	id := messageID(msg.ID)
	gm.SetMessageIDWithValue(id)
	gm.SetDate()
	if msg.Template != "" {
		gm.SetGenHeader("X-Samplero-Template", msg.Template)
	}
	gm.SetBodyString(gomail.TypeTextPlain, msg.Text)
	if msg.HTML != "" {
		gm.AddAlternativeString(gomail.TypeTextHTML, msg.HTML)
	}
	c, err := gomail.NewClient(m.host, m.opts...)
	if err != nil {
		return "", errs.Internalf("smtpmail: client: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, gm); err != nil {
		return "", classify(err)
	}
	return "<" + id + ">", nil
}

func classify(err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return errs.Wrap(errs.Invalid, "MAIL_REJECTED", "the mail server refused the message", err)
	}
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the mail server is unavailable", err)
}
