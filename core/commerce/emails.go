package commerce

import (
	"context"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The e-mails of the commerce context: the delivery e-mail to the buyer (keys and download links),
// the refund e-mail, and the support alerts to the operator. Every e-mail has a plain-text part
// (text/template) and an HTML part (html/template, which escapes product names and whatever else
// came from outside) rendered from the same data inside one layout per part.

const textLayout = `{{define "layout"}}{{template "body" .}}
-- 
{{.Vendor}}
{{end}}`

const htmlLayout = `{{define "layout"}}<!doctype html>
<html><body style="font-family:Helvetica,Arial,sans-serif;color:#222;max-width:640px;margin:0 auto;padding:16px">
<p style="font-size:18px;font-weight:bold;margin:0 0 16px">{{.Vendor}}</p>
{{template "body" .}}
<p style="color:#777;font-size:12px;margin-top:32px">{{.Vendor}}</p>
</body></html>
{{end}}`

// ---- delivery ----

const deliverySubject = `Your {{.Vendor}} order {{.Reference}} is ready`

const deliveryText = `{{define "body"}}Hello,

thank you for your order {{.Reference}}. Everything in it is ready.
{{range .Items}}
* {{.Name}}{{if gt .Quantity 1}} (quantity {{.Quantity}}){{end}}
{{- template "entry" .}}
{{- range .Components}}
  - {{.Name}}
{{- template "entry" .}}
{{- end}}
{{end}}
Your order page, with every download: {{.OrderURL}}

These links are personal: whoever has them can download what you bought, so please do not share
them. Keep your license keys; you need them to activate the plugins.
{{end}}
{{define "entry"}}
{{- range .Licenses}}
    License key: {{.Key}} (for up to {{.Seats}} {{if eq .Seats 1}}device{{else}}devices{{end}})
{{- end}}
{{- if .SamplePack}}
    Your sample pack is ready to download.
{{- end}}
{{- if .DownloadURL}}
    Download: {{.DownloadURL}}
{{- end}}
{{- end}}`

const deliveryHTML = `{{define "body"}}<p>Hello,</p>
<p>thank you for your order <strong>{{.Reference}}</strong>. Everything in it is ready.</p>
<ul>
{{- range .Items}}
<li><strong>{{.Name}}</strong>{{if gt .Quantity 1}} (quantity {{.Quantity}}){{end}}
{{- template "entry" .}}
{{- if .Components}}
<ul>
{{- range .Components}}
<li>{{.Name}}{{template "entry" .}}</li>
{{- end}}
</ul>
{{- end}}
</li>
{{- end}}
</ul>
<p><a href="{{.OrderURL}}">Open your order page</a> for every download.</p>
<p style="color:#555">These links are personal: whoever has them can download what you bought, so please do not share them.
Keep your license keys; you need them to activate the plugins.</p>
{{end}}
{{define "entry"}}
{{- range .Licenses}}
<br>License key: <code style="font-size:15px">{{.Key}}</code> (for up to {{.Seats}} {{if eq .Seats 1}}device{{else}}devices{{end}})
{{- end}}
{{- if .SamplePack}}
<br>Your sample pack is ready to download.
{{- end}}
{{- if .DownloadURL}}
<br><a href="{{.DownloadURL}}">Download</a>
{{- end}}
{{- end}}`

// ---- refund ----

const refundSubject = `Your {{.Vendor}} order {{.Reference}} was {{.What}}`

const refundText = `{{define "body"}}Hello,

{{if eq .What "refunded" -}}
your order {{.Reference}} was refunded.
{{- else -}}
the payment of your order {{.Reference}} was disputed with your bank or card issuer.
{{- end}} The license keys of this order no longer activate, and its downloads have ended:
{{range .Products}}
  - {{.}}
{{- end}}

If you think this is a mistake, reply to this e-mail.
{{end}}`

const refundHTML = `{{define "body"}}<p>Hello,</p>
<p>{{if eq .What "refunded"}}your order <strong>{{.Reference}}</strong> was refunded.{{else}}the payment of your order <strong>{{.Reference}}</strong> was disputed with your bank or card issuer.{{end}}
The license keys of this order no longer activate, and its downloads have ended:</p>
<ul>
{{- range .Products}}
<li>{{.}}</li>
{{- end}}
</ul>
<p>If you think this is a mistake, reply to this e-mail.</p>
{{end}}`

// ---- support alerts ----

const supportSubject = `[{{.Vendor}}] {{.Title}}{{if .Reference}}: {{.Reference}}{{end}}`

const supportText = `{{define "body"}}{{.Title}}

{{.Explain}}
{{range .Facts}}
  {{.Label}}: {{.Value}}
{{- end}}
{{end}}`

const supportHTML = `{{define "body"}}<p><strong>{{.Title}}</strong></p>
<p>{{.Explain}}</p>
<table>
{{- range .Facts}}
<tr><td style="padding-right:12px;color:#555">{{.Label}}</td><td><code>{{.Value}}</code></td></tr>
{{- end}}
</table>
{{end}}`

// mailTemplate is one e-mail: a subject and both bodies, each body inside its layout.
type mailTemplate struct {
	name    string
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// newMailTemplate parses an e-mail. The templates are constants, so a parse failure is a
// programming error that every test of this package catches.
func newMailTemplate(name, subject, text, html string) mailTemplate {
	t := texttemplate.Must(texttemplate.New(name + ".txt").Parse(textLayout))
	texttemplate.Must(t.Parse(text))
	h := htmltemplate.Must(htmltemplate.New(name + ".html").Parse(htmlLayout))
	htmltemplate.Must(h.Parse(html))
	return mailTemplate{
		name:    name,
		subject: texttemplate.Must(texttemplate.New(name + ".subject").Parse(subject)),
		text:    t,
		html:    h,
	}
}

// mailTemplates are parsed once; they are read-only afterwards.
var mailTemplates = struct {
	delivery, refund, support mailTemplate
}{
	delivery: newMailTemplate("order_delivery", deliverySubject, deliveryText, deliveryHTML),
	refund:   newMailTemplate("order_refunded", refundSubject, refundText, refundHTML),
	support:  newMailTemplate("support_alert", supportSubject, supportText, supportHTML),
}

func (t mailTemplate) render(id, to string, data any) (ports.EmailMessage, error) {
	var subj, text, html strings.Builder
	if err := t.subject.Execute(&subj, data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("commerce: rendering %s subject: %w", t.name, err)
	}
	if err := t.text.ExecuteTemplate(&text, "layout", data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("commerce: rendering %s text: %w", t.name, err)
	}
	if err := t.html.ExecuteTemplate(&html, "layout", data); err != nil {
		return ports.EmailMessage{}, errs.Internalf("commerce: rendering %s html: %w", t.name, err)
	}
	// A subject is one line whatever a product name contained.
	subject := strings.Join(strings.Fields(subj.String()), " ")
	return ports.EmailMessage{ID: id, To: to, Subject: subject, Text: text.String(), HTML: html.String(), Template: t.name}, nil
}

func (s *Service) vendorName() string {
	if v := strings.TrimSpace(s.d.Config.VendorName); v != "" {
		return v
	}
	return "Samplero"
}

// zeroDecimal lists the ISO 4217 currencies whose minor unit is the major unit (Stripe's list).
var zeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true, "KRW": true, "MGA": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

// money formats minor units for people: 4900 EUR → "49.00 EUR".
func money(cents int64, currency string) string {
	if zeroDecimal[currency] {
		return strconv.FormatInt(cents, 10) + " " + currency
	}
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	frac := strconv.FormatInt(cents%100, 10)
	if len(frac) == 1 {
		frac = "0" + frac
	}
	return sign + strconv.FormatInt(cents/100, 10) + "." + frac + " " + currency
}

// ---- delivery ----

type deliveryData struct {
	Vendor    string
	Reference string
	OrderURL  string
	Items     []deliveryItem
}

type deliveryItem struct {
	Name        string
	Quantity    int
	SamplePack  bool
	Licenses    []licenseLine
	DownloadURL string
	Components  []deliveryItem
}

type licenseLine struct {
	Key   string
	Seats int
}

// deliveryEmail renders the delivery e-mail of a paid order from its issued entitlements. A plugin
// whose license is not issued yet is an error (the workflow issues before it e-mails).
func (s *Service) deliveryEmail(ctx context.Context, o order.Order) (ports.EmailMessage, error) {
	ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
	if err != nil {
		return ports.EmailMessage{}, portFailure("listing entitlements", err)
	}
	byKey := make(map[entKey]order.Entitlement, len(ents))
	for _, e := range ents {
		byKey[entKey{e.LineIndex, e.Product}] = e
	}
	data := deliveryData{Vendor: s.vendorName(), Reference: order.Reference(o.Number), OrderURL: s.orderPageURL(o.ID)}
	for i, l := range o.Lines {
		it, err := s.deliveryItem(ctx, o, byKey, i, l.Product, firstNonEmpty(l.ProductName, l.Product), catalog.ProductType(l.ProductType))
		if err != nil {
			return ports.EmailMessage{}, err
		}
		it.Quantity = l.Quantity
		if catalog.ProductType(l.ProductType) == catalog.TypeBundle {
			for _, e := range ents {
				if e.LineIndex != i || e.ViaBundle != l.Product {
					continue
				}
				p, err := s.d.Catalog.ProductBySlug(ctx, e.Product)
				name, typ := e.Product, catalog.TypeSamplePack
				if err == nil {
					name, typ = p.Name, p.Type
				} else if !repoMissing(err) {
					return ports.EmailMessage{}, portFailure("loading product", err)
				}
				if e.LicenseID != "" {
					typ = catalog.TypePlugin
				}
				c, err := s.deliveryItem(ctx, o, byKey, i, e.Product, name, typ)
				if err != nil {
					return ports.EmailMessage{}, err
				}
				it.Components = append(it.Components, c)
			}
		}
		data.Items = append(data.Items, it)
	}
	return mailTemplates.delivery.render("delivery-"+o.ID, o.CustomerEmail, data)
}

// deliveryItem renders one product granted by line i: its license (plugins) and its download link
// when the product has a downloadable version.
func (s *Service) deliveryItem(ctx context.Context, o order.Order, byKey map[entKey]order.Entitlement, i int, slug, name string, typ catalog.ProductType) (deliveryItem, error) {
	it := deliveryItem{Name: name, SamplePack: typ == catalog.TypeSamplePack}
	e, ok := byKey[entKey{i, slug}]
	if !ok {
		return it, errs.Internalf("commerce: order %s line %d: %s has no entitlement yet", o.ID, i, slug)
	}
	if typ == catalog.TypePlugin {
		if e.LicenseID == "" {
			return it, errs.Internalf("commerce: order %s line %d: plugin %s has no license", o.ID, i, slug)
		}
		lic, err := s.d.Licensing.GetLicense(ctx, e.LicenseID)
		if err != nil {
			return it, portFailure("loading license", err)
		}
		it.Licenses = append(it.Licenses, licenseLine{Key: lic.Key, Seats: lic.MaxActivations})
	}
	if typ != catalog.TypeBundle && e.Status == order.EntitlementActive {
		p, err := s.d.Catalog.ProductBySlug(ctx, slug)
		if err != nil && !repoMissing(err) {
			return it, portFailure("loading product", err)
		}
		if err == nil {
			ok, err := s.downloadable(ctx, p)
			if err != nil {
				return it, err
			}
			if ok {
				it.DownloadURL = s.downloadPageURL(o.ID, slug)
			}
		}
	}
	return it, nil
}

// ---- refund ----

type refundData struct {
	Vendor    string
	Reference string
	What      string // refunded | disputed
	Products  []string
}

func (s *Service) refundEmail(o order.Order) (ports.EmailMessage, error) {
	data := refundData{Vendor: s.vendorName(), Reference: order.Reference(o.Number), What: string(o.Status)}
	for _, l := range o.Lines {
		data.Products = append(data.Products, firstNonEmpty(l.ProductName, l.Product))
	}
	return mailTemplates.refund.render("refund-"+o.ID, o.CustomerEmail, data)
}

// ---- support ----

type fact struct{ Label, Value string }

type supportData struct {
	Vendor    string
	Title     string
	Reference string
	Explain   string
	Facts     []fact
}

// supportEmail renders an alert about an order to the operator (ID support-<order id>-<tag>; To ""
// when no operator address is configured). ev adds the payment event's facts.
func (s *Service) supportEmail(o order.Order, tag, title, explain string, ev *ports.PaymentEventIn) (ports.EmailMessage, error) {
	data := supportData{Vendor: s.vendorName(), Title: title, Reference: order.Reference(o.Number), Explain: explain}
	add := func(label, value string) {
		if value != "" {
			data.Facts = append(data.Facts, fact{label, value})
		}
	}
	add("Order", order.Reference(o.Number)+" ("+o.ID+")")
	add("Customer", o.CustomerEmail)
	add("Status", string(o.Status))
	add("Held for", o.ReviewReason)
	add("Order total", money(o.TotalCents, o.Currency))
	if o.PaymentProvider != "" {
		add("Paid", money(o.PaidAmountCents, o.PaidCurrency))
		add("Provider", o.PaymentProvider)
		add("Payment", o.PaymentRef)
	}
	if ev != nil {
		add("Event", ev.Provider+" "+ev.EventID+" ("+firstNonEmpty(ev.RawType, ev.Type)+")")
		if ev.DiscountCents > 0 {
			add("Provider discount", money(ev.DiscountCents, strings.ToUpper(ev.Currency)))
		}
	}
	return mailTemplates.support.render("support-"+o.ID+"-"+tag, s.d.Config.OperatorEmail, data)
}

// unknownPaymentEmail renders the alert about a payment that made no order.
func (s *Service) unknownPaymentEmail(ev ports.PaymentEventIn, explain string) (ports.EmailMessage, error) {
	data := supportData{Vendor: s.vendorName(), Title: "Payment without an order", Explain: explain}
	add := func(label, value string) {
		if value != "" {
			data.Facts = append(data.Facts, fact{label, value})
		}
	}
	add("Event", ev.Provider+" "+ev.EventID+" ("+firstNonEmpty(ev.RawType, ev.Type)+")")
	add("Order id named", ev.OrderID)
	add("Checkout session", ev.SessionID)
	add("Products", ev.Products)
	add("Customer", ev.CustomerEmail)
	add("Payment", ev.PaymentRef)
	add("Paid", money(ev.AmountCents, strings.ToUpper(ev.Currency)))
	return mailTemplates.support.render("support-unknown-"+ev.Provider+"-"+ev.EventID, s.d.Config.OperatorEmail, data)
}
