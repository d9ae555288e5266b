package commerce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// This file is the catalog half of ports.Commerce: products (registered with the licensing context
// in the same transaction), versions with one "latest" per (product, platform), assets in the
// ObjectStore, and the public reads.
//
// The public reads return catalog records with StorageKey blanked: the key names an object in the
// store and whoever knows it may be able to fetch it where the store is reachable, so it is never
// handed to a client. The HTTP adapter must not render StorageKey either (nor rely on this
// blanking); admin reads return it for operators.

// defaultMaxActivations is the activation limit of a product registered without a policy: the
// seed's default of 3 devices. The licensing context requires max_activations ≥ 1 and fills every
// other policy field itself.
const defaultMaxActivations = 3

// maxSlugAttempts bounds the search for a free generated slug (name, name-2, … name-1000).
const maxSlugAttempts = 1000

// maxCatalogQueryLen bounds a catalog search string.
const maxCatalogQueryLen = 200

// maxStorageKeyLen bounds a storage key given by an admin.
const maxStorageKeyLen = 1024

// assetContentType is the content type assets are stored with: downloads are saved as files, and
// an octet stream is never rendered by a browser, whatever an upload contains.
const assetContentType = "application/octet-stream"

// ---- errors and small helpers (catalog and coupons) ----

// repoMissing reports a repository's NOT_FOUND (and nothing else: an unavailable store must not read
// as "no such row").
func repoMissing(err error) bool { return err != nil && errs.KindOf(err) == errs.NotFound }

// repoConflict reports a repository's unique violation.
func repoConflict(err error) bool { return err != nil && errs.KindOf(err) == errs.Conflict }

// portFailure wraps an unexpected failure of a port; domain errors pass unchanged.
func portFailure(what string, err error) error {
	if _, ok := errs.As(err); ok {
		return err
	}
	return errs.Internalf("commerce: %s: %w", what, err)
}

func productNotFound() error {
	return errs.E(errs.NotFound, catalog.CodeProductNotFound, "product not found")
}

func versionNotFound() error {
	return errs.E(errs.NotFound, catalog.CodeVersionNotFound, "version not found")
}

func productInUse(msg string) error {
	return errs.E(errs.Conflict, catalog.CodeProductInUse, msg)
}

func checkPage(p ports.Page) error {
	if p.Limit < 0 || p.Limit > 200 {
		return errs.Validation("limit must be 1 to 200")
	}
	return nil
}

// productBySlug loads a product; PRODUCT_NOT_FOUND when there is none.
func (s *Service) productBySlug(ctx context.Context, slug string) (catalog.Product, error) {
	p, err := s.d.Catalog.ProductBySlug(ctx, strings.ToLower(strings.TrimSpace(slug)))
	if repoMissing(err) {
		return p, productNotFound()
	}
	if err != nil {
		return p, portFailure("loading product", err)
	}
	return p, nil
}

// ---- products ----

// CreateProduct implements ports.Commerce: validates, picks the slug (given, or generated from the
// name and made unique with -2, -3…), stores the product and registers it with licensing, all in
// one transaction. A given slug that a catalog product has is SLUG_TAKEN; a slug that only the
// licensing context knows (a product created before the catalog existed) is adopted.
func (s *Service) CreateProduct(ctx context.Context, in ports.ProductInput) (catalog.Product, error) {
	var out catalog.Product
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.createProduct(ctx, in)
		return err
	})
	return out, err
}

func (s *Service) createProduct(ctx context.Context, in ports.ProductInput) (catalog.Product, error) {
	now := s.now()
	p, err := productFromInput(catalog.Product{Active: true}, in, false)
	if err != nil {
		return catalog.Product{}, err
	}
	p.ID = catalog.NewProductID()
	p.CreatedAt, p.UpdatedAt = now, now
	explicit := strings.TrimSpace(in.Slug) != ""
	if explicit {
		if p.Slug, err = normalizeSlug(in.Slug); err != nil {
			return catalog.Product{}, err
		}
		if _, err := s.d.Catalog.ProductBySlug(ctx, p.Slug); err == nil {
			return catalog.Product{}, slugTaken()
		} else if !repoMissing(err) {
			return catalog.Product{}, portFailure("checking slug", err)
		}
	} else if p.Slug, err = s.freeSlug(ctx, catalog.Slugify(p.Name)); err != nil {
		return catalog.Product{}, err
	}
	if err := catalog.ValidateProduct(p); err != nil {
		return catalog.Product{}, err
	}
	if err := s.checkComponents(ctx, p); err != nil {
		return catalog.Product{}, err
	}
	if err := s.d.Catalog.InsertProduct(ctx, p); err != nil {
		if repoConflict(err) {
			return catalog.Product{}, slugTaken()
		}
		return catalog.Product{}, portFailure("inserting product", err)
	}
	if err := s.registerProduct(ctx, p, in.Policy); err != nil {
		return catalog.Product{}, err
	}
	return p, nil
}

func slugTaken() error {
	return errs.E(errs.Conflict, catalog.CodeSlugTaken, "another product has this slug")
}

func normalizeSlug(s string) (string, error) {
	slug := strings.TrimSpace(s)
	if err := catalog.ValidateSlug(slug); err != nil {
		return "", err
	}
	return slug, nil
}

// freeSlug returns the first of base, base-2, base-3… that neither the catalog nor the licensing
// context uses: a generated slug must never silently take over another product's licensing policy.
func (s *Service) freeSlug(ctx context.Context, base string) (string, error) {
	for n := 1; n <= maxSlugAttempts; n++ {
		cand := catalog.WithSuffix(base, n)
		_, err := s.d.Catalog.ProductBySlug(ctx, cand)
		if err == nil {
			continue
		}
		if !repoMissing(err) {
			return "", portFailure("checking slug", err)
		}
		_, err = s.d.Licensing.GetProduct(ctx, cand)
		if err == nil {
			continue
		}
		if errs.KindOf(err) != errs.NotFound {
			return "", portFailure("checking slug with licensing", err)
		}
		return cand, nil
	}
	return "", errs.E(errs.Conflict, catalog.CodeSlugTaken, "no free slug for this name; give one")
}

// productFromInput applies in to base. With keepZero (UpdateProduct) every zero field of in
// (""/0/nil) keeps base's value; otherwise (create, PutProduct) in replaces every field but
// Active, which nil always keeps. The slug is not touched here.
func productFromInput(base catalog.Product, in ports.ProductInput, keepZero bool) (catalog.Product, error) {
	p := base
	p.Prices = slices.Clone(base.Prices)
	p.Components = slices.Clone(base.Components)
	str := func(v, old string) string {
		v = strings.TrimSpace(v)
		if keepZero && v == "" {
			return old
		}
		return v
	}
	p.Name = str(in.Name, base.Name)
	if !keepZero || in.Description != "" {
		p.Description = in.Description
	}
	if t := str(in.Type, string(base.Type)); t != "" {
		pt, err := catalog.ParseType(t)
		if err != nil {
			return p, err
		}
		p.Type = pt
	} else {
		return p, errs.E(errs.Invalid, catalog.CodeInvalidProductType, "type must be plugin, sample_pack or bundle")
	}
	if err := catalog.ValidateName(p.Name); err != nil {
		return p, err
	}
	currency := str(in.Currency, base.Currency)
	price := in.PriceCents
	if keepZero && price == 0 {
		price = catalog.PrimaryPrice(base)
	}
	extra := in.Prices
	if keepZero && extra == nil {
		// Keep every other price, the old primary one included when the primary currency
		// changes; the price in the (new) primary currency is the one just built.
		for _, pr := range base.Prices {
			if !strings.EqualFold(pr.Currency, currency) {
				extra = append(extra, pr)
			}
		}
	}
	prices, err := catalog.BuildPrices(currency, price, extra)
	if err != nil {
		return p, err
	}
	p.Currency, p.Prices = prices[0].Currency, prices
	switch {
	case in.Components != nil || !keepZero:
		p.Components = catalog.NormalizeComponents(in.Components)
	case p.Type != catalog.TypeBundle:
		// A bundle turned into something else drops the components it had.
		p.Components = nil
	}
	if in.Active != nil {
		p.Active = *in.Active
	}
	return p, nil
}

// checkComponents makes sure every component of a bundle is an existing product that is not itself
// a bundle (a bundle of bundles would make entitlements recursive).
func (s *Service) checkComponents(ctx context.Context, p catalog.Product) error {
	for _, c := range p.Components {
		cp, err := s.d.Catalog.ProductBySlug(ctx, c)
		if repoMissing(err) {
			return errs.E(errs.Invalid, catalog.CodeInvalidComponents, "component "+c+" is not a product")
		}
		if err != nil {
			return portFailure("loading component", err)
		}
		if cp.Type == catalog.TypeBundle {
			return errs.E(errs.Invalid, catalog.CodeInvalidComponents, "component "+c+" is a bundle; bundles cannot contain bundles")
		}
	}
	return nil
}

// registerProduct hands the product to the licensing context (ctx carries the transaction, which
// the licensing service joins). A nil policy keeps the policy licensing already has for this slug,
// or takes the defaults for a new one.
//
// The licensing product of a bundle does not receive the components as its entitlements:
// ports.ProductSpec has no field for them (licensing keeps whatever entitlements it had).
// Fulfilment issues a license or entitlement per component instead, so a bundle buyer gets every
// component either way.
func (s *Service) registerProduct(ctx context.Context, p catalog.Product, policy *ports.PolicySpec) error {
	spec := ports.ProductSpec{Slug: p.Slug, Name: p.Name, Type: string(p.Type), PriceCents: catalog.PrimaryPrice(p), Currency: p.Currency}
	switch {
	case policy != nil:
		spec.Policy = *policy
	default:
		old, err := s.d.Licensing.GetProduct(ctx, p.Slug)
		switch {
		case err == nil:
			pol := old.Policy
			spec.Policy = ports.PolicySpec{
				MaxActivations:     pol.MaxActivations,
				FirstActivation:    string(pol.FirstActivation),
				HeartbeatIntervalS: int64(pol.HeartbeatInterval / time.Second),
				GracePeriodS:       int64(pol.GracePeriod / time.Second),
			}
			cert := int64(pol.CertificateValidity / time.Second)
			transfers := pol.TransfersPer30d
			spec.Policy.CertificateValidityS, spec.Policy.TransfersPer30d = &cert, &transfers
			if pol.Duration > 0 {
				d := int64(pol.Duration / time.Second)
				spec.Policy.DurationS = &d
			}
		case errs.KindOf(err) != errs.NotFound:
			return portFailure("loading licensing product", err)
		}
	}
	if spec.Policy.MaxActivations == 0 {
		spec.Policy.MaxActivations = defaultMaxActivations
	}
	if _, err := s.d.Licensing.PutProduct(ctx, spec); err != nil {
		return portFailure("registering product with licensing", err)
	}
	return nil
}

// PutProduct implements ports.Commerce (PROTOCOL.md section 9, POST /v1/admin/products): creates
// the product, or replaces every field of the one with this slug, keeping its id, creation time and
// (unless given) Active. A type change follows UpdateProduct's rules.
func (s *Service) PutProduct(ctx context.Context, in ports.ProductInput) (catalog.Product, error) {
	var out catalog.Product
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		if strings.TrimSpace(in.Slug) == "" {
			var err error
			out, err = s.createProduct(ctx, in)
			return err
		}
		slug, err := normalizeSlug(in.Slug)
		if err != nil {
			return err
		}
		old, err := s.d.Catalog.ProductBySlug(ctx, slug)
		if repoMissing(err) {
			out, err = s.createProduct(ctx, in)
			return err
		}
		if err != nil {
			return portFailure("loading product", err)
		}
		out, err = s.editProduct(ctx, old, in, false)
		return err
	})
	return out, err
}

// UpdateProduct implements ports.Commerce: edits the product with this slug. Every field left at
// its zero value (""/0/nil) keeps the stored value (PutProduct replaces, to set a price to 0 or
// clear a description). The slug itself never changes here (INVALID_SLUG when in names another):
// orders, licenses and bundles refer to products by slug. A type change is PRODUCT_IN_USE when
// orders reference the product, or when it would turn a bundle's component into a bundle.
func (s *Service) UpdateProduct(ctx context.Context, slug string, in ports.ProductInput) (catalog.Product, error) {
	var out catalog.Product
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		old, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		if v := strings.TrimSpace(in.Slug); v != "" && v != old.Slug {
			return errs.E(errs.Invalid, catalog.CodeInvalidSlug, "a product's slug cannot be changed")
		}
		out, err = s.editProduct(ctx, old, in, true)
		return err
	})
	return out, err
}

func (s *Service) editProduct(ctx context.Context, old catalog.Product, in ports.ProductInput, keepZero bool) (catalog.Product, error) {
	p, err := productFromInput(old, in, keepZero)
	if err != nil {
		return catalog.Product{}, err
	}
	p.UpdatedAt = s.now()
	if err := catalog.ValidateProduct(p); err != nil {
		return catalog.Product{}, err
	}
	if p.Type != old.Type {
		n, err := s.d.Orders.CountByProduct(ctx, old.Slug)
		if err != nil {
			return catalog.Product{}, portFailure("counting orders", err)
		}
		if n > 0 {
			return catalog.Product{}, productInUse("orders reference this product; its type cannot change")
		}
		if p.Type == catalog.TypeBundle {
			bundles, err := s.bundlesListing(ctx, old.Slug)
			if err != nil {
				return catalog.Product{}, err
			}
			if len(bundles) > 0 {
				return catalog.Product{}, productInUse("bundle " + bundles[0] + " contains this product; it cannot become a bundle")
			}
		}
	}
	if err := s.checkComponents(ctx, p); err != nil {
		return catalog.Product{}, err
	}
	if err := s.d.Catalog.UpdateProduct(ctx, p); err != nil {
		return catalog.Product{}, portFailure("updating product", err)
	}
	if err := s.registerProduct(ctx, p, in.Policy); err != nil {
		return catalog.Product{}, err
	}
	return p, nil
}

// bundlesListing returns the slugs of the bundles that contain slug.
func (s *Service) bundlesListing(ctx context.Context, slug string) ([]string, error) {
	var out []string
	f := ports.ProductFilter{Type: catalog.TypeBundle, Page: ports.Page{Limit: 200}}
	for {
		rows, next, err := s.d.Catalog.ListProducts(ctx, f)
		if err != nil {
			return nil, portFailure("listing bundles", err)
		}
		for _, b := range rows {
			if catalog.IsComponentOf(b, slug) {
				out = append(out, b.Slug)
			}
		}
		if next == "" {
			return out, nil
		}
		f.Cursor = next
	}
}

// SetProductActive implements ports.Commerce: publishes or unpublishes a product (an inactive one
// is hidden from the public catalog and cannot be bought; orders and licenses are untouched).
func (s *Service) SetProductActive(ctx context.Context, slug string, active bool) (catalog.Product, error) {
	var out catalog.Product
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		p, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		if p.Active != active {
			p.Active = active
			p.UpdatedAt = s.now()
			if err := s.d.Catalog.UpdateProduct(ctx, p); err != nil {
				return portFailure("updating product", err)
			}
		}
		out = p
		return nil
	})
	return out, err
}

// DeleteProduct implements ports.Commerce: refused with PRODUCT_IN_USE while orders reference the
// product or a bundle lists it; otherwise deletes it with its versions, then (after the commit,
// best effort, logged on failure) their assets. The licensing context keeps its product record:
// ports.Licensing has no call to delete one, and licenses an admin issued directly may use it.
func (s *Service) DeleteProduct(ctx context.Context, slug string) error {
	var keys []string
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		keys = nil
		p, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		n, err := s.d.Orders.CountByProduct(ctx, p.Slug)
		if err != nil {
			return portFailure("counting orders", err)
		}
		if n > 0 {
			return productInUse("orders reference this product; unpublish it instead")
		}
		bundles, err := s.bundlesListing(ctx, p.Slug)
		if err != nil {
			return err
		}
		if len(bundles) > 0 {
			return productInUse("bundle " + bundles[0] + " contains this product")
		}
		vs, err := s.d.Catalog.Versions(ctx, p.ID)
		if err != nil {
			return portFailure("listing versions", err)
		}
		for _, v := range vs {
			if v.StorageKey != "" && !slices.Contains(keys, v.StorageKey) {
				keys = append(keys, v.StorageKey)
			}
		}
		if err := s.d.Catalog.DeleteProduct(ctx, p.ID); err != nil {
			return portFailure("deleting product", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		s.deleteObject(ctx, k)
	}
	return nil
}

// deleteObject removes an asset nothing refers to any more. A failure leaves an orphan object,
// which costs storage but breaks nothing, so it is logged rather than returned.
func (s *Service) deleteObject(ctx context.Context, key string) {
	if err := s.d.Objects.Delete(ctx, key); err != nil && errs.KindOf(err) != errs.NotFound {
		s.log.Warn("commerce: deleting an asset failed; the object is orphaned", "key", key, "err", err)
	}
}

// catalogFilter turns a catalog query into a repository filter.
func catalogFilter(q ports.CatalogQuery, activeOnly bool) (ports.ProductFilter, error) {
	f := ports.ProductFilter{Query: strings.TrimSpace(q.Query), ActiveOnly: activeOnly, Page: q.Page}
	if utf8.RuneCountInString(f.Query) > maxCatalogQueryLen || !utf8.ValidString(f.Query) {
		return f, errs.Validation("query must be at most 200 characters")
	}
	if strings.TrimSpace(q.Type) != "" {
		t, err := catalog.ParseType(q.Type)
		if err != nil {
			return f, err
		}
		f.Type = t
	}
	return f, checkPage(q.Page)
}

// AdminListProducts implements ports.Commerce: every product, active or not, ordered by name.
func (s *Service) AdminListProducts(ctx context.Context, q ports.CatalogQuery) ([]catalog.Product, string, error) {
	f, err := catalogFilter(q, false)
	if err != nil {
		return nil, "", err
	}
	rows, next, err := s.d.Catalog.ListProducts(ctx, f)
	if err != nil {
		return nil, "", portFailure("listing products", err)
	}
	return rows, next, nil
}

// AdminGetProduct implements ports.Commerce: the product, active or not, with every version
// (drafts too, storage keys included), newest first.
func (s *Service) AdminGetProduct(ctx context.Context, slug string) (catalog.Product, []catalog.Version, error) {
	p, err := s.productBySlug(ctx, slug)
	if err != nil {
		return p, nil, err
	}
	vs, err := s.d.Catalog.Versions(ctx, p.ID)
	if err != nil {
		return p, nil, portFailure("listing versions", err)
	}
	catalog.SortNewestFirst(vs)
	return p, vs, nil
}

// ---- versions ----

// checkStorageKey validates a storage key an admin names (an object uploaded to the store by other
// means) and returns what the store knows of it.
func (s *Service) checkStorageKey(ctx context.Context, key string) (ports.ObjectInfo, error) {
	bad := func(msg string) error { return errs.E(errs.Invalid, catalog.CodeInvalidVersion, msg) }
	if len(key) > maxStorageKeyLen || strings.HasPrefix(key, "/") || hasControlOrSpace(key) ||
		slices.Contains(strings.Split(key, "/"), "..") || slices.Contains(strings.Split(key, "/"), "") {
		return ports.ObjectInfo{}, bad("storage_key must be a relative object key without empty or .. segments")
	}
	info, err := s.d.Objects.Stat(ctx, key)
	if repoMissing(err) {
		return info, bad("storage_key names no stored object")
	}
	if err != nil {
		return info, portFailure("looking up asset", err)
	}
	return info, nil
}

func hasControlOrSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return true
		}
	}
	return false
}

// versionFields applies in to v (with keep, every zero field of in keeps v's value) and
// normalises: platform lower case, MinProtocolVersion 0 → 1 on create, file name sanitised (or
// taken from the storage key's last segment).
func versionFields(v catalog.Version, in ports.VersionInput, keep bool) (catalog.Version, error) {
	if s := strings.TrimSpace(in.Version); s != "" || !keep {
		if _, err := catalog.ParseVersion(s); err != nil {
			return v, err
		}
		v.Version = s
	}
	if s := strings.TrimSpace(in.Platform); s != "" || !keep {
		p, err := catalog.ParsePlatform(s)
		if err != nil {
			return v, err
		}
		v.Platform = p
	}
	if in.ReleaseNotes != "" || !keep {
		v.ReleaseNotes = in.ReleaseNotes
	}
	switch {
	case in.MinProtocolVersion != 0:
		v.MinProtocolVersion = in.MinProtocolVersion
	case !keep:
		v.MinProtocolVersion = catalog.CurrentProtocolVersion
	}
	if k := strings.TrimSpace(in.StorageKey); k != "" {
		v.StorageKey = k
		if strings.TrimSpace(in.FileName) == "" {
			in.FileName = path.Base(k)
		}
	}
	if strings.TrimSpace(in.FileName) != "" {
		name, err := catalog.SanitizeFileName(in.FileName)
		if err != nil {
			return v, err
		}
		v.FileName = name
	}
	if in.Published != nil {
		v.Published = *in.Published
	}
	return v, nil
}

// versionOf loads a version of product p; VERSION_NOT_FOUND when there is none or it belongs to
// another product.
func (s *Service) versionOf(ctx context.Context, p catalog.Product, id string) (catalog.Version, error) {
	v, err := s.d.Catalog.Version(ctx, strings.TrimSpace(id))
	if repoMissing(err) {
		return v, versionNotFound()
	}
	if err != nil {
		return v, portFailure("loading version", err)
	}
	if v.ProductID != p.ID {
		return catalog.Version{}, versionNotFound()
	}
	return v, nil
}

// checkNoDuplicate refuses v when another version of the product is the same release.
func checkNoDuplicate(all []catalog.Version, v catalog.Version) error {
	for _, o := range all {
		if o.ID != v.ID && catalog.SameRelease(o, v) {
			return errs.E(errs.Conflict, catalog.CodeVersionExists, "version "+o.Version+" already exists for platform "+string(o.Platform))
		}
	}
	return nil
}

// CreateVersion implements ports.Commerce: a new version of the product. A storage key, when given,
// must name an object already in the store (its size and checksum are recorded). Published nil
// publishes a version that has an asset and keeps one without as a draft; publishing a version
// without an asset is VERSION_NO_ASSET. The latest flags of the platform are recomputed in the
// same transaction.
func (s *Service) CreateVersion(ctx context.Context, slug string, in ports.VersionInput) (catalog.Version, error) {
	now := s.now()
	v, err := versionFields(catalog.Version{ID: catalog.NewVersionID(), CreatedAt: now, UpdatedAt: now}, in, false)
	if err != nil {
		return v, err
	}
	if in.Published == nil {
		v.Published = v.StorageKey != ""
	}
	if v.StorageKey != "" {
		info, err := s.checkStorageKey(ctx, v.StorageKey)
		if err != nil {
			return catalog.Version{}, err
		}
		v.SizeBytes, v.SHA256 = info.SizeBytes, info.SHA256
	}
	if err := catalog.ValidateVersion(v); err != nil {
		return catalog.Version{}, err
	}
	var out catalog.Version
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		p, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		v.ProductID = p.ID
		all, err := s.d.Catalog.Versions(ctx, p.ID)
		if err != nil {
			return portFailure("listing versions", err)
		}
		if err := checkNoDuplicate(all, v); err != nil {
			return err
		}
		if err := s.d.Catalog.InsertVersion(ctx, v); err != nil {
			if repoConflict(err) {
				return errs.E(errs.Conflict, catalog.CodeVersionExists, "this version already exists for this platform")
			}
			return portFailure("inserting version", err)
		}
		out, err = s.refreshLatest(ctx, p.ID, v.ID, v.Platform)
		return err
	})
	return out, err
}

// refreshLatest recomputes IsLatest on every version of the product's given platforms, so that
// exactly the highest published version of each is latest, and returns the version with id want.
// Flags are cleared before one is set, so a unique "one latest per (product, platform)" index
// never sees two.
func (s *Service) refreshLatest(ctx context.Context, productID, want string, platforms ...catalog.Platform) (catalog.Version, error) {
	all, err := s.d.Catalog.Versions(ctx, productID)
	if err != nil {
		return catalog.Version{}, portFailure("listing versions", err)
	}
	var sets []catalog.Version
	for i, v := range all {
		if !slices.Contains(platforms, v.Platform) {
			continue
		}
		latest, ok := catalog.Latest(all, v.Platform)
		should := ok && latest.ID == v.ID
		if v.IsLatest == should {
			continue
		}
		all[i].IsLatest = should
		if should {
			sets = append(sets, all[i])
			continue
		}
		if err := s.d.Catalog.UpdateVersion(ctx, all[i]); err != nil {
			return catalog.Version{}, portFailure("updating version", err)
		}
	}
	for _, v := range sets {
		if err := s.d.Catalog.UpdateVersion(ctx, v); err != nil {
			return catalog.Version{}, portFailure("updating version", err)
		}
	}
	for _, v := range all {
		if v.ID == want {
			return v, nil
		}
	}
	return catalog.Version{}, nil
}

// UpdateVersion implements ports.Commerce: edits a version of the product (VERSION_NOT_FOUND for a
// version of another product). Every zero field of in keeps the stored value; Published publishes
// or unpublishes. A new storage key must name a stored object. The latest flags of the old and the
// new platform are recomputed in the same transaction.
func (s *Service) UpdateVersion(ctx context.Context, slug, versionID string, in ports.VersionInput) (catalog.Version, error) {
	var info *ports.ObjectInfo
	if k := strings.TrimSpace(in.StorageKey); k != "" {
		// Looked up before the transaction: the store is not part of it, and a network call
		// inside would hold the transaction open.
		got, err := s.checkStorageKey(ctx, k)
		if err != nil {
			return catalog.Version{}, err
		}
		info = &got
	}
	var out catalog.Version
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		p, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		old, err := s.versionOf(ctx, p, versionID)
		if err != nil {
			return err
		}
		v, err := versionFields(old, in, true)
		if err != nil {
			return err
		}
		if info != nil {
			v.SizeBytes, v.SHA256 = info.SizeBytes, info.SHA256
		}
		v.UpdatedAt = s.now()
		if err := catalog.ValidateVersion(v); err != nil {
			return err
		}
		all, err := s.d.Catalog.Versions(ctx, p.ID)
		if err != nil {
			return portFailure("listing versions", err)
		}
		if err := checkNoDuplicate(all, v); err != nil {
			return err
		}
		if err := s.d.Catalog.UpdateVersion(ctx, v); err != nil {
			if repoConflict(err) {
				return errs.E(errs.Conflict, catalog.CodeVersionExists, "this version already exists for this platform")
			}
			return portFailure("updating version", err)
		}
		out, err = s.refreshLatest(ctx, p.ID, v.ID, old.Platform, v.Platform)
		return err
	})
	return out, err
}

// DeleteVersion implements ports.Commerce: deletes a version of the product, recomputes the latest
// flag of its platform, and after the commit deletes its asset (best effort) unless another version
// of the product uses the same object.
func (s *Service) DeleteVersion(ctx context.Context, slug, versionID string) error {
	var orphan string
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		orphan = ""
		p, err := s.productBySlug(ctx, slug)
		if err != nil {
			return err
		}
		v, err := s.versionOf(ctx, p, versionID)
		if err != nil {
			return err
		}
		if err := s.d.Catalog.DeleteVersion(ctx, v.ID); err != nil {
			if repoMissing(err) {
				return versionNotFound()
			}
			return portFailure("deleting version", err)
		}
		if _, err := s.refreshLatest(ctx, p.ID, "", v.Platform); err != nil {
			return err
		}
		if v.StorageKey == "" {
			return nil
		}
		rest, err := s.d.Catalog.Versions(ctx, p.ID)
		if err != nil {
			return portFailure("listing versions", err)
		}
		if !slices.ContainsFunc(rest, func(o catalog.Version) bool { return o.StorageKey == v.StorageKey }) {
			orphan = v.StorageKey
		}
		return nil
	})
	if err != nil {
		return err
	}
	if orphan != "" {
		s.deleteObject(ctx, orphan)
	}
	return nil
}

// hashingReader counts and hashes what the object store reads.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// UploadAsset implements ports.Commerce: stores the file under
// products/<product id>/<version id>/<sanitised file name> (outside any transaction: the store is
// not part of it), then records key, file name, size and SHA-256 on the version in a transaction.
// The size and checksum are those of the bytes the store read, so they describe the stored object.
// A version that disappeared meanwhile is VERSION_NOT_FOUND and the object is removed; a replaced
// asset under another name is deleted after the commit (best effort). Uploading does not publish.
func (s *Service) UploadAsset(ctx context.Context, slug, versionID, fileName string, r io.Reader, size int64) (catalog.Version, error) {
	name, err := catalog.SanitizeFileName(fileName)
	if err != nil {
		return catalog.Version{}, err
	}
	if size <= 0 {
		return catalog.Version{}, errs.Validation("the file is empty or its size is unknown")
	}
	if r == nil {
		return catalog.Version{}, errs.Validation("no file was sent")
	}
	p, err := s.productBySlug(ctx, slug)
	if err != nil {
		return catalog.Version{}, err
	}
	v, err := s.versionOf(ctx, p, versionID)
	if err != nil {
		return catalog.Version{}, err
	}
	key := "products/" + p.ID + "/" + v.ID + "/" + name
	hr := &hashingReader{r: r, h: sha256.New()}
	info, err := s.d.Objects.Put(ctx, key, hr, size, assetContentType)
	if err != nil {
		return catalog.Version{}, portFailure("storing asset", err)
	}
	sum := hex.EncodeToString(hr.h.Sum(nil))
	if hr.n != size || info.SizeBytes != 0 && info.SizeBytes != size {
		s.deleteObject(ctx, key)
		return catalog.Version{}, errs.Validation("the file is not as long as its declared size")
	}
	if info.SHA256 != "" && !strings.EqualFold(info.SHA256, sum) {
		s.deleteObject(ctx, key)
		return catalog.Version{}, errs.Internalf("commerce: the store's checksum of %s differs from the uploaded bytes'", key)
	}
	var out catalog.Version
	var replaced string
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		cur, err := s.versionOf(ctx, p, v.ID)
		if err != nil {
			return err
		}
		replaced = ""
		if cur.StorageKey != "" && cur.StorageKey != key {
			replaced = cur.StorageKey
		}
		cur.StorageKey, cur.FileName, cur.SizeBytes, cur.SHA256 = key, name, size, sum
		cur.UpdatedAt = s.now()
		if err := s.d.Catalog.UpdateVersion(ctx, cur); err != nil {
			return portFailure("recording asset", err)
		}
		out = cur
		return nil
	})
	if err != nil {
		if errs.CodeOf(err) == catalog.CodeVersionNotFound {
			s.deleteObject(ctx, key)
		}
		return catalog.Version{}, err
	}
	if replaced != "" {
		// Only if no other version of the product still points at it (a key given by an admin
		// may be shared).
		vs, err := s.d.Catalog.Versions(ctx, p.ID)
		if err == nil && !slices.ContainsFunc(vs, func(o catalog.Version) bool { return o.StorageKey == replaced }) {
			s.deleteObject(ctx, replaced)
		}
	}
	return out, nil
}

// ---- public catalog ----

// publicVersion strips what a client must never see (see the top of this file).
func publicVersion(v catalog.Version) catalog.Version {
	v.StorageKey = ""
	return v
}

// activeProduct loads a product for a public read: inactive reads as PRODUCT_NOT_FOUND.
func (s *Service) activeProduct(ctx context.Context, slug string) (catalog.Product, error) {
	p, err := s.productBySlug(ctx, slug)
	if err != nil {
		return catalog.Product{}, err
	}
	if !p.Active {
		return catalog.Product{}, productNotFound()
	}
	return p, nil
}

// ListCatalog implements ports.Commerce: active products, searched by name or slug, by name.
func (s *Service) ListCatalog(ctx context.Context, q ports.CatalogQuery) ([]catalog.Product, string, error) {
	f, err := catalogFilter(q, true)
	if err != nil {
		return nil, "", err
	}
	rows, next, err := s.d.Catalog.ListProducts(ctx, f)
	if err != nil {
		return nil, "", portFailure("listing products", err)
	}
	return rows, next, nil
}

// CatalogProduct implements ports.Commerce: an active product by slug.
func (s *Service) CatalogProduct(ctx context.Context, slug string) (catalog.Product, error) {
	return s.activeProduct(ctx, slug)
}

// publishedVersions returns the published versions of an active product, storage keys blanked.
func (s *Service) publishedVersions(ctx context.Context, slug, platform string) ([]catalog.Version, error) {
	var want catalog.Platform
	if strings.TrimSpace(platform) != "" {
		var err error
		if want, err = catalog.ParsePlatform(platform); err != nil {
			return nil, err
		}
	}
	p, err := s.activeProduct(ctx, slug)
	if err != nil {
		return nil, err
	}
	all, err := s.d.Catalog.Versions(ctx, p.ID)
	if err != nil {
		return nil, portFailure("listing versions", err)
	}
	out := make([]catalog.Version, 0, len(all))
	for _, v := range all {
		// A platform filter keeps that platform and the cross-platform assets that run on it.
		if !v.Published || want != "" && v.Platform != want && v.Platform != catalog.PlatformAll {
			continue
		}
		out = append(out, publicVersion(v))
	}
	return out, nil
}

// CatalogVersions implements ports.Commerce: the published versions of an active product, newest
// first by semver; a platform keeps that platform and "all" ("all" keeps only "all").
func (s *Service) CatalogVersions(ctx context.Context, slug, platform string) ([]catalog.Version, error) {
	vs, err := s.publishedVersions(ctx, slug, platform)
	if err != nil {
		return nil, err
	}
	catalog.SortNewestFirst(vs)
	return vs, nil
}

// LatestVersions implements ports.Commerce: the latest published version of each platform
// (win, mac, linux, all order); with a platform, that platform's and the latest "all" one. An empty
// list (not an error) when there is none.
func (s *Service) LatestVersions(ctx context.Context, slug, platform string) ([]catalog.Version, error) {
	vs, err := s.publishedVersions(ctx, slug, platform)
	if err != nil {
		return nil, err
	}
	latest := catalog.LatestByPlatform(vs)
	out := make([]catalog.Version, 0, len(latest))
	for _, p := range catalog.Platforms {
		if v, ok := latest[p]; ok {
			out = append(out, v)
		}
	}
	return out, nil
}
