package licensing

import (
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The e-mails of the licensing context. Each template set has a subject, a text and an HTML body
// rendered from the same data; html/template escapes what a device chose (its name) in the HTML part.

const claimSubject = `{{.Vendor}}: approve a new device for your license?`

const claimText = `Hello,

a device asked to activate your {{.Vendor}} license {{.LicenseID}}:

  Device name:  {{if .DeviceName}}{{.DeviceName}}{{else}}(none given){{end}}
  Platform:     {{.Platform}}
  Fingerprint:  {{.Fingerprint}}
  Address:      {{if .RequestAddr}}{{.RequestAddr}}{{else}}(unknown){{end}}
  Time:         {{.Time}}

If this was you, open this page and approve it before {{.ExpiresAt}}:
{{.ConfirmURL}}

If it was not you, open the same page and reject it; you can then have your license key reissued.
Nothing changes until you press a button on that page.
`

const claimHTML = `<!doctype html>
<html><body>
<p>Hello,</p>
<p>a device asked to activate your {{.Vendor}} license <code>{{.LicenseID}}</code>:</p>
<table>
<tr><td>Device name</td><td>{{if .DeviceName}}{{.DeviceName}}{{else}}(none given){{end}}</td></tr>
<tr><td>Platform</td><td>{{.Platform}}</td></tr>
<tr><td>Fingerprint</td><td><code>{{.Fingerprint}}</code></td></tr>
<tr><td>Address</td><td>{{if .RequestAddr}}{{.RequestAddr}}{{else}}(unknown){{end}}</td></tr>
<tr><td>Time</td><td>{{.Time}}</td></tr>
</table>
<p>If this was you, <a href="{{.ConfirmURL}}">approve it</a> before {{.ExpiresAt}}.
If it was not you, <a href="{{.ConfirmURL}}">reject it</a> on the same page; you can then have your license key reissued.</p>
<p>Nothing changes until you press a button on that page.</p>
</body></html>
`

const supersedeSubject = `{{.Vendor}}: a device was re-activated with a new key`

const supersedeText = `Hello,

a device re-activated your {{.Vendor}} license {{.LicenseID}} with a new device key; the old
activation was replaced.

  Device name:  {{if .DeviceName}}{{.DeviceName}}{{else}}(none given){{end}}
  Platform:     {{.Platform}}
  Fingerprint:  {{.Fingerprint}}
  Address:      {{if .RequestAddr}}{{.RequestAddr}}{{else}}(unknown){{end}}
  Time:         {{.Time}}

This happens after a reinstall. If you did not do this, revoke the device in your account and
contact support.
`

const supersedeHTML = `<!doctype html>
<html><body>
<p>Hello,</p>
<p>a device re-activated your {{.Vendor}} license <code>{{.LicenseID}}</code> with a new device key; the old activation was replaced.</p>
<table>
<tr><td>Device name</td><td>{{if .DeviceName}}{{.DeviceName}}{{else}}(none given){{end}}</td></tr>
<tr><td>Platform</td><td>{{.Platform}}</td></tr>
<tr><td>Fingerprint</td><td><code>{{.Fingerprint}}</code></td></tr>
<tr><td>Address</td><td>{{if .RequestAddr}}{{.RequestAddr}}{{else}}(unknown){{end}}</td></tr>
<tr><td>Time</td><td>{{.Time}}</td></tr>
</table>
<p>This happens after a reinstall. If you did not do this, revoke the device in your account and contact support.</p>
</body></html>
`

type emailTemplate struct {
	name    string
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

func mustTemplate(name, subject, text, html string) emailTemplate {
	return emailTemplate{
		name:    name,
		subject: texttemplate.Must(texttemplate.New(name + ".subject").Parse(subject)),
		text:    texttemplate.Must(texttemplate.New(name + ".txt").Parse(text)),
		html:    htmltemplate.Must(htmltemplate.New(name + ".html").Parse(html)),
	}
}

// emailTemplates are parsed once per service. The templates are constants, so a parse failure is a
// programming error that any test catches.
type emailTemplates struct {
	claim     emailTemplate
	supersede emailTemplate
}

func parseEmailTemplates() emailTemplates {
	return emailTemplates{
		claim:     mustTemplate("claim_confirmation", claimSubject, claimText, claimHTML),
		supersede: mustTemplate("device_superseded", supersedeSubject, supersedeText, supersedeHTML),
	}
}

// deviceEmailData is what both device e-mails show.
type deviceEmailData struct {
	Vendor      string
	LicenseID   string
	DeviceName  string
	Platform    string
	Fingerprint string
	RequestAddr string
	Time        string
	ExpiresAt   string
	ConfirmURL  string
}

func (t emailTemplate) render(id, to string, data any) (ports.EmailMessage, error) {
	var subj, text, html strings.Builder
	if err := t.subject.Execute(&subj, data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("licensing: rendering %s subject: %w", t.name, err)
	}
	if err := t.text.Execute(&text, data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("licensing: rendering %s text: %w", t.name, err)
	}
	if err := t.html.Execute(&html, data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("licensing: rendering %s html: %w", t.name, err)
	}
	return ports.EmailMessage{
		ID:       id,
		To:       to,
		Subject:  strings.TrimSpace(subj.String()),
		Text:     text.String(),
		HTML:     html.String(),
		Template: t.name,
	}, nil
}

func (s *Service) vendor() string {
	if s.d.Config.VendorName != "" {
		return s.d.Config.VendorName
	}
	return "Samplero"
}

// ConfirmPath is the path of the owner's claim confirmation page; the token travels in the query.
const ConfirmPath = "/claims/confirm"

// confirmURL is the link of a claim e-mail.
func (s *Service) confirmURL(token string) string {
	return strings.TrimRight(s.d.Config.PublicURL, "/") + ConfirmPath + "?token=" + url.QueryEscape(token)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
