// Package sendgridmail delivers e-mail through the SendGrid v3 mail/send API
// (github.com/sendgrid/sendgrid-go): one POST per message, with the plain-text part first and the
// HTML part second (SendGrid requires that order), the message ID in the header
// X-Samplero-Message-ID and in custom_args.samplero_message_id (so SendGrid's event webhook and
// activity feed name it), and click and open tracking off: the links carry single-use tokens
// (sign-in, claim confirmation, order access) that must not be rewritten through a tracking
// domain.
//
// Duplicates. SendGrid has no idempotency key. What keeps a message from being sent twice is the
// delivery workflow: its ID is email/<message id>, so one message has one delivery, and a retry
// happens only after a failed attempt. A retry after SendGrid accepted a message but the answer
// was lost (a connection dropped after the 202, a timeout while SendGrid was answering) sends it
// again: that rare duplicate is the price of at-least-once delivery with this provider.
//
// Errors. A 2xx answer returns SendGrid's X-Message-Id. 429, 5xx and network failures are
// errs.Unavailable (the workflow retries with backoff); any other 4xx (bad request, bad key,
// payload too large…) is errs.Invalid code MAIL_REJECTED carrying SendGrid's error text, which the
// workflow records and does not retry.
package sendgridmail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Codes of this adapter's errors.
const (
	CodeMailRejected     = "MAIL_REJECTED"     // SendGrid refused the message for good (4xx but 429)
	CodeInvalidRecipient = "INVALID_RECIPIENT" // the message's To is not an address
)

// Endpoint is the v3 mail/send path.
const Endpoint = "/v3/mail/send"

// Options configure a Mailer.
type Options struct {
	APIKey string // required: a SendGrid API key with mail send access
	// From is the sender, "Vendor <noreply@example.com>" or a bare address; required. It must be a
	// sender identity verified in SendGrid, or every message is rejected.
	From string
	// Host is the API base URL; "" = https://api.sendgrid.com (tests point it at an httptest server,
	// EU-pinned accounts use https://api.eu.sendgrid.com).
	Host string
	// HTTPClient sends the requests; nil = a client with a 30 s timeout.
	HTTPClient *http.Client
}

// Mailer implements ports.Mailer. It is immutable after New and safe for concurrent use.
type Mailer struct {
	key    string
	host   string
	from   *sgmail.Email
	client *rest.Client
}

var _ ports.Mailer = (*Mailer)(nil)

// New checks the options. The API key is never part of an error.
func New(o Options) (*Mailer, error) {
	if strings.TrimSpace(o.APIKey) == "" {
		return nil, errors.New("sendgridmail: the API key is empty")
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("sendgridmail: the from address %q does not parse: %w", o.From, err)
	}
	if o.Host == "" {
		o.Host = "https://api.sendgrid.com"
	}
	u, err := url.Parse(o.Host)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sendgridmail: the host %q is not an http(s) URL", o.Host)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Mailer{
		key:    strings.TrimSpace(o.APIKey),
		host:   strings.TrimRight(o.Host, "/"),
		from:   sgmail.NewEmail(from.Name, from.Address),
		client: &rest.Client{HTTPClient: o.HTTPClient},
	}, nil
}

// Send implements ports.Mailer.
func (m *Mailer) Send(ctx context.Context, msg ports.EmailMessage) (string, error) {
	if msg.ID == "" {
		return "", errs.Validation("an e-mail needs an id")
	}
	to, err := mail.ParseAddress(msg.To)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, CodeInvalidRecipient, "the recipient is not an e-mail address", err)
	}
	if msg.Text == "" && msg.HTML == "" {
		return "", errs.Validation("an e-mail needs a text or an HTML part")
	}
	body, err := json.Marshal(m.message(msg, to))
	if err != nil {
		return "", errs.Internalf("sendgridmail: encoding the request: %w", err)
	}
	req := sendgrid.GetRequest(m.key, Endpoint, m.host)
	req.Method = rest.Post
	req.Headers["Content-Type"] = "application/json"
	req.Body = body
	res, err := m.client.SendWithContext(ctx, req)
	if err != nil {
		// A network failure or a cancelled context: nothing says SendGrid has the message.
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "SendGrid is unreachable", err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return firstHeader(res.Headers, "X-Message-Id"), nil
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
		return "", errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "SendGrid is unavailable",
			fmt.Errorf("sendgrid: status %d: %s", res.StatusCode, errorText(res.Body)))
	default:
		text := errorText(res.Body)
		return "", errs.Wrap(errs.Invalid, CodeMailRejected, fmt.Sprintf("SendGrid rejected the message (%d): %s", res.StatusCode, text),
			fmt.Errorf("sendgrid: status %d", res.StatusCode))
	}
}

// message builds the v3 request body with the helpers of sendgrid-go.
func (m *Mailer) message(msg ports.EmailMessage, to *mail.Address) *sgmail.SGMailV3 {
	v3 := sgmail.NewV3Mail()
	v3.SetFrom(m.from)
	v3.Subject = strings.Join(strings.Fields(msg.Subject), " ") // one line: no header injection
	p := sgmail.NewPersonalization()
	p.AddTos(sgmail.NewEmail(to.Name, to.Address))
	v3.AddPersonalizations(p)
	// SendGrid requires text/plain before text/html; an empty part would be refused.
	if msg.Text != "" {
		v3.AddContent(sgmail.NewContent("text/plain", msg.Text))
	}
	if msg.HTML != "" {
		v3.AddContent(sgmail.NewContent("text/html", msg.HTML))
	}
	v3.SetHeader("X-Samplero-Message-ID", msg.ID)
	v3.SetCustomArg("samplero_message_id", msg.ID)
	if msg.Template != "" {
		v3.AddCategories(msg.Template) // SendGrid's statistics per template
	}
	off := false
	v3.SetTrackingSettings(&sgmail.TrackingSettings{
		ClickTracking: &sgmail.ClickTrackingSetting{Enable: &off, EnableText: &off},
		OpenTracking:  &sgmail.OpenTrackingSetting{Enable: &off},
	})
	return v3
}

// maxErrorText bounds what of SendGrid's answer goes into an error (and the workflow's history).
const maxErrorText = 500

// errorText is SendGrid's explanation: the messages of {"errors":[{"message","field"}]}, or the
// raw body when it is not that shape; one line, control characters removed, bounded.
func errorText(body string) string {
	var e struct {
		Errors []struct {
			Message string  `json:"message"`
			Field   *string `json:"field"`
		} `json:"errors"`
	}
	text := body
	if json.Unmarshal([]byte(body), &e) == nil && len(e.Errors) > 0 {
		parts := make([]string, 0, len(e.Errors))
		for _, x := range e.Errors {
			if x.Field != nil && *x.Field != "" {
				parts = append(parts, *x.Field+": "+x.Message)
			} else {
				parts = append(parts, x.Message)
			}
		}
		text = strings.Join(parts, "; ")
	}
	text = strings.Join(strings.FieldsFunc(text, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if text == "" {
		return "(no explanation)"
	}
	if r := []rune(text); len(r) > maxErrorText {
		text = string(r[:maxErrorText]) + "…"
	}
	return text
}

func firstHeader(h map[string][]string, name string) string {
	return http.Header(h).Get(name)
}
