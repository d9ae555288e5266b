package commerce

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// paidUnfulfilled returns a paid order of the lines whose fulfilment has not run.
func (h *harness) paidUnfulfilled(lines ...ports.OrderLineInput) order.Order {
	h.t.Helper()
	o := h.order(h.checkout(nil, lines...).Order.Order.ID)
	h.payOrder(o, "evt_"+o.ID)
	return h.order(o.ID)
}

func TestIssueEntitlements(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 3), line("drums", 2), line("studio", 2))
	res, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	ents := h.entitlements(o.ID)
	type want struct {
		line           int
		product, via   string
		licensed       bool
		maxActivations int
	}
	wants := []want{
		{0, "synth", "", true, 2 * 3},
		{1, "drums", "", false, 0},
		{2, "studio", "", false, 0},
		{2, "keys", "studio", true, 3 * 2},
		{2, "loops", "studio", false, 0},
	}
	if len(ents) != len(wants) || len(res.EntitlementIDs) != len(wants) || len(res.LicenseIDs) != 2 {
		t.Fatalf("%d entitlements (%d reported), %d licenses: %+v", len(ents), len(res.EntitlementIDs), len(res.LicenseIDs), ents)
	}
	for _, w := range wants {
		i := slices.IndexFunc(ents, func(e order.Entitlement) bool { return e.LineIndex == w.line && e.Product == w.product })
		if i < 0 {
			t.Fatalf("no entitlement for line %d %s", w.line, w.product)
		}
		e := ents[i]
		if e.ViaBundle != w.via || e.Status != order.EntitlementActive || e.CustomerEmail != "buyer@example.com" || e.UnlockedAt != nil ||
			!slices.Contains(res.EntitlementIDs, e.ID) || (e.LicenseID != "") != w.licensed {
			t.Fatalf("entitlement %+v, want %+v", e, w)
		}
		if !w.licensed {
			continue
		}
		l := h.lic.license(t, e.LicenseID)
		wantKey := fmt.Sprintf("fulfillment/%s/%d/%s", o.ID, w.line, w.product)
		if l.Product != w.product || l.MaxActivations != w.maxActivations || l.OwnerEmail != "buyer@example.com" || l.IdempotencyKey != wantKey ||
			!slices.Contains(res.LicenseIDs, l.ID) {
			t.Fatalf("license %+v, want %d activations and key %s", l, w.maxActivations, wantKey)
		}
	}

	// A retry (the activity after a crash) issues nothing new and reports the same.
	again, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.EntitlementIDs, res.EntitlementIDs) || !slices.Equal(again.LicenseIDs, res.LicenseIDs) || len(h.entitlements(o.ID)) != 5 {
		t.Fatalf("retry: %+v, first %+v", again, res)
	}
	if n := len(h.lic.createCalls()); n != 2 {
		t.Fatalf("%d CreateLicense calls, want 2", n)
	}
}

// Nothing is half-issued: when the second license fails, the first and every entitlement roll
// back, and the retry issues everything.
func TestIssueEntitlementsIsAllOrNothing(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1), line("keys", 1))
	h.lic.createErr = func(cmd ports.CreateLicenseCommand) error {
		if cmd.Product == "keys" {
			return errs.E(errs.Unavailable, errs.CodeUnavailable, "licensing store down")
		}
		return nil
	}
	_, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	wantCode(t, err, errs.CodeUnavailable, errs.Unavailable)
	if n := len(h.entitlements(o.ID)); n != 0 {
		t.Fatalf("%d entitlements after a failed issue", n)
	}
	lics, _, err := h.store.Licenses().List(h.ctx, ports.LicenseFilter{})
	if err != nil || len(lics) != 0 {
		t.Fatalf("licenses after a failed issue: %v %+v", err, lics)
	}
	h.lic.createErr = nil
	res, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	if err != nil || len(res.LicenseIDs) != 2 || len(res.EntitlementIDs) != 2 {
		t.Fatalf("retry: %v %+v", err, res)
	}
}

func TestIssueEntitlementsRefusesUnpaidAndRevoked(t *testing.T) {
	h := newHarness(t)
	h.shop()
	pending := h.checkout(nil, line("synth", 1)).Order.Order
	_, err := h.svc.IssueEntitlements(h.ctx, pending.ID)
	wantCode(t, err, order.CodeOrderNotPayable, errs.Conflict)
	_, err = h.svc.IssueEntitlements(h.ctx, "ord_missing")
	wantCode(t, err, order.CodeOrderNotFound, errs.NotFound)

	o := h.paidUnfulfilled(line("synth", 1))
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, "refunded"); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.IssueEntitlements(h.ctx, o.ID)
	wantCode(t, err, order.CodeOrderRevoked, errs.Conflict)
	wantCode(t, h.svc.UnlockDownloads(h.ctx, o.ID), order.CodeOrderRevoked, errs.Conflict)
	_, err = h.svc.DeliveryEmail(h.ctx, o.ID)
	wantCode(t, err, order.CodeOrderRevoked, errs.Conflict)
	wantCode(t, h.svc.MarkFulfilled(h.ctx, o.ID), order.CodeOrderRevoked, errs.Conflict)
}

func TestIssueEntitlementsPluginWithoutPolicyIsNotRetryable(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1))
	// The licensing side lost the product: retrying cannot help.
	h.lic.products = brokenProducts{h.lic.products}
	_, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	wantCode(t, err, order.CodeProductNotAvailable, errs.Invalid)
}

// brokenProducts answers NOT_FOUND for every product.
type brokenProducts struct{ ports.ProductRepo }

func (brokenProducts) Get(context.Context, string) (license.ProductRecord, error) {
	return license.ProductRecord{}, errs.E(errs.NotFound, errs.CodeNotFound, "gone")
}

func TestUnlockDownloads(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1), line("drums", 1))
	if _, err := h.svc.IssueEntitlements(h.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.UnlockDownloads(h.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	first := h.entitlements(o.ID)
	for _, e := range first {
		if e.UnlockedAt == nil || !e.UnlockedAt.Equal(harnessStart) {
			t.Fatalf("entitlement %+v not unlocked", e)
		}
	}
	h.clock.Advance(time.Hour)
	if err := h.svc.UnlockDownloads(h.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.entitlements(o.ID) {
		if !e.UnlockedAt.Equal(harnessStart) {
			t.Fatalf("a retry moved UnlockedAt to %v", e.UnlockedAt)
		}
	}
}

func TestDeliveryEmail(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, res, m := h.paidOrder(line("synth", 2), line("drums", 1), line("studio", 1))
	if m.ID != "delivery-"+o.ID || m.To != "buyer@example.com" || m.Template != ports.TemplateLicenseDelivery {
		t.Fatalf("e-mail %+v", m)
	}
	// The message is what the renderer made of the order's data.
	calls := h.mails.CallsOf(ports.TemplateLicenseDelivery)
	if len(calls) == 0 {
		t.Fatal("no delivery rendered")
	}
	last := calls[len(calls)-1]
	if m.Subject != last.Subject || m.Text != last.Text || m.HTML != last.HTML {
		t.Fatalf("message %+v is not the rendering %+v", m, last)
	}
	tok := h.svc.AccessToken(o.ID)
	link := func(slug string) string {
		return "http://127.0.0.1:8080/orders/" + o.ID + "/download/" + slug + "?token=" + tok
	}
	// One license per plugin, the bundle's named after the bundle; quantity 2 doubles the seats.
	if len(res.LicenseIDs) != 2 {
		t.Fatalf("licenses %v", res.LicenseIDs)
	}
	var lics []ports.EmailLicense
	for i, id := range res.LicenseIDs {
		l := h.lic.license(t, id)
		lics = append(lics, ports.EmailLicense{Product: []string{"Synth One", "Keys (Studio Bundle)"}[i],
			Key: license.FormatKey(string(l.KeySealed)), MaxActivations: l.MaxActivations, ExpiresAt: l.ExpiresAt})
	}
	if lics[0].MaxActivations != 4 || lics[1].MaxActivations != 3 {
		t.Fatalf("seats %+v", lics)
	}
	// keys has no downloadable version and the bundle no file of its own: no links for them.
	want := ports.LicenseDeliveryEmail{
		Reference:   order.Reference(o.Number),
		OrderURL:    "http://127.0.0.1:8080/orders/" + o.ID + "?token=" + tok,
		Licenses:    lics,
		SamplePacks: []string{"Drum Pack", "Loop Pack (Studio Bundle)"},
		Downloads: []ports.EmailDownload{
			{Product: "Synth One", Kind: "plugin", URL: link("synth")},
			{Product: "Drum Pack", Kind: "sample_pack", URL: link("drums")},
			{Product: "Loop Pack (Studio Bundle)", Kind: "sample_pack", URL: link("loops")},
		},
		TotalCents: o.TotalCents,
		Currency:   o.Currency,
	}
	if got := last.Data.(ports.LicenseDeliveryEmail); !reflect.DeepEqual(got, want) {
		t.Fatalf("data\n got %+v\nwant %+v", got, want)
	}
	for _, s := range []string{lics[0].Key, lics[1].Key, link("synth"), want.OrderURL} {
		if !strings.Contains(m.Text, s) {
			t.Fatalf("text lacks %q:\n%s", s, m.Text)
		}
	}
	// A retry renders the same e-mail.
	again, err := h.svc.DeliveryEmail(h.ctx, o.ID)
	if err != nil || again != m {
		t.Fatalf("a second rendering differs: %v", err)
	}
}

// Product names reach the renderer as they are: escaping them is the renderer's job (it escapes
// the HTML part and leaves the text part alone), so the core must not escape them first.
func TestDeliveryEmailPassesProductNamesUnescaped(t *testing.T) {
	h := newHarness(t)
	h.mustProduct("evil", func(in *ports.ProductInput) {
		in.Name = `<script>alert("x")</script> & Co`
		in.Policy = &ports.PolicySpec{MaxActivations: 1}
	})
	h.paidOrder(line("evil", 1))
	calls := h.mails.CallsOf(ports.TemplateLicenseDelivery)
	if len(calls) == 0 {
		t.Fatal("no delivery rendered")
	}
	got := calls[len(calls)-1].Data.(ports.LicenseDeliveryEmail)
	if len(got.Licenses) != 1 || got.Licenses[0].Product != `<script>alert("x")</script> & Co` || got.Licenses[0].MaxActivations != 1 {
		t.Fatalf("data %+v", got)
	}
}

func TestDeliveryEmailNeedsIssuedLicenses(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1))
	_, err := h.svc.DeliveryEmail(h.ctx, o.ID)
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("an e-mail before the licenses exist: %v", err)
	}
}

func TestMarkOrderPaid(t *testing.T) {
	h := newHarness(t)
	h.shop()
	stripe := h.checkout(nil, line("synth", 1)).Order.Order
	wantCode(t, h.svc.MarkOrderPaid(h.ctx, stripe.ID), order.CodeOrderNotPayable, errs.Conflict)
	wantCode(t, h.svc.MarkOrderPaid(h.ctx, "ord_missing"), order.CodeOrderNotFound, errs.NotFound)

	// A pending order paid outside a provider (written by an older release that paid in the
	// workflow) is moved to paid.
	admin := h.checkout(func(c *ports.CheckoutCommand) { c.Admin = true }, line("synth", 1)).Order.Order
	admin.PaymentProvider = order.ProviderAdmin
	if err := h.store.Orders().Update(h.ctx, admin); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.MarkOrderPaid(h.ctx, admin.ID); err != nil || h.order(admin.ID).Status != order.StatusPaid {
		t.Fatalf("admin order: %v %+v", err, h.order(admin.ID))
	}
	if err := h.svc.MarkOrderPaid(h.ctx, admin.ID); err != nil {
		t.Fatalf("again: %v", err)
	}
}

func TestMarkFulfilled(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("drums", 1))
	h.clock.Advance(time.Minute)
	if err := h.svc.MarkFulfilled(h.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	got := h.order(o.ID)
	if got.Status != order.StatusFulfilled || got.FulfilledAt == nil || !got.FulfilledAt.Equal(harnessStart.Add(time.Minute)) {
		t.Fatalf("fulfilled %+v", got)
	}
	h.clock.Advance(time.Minute)
	if err := h.svc.MarkFulfilled(h.ctx, o.ID); err != nil || !h.order(o.ID).FulfilledAt.Equal(*got.FulfilledAt) {
		t.Fatalf("again: %v", err)
	}
	pending := h.checkout(nil, line("drums", 1)).Order.Order
	wantCode(t, h.svc.MarkFulfilled(h.ctx, pending.ID), order.CodeOrderNotPayable, errs.Conflict)
}

func TestFlagForSupport(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1))
	m, err := h.svc.FlagForSupport(h.ctx, o.ID, "issuing entitlements: PRODUCT_NOT_AVAILABLE")
	if err != nil {
		t.Fatal(err)
	}
	got := h.order(o.ID)
	if got.ReviewReason != order.ReviewFulfilmentFailed || got.StatusReason != "issuing entitlements: PRODUCT_NOT_AVAILABLE" || got.Status != order.StatusPaid {
		t.Fatalf("flagged %+v", got)
	}
	if m.ID != "support-"+o.ID+"-fulfilment" || m.To != "ops@acme.example" || !strings.Contains(m.Text, "PRODUCT_NOT_AVAILABLE") ||
		!strings.Contains(m.Subject, order.Reference(o.Number)) {
		t.Fatalf("support e-mail %+v", m)
	}
	if ids, _ := h.store.Orders().Unfinished(h.ctx, 10); len(ids) != 0 {
		t.Fatalf("a flagged order is unfinished: %v", ids)
	}
	wantCode(t, h.svc.MarkOrderPaid(h.ctx, o.ID), order.CodeOrderInReview, errs.Conflict)

	// Released, the fulfilment starts again.
	if _, err := h.svc.ReleaseReview(h.ctx, o.ID); err != nil || count(h.procs.fulfilmentStarts(), o.ID) != 2 {
		t.Fatalf("release: %v %v", err, h.procs.fulfilmentStarts())
	}

	none := newHarness(t, func(d *Deps) { d.Config.OperatorEmail = "" })
	none.shop()
	o2 := none.paidUnfulfilled(line("drums", 1))
	if m, err := none.svc.FlagForSupport(none.ctx, o2.ID, ""); err != nil || m.To != "" || m.ID != "support-"+o2.ID+"-fulfilment" {
		t.Fatalf("without an operator: %v %+v", err, m)
	}
}

func TestRevokeOrder(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, res, _ := h.paidOrder(line("synth", 1), line("studio", 1))
	// One license was revoked by hand already: revoking it again must not fail or be repeated.
	if _, err := h.lic.ChangeLicenseStatus(h.ctx, res.LicenseIDs[1], "revoke", "by hand"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, "payment refunded"); err != nil {
		t.Fatal(err)
	}
	for _, id := range res.LicenseIDs {
		if l := h.lic.license(t, id); l.Status != license.LicenseRevoked {
			t.Fatalf("license %s is %s", id, l.Status)
		}
	}
	changes := h.lic.statusChanges()
	if len(changes) != 2 || changes[1] != (statusChange{ID: res.LicenseIDs[0], Action: "revoke", Reason: "payment refunded"}) {
		t.Fatalf("status changes %+v", changes)
	}
	for _, e := range h.entitlements(o.ID) {
		if e.Status != order.EntitlementRevoked || e.RevokedAt == nil {
			t.Fatalf("entitlement %+v", e)
		}
	}
	got := h.order(o.ID)
	if got.Status != order.StatusRefunded || got.RefundedAt == nil || !got.RefundedAt.Equal(harnessStart.Add(time.Hour)) || got.StatusReason != "payment refunded" {
		t.Fatalf("order %+v", got)
	}
	// Again (the activity retried), or disputed after the refund: nothing changes.
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusDisputed, "dispute"); err != nil {
		t.Fatal(err)
	}
	if len(h.lic.statusChanges()) != 2 || h.order(o.ID).Status != order.StatusRefunded {
		t.Fatalf("second revocation: %+v %s", h.lic.statusChanges(), h.order(o.ID).Status)
	}

	pending := h.checkout(nil, line("drums", 1)).Order.Order
	wantCode(t, h.svc.RevokeOrder(h.ctx, pending.ID, order.StatusRefunded, ""), order.CodeOrderNotRefundable, errs.Conflict)
	wantCode(t, h.svc.RevokeOrder(h.ctx, o.ID, order.StatusFailed, ""), errs.CodeValidationFailed, errs.Invalid)
}

func TestRevokeOrderBeforeFulfilment(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1))
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusDisputed, ""); err != nil {
		t.Fatal(err)
	}
	if got := h.order(o.ID); got.Status != order.StatusDisputed || got.StatusReason != "disputed" {
		t.Fatalf("order %+v", got)
	}
}

func TestRevokeOrderLicensingFailureRollsBack(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1))
	h.lic.licenses = failingUpdates{h.lic.licenses}
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, ""); err == nil {
		t.Fatal("want the licensing failure")
	}
	if got := h.order(o.ID); got.Status != order.StatusFulfilled {
		t.Fatalf("order is %s after a failed revocation", got.Status)
	}
	for _, e := range h.entitlements(o.ID) {
		if e.Status != order.EntitlementActive {
			t.Fatalf("entitlement %+v", e)
		}
	}
}

// failingUpdates refuses every license update.
type failingUpdates struct{ ports.LicenseRepo }

func (failingUpdates) Update(context.Context, license.LicenseRecord) error {
	return errors.New("disk full")
}

func TestRefundEmail(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o, _, _ := h.paidOrder(line("synth", 1), line("drums", 1))
	_, err := h.svc.RefundEmail(h.ctx, o.ID)
	wantCode(t, err, order.CodeOrderNotRefundable, errs.Conflict)
	if err := h.svc.RevokeOrder(h.ctx, o.ID, order.StatusRefunded, ""); err != nil {
		t.Fatal(err)
	}
	m, err := h.svc.RefundEmail(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	ref := order.Reference(o.Number)
	if m.ID != "refund-"+o.ID || m.To != "buyer@example.com" || m.Template != ports.TemplateOrderRefunded {
		t.Fatalf("refund e-mail %+v", m)
	}
	calls := h.mails.CallsOf(ports.TemplateOrderRefunded)
	want := ports.OrderRefundedEmail{Reference: ref, Products: []string{"Synth One", "Drum Pack"}}
	if len(calls) != 1 || !reflect.DeepEqual(calls[0].Data, want) || m.Subject != calls[0].Subject || m.Text != calls[0].Text {
		t.Fatalf("renderings %+v", calls)
	}
	o2, _, _ := h.paidOrder(line("drums", 1))
	if err := h.svc.RevokeOrder(h.ctx, o2.ID, order.StatusDisputed, ""); err != nil {
		t.Fatal(err)
	}
	m2, err := h.svc.RefundEmail(h.ctx, o2.ID)
	calls = h.mails.CallsOf(ports.TemplateOrderRefunded)
	want = ports.OrderRefundedEmail{Reference: order.Reference(o2.Number), Disputed: true, Products: []string{"Drum Pack"}}
	if err != nil || m2.ID != "refund-"+o2.ID || len(calls) != 2 || !reflect.DeepEqual(calls[1].Data, want) {
		t.Fatalf("dispute e-mail %v %+v %+v", err, m2, calls)
	}
}

// laggingEntitlements hides the stored entitlements from the first ByOrder call, like a store
// that had not seen an earlier run's commit yet.
type laggingEntitlements struct {
	ports.EntitlementRepo
	calls *int
}

func (l laggingEntitlements) ByOrder(ctx context.Context, orderID string) ([]order.Entitlement, error) {
	*l.calls++
	if *l.calls == 1 {
		return nil, nil
	}
	return l.EntitlementRepo.ByOrder(ctx, orderID)
}

// An insert conflict means "already issued": the existing entitlement is used.
func TestIssueEntitlementsInsertConflictMeansIssued(t *testing.T) {
	h := newHarness(t)
	h.shop()
	o := h.paidUnfulfilled(line("synth", 1), line("drums", 1))
	first, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	h.svc.d.Entitlements = laggingEntitlements{h.svc.d.Entitlements, &calls}
	again, err := h.svc.IssueEntitlements(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.EntitlementIDs, first.EntitlementIDs) || !slices.Equal(again.LicenseIDs, first.LicenseIDs) || len(h.entitlements(o.ID)) != 2 {
		t.Fatalf("after conflicts: %+v, first %+v", again, first)
	}
}
