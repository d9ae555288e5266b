package licensing

import (
	"context"
	"net/url"
	"strings"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The e-mails of the licensing context. The service decides what to say (a ports.Template* name
// and its data struct); Deps.Emails (the emailtmpl adapter in production) decides how it looks.
// Every message has a deterministic ID so that the delivery workflow (workflow ID email/<ID>)
// delivers it once however often the use case that produced it is retried.

// render renders one e-mail into a message, for use cases that render inside their transaction
// and send the collected messages after the commit (see sendEmails). A rendering failure is a
// programming error (unknown template, wrong data type), so it is an errs.Internal error.
func (s *Service) render(id, to, template string, data any) (ports.EmailMessage, error) {
	subject, text, html, err := s.d.Emails.Render(template, data)
	if err != nil {
		// Whatever the renderer says, a message that cannot be rendered is a bug, never the
		// caller's input: it must not reach a client as anything but INTERNAL.
		if e, ok := errs.As(err); ok && e.Kind == errs.Internal {
			return ports.EmailMessage{}, err
		}
		return ports.EmailMessage{}, errs.Internalf("licensing: rendering %s e-mail: %w", template, err)
	}
	return ports.EmailMessage{ID: id, To: to, Subject: subject, Text: text, HTML: html, Template: template}, nil
}

// sendTemplate renders an e-mail and starts its delivery workflow. Callers call it after their
// transaction committed, so a message never describes a change that rolled back. A failure (to
// render or to start the workflow) is logged and not returned, for the same reasons as in
// sendEmails: the change has committed and is what the caller asked for, and the message ID is
// deterministic, so an operator can resend it.
func (s *Service) sendTemplate(ctx context.Context, id, to, template string, data any) {
	msg, err := s.render(id, to, template, data)
	if err != nil {
		s.log.ErrorContext(ctx, "licensing: rendering e-mail failed", "email_id", id, "template", template, "err", err)
		return
	}
	s.sendEmails(ctx, []ports.EmailMessage{msg})
}

// ConfirmPath is the path of the owner's claim confirmation page; the token travels in the query.
const ConfirmPath = "/claims/confirm"

// confirmURL is the link of a claim e-mail.
func (s *Service) confirmURL(token string) string {
	return strings.TrimRight(s.d.Config.PublicURL, "/") + ConfirmPath + "?token=" + url.QueryEscape(token)
}

// AccountPath is the path of the customer portal's account page, where an owner signs in to see
// their licenses and devices; e-mails link to it.
const AccountPath = "/account"

// accountURL is the portal link of e-mails that tell an owner about their licenses.
func (s *Service) accountURL() string {
	return strings.TrimRight(s.d.Config.PublicURL, "/") + AccountPath
}

// productName is the name e-mails show for a product slug: the product's name, or the slug when
// the product cannot be read (an e-mail's wording is never worth failing a use case for).
func (s *Service) productName(ctx context.Context, slug string) string {
	p, err := s.d.Products.Get(ctx, slug)
	if err != nil || p.Name == "" {
		return slug
	}
	return p.Name
}
