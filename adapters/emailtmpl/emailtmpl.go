// Package emailtmpl renders the e-mails of every context (ports.EmailRenderer): one layout with the
// vendor's name on its brand colour, the content, and a footer, in an HTML part (html/template,
// which escapes everything that came from outside: product and device names, provider data) and a
// plain-text part (text/template, same layout idea). The templates live in templates/ and are
// embedded: templates/layout.{html,txt} plus, per ports.Template* name, <name>.txt (defining
// "subject" and "body") and <name>.html (defining "body").
//
// The HTML is deliberately plain: inline styles only, no tables, no images, no external resources,
// so that mail clients render it as written and nothing is fetched when it is opened.
package emailtmpl

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

//go:embed templates
var files embed.FS

// dataTypes maps every template to the data struct it renders.
var dataTypes = map[string]reflect.Type{
	ports.TemplateLicenseDelivery:    reflect.TypeFor[ports.LicenseDeliveryEmail](),
	ports.TemplateSignInLink:         reflect.TypeFor[ports.SignInLinkEmail](),
	ports.TemplateLicenseRecovery:    reflect.TypeFor[ports.LicenseRecoveryEmail](),
	ports.TemplateDeviceApproval:     reflect.TypeFor[ports.DeviceApprovalEmail](),
	ports.TemplateDeviceActivated:    reflect.TypeFor[ports.DeviceEmail](),
	ports.TemplateDeviceRemoved:      reflect.TypeFor[ports.DeviceEmail](),
	ports.TemplateDeviceSuperseded:   reflect.TypeFor[ports.DeviceEmail](),
	ports.TemplateOrderRefunded:      reflect.TypeFor[ports.OrderRefundedEmail](),
	ports.TemplateLicenseExpiring:    reflect.TypeFor[ports.LicenseExpiryEmail](),
	ports.TemplateLicenseExpired:     reflect.TypeFor[ports.LicenseExpiryEmail](),
	ports.TemplateSupportAlert:       reflect.TypeFor[ports.SupportAlertEmail](),
	ports.TemplateLicenseKeyReissued: reflect.TypeFor[ports.LicenseKeyReissuedEmail](),
}

// Templates lists every template name the renderer knows, sorted.
func Templates() []string {
	out := make([]string, 0, len(dataTypes))
	for name := range dataTypes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Options configure the renderer.
type Options struct {
	VendorName   string // shown in the header, the footer and some subjects; default "Samplero"
	BrandColor   string // header background, #rgb or #rrggbb; default "#0f766e"
	AccentColor  string // buttons and links; default BrandColor
	SupportEmail string // "" = no "questions?" line in the footer
	FooterText   string // "" = none; e.g. the vendor's postal address
}

// Renderer implements ports.EmailRenderer. It is immutable after New and safe for concurrent use.
type Renderer struct {
	opts Options
	sets map[string]templateSet
}

type templateSet struct {
	text *texttemplate.Template // "subject", "layout" (which calls "body")
	html *htmltemplate.Template // "layout" (which calls "body")
}

var _ ports.EmailRenderer = (*Renderer)(nil)

var colorRE = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// New parses every template. Its errors are configuration errors (a bad colour or address), or a
// template that does not parse, which every test of this package catches.
func New(o Options) (*Renderer, error) {
	o.VendorName = strings.Join(strings.Fields(o.VendorName), " ")
	if o.VendorName == "" {
		o.VendorName = "Samplero"
	}
	if o.BrandColor == "" {
		o.BrandColor = "#0f766e"
	}
	if o.AccentColor == "" {
		o.AccentColor = o.BrandColor
	}
	// The colours go into style attributes; a fixed shape keeps them from being anything but a colour.
	for name, c := range map[string]string{"brand": o.BrandColor, "accent": o.AccentColor} {
		if !colorRE.MatchString(c) {
			return nil, fmt.Errorf("emailtmpl: the %s colour %q is not #rgb or #rrggbb", name, c)
		}
	}
	o.SupportEmail = strings.TrimSpace(o.SupportEmail)
	if o.SupportEmail != "" && !strings.Contains(o.SupportEmail, "@") {
		return nil, fmt.Errorf("emailtmpl: the support address %q is not an e-mail address", o.SupportEmail)
	}
	o.FooterText = strings.TrimSpace(o.FooterText)
	r := &Renderer{opts: o, sets: make(map[string]templateSet, len(dataTypes))}
	for name := range dataTypes {
		txt, err := texttemplate.New(name).Funcs(texttemplate.FuncMap(funcs)).
			ParseFS(files, "templates/layout.txt", "templates/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("emailtmpl: %s.txt: %w", name, err)
		}
		htm, err := htmltemplate.New(name).Funcs(htmltemplate.FuncMap(funcs)).
			ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("emailtmpl: %s.html: %w", name, err)
		}
		for _, def := range []string{"subject", "layout", "body"} {
			if txt.Lookup(def) == nil {
				return nil, fmt.Errorf("emailtmpl: %s.txt defines no %q", name, def)
			}
		}
		for _, def := range []string{"layout", "body"} {
			if htm.Lookup(def) == nil {
				return nil, fmt.Errorf("emailtmpl: %s.html defines no %q", name, def)
			}
		}
		r.sets[name] = templateSet{text: txt, html: htm}
	}
	return r, nil
}

// page is what the templates see: the vendor's settings and the e-mail's data (.Data).
type page struct {
	Vendor       string
	BrandColor   string
	AccentColor  string
	SupportEmail string
	FooterText   string
	Subject      string
	Data         any
}

// Render implements ports.EmailRenderer. data is the template's struct or a non-nil pointer to it.
func (r *Renderer) Render(template string, data any) (subject, text, html string, err error) {
	set, ok := r.sets[template]
	if !ok {
		return "", "", "", errs.Internalf("emailtmpl: unknown template %q", template)
	}
	v := reflect.ValueOf(data)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if !v.IsValid() || v.Type() != dataTypes[template] {
		return "", "", "", errs.Internalf("emailtmpl: template %q renders %s, not %T", template, dataTypes[template], data)
	}
	p := page{
		Vendor: r.opts.VendorName, BrandColor: r.opts.BrandColor, AccentColor: r.opts.AccentColor,
		SupportEmail: r.opts.SupportEmail, FooterText: r.opts.FooterText, Data: v.Interface(),
	}
	var b bytes.Buffer
	if err := set.text.ExecuteTemplate(&b, "subject", p); err != nil {
		return "", "", "", errs.Internalf("emailtmpl: %s subject: %w", template, err)
	}
	// A subject is one line whatever a product or device name contained (no header injection).
	p.Subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := set.text.ExecuteTemplate(&b, "layout", p); err != nil {
		return "", "", "", errs.Internalf("emailtmpl: %s text: %w", template, err)
	}
	text = tidyText(b.String())
	b.Reset()
	if err := set.html.ExecuteTemplate(&b, "layout", p); err != nil {
		return "", "", "", errs.Internalf("emailtmpl: %s html: %w", template, err)
	}
	return p.Subject, text, tidyHTML(b.String()), nil
}

var blankLines = regexp.MustCompile(`\n{3,}`)

// tidyText trims trailing spaces and collapses runs of blank lines, so the text templates can
// use conditionals freely without leaving holes in the mail.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "-- " { // the signature separator keeps its space (RFC 3676)
			lines[i] = strings.TrimRight(l, " \t")
		}
	}
	s = blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimLeft(strings.TrimRight(s, "\n"), "\n") + "\n"
}

var emptyLines = regexp.MustCompile(`\n\s*\n`)

// tidyHTML drops the blank lines the template actions leave (whitespace between blocks means
// nothing in HTML; inside <pre> the templates never leave blank lines).
func tidyHTML(s string) string {
	return strings.TrimSpace(emptyLines.ReplaceAllString(s, "\n")) + "\n"
}

// funcs are shared by both template kinds. They return plain strings; html/template escapes them.
var funcs = map[string]any{
	"when":     when,
	"day":      day,
	"money":    money,
	"devices":  devices,
	"kind":     kind,
	"platform": platform,
	"orNone":   func(s, none string) string { return firstNonEmpty(s, none) },
	"lines":    func(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") },
	"link":     func(label, url, color string) link { return link{label, url, color} },
	"fact":     func(label, value string) fact { return fact{label, value} },
}

// link is a call to the "button" template: data, not markup, so html/template still escapes it.
type link struct{ Label, URL, Color string }

// fact is a call to the "fact" template: one "label: value" line.
type fact struct{ Label, Value string }

// when is a moment for people: "29 November 2026, 12:15 UTC". E-mails do not know the reader's
// time zone, so they say UTC rather than guess.
func when(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 MST") }

// day is a date for people: "29 November 2026" (UTC); nil is "".
func day(t any) string {
	switch v := t.(type) {
	case time.Time:
		return v.UTC().Format("2 January 2006")
	case *time.Time:
		if v != nil {
			return v.UTC().Format("2 January 2006")
		}
	}
	return ""
}

// zeroDecimal lists the ISO 4217 currencies whose minor unit is the major unit (Stripe's list).
var zeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true, "KRW": true, "MGA": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

// money formats minor units: 4900 EUR → "49.00 EUR".
func money(cents int64, currency string) string {
	currency = strings.ToUpper(currency)
	if zeroDecimal[currency] {
		return strconv.FormatInt(cents, 10) + " " + currency
	}
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// devices is "1 device" or "3 devices".
func devices(n int) string {
	if n == 1 {
		return "1 device"
	}
	return strconv.Itoa(n) + " devices"
}

func kind(k string) string {
	switch k {
	case "plugin":
		return "plugin"
	case "sample_pack":
		return "sample pack"
	}
	return strings.ReplaceAll(k, "_", " ")
}

// platform names the platforms devices report (PROTOCOL.md: mac, win, linux).
func platform(p string) string {
	switch strings.ToLower(p) {
	case "mac", "macos", "darwin":
		return "macOS"
	case "win", "windows":
		return "Windows"
	case "linux":
		return "Linux"
	case "":
		return "(unknown)"
	}
	return p
}

func firstNonEmpty(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}
