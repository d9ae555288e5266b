package commerce

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The e-mails of the commerce context: the delivery e-mail to the buyer (keys and download links),
// the refund e-mail, and the support alerts to the operator. The service decides what they say (a
// ports.Template* name and its data); Deps.Emails (adapters/emailtmpl in production) renders them
// inside the vendor's layout and escapes what came from outside (product names, provider data).
// Message IDs are deterministic (delivery-<order>, refund-<order>, support-<order>-<tag>,
// support-unknown-<provider>-<event>), so the delivery workflow sends each once.

// render renders one e-mail into a message. A rendering failure is a programming error (unknown
// template, wrong data type), so it is an errs.Internal error.
func (s *Service) render(id, to, template string, data any) (ports.EmailMessage, error) {
	subject, text, html, err := s.d.Emails.Render(template, data)
	if err != nil {
		// Whatever the renderer says, a message that cannot be rendered is a bug, never the
		// caller's input: it must not reach a client as anything but INTERNAL.
		if e, ok := errs.As(err); ok && e.Kind == errs.Internal {
			return ports.EmailMessage{}, err
		}
		return ports.EmailMessage{}, errs.Internalf("commerce: rendering %s e-mail: %w", template, err)
	}
	return ports.EmailMessage{ID: id, To: to, Subject: subject, Text: text, HTML: html, Template: template}, nil
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

// deliveryEmail renders the delivery e-mail of a paid order from its issued entitlements: a
// license per plugin (bundle components included), the names of the sample packs, and the stable
// download link of every downloadable product. A product whose entitlement or license is not
// issued yet is an error (the workflow issues before it e-mails).
func (s *Service) deliveryEmail(ctx context.Context, o order.Order) (ports.EmailMessage, error) {
	ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
	if err != nil {
		return ports.EmailMessage{}, portFailure("listing entitlements", err)
	}
	byKey := make(map[entKey]order.Entitlement, len(ents))
	for _, e := range ents {
		byKey[entKey{e.LineIndex, e.Product}] = e
	}
	data := ports.LicenseDeliveryEmail{
		Reference:  order.Reference(o.Number),
		OrderURL:   s.orderPageURL(o.ID),
		TotalCents: o.TotalCents,
		Currency:   o.Currency,
	}
	for i, l := range o.Lines {
		name, typ := firstNonEmpty(l.ProductName, l.Product), catalog.ProductType(l.ProductType)
		if err := s.deliver(ctx, &data, o, byKey, i, l.Product, name, typ); err != nil {
			return ports.EmailMessage{}, err
		}
		if typ != catalog.TypeBundle {
			continue
		}
		// The contract's e-mail is flat: a bundle's components are listed as products of their
		// own, named after the bundle so that the buyer recognises what they bought.
		for _, e := range ents {
			if e.LineIndex != i || e.ViaBundle != l.Product {
				continue
			}
			p, err := s.d.Catalog.ProductBySlug(ctx, e.Product)
			cname, ctyp := e.Product, catalog.TypeSamplePack
			if err == nil {
				cname, ctyp = p.Name, p.Type
			} else if !repoMissing(err) {
				return ports.EmailMessage{}, portFailure("loading product", err)
			}
			if e.LicenseID != "" {
				ctyp = catalog.TypePlugin
			}
			if err := s.deliver(ctx, &data, o, byKey, i, e.Product, cname+" ("+name+")", ctyp); err != nil {
				return ports.EmailMessage{}, err
			}
		}
	}
	return s.render("delivery-"+o.ID, o.CustomerEmail, ports.TemplateLicenseDelivery, data)
}

// deliver adds one product granted by line i to the delivery e-mail: its license (plugins) or its
// name (sample packs), and its download link when the product has a downloadable version. A
// bundle itself adds nothing (its components do) but must have been issued.
func (s *Service) deliver(ctx context.Context, data *ports.LicenseDeliveryEmail, o order.Order, byKey map[entKey]order.Entitlement, i int, slug, name string, typ catalog.ProductType) error {
	e, ok := byKey[entKey{i, slug}]
	if !ok {
		return errs.Internalf("commerce: order %s line %d: %s has no entitlement yet", o.ID, i, slug)
	}
	switch typ {
	case catalog.TypePlugin:
		if e.LicenseID == "" {
			return errs.Internalf("commerce: order %s line %d: plugin %s has no license", o.ID, i, slug)
		}
		lic, err := s.d.Licensing.GetLicense(ctx, e.LicenseID)
		if err != nil {
			return portFailure("loading license", err)
		}
		data.Licenses = append(data.Licenses, ports.EmailLicense{
			Product: name, Key: lic.Key, MaxActivations: lic.MaxActivations, ExpiresAt: lic.ExpiresAt,
		})
	case catalog.TypeSamplePack:
		data.SamplePacks = append(data.SamplePacks, name)
	case catalog.TypeBundle:
		return nil
	}
	if e.Status != order.EntitlementActive {
		return nil
	}
	p, err := s.d.Catalog.ProductBySlug(ctx, slug)
	if repoMissing(err) {
		return nil
	}
	if err != nil {
		return portFailure("loading product", err)
	}
	ok, err = s.downloadable(ctx, p)
	if err != nil || !ok {
		return err
	}
	data.Downloads = append(data.Downloads, ports.EmailDownload{Product: name, Kind: string(typ), URL: s.downloadPageURL(o.ID, slug)})
	return nil
}

// ---- refund ----

// refundEmail tells the buyer that a refunded or disputed order's keys and downloads have ended.
func (s *Service) refundEmail(o order.Order) (ports.EmailMessage, error) {
	data := ports.OrderRefundedEmail{Reference: order.Reference(o.Number), Disputed: o.Status == order.StatusDisputed}
	for _, l := range o.Lines {
		data.Products = append(data.Products, firstNonEmpty(l.ProductName, l.Product))
	}
	return s.render("refund-"+o.ID, o.CustomerEmail, ports.TemplateOrderRefunded, data)
}

// ---- support ----

// facts collects the "Label: value" lines of a support alert's Detail, skipping empty values.
type facts []string

func (f *facts) add(label, value string) {
	if value != "" {
		*f = append(*f, label+": "+value)
	}
}

func (f facts) String() string { return strings.Join(f, "\n") }

// supportEmail renders an alert about an order to the operator (ID support-<order id>-<tag>; To ""
// when no operator address is configured). title is the alert's subject, explain says what
// happened, ev adds the payment event's facts.
func (s *Service) supportEmail(o order.Order, tag, title, explain string, ev *ports.PaymentEventIn) (ports.EmailMessage, error) {
	var f facts
	f.add("Order", order.Reference(o.Number)+" ("+o.ID+")")
	f.add("Customer", o.CustomerEmail)
	f.add("Status", string(o.Status))
	f.add("Held for", o.ReviewReason)
	f.add("Order total", money(o.TotalCents, o.Currency))
	if o.PaymentProvider != "" {
		f.add("Paid", money(o.PaidAmountCents, o.PaidCurrency))
		f.add("Provider", o.PaymentProvider)
		f.add("Payment", o.PaymentRef)
	}
	if ev != nil {
		f.add("Event", ev.Provider+" "+ev.EventID+" ("+firstNonEmpty(ev.RawType, ev.Type)+")")
		if ev.DiscountCents > 0 {
			f.add("Provider discount", money(ev.DiscountCents, strings.ToUpper(ev.Currency)))
		}
	}
	data := ports.SupportAlertEmail{
		Subject:   title,
		Reference: order.Reference(o.Number),
		OrderID:   o.ID,
		Reason:    explain,
		Detail:    f.String(),
		AdminHint: orderAdminHint(o),
	}
	return s.render("support-"+o.ID+"-"+tag, s.d.Config.OperatorEmail, ports.TemplateSupportAlert, data)
}

// orderAdminHint names the admin API calls that settle an alert about o.
func orderAdminHint(o order.Order) string {
	base := "/v1/admin/orders/" + url.PathEscape(o.ID)
	if o.ReviewReason != "" {
		return "Look at the order with GET " + base + ", then release the hold with POST " + base +
			"/release (fulfilment runs again) or refund it with POST " + base + "/refund."
	}
	return "Look at the order with GET " + base + "; POST " + base + "/refund refunds it."
}

// unknownPaymentEmail renders the alert about a payment that made no order.
func (s *Service) unknownPaymentEmail(ev ports.PaymentEventIn, explain string) (ports.EmailMessage, error) {
	var f facts
	f.add("Event", ev.Provider+" "+ev.EventID+" ("+firstNonEmpty(ev.RawType, ev.Type)+")")
	f.add("Order id named", ev.OrderID)
	f.add("Checkout session", ev.SessionID)
	f.add("Products", ev.Products)
	f.add("Customer", ev.CustomerEmail)
	f.add("Payment", ev.PaymentRef)
	f.add("Paid", money(ev.AmountCents, strings.ToUpper(ev.Currency)))
	data := ports.SupportAlertEmail{
		Subject:   "Payment without an order",
		Reason:    explain,
		Detail:    f.String(),
		AdminHint: "Find the payment at " + firstNonEmpty(ev.Provider, "the provider") + " and refund it there, or create the order it was for with POST /v1/admin/orders and mark it paid with POST /v1/admin/orders/{id}/mark-paid.",
	}
	return s.render("support-unknown-"+ev.Provider+"-"+ev.EventID, s.d.Config.OperatorEmail, ports.TemplateSupportAlert, data)
}
