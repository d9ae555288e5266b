package licensing

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The claim e-mail carries what the owner needs to decide: the product's name, the device, where
// and when it asked, until when, and the confirmation link.
func TestClaimEmailData(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	r, err := f.activate(lic.Key, d)
	if err != nil || r.Pending == nil {
		t.Fatalf("activate %+v %v", r, err)
	}
	calls := f.mails.CallsOf(ports.TemplateDeviceApproval)
	if len(calls) != 1 {
		t.Fatalf("render calls %+v", f.mails.Calls())
	}
	data, ok := calls[0].Data.(ports.DeviceApprovalEmail)
	if !ok {
		t.Fatalf("data %T", calls[0].Data)
	}
	m := f.procs.all()[0]
	token := tokenOf(t, m)
	want := ports.DeviceApprovalEmail{
		Product: "Product synth", DeviceName: "Studio Mac", Platform: "mac", Fingerprint: d.fp,
		RequestAddr: "203.0.113.7", RequestedAt: start, ExpiresAt: start.Add(15 * time.Minute),
		ConfirmURL: "http://127.0.0.1:8080/claims/confirm?token=" + token,
	}
	if data != want {
		t.Fatalf("data\n got %+v\nwant %+v", data, want)
	}
	// The message is what the renderer returned, under the claim's deterministic ID.
	if m.ID != "claim-"+r.Pending.ClaimID || m.Subject != calls[0].Subject || m.Text != calls[0].Text ||
		m.HTML != calls[0].HTML || m.Template != ports.TemplateDeviceApproval {
		t.Fatalf("message %+v", m)
	}
}

// A supersede tells the owner which device came back and how many seats are in use after it.
func TestSupersedeEmailData(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.MaxActivations = 3 })
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	f.mustGrant(lic.Key, d)
	f.mustGrant(lic.Key, newDev(t, "fingerprint-2"))
	f.clock.Advance(time.Minute)
	f.mustGrant(lic.Key, d.rekey(t))
	calls := f.mails.CallsOf(ports.TemplateDeviceSuperseded)
	if len(calls) != 1 {
		t.Fatalf("render calls %+v", f.mails.Calls())
	}
	want := ports.DeviceEmail{
		Product: "Product synth", DeviceName: "Studio Mac", Platform: "mac", Fingerprint: d.fp,
		At: start.Add(time.Minute), SeatsUsed: 2, SeatsTotal: 3, AccountURL: "http://127.0.0.1:8080/account",
	}
	if got := calls[0].Data.(ports.DeviceEmail); got != want {
		t.Fatalf("data\n got %+v\nwant %+v", got, want)
	}
}

// A renderer failure fails the activation that would have sent the e-mail (inside its transaction:
// a claim whose link never reaches the owner must not stay open), with the renderer's Internal error.
func TestClaimRenderFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", nil)
	f.mails.Fail(errors.New("template exploded"))
	_, err := f.activate(lic.Key, newDev(t, "fingerprint-1"))
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("err %v", err)
	}
	open, _ := f.store.Claims().OpenByLicense(f.ctx, lic.ID, start)
	if len(open) != 0 || len(f.procs.all()) != 0 {
		t.Fatalf("claims %d mails %d", len(open), len(f.procs.all()))
	}
}

// sendTemplate renders and starts the delivery workflow; a failure to render or to start is
// logged, never returned or panicking, and nothing half-rendered is sent.
func TestSendTemplate(t *testing.T) {
	f := newFixture(t)
	data := ports.LicenseKeyReissuedEmail{Product: "Synth", Key: "VST-AAAAA-BBBBB-CCCCC-DDDDD", AccountURL: f.svc.accountURL()}
	f.svc.sendTemplate(context.Background(), "reissue-lic_1", "o@example.com", ports.TemplateLicenseKeyReissued, data)
	mails := f.procs.all()
	if len(mails) != 1 {
		t.Fatalf("mails %+v", mails)
	}
	m := mails[0]
	if m.ID != "reissue-lic_1" || m.To != "o@example.com" || m.Template != ports.TemplateLicenseKeyReissued ||
		m.Subject != "license_key_reissued: Synth" || !strings.Contains(m.Text, "VST-AAAAA-BBBBB-CCCCC-DDDDD") ||
		!strings.Contains(m.HTML, "http://127.0.0.1:8080/account") {
		t.Fatalf("message %+v", m)
	}

	var logs strings.Builder
	f.svc.log = slog.New(slog.NewTextHandler(&logs, nil))
	// Wrong data for the template: logged, nothing sent.
	f.svc.sendTemplate(context.Background(), "x", "o@example.com", ports.TemplateDeviceApproval, data)
	if n := len(f.procs.all()); n != 1 || !strings.Contains(logs.String(), "rendering e-mail failed") || !strings.Contains(logs.String(), "email_id=x") {
		t.Fatalf("sent %d after a render failure; logs %s", n, logs.String())
	}
	// The workflow cannot start: logged, not returned (sendTemplate has no result to return).
	f.procs.err = errors.New("temporal down")
	f.svc.sendTemplate(context.Background(), "y", "o@example.com", ports.TemplateLicenseKeyReissued, data)
	if n := len(f.mails.CallsOf(ports.TemplateLicenseKeyReissued)); n != 2 || !strings.Contains(logs.String(), "starting e-mail delivery failed") || !strings.Contains(logs.String(), "email_id=y") {
		t.Fatalf("renders %d; logs %s", n, logs.String())
	}
}

func TestProductNameFallsBackToSlug(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	if got := f.svc.productName(f.ctx, "synth"); got != "Product synth" {
		t.Fatal(got)
	}
	if got := f.svc.productName(f.ctx, "gone"); got != "gone" {
		t.Fatal(got)
	}
}
