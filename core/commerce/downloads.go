package commerce

import (
	"context"
	"path"
	"strings"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func downloadForbidden() error {
	return errs.E(errs.Forbidden, order.CodeDownloadForbidden, "no active purchase of this product gives access to its downloads")
}

func downloadNotAvailable() error {
	return errs.E(errs.NotFound, order.CodeDownloadNotAvailable, "no download is available for this product yet")
}

// downloadRight is what a caller proved: the entitlement (and so the order) the link is recorded
// against, and the buyer.
type downloadRight struct {
	orderID       string
	entitlementID string
	email         string
}

// DownloadLink implements ports.Commerce. The caller proves a right to the product with the
// order's access token (an active entitlement of that order, unlocked by fulfilment) or a license
// key (an active license of the product, or of a purchase that granted it: a bundle line). Then
// the version is chosen (the one asked for, or the latest published for the platform), the object
// store signs an expiring link and the link is recorded before it is returned.
//
// A link is always recorded against an order, so a license created by an admin outside any order
// gives no download (DOWNLOAD_FORBIDDEN): the download record has no place for it.
func (s *Service) DownloadLink(ctx context.Context, cmd ports.DownloadCommand) (ports.DownloadLink, error) {
	slug := strings.ToLower(strings.TrimSpace(cmd.Product))
	if slug == "" {
		return ports.DownloadLink{}, errs.Validation("product is required")
	}
	var platform catalog.Platform
	if strings.TrimSpace(cmd.Platform) != "" {
		var err error
		if platform, err = catalog.ParsePlatform(cmd.Platform); err != nil {
			return ports.DownloadLink{}, err
		}
	}
	var right downloadRight
	var err error
	switch {
	case cmd.OrderID != "" || cmd.AccessToken != "":
		right, err = s.orderRight(ctx, cmd.OrderID, cmd.AccessToken, slug)
	case strings.TrimSpace(cmd.LicenseKey) != "":
		right, err = s.licenseRight(ctx, cmd.LicenseKey, slug)
	default:
		err = downloadForbidden()
	}
	if err != nil {
		return ports.DownloadLink{}, err
	}
	p, err := s.d.Catalog.ProductBySlug(ctx, slug)
	if repoMissing(err) {
		return ports.DownloadLink{}, downloadNotAvailable()
	}
	if err != nil {
		return ports.DownloadLink{}, portFailure("loading product", err)
	}
	v, err := s.downloadVersion(ctx, p, strings.TrimSpace(cmd.VersionID), platform)
	if err != nil {
		return ports.DownloadLink{}, err
	}
	name := v.FileName
	if name == "" {
		name = path.Base(v.StorageKey)
	}
	now := s.now()
	ttl := s.d.Config.DownloadTTL
	link, err := s.d.Objects.DownloadURL(ctx, v.StorageKey, name, ttl)
	if err != nil {
		s.log.Error("signing download link failed", "version", v.ID, "err", err)
		return ports.DownloadLink{}, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the download store is unavailable; try again", err)
	}
	d := order.Download{
		ID: order.NewDownloadID(), OrderID: right.orderID, EntitlementID: right.entitlementID, VersionID: v.ID,
		CustomerEmail: right.email, RequestAddr: clip(cmd.RequestAddr, 100), IssuedAt: now, ExpiresAt: now.Add(ttl),
	}
	// Recorded before it is handed out: a link nobody recorded is never returned.
	if err := s.d.Downloads.Insert(ctx, d); err != nil {
		return ports.DownloadLink{}, portFailure("recording download", err)
	}
	return ports.DownloadLink{
		URL: link, ExpiresAt: d.ExpiresAt, FileName: name, Version: v.Version,
		Platform: string(v.Platform), SizeBytes: v.SizeBytes,
	}, nil
}

// orderRight checks the order's access token and finds an active, unlocked entitlement of the
// order to the product. A wrong token reads like a missing order.
func (s *Service) orderRight(ctx context.Context, orderID, token, slug string) (downloadRight, error) {
	if !s.tokenMatches(orderID, token) {
		return downloadRight{}, orderNotFound()
	}
	o, err := s.getOrder(ctx, orderID)
	if err != nil {
		return downloadRight{}, err
	}
	ents, err := s.d.Entitlements.ByOrder(ctx, o.ID)
	if err != nil {
		return downloadRight{}, portFailure("listing entitlements", err)
	}
	for _, e := range ents {
		if e.Product == slug && e.Status == order.EntitlementActive && e.UnlockedAt != nil {
			return downloadRight{orderID: o.ID, entitlementID: e.ID, email: o.CustomerEmail}, nil
		}
	}
	return downloadRight{}, downloadForbidden()
}

// licenseRight checks a license key: the license must be active and come from an order (its
// entitlement active), and either be a license of the product or come from an order line that
// also granted the product (a bundle line grants the bundle and each of its components). The
// entitlement found ties the link to its order.
func (s *Service) licenseRight(ctx context.Context, key, slug string) (downloadRight, error) {
	id, err := s.d.Licensing.LicenseIDForKey(ctx, strings.TrimSpace(key))
	if err != nil {
		if errs.KindOf(err) == errs.NotFound || errs.KindOf(err) == errs.Invalid {
			return downloadRight{}, downloadForbidden()
		}
		return downloadRight{}, portFailure("resolving license key", err)
	}
	lic, err := s.d.Licensing.GetLicense(ctx, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return downloadRight{}, downloadForbidden()
		}
		return downloadRight{}, portFailure("loading license", err)
	}
	if lic.Status != "active" {
		return downloadRight{}, downloadForbidden()
	}
	e, err := s.d.Entitlements.ByLicense(ctx, lic.ID)
	if repoMissing(err) {
		return downloadRight{}, downloadForbidden() // no order: see DownloadLink
	}
	if err != nil {
		return downloadRight{}, portFailure("loading entitlement", err)
	}
	if e.Status != order.EntitlementActive {
		return downloadRight{}, downloadForbidden()
	}
	if lic.Product == slug && e.Product == slug {
		return downloadRight{orderID: e.OrderID, entitlementID: e.ID, email: e.CustomerEmail}, nil
	}
	ents, err := s.d.Entitlements.ByOrder(ctx, e.OrderID)
	if err != nil {
		return downloadRight{}, portFailure("listing entitlements", err)
	}
	for _, o := range ents {
		if o.Product == slug && o.LineIndex == e.LineIndex && o.Status == order.EntitlementActive {
			return downloadRight{orderID: o.OrderID, entitlementID: o.ID, email: o.CustomerEmail}, nil
		}
	}
	return downloadRight{}, downloadForbidden()
}

// downloadVersion picks the version to download: the one asked for (of this product and
// published), or the latest published one of the platform, falling back to a cross-platform
// ("all") build; without a platform, the "all" build, else the newest latest of any platform.
func (s *Service) downloadVersion(ctx context.Context, p catalog.Product, versionID string, platform catalog.Platform) (catalog.Version, error) {
	if versionID != "" {
		v, err := s.d.Catalog.Version(ctx, versionID)
		if repoMissing(err) || err == nil && (v.ProductID != p.ID || !v.Published) {
			return catalog.Version{}, errs.E(errs.NotFound, catalog.CodeVersionNotFound, "version not found")
		}
		if err != nil {
			return catalog.Version{}, portFailure("loading version", err)
		}
		if v.StorageKey == "" {
			return catalog.Version{}, downloadNotAvailable()
		}
		return v, nil
	}
	vs, err := s.d.Catalog.Versions(ctx, p.ID)
	if err != nil {
		return catalog.Version{}, portFailure("listing versions", err)
	}
	var v catalog.Version
	ok := false
	switch platform {
	case "":
		if v, ok = catalog.Latest(vs, catalog.PlatformAll); !ok {
			var latest []catalog.Version
			for _, l := range catalog.LatestByPlatform(vs) {
				latest = append(latest, l)
			}
			if ok = len(latest) > 0; ok {
				catalog.SortNewestFirst(latest)
				v = latest[0]
			}
		}
	default:
		if v, ok = catalog.Latest(vs, platform); !ok && platform != catalog.PlatformAll {
			v, ok = catalog.Latest(vs, catalog.PlatformAll)
		}
	}
	if !ok || v.StorageKey == "" {
		return catalog.Version{}, downloadNotAvailable()
	}
	return v, nil
}
