package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// Catalog handlers: the admin calls (products, versions, assets) and the public catalog.

// --- bodies ---

type priceBody struct {
	Currency    string `json:"currency"`
	AmountCents int64  `json:"amount_cents"`
}

// adminProductBody is a catalog product as admins see it.
type adminProductBody struct {
	ID          string      `json:"id"`
	Slug        string      `json:"slug"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Type        string      `json:"type"`
	PriceCents  int64       `json:"price_cents"`
	Currency    string      `json:"currency"`
	Prices      []priceBody `json:"prices"`
	Components  []string    `json:"components"`
	Active      bool        `json:"active"`
	CreatedAt   *string     `json:"created_at"`
	UpdatedAt   *string     `json:"updated_at"`
}

// putProductBody answers POST /v1/admin/products with Commerce: PROTOCOL.md section 9's product
// (slug, name, type, price_cents, currency, entitlements, policy, times) plus the catalog fields.
type putProductBody struct {
	adminProductBody
	Entitlements []string    `json:"entitlements"`
	Policy       *policyBody `json:"policy"`
}

// productDetailBody is GET /v1/admin/products/{slug}: the product, its policy and every version.
type productDetailBody struct {
	putProductBody
	Versions []adminVersionBody `json:"versions"`
}

// adminVersionBody is a version as admins see it, storage key included.
type adminVersionBody struct {
	ID                 string  `json:"id"`
	ProductID          string  `json:"product_id"`
	Version            string  `json:"version"`
	Platform           string  `json:"platform"`
	ReleaseNotes       string  `json:"release_notes"`
	MinProtocolVersion int     `json:"min_protocol_version"`
	StorageKey         *string `json:"storage_key"`
	FileName           *string `json:"file_name"`
	FileSizeBytes      int64   `json:"file_size_bytes"`
	SHA256             *string `json:"sha256"`
	Published          bool    `json:"published"`
	IsLatest           bool    `json:"is_latest"`
	CreatedAt          *string `json:"created_at"`
	UpdatedAt          *string `json:"updated_at"`
}

// publicProductBody is a catalog product as anyone sees it.
type publicProductBody struct {
	Slug        string      `json:"slug"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Type        string      `json:"type"`
	PriceCents  int64       `json:"price_cents"`
	Currency    string      `json:"currency"`
	Prices      []priceBody `json:"prices"`
	Components  []string    `json:"components"`
}

// publicVersionBody is a published version as anyone sees it: never its storage key.
type publicVersionBody struct {
	ID                 string  `json:"id"`
	Version            string  `json:"version"`
	Platform           string  `json:"platform"`
	ReleaseNotes       string  `json:"release_notes"`
	MinProtocolVersion int     `json:"min_protocol_version"`
	FileName           *string `json:"file_name"`
	FileSizeBytes      int64   `json:"file_size_bytes"`
	SHA256             *string `json:"sha256"`
	Downloadable       bool    `json:"downloadable"`
	IsLatest           bool    `json:"is_latest"`
	ReleasedAt         *string `json:"released_at"`
}

type itemsBody[T any] struct {
	Items []T `json:"items"`
}

func pricesOf(ps []catalog.Price) []priceBody {
	out := make([]priceBody, 0, len(ps))
	for _, p := range ps {
		out = append(out, priceBody{Currency: p.Currency, AmountCents: p.AmountCents})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func adminProductOf(p catalog.Product) adminProductBody {
	return adminProductBody{
		ID: p.ID, Slug: p.Slug, Name: p.Name, Description: p.Description, Type: string(p.Type),
		PriceCents: catalog.PrimaryPrice(p), Currency: p.Currency, Prices: pricesOf(p.Prices),
		Components: nonNil(p.Components), Active: p.Active,
		CreatedAt: rfc3339(p.CreatedAt), UpdatedAt: rfc3339(p.UpdatedAt),
	}
}

func adminVersionOf(v catalog.Version) adminVersionBody {
	return adminVersionBody{
		ID: v.ID, ProductID: v.ProductID, Version: v.Version, Platform: string(v.Platform), ReleaseNotes: v.ReleaseNotes,
		MinProtocolVersion: v.MinProtocolVersion, StorageKey: nullable(v.StorageKey), FileName: nullable(v.FileName),
		FileSizeBytes: v.SizeBytes, SHA256: nullable(v.SHA256), Published: v.Published, IsLatest: v.IsLatest,
		CreatedAt: rfc3339(v.CreatedAt), UpdatedAt: rfc3339(v.UpdatedAt),
	}
}

func publicProductOf(p catalog.Product) publicProductBody {
	return publicProductBody{
		Slug: p.Slug, Name: p.Name, Description: p.Description, Type: string(p.Type),
		PriceCents: catalog.PrimaryPrice(p), Currency: p.Currency, Prices: pricesOf(p.Prices), Components: nonNil(p.Components),
	}
}

func publicVersionOf(v catalog.Version) publicVersionBody {
	return publicVersionBody{
		ID: v.ID, Version: v.Version, Platform: string(v.Platform), ReleaseNotes: v.ReleaseNotes,
		MinProtocolVersion: v.MinProtocolVersion, FileName: nullable(v.FileName), FileSizeBytes: v.SizeBytes,
		SHA256: nullable(v.SHA256), Downloadable: v.StorageKey != "", IsLatest: v.IsLatest, ReleasedAt: rfc3339(v.CreatedAt),
	}
}

func policyOf(p license.Policy) *policyBody {
	var duration *int64
	if p.Duration > 0 {
		d := seconds(p.Duration)
		duration = &d
	}
	return &policyBody{
		MaxActivations:       p.MaxActivations,
		FirstActivation:      string(p.FirstActivation),
		HeartbeatIntervalS:   seconds(p.HeartbeatInterval),
		GracePeriodS:         seconds(p.GracePeriod),
		CertificateValidityS: seconds(p.CertificateValidity),
		TransfersPer30d:      p.TransfersPer30d,
		DurationS:            duration,
	}
}

// --- requests ---

// catalogProductRequest is POST /v1/admin/products with Commerce: PROTOCOL.md section 9's shape, plus
// the catalog's own fields. Slug may be left out (it is then made from the name); the policy may be
// left out of products that issue no license (sample packs, bundles of sample packs).
type catalogProductRequest struct {
	Slug        *string        `json:"slug"`
	Name        *string        `json:"name"`
	Description *string        `json:"description"`
	Type        *string        `json:"type"`
	PriceCents  *int64         `json:"price_cents"`
	Currency    *string        `json:"currency"`
	Prices      []priceBody    `json:"prices"`
	Components  []string       `json:"components"`
	Active      *bool          `json:"active"`
	Policy      *policyRequest `json:"policy"`
}

// productPatch is PATCH /v1/admin/products/{slug}: every field optional; absent keeps.
type productPatch struct {
	Name        optional[string]        `json:"name"`
	Description optional[string]        `json:"description"`
	Type        optional[string]        `json:"type"`
	PriceCents  optional[int64]         `json:"price_cents"`
	Currency    optional[string]        `json:"currency"`
	Prices      optional[[]priceBody]   `json:"prices"`
	Components  optional[[]string]      `json:"components"`
	Active      optional[bool]          `json:"active"`
	Policy      optional[policyRequest] `json:"policy"`
}

// policyRequest.spec checks the required policy fields and converts.
func (p *policyRequest) spec(prefix string) (*ports.PolicySpec, error) {
	if err := required(field{prefix + "max_activations", p.MaxActivations != nil}, field{prefix + "first_activation", p.FirstActivation != nil},
		field{prefix + "heartbeat_interval_s", p.HeartbeatIntervalS != nil}, field{prefix + "grace_period_s", p.GracePeriodS != nil}); err != nil {
		return nil, err
	}
	return &ports.PolicySpec{
		MaxActivations:       *p.MaxActivations,
		FirstActivation:      *p.FirstActivation,
		HeartbeatIntervalS:   *p.HeartbeatIntervalS,
		GracePeriodS:         *p.GracePeriodS,
		CertificateValidityS: p.CertificateValidityS,
		TransfersPer30d:      p.TransfersPer30d,
		DurationS:            p.DurationS,
	}, nil
}

func pricesIn(ps []priceBody) []catalog.Price {
	if ps == nil {
		return nil
	}
	out := make([]catalog.Price, 0, len(ps))
	for _, p := range ps {
		out = append(out, catalog.Price{Currency: p.Currency, AmountCents: p.AmountCents})
	}
	return out
}

// putCatalogProduct is POST /v1/admin/products when Commerce is configured: create or replace by
// slug (Commerce.PutProduct, policy included, in one transaction), or create with a generated slug
// when none is given. 201 with the product, its license policy and entitlements.
func (a *api) putCatalogProduct(c *fiber.Ctx) error {
	var req catalogProductRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if err := required(field{"name", req.Name != nil}, field{"type", req.Type != nil},
		field{"price_cents", req.PriceCents != nil}, field{"currency", req.Currency != nil}); err != nil {
		return err
	}
	in := ports.ProductInput{
		Name: *req.Name, Type: *req.Type, PriceCents: *req.PriceCents, Currency: *req.Currency,
		Prices: pricesIn(req.Prices), Components: req.Components, Active: req.Active,
	}
	if req.Description != nil {
		in.Description = *req.Description
	}
	if req.Policy != nil {
		spec, err := req.Policy.spec("policy.")
		if err != nil {
			return err
		}
		in.Policy = spec
	} else if strings.EqualFold(strings.TrimSpace(in.Type), string(catalog.TypePlugin)) {
		// A plugin sells licenses: without a policy there is nothing to issue them under.
		return errs.Validation("policy is required")
	}
	ctx := c.UserContext()
	var (
		p   catalog.Product
		err error
	)
	if req.Slug != nil {
		in.Slug = *req.Slug
		p, err = a.deps.Commerce.PutProduct(ctx, in)
	} else {
		p, err = a.deps.Commerce.CreateProduct(ctx, in)
	}
	if err != nil {
		return err
	}
	body := a.productWithPolicy(c, p)
	if body.Policy == nil && in.Policy != nil {
		// Licensing could not be read back (logged): answer the policy as it was sent, rather than
		// fail the call for a product that is stored.
		body.Policy = policyBodyOf(*in.Policy)
	}
	return render(c, fiber.StatusCreated, body)
}

// policyBodyOf renders a policy as sent, before licensing applied its defaults.
func policyBodyOf(s ports.PolicySpec) *policyBody {
	b := &policyBody{MaxActivations: s.MaxActivations, FirstActivation: s.FirstActivation,
		HeartbeatIntervalS: s.HeartbeatIntervalS, GracePeriodS: s.GracePeriodS, DurationS: s.DurationS}
	if s.CertificateValidityS != nil {
		b.CertificateValidityS = *s.CertificateValidityS
	}
	if s.TransfersPer30d != nil {
		b.TransfersPer30d = *s.TransfersPer30d
	}
	return b
}

// productWithPolicy adds the licensing side of a product (policy, entitlements) when licensing
// has one: products that issue no license have none, and then policy is null.
func (a *api) productWithPolicy(c *fiber.Ctx, p catalog.Product) putProductBody {
	out := putProductBody{adminProductBody: adminProductOf(p), Entitlements: []string{}}
	rec, err := a.deps.Licensing.GetProduct(c.UserContext(), p.Slug)
	switch {
	case err == nil:
		out.Policy = policyOf(rec.Policy)
		out.Entitlements = nonNil(rec.Entitlements)
	case errs.KindOf(err) != errs.NotFound:
		a.log.LogAttrs(c.UserContext(), slog.LevelWarn, "reading a product's license policy",
			slog.String("request_id", requestID(c)), slog.String("product", p.Slug), slog.String("error", err.Error()))
	}
	return out
}

// catalogQuery reads q, type, limit and cursor.
func catalogQuery(c *fiber.Ctx) (ports.CatalogQuery, error) {
	p, err := page(c)
	if err != nil {
		return ports.CatalogQuery{}, err
	}
	q := ports.CatalogQuery{Query: query(c, "q"), Page: p}
	if len(q.Query) > 200 {
		return q, errs.Validation("q must be at most 200 characters")
	}
	if s := c.Query("type"); s != "" {
		t, err := catalog.ParseType(s)
		if err != nil {
			return q, err
		}
		q.Type = string(t)
	}
	return q, nil
}

// platformQuery reads the optional platform query parameter.
func platformQuery(c *fiber.Ctx) (string, error) {
	s := c.Query("platform")
	if s == "" {
		return "", nil
	}
	p, err := catalog.ParsePlatform(s)
	return string(p), err
}

// adminListProducts: GET /v1/admin/products?q=&type=&limit=&cursor= (inactive products included).
func (a *api) adminListProducts(c *fiber.Ctx) error {
	q, err := catalogQuery(c)
	if err != nil {
		return err
	}
	items, next, err := a.deps.Commerce.AdminListProducts(c.UserContext(), q)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, adminProductOf)
}

// adminGetProduct: GET /v1/admin/products/{slug} with its policy and every version.
func (a *api) adminGetProduct(c *fiber.Ctx) error {
	p, versions, err := a.deps.Commerce.AdminGetProduct(c.UserContext(), param(c, "slug"))
	if err != nil {
		return err
	}
	out := productDetailBody{putProductBody: a.productWithPolicy(c, p), Versions: make([]adminVersionBody, 0, len(versions))}
	catalog.SortNewestFirst(versions)
	for _, v := range versions {
		out.Versions = append(out.Versions, adminVersionOf(v))
	}
	return render(c, fiber.StatusOK, out)
}

// adminUpdateProduct: PATCH /v1/admin/products/{slug}. The patch is applied to the stored product
// and the whole product is sent to Commerce.UpdateProduct, so a field left out keeps its value
// whatever the use case does with zero values. A policy, when given, is replaced whole.
func (a *api) adminUpdateProduct(c *fiber.Ctx) error {
	var req productPatch
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	for _, err := range []error{req.Name.notNull("name"), req.Type.notNull("type"), req.PriceCents.notNull("price_cents"),
		req.Currency.notNull("currency"), req.Active.notNull("active"), req.Policy.notNull("policy")} {
		if err != nil {
			return err
		}
	}
	slug := param(c, "slug")
	cur, _, err := a.deps.Commerce.AdminGetProduct(c.UserContext(), slug)
	if err != nil {
		return err
	}
	active := req.Active.value(cur.Active)
	in := ports.ProductInput{
		Slug:        cur.Slug,
		Name:        req.Name.value(cur.Name),
		Description: req.Description.clearable(cur.Description),
		Type:        req.Type.value(string(cur.Type)),
		Currency:    req.Currency.value(cur.Currency),
		PriceCents:  req.PriceCents.value(catalog.PrimaryPrice(cur)),
		Components:  req.Components.clearable(cur.Components),
		Active:      &active,
	}
	switch {
	case req.Prices.set && req.Prices.null:
		in.Prices = nil // the primary price only
	case req.Prices.set:
		in.Prices = pricesIn(req.Prices.v)
	default:
		// The other currencies stay; the stored entry of the (new) primary currency gives way to
		// the primary price, which may have changed.
		primary := strings.ToUpper(strings.TrimSpace(in.Currency))
		for _, p := range cur.Prices {
			if p.Currency != primary {
				in.Prices = append(in.Prices, p)
			}
		}
	}
	if req.Policy.set {
		spec, err := req.Policy.v.spec("policy.")
		if err != nil {
			return err
		}
		in.Policy = spec
	}
	p, err := a.deps.Commerce.UpdateProduct(c.UserContext(), slug, in)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, a.productWithPolicy(c, p))
}

// adminDeleteProduct: DELETE /v1/admin/products/{slug} → 204; PRODUCT_IN_USE (409) when orders or
// bundles reference it.
func (a *api) adminDeleteProduct(c *fiber.Ctx) error {
	if err := a.deps.Commerce.DeleteProduct(c.UserContext(), param(c, "slug")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// adminPublishProduct: POST /v1/admin/products/{slug}/publish|unpublish → 200 the product.
func (a *api) adminPublishProduct(active bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req actionRequest
		if err := decodeStrict(c.Request().Body(), &req); err != nil {
			return err
		}
		p, err := a.deps.Commerce.SetProductActive(c.UserContext(), param(c, "slug"), active)
		if err != nil {
			return err
		}
		return render(c, fiber.StatusOK, a.productWithPolicy(c, p))
	}
}

// versionRequest is POST …/versions and, with every field optional, PATCH …/versions/{id}.
type versionRequest struct {
	Version            optional[string] `json:"version"`
	Platform           optional[string] `json:"platform"`
	ReleaseNotes       optional[string] `json:"release_notes"`
	MinProtocolVersion optional[int]    `json:"min_protocol_version"`
	StorageKey         optional[string] `json:"storage_key"`
	FileName           optional[string] `json:"file_name"`
	Published          optional[bool]   `json:"published"`
}

func (r versionRequest) nulls() error {
	for _, err := range []error{r.Version.notNull("version"), r.Platform.notNull("platform"),
		r.MinProtocolVersion.notNull("min_protocol_version"), r.Published.notNull("published")} {
		if err != nil {
			return err
		}
	}
	return nil
}

// input applies the request to cur (the zero version on create).
func (r versionRequest) input(cur catalog.Version) ports.VersionInput {
	in := ports.VersionInput{
		Version:            r.Version.value(cur.Version),
		Platform:           r.Platform.value(string(cur.Platform)),
		ReleaseNotes:       r.ReleaseNotes.clearable(cur.ReleaseNotes),
		MinProtocolVersion: r.MinProtocolVersion.value(cur.MinProtocolVersion),
		StorageKey:         r.StorageKey.clearable(cur.StorageKey),
		FileName:           r.FileName.clearable(cur.FileName),
	}
	published := r.Published.value(cur.Published)
	in.Published = &published
	return in
}

// adminCreateVersion: POST /v1/admin/products/{slug}/versions → 201 the version.
func (a *api) adminCreateVersion(c *fiber.Ctx) error {
	var req versionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if err := req.nulls(); err != nil {
		return err
	}
	if err := required(field{"version", req.Version.set}, field{"platform", req.Platform.set}); err != nil {
		return err
	}
	in := req.input(catalog.Version{MinProtocolVersion: 1})
	v, err := a.deps.Commerce.CreateVersion(c.UserContext(), param(c, "slug"), in)
	if err != nil {
		return err
	}
	return render(c, fiber.StatusCreated, adminVersionOf(v))
}

// versionOf finds a version of the product (VERSION_NOT_FOUND otherwise).
func (a *api) versionOf(c *fiber.Ctx, slug, id string) (catalog.Version, error) {
	_, versions, err := a.deps.Commerce.AdminGetProduct(c.UserContext(), slug)
	if err != nil {
		return catalog.Version{}, err
	}
	for _, v := range versions {
		if v.ID == id {
			return v, nil
		}
	}
	return catalog.Version{}, errs.E(errs.NotFound, catalog.CodeVersionNotFound, "no such version of this product")
}

// adminUpdateVersion: PATCH /v1/admin/products/{slug}/versions/{id} → 200 the version. As for
// products, the patch is applied to the stored version and the whole of it is sent.
func (a *api) adminUpdateVersion(c *fiber.Ctx) error {
	var req versionRequest
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	if err := req.nulls(); err != nil {
		return err
	}
	slug, id := param(c, "slug"), param(c, "id")
	cur, err := a.versionOf(c, slug, id)
	if err != nil {
		return err
	}
	v, err := a.deps.Commerce.UpdateVersion(c.UserContext(), slug, id, req.input(cur))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, adminVersionOf(v))
}

// adminDeleteVersion: DELETE /v1/admin/products/{slug}/versions/{id} → 204.
func (a *api) adminDeleteVersion(c *fiber.Ctx) error {
	if err := a.deps.Commerce.DeleteVersion(c.UserContext(), param(c, "slug"), param(c, "id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// adminUploadAsset: PUT /v1/admin/products/{slug}/versions/{id}/asset?filename=… with the file as
// the raw body → 200 the version with its key, size and sum. The body is streamed from the
// connection to Commerce.UploadAsset (never held in memory: bodies are streamed, and bodyLimit lets
// this route through); its size is the Content-Length, which is required and at most MaxAssetBytes.
func (a *api) adminUploadAsset(c *fiber.Ctx) error {
	size := c.Request().Header.ContentLength()
	switch {
	case size < 0: // chunked, or no length at all
		return errs.E(errs.Invalid, "LENGTH_REQUIRED", "the upload needs a Content-Length")
	case int64(size) > a.cfg.MaxAssetBytes:
		return errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("the asset exceeds %d bytes", a.cfg.MaxAssetBytes))
	case size == 0:
		return errs.Validation("the asset is empty")
	}
	fileName := query(c, "filename")
	if len(fileName) > 1024 {
		return errs.Validation("filename must be at most 1024 characters")
	}
	var body io.Reader
	if c.Request().IsBodyStream() {
		body = c.Request().BodyStream()
	} else {
		body = bytes.NewReader(c.Request().Body())
	}
	// The port reads exactly size bytes; a connection that ends early is a failed upload.
	r := &uploadReader{r: io.LimitReader(body, int64(size))}
	v, err := a.deps.Commerce.UploadAsset(c.UserContext(), param(c, "slug"), param(c, "id"), fileName, r, int64(size))
	if r.n == int64(size) {
		// Read to its end: the connection can serve the next request (bodyLimit closes it
		// otherwise, since the rest of the body would be taken for one).
		_ = c.Request().CloseBodyStream()
	}
	if err != nil {
		if r.err != nil && !errors.Is(r.err, io.EOF) {
			c.Response().SetConnectionClose()
			return errs.Wrap(errs.Invalid, "UPLOAD_INCOMPLETE", "the upload ended before its Content-Length", err)
		}
		return err
	}
	return render(c, fiber.StatusOK, adminVersionOf(v))
}

// uploadReader remembers the error of the connection, to tell a broken upload from a refusal.
type uploadReader struct {
	r   io.Reader
	n   int64
	err error
}

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	u.n += int64(n)
	if err != nil && u.err == nil {
		u.err = err
	}
	return n, err
}

// --- public catalog ---

// catalogList: GET /v1/catalog/products?q=&type=&limit=&cursor= (active products only).
func (a *api) catalogList(c *fiber.Ctx) error {
	q, err := catalogQuery(c)
	if err != nil {
		return err
	}
	items, next, err := a.deps.Commerce.ListCatalog(c.UserContext(), q)
	if err != nil {
		return err
	}
	return renderPage(c, items, next, publicProductOf)
}

// catalogProduct: GET /v1/catalog/products/{slug}.
func (a *api) catalogProduct(c *fiber.Ctx) error {
	p, err := a.deps.Commerce.CatalogProduct(c.UserContext(), param(c, "slug"))
	if err != nil {
		return err
	}
	return render(c, fiber.StatusOK, publicProductOf(p))
}

func renderVersions(c *fiber.Ctx, vs []catalog.Version) error {
	out := itemsBody[publicVersionBody]{Items: make([]publicVersionBody, 0, len(vs))}
	for _, v := range vs {
		out.Items = append(out.Items, publicVersionOf(v))
	}
	return render(c, fiber.StatusOK, out)
}

// catalogVersions: GET /v1/catalog/products/{slug}/versions?platform= (published, newest first).
func (a *api) catalogVersions(c *fiber.Ctx) error {
	platform, err := platformQuery(c)
	if err != nil {
		return err
	}
	vs, err := a.deps.Commerce.CatalogVersions(c.UserContext(), param(c, "slug"), platform)
	if err != nil {
		return err
	}
	return renderVersions(c, vs)
}

// catalogLatest: GET /v1/catalog/products/{slug}/versions/latest?platform= (the latest published
// version per platform, or of one platform).
func (a *api) catalogLatest(c *fiber.Ctx) error {
	platform, err := platformQuery(c)
	if err != nil {
		return err
	}
	vs, err := a.deps.Commerce.LatestVersions(c.UserContext(), param(c, "slug"), platform)
	if err != nil {
		return err
	}
	return renderVersions(c, vs)
}
