package httpapi

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The signed-in customer's orders and downloads. Orders are the customer's when their e-mail is
// the account's verified e-mail (guest orders included). The commerce port does not scope by
// owner, so this adapter does: an order of another e-mail is the same 404 ORDER_NOT_FOUND as a
// missing one.

const (
	// maxOrderPages bounds the orders GET /v1/me/downloads walks (maxOrderPages × 200 orders).
	maxOrderPages = 10
	orderPageSize = 200
)

// ownOrder loads an order of the signed-in customer.
func (a *api) ownOrder(ctx context.Context, email, id string) (ports.OrderView, error) {
	notFound := errs.E(errs.NotFound, order.CodeOrderNotFound, "no such order")
	if id == "" {
		return ports.OrderView{}, notFound
	}
	v, err := a.deps.Commerce.GetOrder(ctx, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return ports.OrderView{}, notFound
		}
		return ports.OrderView{}, err
	}
	if email == "" || !strings.EqualFold(strings.TrimSpace(v.Order.CustomerEmail), email) {
		return ports.OrderView{}, notFound
	}
	return v, nil
}

// meOrders: GET /v1/me/orders?limit=&cursor= → the customer's orders, newest first, with receipts
// and delivery summaries.
func (a *api) meOrders(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	email := session(c).ident.Email
	items, next, err := a.deps.Commerce.ListOrders(c.UserContext(), ports.OrderFilter{CustomerEmail: email, Page: p})
	if err != nil {
		return err
	}
	// The filter scopes the list; an order of another address would be a bug of the store, and
	// must still not be shown.
	own := items[:0:0]
	for _, v := range items {
		if strings.EqualFold(v.Order.CustomerEmail, email) {
			own = append(own, v)
		}
	}
	return renderPage(c, own, next, func(v ports.OrderView) customerOrderBody { return customerOrderOf(v, false) })
}

// meOrder: GET /v1/me/orders/{id} → the order with its entitlements.
func (a *api) meOrder(c *fiber.Ctx) error {
	v, err := a.ownOrder(c.UserContext(), session(c).ident.Email, param(c, "id"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, customerOrderOf(v, true))
}

type meDownloadBody struct {
	Product        string              `json:"product"`
	ProductName    string              `json:"product_name"`
	OrderID        string              `json:"order_id"`
	OrderReference string              `json:"order_reference"`
	ViaBundle      *string             `json:"via_bundle"`
	Versions       []publicVersionBody `json:"versions"`
}

// meDownloads: GET /v1/me/downloads → every product the customer's orders give a download right to
// (active, unlocked entitlements), once, with the order that grants it (for POST /v1/me/downloads)
// and the latest published version per platform. Newest orders first.
func (a *api) meDownloads(c *fiber.Ctx) error {
	ctx, email := c.UserContext(), session(c).ident.Email
	out := itemsBody[meDownloadBody]{Items: []meDownloadBody{}}
	seen := map[string]bool{}
	cursor := ""
	for range maxOrderPages {
		views, next, err := a.deps.Commerce.ListOrders(ctx, ports.OrderFilter{CustomerEmail: email, Page: ports.Page{Limit: orderPageSize, Cursor: cursor}})
		if err != nil {
			return err
		}
		for _, lv := range views {
			if order.IsRevoked(lv.Order.Status) || !strings.EqualFold(lv.Order.CustomerEmail, email) {
				continue
			}
			// Lists carry no entitlements: read the order whole.
			v, err := a.ownOrder(ctx, email, lv.Order.ID)
			if err != nil {
				if errs.KindOf(err) == errs.NotFound {
					continue // gone meanwhile
				}
				return err
			}
			names := map[string]string{}
			for _, l := range v.Receipt {
				names[l.Product] = l.ProductName
			}
			for _, e := range v.Entitlements {
				if e.Status != order.EntitlementActive || e.UnlockedAt == nil || seen[e.Product] {
					continue
				}
				seen[e.Product] = true
				item, err := a.downloadItem(ctx, v, e, names[e.Product])
				if err != nil {
					return err
				}
				out.Items = append(out.Items, item)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return render(c, fiber.StatusOK, out)
}

func (a *api) downloadItem(ctx context.Context, v ports.OrderView, e order.Entitlement, name string) (meDownloadBody, error) {
	item := meDownloadBody{
		Product: e.Product, ProductName: name, OrderID: v.Order.ID, OrderReference: v.Reference,
		ViaBundle: nullable(e.ViaBundle), Versions: []publicVersionBody{},
	}
	if item.OrderReference == "" && v.Order.Number > 0 {
		item.OrderReference = order.Reference(v.Order.Number)
	}
	if item.ProductName == "" { // a bundle's component is not a line of the receipt
		p, err := a.deps.Commerce.CatalogProduct(ctx, e.Product)
		switch {
		case err == nil:
			item.ProductName = p.Name
		case errs.KindOf(err) == errs.NotFound:
			item.ProductName = e.Product
		default:
			return item, err
		}
	}
	vs, err := a.deps.Commerce.LatestVersions(ctx, e.Product, "")
	if err != nil {
		if errs.KindOf(err) != errs.NotFound {
			return item, err
		}
		vs = nil // no longer in the public catalog: no versions to list, the right stays
	}
	catalog.SortNewestFirst(vs)
	for _, ver := range vs {
		item.Versions = append(item.Versions, publicVersionOf(ver))
	}
	return item, nil
}

// meDownload: POST /v1/me/downloads {"order_id","product","platform"?,"version_id"?} → a download
// link. The order must be the customer's; its access token then proves the right, as on the order
// page.
func (a *api) meDownload(c *fiber.Ctx) error {
	var req struct {
		OrderID   *string `json:"order_id"`
		Product   *string `json:"product"`
		Platform  *string `json:"platform"`
		VersionID *string `json:"version_id"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if req.OrderID == nil || *req.OrderID == "" {
		return errs.Validation("order_id is required")
	}
	if req.Product == nil || *req.Product == "" {
		return errs.Validation("product is required")
	}
	v, err := a.ownOrder(c.UserContext(), session(c).ident.Email, *req.OrderID)
	if err != nil {
		return err
	}
	id := v.Order.ID
	return a.download(c, ports.DownloadCommand{OrderID: id, AccessToken: a.deps.Commerce.AccessToken(id)},
		downloadRequest{Product: req.Product, Platform: req.Platform, VersionID: req.VersionID})
}
