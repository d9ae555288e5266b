package licensing

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

const (
	ann = "ann@example.com"
	bob = "bob@example.com"
)

// ownedBy is a license of owner (given as the admin typed it: the case must not matter).
func (f *fixture) ownedBy(slug, owner string, mod func(*ports.CreateLicenseCommand)) ports.LicenseView {
	f.t.Helper()
	return f.license(slug, func(c *ports.CreateLicenseCommand) {
		c.OwnerEmail = owner
		if mod != nil {
			mod(c)
		}
	})
}

// mailsOf returns the messages started so far with this template.
func (f *fixture) mailsOf(template string) []ports.EmailMessage {
	var out []ports.EmailMessage
	for _, m := range f.procs.all() {
		if m.Template == template {
			out = append(out, m)
		}
	}
	return out
}

func (f *fixture) mailByID(id string) (ports.EmailMessage, bool) {
	for _, m := range f.procs.all() {
		if m.ID == id {
			return m, true
		}
	}
	return ports.EmailMessage{}, false
}

func (f *fixture) validate(serial string, d *dev) ports.ValidateResult {
	f.t.Helper()
	return must[ports.ValidateResult](f.t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: f.mustCertID(serial, d, ports.OpValidate)}))
}

func TestOwnerLicensesView(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.MaxActivations = 3; p.Policy.TransfersPer30d = intp(0) })
	f.product("drums", ownerApproval)
	a1 := f.ownedBy("synth", "Ann@Example.com", nil) // stored with its local part's case
	f.clock.Advance(time.Second)
	a2 := f.ownedBy("drums", ann, nil)
	f.ownedBy("synth", bob, nil)
	f.ownedBy("synth", "", nil)

	// Three devices on a1: one over mTLS, one signed only, one that ends with its seat held.
	d1, d2, d3 := newDev(t, "fingerprint-1"), newDev(t, "fingerprint-2"), newDev(t, "fingerprint-3")
	g1, g2, g3 := f.mustGrant(a1.Key, d1), f.mustGrant(a1.Key, d2), f.mustGrant(a1.Key, d3)
	f.validate(g1.CertificateSerial, d1)
	keyID, err := f.svc.ResolveKey(f.ctx, d2.thumb, ports.OpValidate)
	if err != nil {
		t.Fatal(err)
	}
	must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: keyID}))
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g3.CertificateSerial, d3, ports.OpDeactivate)}))
	// A pending claim on a2.
	r, err := f.activate(a2.Key, newDev(t, "fingerprint-4"))
	if err != nil || r.Pending == nil {
		t.Fatalf("claim %+v %v", r, err)
	}

	views, err := f.svc.OwnerLicenses(f.ctx, ann)
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 || views[0].ID != a2.ID || views[1].ID != a1.ID {
		t.Fatalf("views %+v", views)
	}
	v := views[1]
	parts := strings.Split(a1.Key, "-")
	wantMask := parts[0] + "-" + parts[1] + "-•••••-•••••-" + parts[4]
	if v.MaskedKey != wantMask || strings.Contains(v.MaskedKey, parts[2]) || v.Status != "active" || v.Product != "synth" ||
		v.MaxActivations != 3 || v.SeatsUsed != 3 || len(v.Claims) != 0 {
		t.Fatalf("view %+v (mask %q)", v, wantMask)
	}
	byID := map[string]ports.OwnerDevice{}
	for _, d := range v.Devices {
		byID[d.ID] = d
	}
	if len(byID) != 3 {
		t.Fatalf("devices %+v", v.Devices)
	}
	if d := byID[g1.ActivationID]; d.TrustLevel != license.TrustMTLSSigned || d.Platform != "mac" || d.PluginVersion != "1.2.3" ||
		d.LastHeartbeatAt == nil || !d.LastHeartbeatAt.Equal(start.Add(time.Second)) || d.CanReleaseSeat || d.SeatHeldUntil != nil || d.EndedAt != nil {
		t.Fatalf("mTLS device %+v", d)
	}
	if d := byID[g2.ActivationID]; d.TrustLevel != license.TrustSigned {
		t.Fatalf("signed-only device %+v", d)
	}
	if d := byID[g3.ActivationID]; d.Status != "deactivated" || !d.CanReleaseSeat || d.SeatHeldUntil == nil || d.EndedAt == nil || d.TrustLevel != license.TrustNone {
		t.Fatalf("held device %+v", d)
	}
	if c := views[0].Claims; len(c) != 1 || c[0].ID != r.Pending.ClaimID || c[0].Status != "pending" || c[0].Fingerprint != "fingerprint-4" {
		t.Fatalf("claims %+v", c)
	}

	// The same through OwnerLicense, by id and by key in any accepted format.
	for _, ref := range []string{a1.ID, a1.Key, strings.ToLower(strings.ReplaceAll(a1.Key, "-", " "))} {
		got, err := f.svc.OwnerLicense(f.ctx, ann, ref)
		if err != nil || got.ID != a1.ID || got.MaskedKey != wantMask || len(got.Devices) != 3 {
			t.Fatalf("OwnerLicense(%q) = %+v, %v", ref, got, err)
		}
	}
	if got := must[[]ports.OwnerLicenseView](t)(f.svc.OwnerLicenses(f.ctx, "carol@example.com")); len(got) != 0 {
		t.Fatalf("a stranger sees %+v", got)
	}
	if got := must[[]ports.OwnerLicenseView](t)(f.svc.OwnerLicenses(f.ctx, "")); len(got) != 0 {
		t.Fatalf("no owner sees %+v", got)
	}
	key := must[string](t)(f.svc.RevealKey(f.ctx, ann, a1.ID))
	if key != a1.Key {
		t.Fatalf("revealed %q, want %q", key, a1.Key)
	}
}

// Owner B asks for each of owner A's objects, by id and by key: the answer is exactly the answer
// for a missing object, and nothing changes.
func TestOwnerCallsNeverReachAnotherOwnersObjects(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(0) })
	f.product("drums", ownerApproval)
	a := f.ownedBy("synth", ann, nil)
	ac := f.ownedBy("drums", ann, nil)
	f.ownedBy("synth", bob, nil)
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(a.Key, d)
	r, err := f.activate(ac.Key, newDev(t, "fingerprint-2"))
	if err != nil || r.Pending == nil {
		t.Fatal(err)
	}
	claimID := r.Pending.ClaimID
	mailsBefore := len(f.procs.all())

	type call struct {
		name string
		err  func(owner, ref string) error
		code string
		refs []string // B's attempts; the missing one is appended
	}
	missingLicense, missingActivation, missingClaim := "lic_missing", "act_missing", "clm_missing"
	calls := []call{
		{"OwnerLicense", func(o, ref string) error { _, err := f.svc.OwnerLicense(f.ctx, o, ref); return err },
			license.CodeLicenseNotFound, []string{a.ID, a.Key, strings.ReplaceAll(a.Key, "-", ""), missingLicense, "VST-AAAAA-BBBBB-CCCCC-DDDDD", "not a key"}},
		{"RevealKey", func(o, ref string) error { _, err := f.svc.RevealKey(f.ctx, o, ref); return err },
			license.CodeLicenseNotFound, []string{a.ID, a.Key, missingLicense}},
		{"ReissueKey", func(o, ref string) error { _, _, err := f.svc.ReissueKey(f.ctx, o, ref); return err },
			license.CodeLicenseNotFound, []string{a.ID, missingLicense}},
		{"RenameDevice", func(o, ref string) error { _, err := f.svc.RenameDevice(f.ctx, o, ref, "mine now"); return err },
			license.CodeActivationNotFound, []string{g.ActivationID, missingActivation}},
		{"RevokeDevice", func(o, ref string) error { _, err := f.svc.RevokeDevice(f.ctx, o, ref); return err },
			license.CodeActivationNotFound, []string{g.ActivationID, missingActivation}},
		{"OwnerReleaseSeat", func(o, ref string) error { _, err := f.svc.OwnerReleaseSeat(f.ctx, o, ref); return err },
			license.CodeActivationNotFound, []string{g.ActivationID, missingActivation}},
		{"OwnerDecideClaim approve", func(o, ref string) error { _, err := f.svc.OwnerDecideClaim(f.ctx, o, ref, true); return err },
			license.CodeClaimNotFound, []string{claimID, missingClaim}},
		{"OwnerDecideClaim reject", func(o, ref string) error { _, err := f.svc.OwnerDecideClaim(f.ctx, o, ref, false); return err },
			license.CodeClaimNotFound, []string{claimID, missingClaim}},
	}
	for _, c := range calls {
		for _, owner := range []string{bob, "", "ANN@example.com.evil"} {
			for _, ref := range c.refs {
				err := c.err(owner, ref)
				wantCode(t, err, c.code, errs.NotFound)
				if e, _ := errs.As(err); e == nil || strings.Contains(strings.ToLower(e.Message), "owner") {
					t.Fatalf("%s(%s, %s): the message says why: %v", c.name, owner, ref, err)
				}
			}
		}
	}
	// Nothing changed: the license keeps its key, the device is active under its name, the claim pending.
	if st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, a.Key)); st.SeatsUsed != 1 {
		t.Fatalf("status %+v", st)
	}
	if act := f.activation(g.ActivationID); act.Status != license.ActivationActive || act.DeviceName != "Studio Mac" {
		t.Fatalf("activation %+v", act)
	}
	if c, _ := f.store.Claims().Get(f.ctx, claimID); c.Status != license.ClaimPending || c.TokenUsed {
		t.Fatalf("claim %+v", c)
	}
	if n := len(f.procs.all()); n != mailsBefore {
		t.Fatalf("%d e-mails started by refused calls", n-mailsBefore)
	}
	// And A, the owner, reaches all of them.
	if _, err := f.svc.OwnerLicense(f.ctx, ann, a.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RenameDevice(f.ctx, ann, g.ActivationID, "A's Mac"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.OwnerDecideClaim(f.ctx, ann, claimID, false); err != nil {
		t.Fatal(err)
	}
}

func TestRenameDevice(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.ownedBy("synth", ann, nil)
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	f.clock.Advance(time.Minute)
	v, err := f.svc.RenameDevice(f.ctx, "ANN@example.com", g.ActivationID, "  Studio B — Mac Pro  ")
	if err != nil || v.ID != g.ActivationID || v.DeviceName != "Studio B — Mac Pro" {
		t.Fatalf("rename %+v %v", v, err)
	}
	if a := f.activation(g.ActivationID); a.DeviceName != "Studio B — Mac Pro" || !a.UpdatedAt.Equal(start.Add(time.Minute)) {
		t.Fatalf("stored %+v", a)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", 101), "tab\there"} {
		_, err := f.svc.RenameDevice(f.ctx, ann, g.ActivationID, bad)
		wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	}
	if a := f.activation(g.ActivationID); a.DeviceName != "Studio B — Mac Pro" {
		t.Fatalf("a refused name was stored: %q", a.DeviceName)
	}
}

func TestRevokeDeviceFreesTheSeatRevokesTheCertificateAndTellsTheOwner(t *testing.T) {
	f := newFixture(t)
	// No transfers left: a device's own deactivation would hold its seat; the owner's revoke does not.
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(0) })
	lic := f.ownedBy("synth", ann, func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(1) })
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	f.clock.Advance(time.Minute)
	must[ports.RenewResult](t)(f.svc.Renew(f.ctx, ports.RenewCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpRenew), CSRPEM: d.csr}))
	a := f.activation(g.ActivationID)

	v, err := f.svc.RevokeDevice(f.ctx, ann, g.ActivationID)
	if err != nil {
		t.Fatal(err)
	}
	if v.SeatsUsed != 0 || len(v.Devices) != 0 {
		t.Fatalf("view after revoke %+v", v)
	}
	got := f.activation(g.ActivationID)
	if got.Status != license.ActivationRevoked || got.StatusReason != RevokedByOwnerReason || got.SeatHeldUntil != nil || got.FreedByTransfer || got.EndedAt == nil {
		t.Fatalf("activation %+v", got)
	}
	// Both certificates (the replaced one and the current one) are revoked.
	for _, serial := range []string{g.CertificateSerial, a.CertificateSerial} {
		if c := f.cert(serial); c.Status != license.CertificateRevoked || c.RevokeReason != RevokedByOwnerReason {
			t.Fatalf("certificate %s %+v", serial, c)
		}
	}
	_, err = f.certID(a.CertificateSerial, d, ports.OpValidate)
	wantCode(t, err, license.CodeActivationRevoked, errs.Forbidden)
	// The seat is free at once: another device takes it.
	if g2 := f.mustGrant(lic.Key, newDev(t, "fingerprint-2")); !g2.Created {
		t.Fatal("no seat after the revoke")
	}
	m, ok := f.mailByID("removed-" + g.ActivationID)
	if !ok || m.To != ann || m.Template != ports.TemplateDeviceRemoved || !strings.Contains(m.Text, "Studio Mac") ||
		!strings.Contains(m.Text, "SeatsUsed: 0") || !strings.Contains(m.Text, "http://127.0.0.1:8080/account") {
		t.Fatalf("removed e-mail %+v (%v)", m, ok)
	}
	// Again: nothing changes and nothing more is sent.
	n := len(f.procs.all())
	if _, err := f.svc.RevokeDevice(f.ctx, ann, g.ActivationID); err != nil {
		t.Fatal(err)
	}
	if len(f.procs.all()) != n {
		t.Fatal("a second revoke e-mailed again")
	}
}

func TestOwnerReleaseSeat(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(0) })
	lic := f.ownedBy("synth", ann, func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(1) })
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	_, err := f.svc.OwnerReleaseSeat(f.ctx, ann, g.ActivationID)
	wantCode(t, err, errs.CodeConflict, errs.Conflict)

	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpDeactivate)}))
	_, err = f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)

	f.clock.Advance(time.Minute)
	v, err := f.svc.OwnerReleaseSeat(f.ctx, ann, g.ActivationID)
	if err != nil || v.SeatsUsed != 0 || len(v.Devices) != 0 {
		t.Fatalf("release %+v %v", v, err)
	}
	if a := f.activation(g.ActivationID); a.SeatHeldUntil == nil || !a.SeatHeldUntil.Equal(start.Add(time.Minute)) {
		t.Fatalf("activation %+v", a)
	}
	if g2 := f.mustGrant(lic.Key, newDev(t, "fingerprint-2")); !g2.Created {
		t.Fatal("no seat after the release")
	}
	// Releasing again changes nothing.
	if _, err := f.svc.OwnerReleaseSeat(f.ctx, ann, g.ActivationID); err != nil {
		t.Fatal(err)
	}
}

func TestOwnerDecideClaim(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.ownedBy("synth", ann, nil)
	d := newDev(t, "fingerprint-1")
	r, err := f.activate(lic.Key, d)
	if err != nil || r.Pending == nil {
		t.Fatal(err)
	}
	token := tokenOf(t, f.procs.all()[0])
	v, err := f.svc.OwnerDecideClaim(f.ctx, ann, r.Pending.ClaimID, true)
	if err != nil || v.Status != "approved" || v.ID != r.Pending.ClaimID {
		t.Fatalf("decide %+v %v", v, err)
	}
	c, _ := f.store.Claims().Get(f.ctx, r.Pending.ClaimID)
	if c.DecidedBy != OwnerActor || !c.TokenUsed || c.DecidedAt == nil {
		t.Fatalf("claim %+v", c)
	}
	// The e-mailed link no longer acts.
	_, err = f.svc.DecideClaimByToken(f.ctx, token, false)
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	// The same decision again is a no-op; the other one is CONFLICT.
	if _, err := f.svc.OwnerDecideClaim(f.ctx, ann, r.Pending.ClaimID, true); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.OwnerDecideClaim(f.ctx, ann, r.Pending.ClaimID, false)
	wantCode(t, err, errs.CodeConflict, errs.Conflict)

	// The approved device bootstraps, and that new device is announced like any other.
	bid := must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r.Pending.ClaimID, d.thumb))
	g := must[ports.ActivateResult](t)(f.svc.Bootstrap(f.ctx, bid))
	if g.Grant == nil || !g.Grant.Created {
		t.Fatalf("bootstrap %+v", g)
	}
	if m, ok := f.mailByID("activated-" + g.Grant.ActivationID); !ok || m.Template != ports.TemplateDeviceActivated || m.To != ann {
		t.Fatalf("activated e-mail %+v (%v)", m, ok)
	}

	// A rejection by the owner, on a second license.
	lic2 := f.ownedBy("synth", ann, nil)
	r2, err := f.activate(lic2.Key, newDev(t, "fingerprint-9"))
	if err != nil || r2.Pending == nil {
		t.Fatal(err)
	}
	if v, err := f.svc.OwnerDecideClaim(f.ctx, ann, r2.Pending.ClaimID, false); err != nil || v.Status != "rejected" {
		t.Fatalf("reject %+v %v", v, err)
	}
	// Expired claims cannot be decided.
	lic3 := f.ownedBy("synth", ann, nil)
	r3, err := f.activate(lic3.Key, newDev(t, "fingerprint-8"))
	if err != nil || r3.Pending == nil {
		t.Fatal(err)
	}
	f.clock.Advance(license.ClaimTTL)
	_, err = f.svc.OwnerDecideClaim(f.ctx, ann, r3.Pending.ClaimID, true)
	wantCode(t, err, license.CodeClaimExpired, errs.Gone)
}

func TestReissueKey(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.ownedBy("synth", ann, nil)
	d := newDev(t, "fingerprint-1")
	// An approved, active device.
	r, err := f.activate(lic.Key, d)
	if err != nil {
		t.Fatal(err)
	}
	must[ports.ClaimView](t)(f.svc.OwnerDecideClaim(f.ctx, ann, r.Pending.ClaimID, true))
	g := must[ports.ActivateResult](t)(f.svc.Bootstrap(f.ctx, must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r.Pending.ClaimID, d.thumb)))).Grant
	f.clock.Advance(time.Hour)
	v, key, err := f.svc.ReissueKey(f.ctx, ann, lic.ID)
	if err != nil {
		t.Fatal(err)
	}
	if key == lic.Key || !strings.HasPrefix(key, "VST-") || len(key) != len(lic.Key) {
		t.Fatalf("new key %q (old %q)", key, lic.Key)
	}
	if canonical, ok := license.NormalizeKey(key); !ok || license.FormatKey(canonical) != key {
		t.Fatalf("new key %q is not canonical", key)
	}
	if v.ID != lic.ID || v.MaskedKey != license.MaskKey(strings.ReplaceAll(key, "-", "")) || len(v.Devices) != 1 {
		t.Fatalf("view %+v", v)
	}
	if got := must[string](t)(f.svc.RevealKey(f.ctx, ann, lic.ID)); got != key {
		t.Fatalf("revealed %q, want the new key %q", got, key)
	}
	// The old key is gone for activate, status and the owner's look-up.
	_, err = f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
	_, err = f.svc.Status(f.ctx, lic.Key)
	wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
	_, err = f.svc.OwnerLicense(f.ctx, ann, lic.Key)
	wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
	// The new one works.
	if st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, key)); st.SeatsUsed != 1 {
		t.Fatalf("status %+v", st)
	}
	// The active device keeps working: validate and heartbeat.
	if res := f.validate(g.CertificateSerial, d); !res.Valid || res.Status != "active" {
		t.Fatalf("validate after reissue %+v", res)
	}
	if hb := must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpHeartbeat)})); !hb.Valid {
		t.Fatalf("heartbeat after reissue %+v", hb)
	}
	// The owner got the new key.
	mails := f.mailsOf(ports.TemplateLicenseKeyReissued)
	if len(mails) != 1 || mails[0].To != ann || !strings.Contains(mails[0].Text, key) || strings.Contains(mails[0].Text, lic.Key) ||
		!strings.HasPrefix(mails[0].ID, "key-reissued-"+lic.ID+"-") {
		t.Fatalf("mails %+v", mails)
	}
	// A second reissue is a second key and a second e-mail.
	_, key2, err := f.svc.ReissueKey(f.ctx, ann, lic.ID)
	if err != nil || key2 == key {
		t.Fatalf("second reissue %q %v", key2, err)
	}
	if mails := f.mailsOf(ports.TemplateLicenseKeyReissued); len(mails) != 2 || mails[0].ID == mails[1].ID {
		t.Fatalf("mails %+v", mails)
	}
}

func TestReissueKeyRejectsPendingClaimsAndRefusesRevoked(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.ownedBy("synth", ann, nil)
	r, err := f.activate(lic.Key, newDev(t, "fingerprint-1"))
	if err != nil || r.Pending == nil {
		t.Fatal(err)
	}
	v, _, err := f.svc.ReissueKey(f.ctx, ann, lic.ID)
	if err != nil || len(v.Claims) != 0 {
		t.Fatalf("reissue %+v %v", v, err)
	}
	c, _ := f.store.Claims().Get(f.ctx, r.Pending.ClaimID)
	if c.Status != license.ClaimRejected || !c.TokenUsed || c.DecidedBy != OwnerActor {
		t.Fatalf("claim %+v", c)
	}
	bid := must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r.Pending.ClaimID, c.KeyThumbprint))
	_, err = f.svc.Bootstrap(f.ctx, bid)
	wantCode(t, err, license.CodeClaimRejected, errs.Gone)

	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", "refund"))
	before := must[string](t)(f.svc.RevealKey(f.ctx, ann, lic.ID))
	_, _, err = f.svc.ReissueKey(f.ctx, ann, lic.ID)
	wantCode(t, err, license.CodeLicenseRevoked, errs.Forbidden)
	if after := must[string](t)(f.svc.RevealKey(f.ctx, ann, lic.ID)); after != before {
		t.Fatal("a refused reissue changed the key")
	}
}

func TestRecoverLicenses(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	f.product("drums", nil)
	a1 := f.ownedBy("synth", "Ann@example.com", nil)
	a2 := f.ownedBy("drums", ann, func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(5) })
	gone := f.ownedBy("synth", ann, nil)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, gone.ID, "revoke", "refund"))
	b := f.ownedBy("synth", bob, nil)

	if err := f.svc.RecoverLicenses(f.ctx, "  ANN@Example.COM "); err != nil {
		t.Fatal(err)
	}
	mails := f.mailsOf(ports.TemplateLicenseRecovery)
	if len(mails) != 1 {
		t.Fatalf("mails %+v", mails)
	}
	m := mails[0]
	if m.To != ann || !strings.HasPrefix(m.ID, "recovery-") || !strings.HasSuffix(m.ID, "-"+strconv.FormatInt(start.Unix()/60, 10)) ||
		strings.Contains(m.ID, "ann") {
		t.Fatalf("message %+v", m)
	}
	for _, want := range []string{a1.Key, a2.Key, "Product synth", "Product drums", "MaxActivations: 5", "http://127.0.0.1:8080/account"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("recovery e-mail lacks %q:\n%s", want, m.Text)
		}
	}
	for _, not := range []string{gone.Key, b.Key} {
		if strings.Contains(m.Text, not) {
			t.Errorf("recovery e-mail carries %q", not)
		}
	}
	// A repeat in the same minute is the same message (the delivery workflow sends it once); a
	// minute later it is another.
	if err := f.svc.RecoverLicenses(f.ctx, ann); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := f.svc.RecoverLicenses(f.ctx, ann); err != nil {
		t.Fatal(err)
	}
	mails = f.mailsOf(ports.TemplateLicenseRecovery)
	if len(mails) != 3 || mails[1].ID != m.ID || mails[2].ID == m.ID {
		t.Fatalf("ids %q %q %q", mails[0].ID, mails[1].ID, mails[2].ID)
	}

	// No license (or only revoked ones): the same nil answer, nothing sent.
	n := len(f.procs.all())
	for _, addr := range []string{"carol@example.com", "nobody@example.org"} {
		if err := f.svc.RecoverLicenses(f.ctx, addr); err != nil {
			t.Fatal(err)
		}
	}
	only := f.ownedBy("synth", "dave@example.com", nil)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, only.ID, "revoke", "refund"))
	if err := f.svc.RecoverLicenses(f.ctx, "dave@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(f.procs.all()) != n {
		t.Fatal("a recovery without licenses sent e-mail")
	}
	// Even when the delivery cannot start, the answer is the same.
	f.procs.mu.Lock()
	f.procs.err = errors.New("temporal down")
	f.procs.mu.Unlock()
	if err := f.svc.RecoverLicenses(f.ctx, ann); err != nil {
		t.Fatalf("a failed start is returned: %v", err)
	}
	err := f.svc.RecoverLicenses(f.ctx, "not an address")
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
}

func TestDeviceEmails(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.ownedBy("synth", ann, nil)
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	m, ok := f.mailByID("activated-" + g.ActivationID)
	if !ok || m.To != ann || m.Template != ports.TemplateDeviceActivated {
		t.Fatalf("activated %+v %v", m, ok)
	}
	calls := f.mails.CallsOf(ports.TemplateDeviceActivated)
	data, _ := calls[len(calls)-1].Data.(ports.DeviceEmail)
	if data.Product != "Product synth" || data.DeviceName != "Studio Mac" || data.Platform != "mac" || data.Fingerprint != d.fp ||
		!data.At.Equal(start) || data.SeatsUsed != 1 || data.SeatsTotal != 2 || data.AccountURL != "http://127.0.0.1:8080/account" {
		t.Fatalf("activated data %+v", data)
	}
	// The same device again (200, the same activation) is not a new device.
	n := len(f.procs.all())
	if again := f.mustGrant(lic.Key, d); again.Created || len(f.procs.all()) != n {
		t.Fatalf("re-activation e-mailed: created %v", again.Created)
	}
	// The device deactivates itself: DeviceRemoved with the seats left.
	f.clock.Advance(time.Minute)
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpDeactivate)}))
	m, ok = f.mailByID("removed-" + g.ActivationID)
	if !ok || m.Template != ports.TemplateDeviceRemoved || m.To != ann {
		t.Fatalf("removed %+v %v", m, ok)
	}
	calls = f.mails.CallsOf(ports.TemplateDeviceRemoved)
	if data, _ := calls[len(calls)-1].Data.(ports.DeviceEmail); data.SeatsUsed != 0 || !data.At.Equal(start.Add(time.Minute)) || data.DeviceName != "Studio Mac" {
		t.Fatalf("removed data %+v", data)
	}

	// A license without an owner e-mail: no device e-mail at all.
	anon := f.license("synth", func(c *ports.CreateLicenseCommand) { c.OwnerEmail = "" })
	n = len(f.procs.all())
	d2 := newDev(t, "fingerprint-2")
	g2 := f.mustGrant(anon.Key, d2)
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g2.CertificateSerial, d2, ports.OpDeactivate)}))
	if len(f.procs.all()) != n {
		t.Fatalf("e-mails for a license without owner: %+v", f.procs.all()[n:])
	}

	// A refused activation announces nothing.
	full := f.ownedBy("synth", ann, func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(1) })
	f.mustGrant(full.Key, newDev(t, "fingerprint-3"))
	n = len(f.procs.all())
	_, err := f.activate(full.Key, newDev(t, "fingerprint-4"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	if len(f.procs.all()) != n {
		t.Fatal("a refused activation was announced")
	}
}
