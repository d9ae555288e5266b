package web

import (
	"fmt"
	"html/template"
	"log/slog"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The buyer's order page and its download redirects: the stable links of the delivery e-mail. The
// order's access token (in the query) is the only credential: it shows the order and hands out
// download links, nothing else. License keys are never shown here (they travel in the e-mail only),
// nor anything an operator sees (review reasons, payment references).

// OrderPath is the order page, /orders/{id}?token=…; its downloads are under OrderPath/{id}/download.
const OrderPath = "/orders"

func (p *Pages) registerOrders(r fiber.Router) {
	r.Get(OrderPath+"/:id", p.showOrder)
	r.Get(OrderPath+"/:id/download/:product", p.downloadRedirect)
}

type orderLine struct {
	Name     string
	Quantity int
	Unit     string
	Total    string
}

// downloadChoice is one download button: a GET form, so that it is a real button without any
// script or extra style, whose URL is Href (Action with Token and Platform as its query).
type downloadChoice struct {
	Label    string // "macOS · 1.2.3 · 45.1 MB"
	Href     string
	Action   string
	Token    string
	Platform string
}

type downloadItem struct {
	Name    string
	Choices []downloadChoice
}

type orderData struct {
	Title       string
	CSS         template.CSS
	Reference   string
	Status      string
	Note        string
	Email       string
	Created     string
	Lines       []orderLine
	Subtotal    string
	Discount    string
	CouponCode  string
	Total       string
	Downloads   []downloadItem
	HasLicenses bool
}

// statusText is what the buyer reads for each status, with what happens next.
var statusText = map[order.Status][2]string{
	order.StatusPending:   {"Awaiting payment", "We have not received the payment for this order yet. This page updates once it arrives."},
	order.StatusPaid:      {"Payment received", "Your payment was received and your delivery is being prepared. It arrives by e-mail in a few minutes; this page shows the downloads as soon as they are ready."},
	order.StatusFulfilled: {"Delivered", ""},
	order.StatusRefunded:  {"Refunded", "This order was refunded. Its licenses and downloads are no longer available."},
	order.StatusDisputed:  {"Disputed", "The payment of this order is disputed. Its licenses and downloads are suspended."},
	order.StatusFailed:    {"Not completed", "This order was not completed and nothing was charged for it."},
}

// showOrder: GET /orders/{id}?token=… shows the order. It changes nothing.
func (p *Pages) showOrder(c *fiber.Ctx) error {
	id, token := strings.Clone(c.Params("id")), strings.Clone(c.Query("token"))
	if token == "" {
		return p.say(c, fiber.StatusNotFound, "Order not found", "This link is not valid. Open it from your e-mail again.", "")
	}
	v, err := p.com.OrderByAccessToken(c.UserContext(), id, token)
	if err != nil {
		return p.orderFail(c, err)
	}
	o := v.Order
	status := statusText[o.Status]
	data := orderData{
		Title:      "Order " + v.Reference,
		CSS:        p.css,
		Reference:  v.Reference,
		Status:     status[0],
		Note:       status[1],
		Email:      o.CustomerEmail,
		Created:    stamp(o.CreatedAt),
		Subtotal:   money(o.SubtotalCents, o.Currency),
		CouponCode: o.CouponCode,
		Total:      money(o.TotalCents, o.Currency),
	}
	if data.Reference == "" {
		data.Reference = order.Reference(o.Number)
		data.Title = "Order " + data.Reference
	}
	if data.Status == "" {
		data.Status = string(o.Status)
	}
	if o.DiscountCents > 0 {
		data.Discount = money(o.DiscountCents, o.Currency)
	}
	names := map[string]string{}
	for _, l := range v.Receipt {
		names[l.Product] = l.ProductName
		data.Lines = append(data.Lines, orderLine{
			Name: l.ProductName, Quantity: l.Quantity,
			Unit: money(l.UnitPriceCents, o.Currency), Total: money(l.LineTotalCents, o.Currency),
		})
	}
	if !order.IsRevoked(o.Status) {
		data.Downloads, data.HasLicenses = p.downloads(c, v, token, names)
	}
	if o.Status == order.StatusFulfilled && len(data.Downloads) == 0 {
		data.Note = "Your order was delivered to " + o.CustomerEmail + "."
	}
	return p.render(c, fiber.StatusOK, p.order, data)
}

// downloads lists a download link per product the order grants (active, unlocked entitlements) and
// per platform of its latest versions; a product whose versions cannot be listed (no longer in the
// public catalog) gets one link and the server picks the version.
func (p *Pages) downloads(c *fiber.Ctx, v ports.OrderView, token string, names map[string]string) ([]downloadItem, bool) {
	var (
		out      []downloadItem
		seen     = map[string]bool{}
		licenses bool
	)
	for _, e := range v.Entitlements {
		if e.LicenseID != "" && e.Status == order.EntitlementActive {
			licenses = true
		}
		if e.Status != order.EntitlementActive || e.UnlockedAt == nil || seen[e.Product] {
			continue
		}
		seen[e.Product] = true
		item := downloadItem{Name: names[e.Product]}
		if item.Name == "" {
			if prd, err := p.com.CatalogProduct(c.UserContext(), e.Product); err == nil {
				item.Name = prd.Name
			} else {
				item.Name = e.Product
			}
		}
		versions, err := p.com.LatestVersions(c.UserContext(), e.Product, "")
		if err != nil && errs.KindOf(err) != errs.NotFound {
			p.log.LogAttrs(c.UserContext(), slog.LevelWarn, "web: listing versions for the order page",
				slog.String("product", e.Product), slog.String("error", err.Error()))
		}
		catalog.SortNewestFirst(versions)
		for _, ver := range versions {
			if ver.StorageKey == "" {
				continue
			}
			label := platformName(string(ver.Platform)) + " · " + ver.Version
			if ver.SizeBytes > 0 {
				label += " · " + size(ver.SizeBytes)
			}
			item.Choices = append(item.Choices, choice(label, v.Order.ID, e.Product, token, string(ver.Platform)))
		}
		if len(item.Choices) == 0 {
			item.Choices = []downloadChoice{choice("Download", v.Order.ID, e.Product, token, "")}
		}
		out = append(out, item)
	}
	return out, licenses
}

// choice makes a download button. Its URL is relative to the order page (/orders/{id}), so that it
// follows whatever prefix a proxy put in front of the pages.
func choice(label, orderID, product, token, platform string) downloadChoice {
	action := url.PathEscape(orderID) + "/download/" + url.PathEscape(product)
	q := url.Values{"token": {token}}
	if platform != "" {
		q.Set("platform", platform)
	}
	return downloadChoice{Label: label, Href: action + "?" + q.Encode(), Action: action, Token: token, Platform: platform}
}

// downloadRedirect: GET /orders/{id}/download/{product}?token=…&platform=… → 302 to a fresh link.
func (p *Pages) downloadRedirect(c *fiber.Ctx) error {
	token := strings.Clone(c.Query("token"))
	if token == "" {
		return p.say(c, fiber.StatusNotFound, "Download not found", "This link is not valid. Open it from your e-mail again.", "")
	}
	cmd := ports.DownloadCommand{
		OrderID: strings.Clone(c.Params("id")), AccessToken: token, Product: strings.Clone(c.Params("product")),
		RequestAddr: strings.Clone(c.IP()),
	}
	if s := c.Query("platform"); s != "" {
		pl, err := catalog.ParsePlatform(s)
		if err != nil {
			return p.say(c, fiber.StatusBadRequest, "Request not understood", "This download link is not valid.", "")
		}
		cmd.Platform = string(pl)
	}
	link, err := p.com.DownloadLink(c.UserContext(), cmd)
	if err != nil {
		return p.orderFail(c, err)
	}
	p.headers(c)
	return c.Redirect(link.URL, fiber.StatusFound)
}

// orderFail renders a commerce error as a small page: fixed texts, nothing from the error.
func (p *Pages) orderFail(c *fiber.Ctx, err error) error {
	switch errs.KindOf(err) {
	case errs.NotFound:
		if errs.CodeOf(err) == order.CodeDownloadNotAvailable {
			return p.say(c, fiber.StatusNotFound, "Nothing to download",
				"There is no file to download for this product yet. Please try again later.", "")
		}
		return p.say(c, fiber.StatusNotFound, "Order not found", "This link is not valid. Open it from your e-mail again.", "")
	case errs.Forbidden, errs.Conflict:
		return p.say(c, fiber.StatusForbidden, "Download not available",
			"This order does not give access to this download (it may not be delivered yet, or it was refunded).", "")
	case errs.Invalid:
		return p.say(c, fiber.StatusBadRequest, "Request not understood", "This link is not valid.", "")
	case errs.RateLimited:
		return p.say(c, fiber.StatusTooManyRequests, "Please wait", "Too many requests. Please try again in a minute.", "")
	}
	p.log.LogAttrs(c.UserContext(), slog.LevelError, "web: order page", slog.String("error", err.Error()))
	return p.say(c, fiber.StatusServiceUnavailable, "Please try again",
		"We could not process this request right now. Please try again in a few minutes.", "")
}

func platformName(p string) string {
	switch p {
	case "all":
		return "All platforms"
	case "":
		return "Download"
	}
	if n := platforms[p]; n != "" {
		return n
	}
	return p
}

// zeroDecimal are the ISO 4217 currencies without minor units.
var zeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "ISK": true, "JPY": true, "KMF": true, "KRW": true,
	"PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

// money renders minor units: 4900 USD → "49.00 USD".
func money(cents int64, currency string) string {
	if zeroDecimal[currency] {
		return fmt.Sprintf("%d %s", cents, currency)
	}
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// size renders a byte count: 1536 → "1.5 KB".
func size(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "KMGTPE"[exp])
}
