package commerce

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func (h *harness) downloads(orderID string) []order.Download {
	h.t.Helper()
	ds, err := h.store.Downloads().ByOrder(h.ctx, orderID)
	if err != nil {
		h.t.Fatal(err)
	}
	return ds
}

// versionOf returns the stored version of a product, platform and version string.
func (h *harness) versionOf(slug, platform, version string) catalog.Version {
	h.t.Helper()
	_, vs, err := h.svc.AdminGetProduct(h.ctx, slug)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, v := range vs {
		if string(v.Platform) == platform && v.Version == version {
			return v
		}
	}
	h.t.Fatalf("no version %s %s %s", slug, platform, version)
	return catalog.Version{}
}

func (h *harness) licenseKey(id string) string {
	return license.FormatKey(string(h.lic.license(h.t, id).KeySealed))
}

func TestDownloadLinkWithAccessToken(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1), line("drums", 1))
	tok := h.svc.AccessToken(o.ID)
	link, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", Platform: "mac", RequestAddr: "203.0.113.9"})
	if err != nil {
		t.Fatal(err)
	}
	v := h.versionOf("synth", "mac", "1.1.0")
	exp := harnessStart.Add(time.Hour)
	if link.URL != "mem://"+v.StorageKey+"?exp="+strconv.FormatInt(exp.Unix(), 10) || !link.ExpiresAt.Equal(exp) ||
		link.FileName != "synth-1.1.0-mac.zip" || link.Version != "1.1.0" || link.Platform != "mac" || link.SizeBytes != v.SizeBytes || v.SizeBytes == 0 {
		t.Fatalf("link %+v for version %+v", link, v)
	}
	if calls := h.objects.linkCalls(); len(calls) != 1 || calls[0] != (fakeLink{Key: v.StorageKey, FileName: "synth-1.1.0-mac.zip", TTL: time.Hour}) {
		t.Fatalf("store calls %+v", calls)
	}
	ds := h.downloads(o.ID)
	ent := h.entitlements(o.ID)[0]
	if len(ds) != 1 || ds[0].EntitlementID != ent.ID || ds[0].VersionID != v.ID || ds[0].CustomerEmail != "buyer@example.com" ||
		ds[0].RequestAddr != "203.0.113.9" || !ds[0].IssuedAt.Equal(harnessStart) || !ds[0].ExpiresAt.Equal(exp) || !strings.HasPrefix(ds[0].ID, "dl_") {
		t.Fatalf("recorded %+v (entitlement %s)", ds, ent.ID)
	}

	// Every click is a fresh link, and every one is recorded.
	h.clock.Advance(10 * time.Minute)
	if _, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "drums"}); err != nil {
		t.Fatal(err)
	}
	if ds := h.downloads(o.ID); len(ds) != 2 || !ds[1].ExpiresAt.Equal(harnessStart.Add(70*time.Minute)) {
		t.Fatalf("recorded %+v", ds)
	}
}

func TestDownloadLinkRefusals(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	tok := h.svc.AccessToken(o.ID)
	unpaid := h.paidUnfulfilled(line("drums", 1))
	if _, err := h.svc.IssueEntitlements(h.ctx, unpaid.ID); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cmd  ports.DownloadCommand
		code string
		kind errs.Kind
	}{
		{"no proof", ports.DownloadCommand{Product: "synth"}, order.CodeDownloadForbidden, errs.Forbidden},
		{"no product", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok}, errs.CodeValidationFailed, errs.Invalid},
		{"bad platform", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", Platform: "amiga"}, catalog.CodeInvalidPlatform, errs.Invalid},
		{"wrong token", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok[1:], Product: "synth"}, order.CodeOrderNotFound, errs.NotFound},
		{"token of another order", ports.DownloadCommand{OrderID: o.ID, AccessToken: h.svc.AccessToken(unpaid.ID), Product: "synth"}, order.CodeOrderNotFound, errs.NotFound},
		{"product not in the order", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "drums"}, order.CodeDownloadForbidden, errs.Forbidden},
		{"not unlocked yet", ports.DownloadCommand{OrderID: unpaid.ID, AccessToken: h.svc.AccessToken(unpaid.ID), Product: "drums"}, order.CodeDownloadForbidden, errs.Forbidden},
		{"no such version", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", VersionID: "ver_nope"}, catalog.CodeVersionNotFound, errs.NotFound},
		{"version of another product", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", VersionID: h.versionOf("drums", "all", "1.0.0").ID}, catalog.CodeVersionNotFound, errs.NotFound},
		{"no build for linux", ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", Platform: "linux"}, order.CodeDownloadNotAvailable, errs.NotFound},
		{"unknown license key", ports.DownloadCommand{LicenseKey: "VST-AAAAA-AAAAA-AAAAA-AAAAA", Product: "synth"}, order.CodeDownloadForbidden, errs.Forbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.svc.DownloadLink(h.ctx, c.cmd)
			wantCode(t, err, c.code, c.kind)
		})
	}
	if n := len(h.downloads(o.ID)) + len(h.downloads(unpaid.ID)); n != 0 {
		t.Fatalf("%d downloads recorded by refused calls", n)
	}
}

func TestDownloadLinkVersionChoice(t *testing.T) {
	h := newHarness(t)
	h.shop()
	h.mustVersion("synth", "1.2.0", "all")
	h.mustVersion("synth", "2.0.0-beta.1", "linux")
	// An unpublished newer build is never handed out.
	if _, err := h.svc.CreateVersion(h.ctx, "synth", ports.VersionInput{Version: "9.0.0", Platform: "mac"}); err != nil {
		t.Fatal(err)
	}
	o, _, _ := h.paidOrder(line("synth", 1))
	tok := h.svc.AccessToken(o.ID)
	get := func(platform, versionID string) ports.DownloadLink {
		t.Helper()
		l, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", Platform: platform, VersionID: versionID})
		if err != nil {
			t.Fatalf("platform %q version %q: %v", platform, versionID, err)
		}
		return l
	}
	for _, c := range []struct{ platform, version, got string }{
		{"mac", "1.1.0", "mac"},
		{"WIN", "1.0.0", "win"},
		{"linux", "2.0.0-beta.1", "linux"},
		{"all", "1.2.0", "all"},
		{"", "1.2.0", "all"}, // no platform: the cross-platform build first
	} {
		if l := get(c.platform, ""); l.Version != c.version || l.Platform != c.got {
			t.Fatalf("platform %q: got %s/%s, want %s/%s", c.platform, l.Version, l.Platform, c.version, c.got)
		}
	}
	old := h.versionOf("synth", "mac", "1.0.0")
	if l := get("", old.ID); l.Version != "1.0.0" || l.Platform != "mac" {
		t.Fatalf("by id: %+v", l)
	}
	_, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: tok, Product: "synth", VersionID: h.versionOf("synth", "mac", "9.0.0").ID})
	wantCode(t, err, catalog.CodeVersionNotFound, errs.NotFound)

	// Without platform and without an "all" build: the newest latest of any platform.
	h2 := newHarness(t)
	h2.shop()
	o2, _, _ := h2.paidOrder(line("synth", 1))
	l, err := h2.svc.DownloadLink(h2.ctx, ports.DownloadCommand{OrderID: o2.ID, AccessToken: h2.svc.AccessToken(o2.ID), Product: "synth"})
	if err != nil || l.Version != "1.1.0" || l.Platform != "mac" {
		t.Fatalf("any platform: %v %+v", err, l)
	}
	// A product without versions.
	o3, _, _ := h2.paidOrder(line("keys", 1))
	_, err = h2.svc.DownloadLink(h2.ctx, ports.DownloadCommand{OrderID: o3.ID, AccessToken: h2.svc.AccessToken(o3.ID), Product: "keys"})
	wantCode(t, err, order.CodeDownloadNotAvailable, errs.NotFound)
}

func TestDownloadLinkWithLicenseKey(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, res, _ := h.paidOrder(line("synth", 1), line("studio", 1))
	synthKey, keysKey := h.licenseKey(res.LicenseIDs[0]), h.licenseKey(res.LicenseIDs[1])
	l, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: strings.ToLower(synthKey), Product: "synth", Platform: "win"})
	if err != nil || l.Platform != "win" {
		t.Fatalf("synth by key: %v %+v", err, l)
	}
	// The bundle's plugin key opens the bundle's other component (same purchase line).
	if _, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: keysKey, Product: "loops"}); err != nil {
		t.Fatalf("loops by the bundle's keys license: %v", err)
	}
	ds := h.downloads(o.ID)
	if len(ds) != 2 || ds[0].CustomerEmail != "buyer@example.com" {
		t.Fatalf("recorded %+v", ds)
	}
	// A key does not open another line's product.
	_, err = h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: synthKey, Product: "loops"})
	wantCode(t, err, order.CodeDownloadForbidden, errs.Forbidden)
	_, err = h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: keysKey, Product: "synth"})
	wantCode(t, err, order.CodeDownloadForbidden, errs.Forbidden)

	// A suspended license gives nothing.
	if _, err := h.lic.ChangeLicenseStatus(h.ctx, res.LicenseIDs[0], "suspend", ""); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: synthKey, Product: "synth"})
	wantCode(t, err, order.CodeDownloadForbidden, errs.Forbidden)

	// A license made by an admin outside any order: the download could not be recorded.
	admin, err := h.lic.CreateLicense(h.ctx, ports.CreateLicenseCommand{Product: "synth", OwnerEmail: "x@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.DownloadLink(h.ctx, ports.DownloadCommand{LicenseKey: admin.Key, Product: "synth"})
	wantCode(t, err, order.CodeDownloadForbidden, errs.Forbidden)
}

func TestDownloadsEndWithTheRefund(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, res, _ := h.paidOrder(line("synth", 1), line("drums", 1))
	key := h.licenseKey(res.LicenseIDs[0])
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, ""); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []ports.DownloadCommand{
		{OrderID: o.ID, AccessToken: h.svc.AccessToken(o.ID), Product: "drums"},
		{OrderID: o.ID, AccessToken: h.svc.AccessToken(o.ID), Product: "synth"},
		{LicenseKey: key, Product: "synth"},
	} {
		_, err := h.svc.DownloadLink(h.ctx, cmd)
		wantCode(t, err, order.CodeDownloadForbidden, errs.Forbidden)
	}
}

func TestDownloadLinkStoreFailure(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("drums", 1))
	h.objects.linkErr = errors.New("s3: timeout")
	_, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: h.svc.AccessToken(o.ID), Product: "drums"})
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	if e, _ := errs.As(err); strings.Contains(e.Message, "s3") {
		t.Fatalf("internal error text leaked: %q", e.Message)
	}
	if n := len(h.downloads(o.ID)); n != 0 {
		t.Fatalf("%d downloads recorded for a link never handed out", n)
	}
}

func TestDownloadTTLFromConfig(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.DownloadTTL = 5 * time.Minute })
	h.shop()
	o, _, _ := h.paidOrder(line("drums", 1))
	l, err := h.svc.DownloadLink(h.ctx, ports.DownloadCommand{OrderID: o.ID, AccessToken: h.svc.AccessToken(o.ID), Product: "drums"})
	if err != nil || !l.ExpiresAt.Equal(harnessStart.Add(5*time.Minute)) || h.objects.linkCalls()[0].TTL != 5*time.Minute {
		t.Fatalf("%v %+v", err, l)
	}
}
