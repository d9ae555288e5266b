package licensing

import (
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func ownerApproval(p *ports.ProductSpec) { p.Policy.FirstActivation = "owner_approval" }

func TestOwnerApprovalClaimFlow(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")

	r, err := f.activate(lic.Key, d)
	if err != nil || r.Pending == nil || r.Grant != nil {
		t.Fatalf("activate %+v %v", r, err)
	}
	claimID := r.Pending.ClaimID
	if !strings.HasPrefix(claimID, "clm_") || !r.Pending.ExpiresAt.Equal(start.Add(15*time.Minute)) {
		t.Fatalf("pending %+v", r.Pending)
	}
	// The owner's e-mail names the device and the request, and links to the confirmation page.
	mails := f.procs.all()
	if len(mails) != 1 {
		t.Fatalf("mails %d", len(mails))
	}
	m := mails[0]
	for _, want := range []string{"Studio Mac", "mac", d.fp, "203.0.113.7", "2026-11-29T12:00:00Z", "http://127.0.0.1:8080/claims/confirm?token="} {
		if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
			t.Errorf("e-mail lacks %q", want)
		}
	}
	if m.ID != "claim-"+claimID || m.To != "owner@example.com" || m.Template != ports.TemplateDeviceApproval || !strings.Contains(m.Subject, "Studio Mac") {
		t.Fatalf("mail %+v", m)
	}
	token := tokenOf(t, m)
	stored, _ := f.store.Claims().Get(f.ctx, claimID)
	if strings.Contains(string(stored.TokenHash), token) || len(stored.TokenHash) != 32 {
		t.Fatal("token stored in clear")
	}

	// The same device again, 1 s before expiry: the same claim, no new e-mail.
	f.clock.Set(start.Add(15*time.Minute - time.Second))
	r2, err := f.activate(lic.Key, d)
	if err != nil || r2.Pending == nil || r2.Pending.ClaimID != claimID || len(f.procs.all()) != 1 {
		t.Fatalf("again %+v %v", r2, err)
	}
	// Another device while it is open: refused, and the attempt is counted (and committed).
	_, err = f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeFirstActivationPendingConfirmation, errs.Conflict)
	_, err = f.activate(lic.Key, d.rekey(t)) // same fingerprint, other key: another device too
	wantCode(t, err, license.CodeFirstActivationPendingConfirmation, errs.Conflict)
	if c, _ := f.store.Claims().Get(f.ctx, claimID); c.AttemptCount != 2 {
		t.Fatalf("attempts %d", c.AttemptCount)
	}

	// The signed status call knows the claim's key while it is open.
	if id, ok, err := f.svc.ResolveStatusKey(f.ctx, d.thumb); err != nil || !ok || id.ClaimID != claimID {
		t.Fatalf("status key %+v %v %v", id, ok, err)
	}

	// Bootstrap while pending: 202.
	bid, err := f.svc.ResolveClaim(f.ctx, claimID, d.thumb)
	if err != nil || bid.ClaimID != claimID || bid.LicenseID != lic.ID {
		t.Fatalf("resolve claim %+v %v", bid, err)
	}
	br, err := f.svc.Bootstrap(f.ctx, bid)
	if err != nil || br.Pending == nil || br.Pending.ClaimID != claimID {
		t.Fatalf("bootstrap %+v %v", br, err)
	}

	// The page shows the claim without deciding (a mail scanner changes nothing).
	v, err := f.svc.ClaimByToken(f.ctx, token)
	if err != nil || v.ID != claimID || v.Status != "pending" || v.Fingerprint != d.fp || v.RequestAddr != "203.0.113.7" {
		t.Fatalf("claim view %+v %v", v, err)
	}
	if _, err := f.svc.ClaimByToken(f.ctx, token); err != nil {
		t.Fatal("viewing spent the token")
	}
	v, err = f.svc.DecideClaimByToken(f.ctx, token, true)
	if err != nil || v.Status != "approved" {
		t.Fatalf("decide %+v %v", v, err)
	}
	c, _ := f.store.Claims().Get(f.ctx, claimID)
	if !c.TokenUsed || c.DecidedBy != OwnerActor || c.DecidedAt == nil {
		t.Fatalf("claim %+v", c)
	}
	_, err = f.svc.DecideClaimByToken(f.ctx, token, false)
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	_, err = f.svc.ClaimByToken(f.ctx, token)
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)

	// Approved, after the claim's 15 minutes: the bootstrap activates once.
	f.clock.Set(start.Add(20 * time.Minute))
	g1, err := f.svc.Bootstrap(f.ctx, bid)
	if err != nil || g1.Grant == nil || !g1.Grant.Created {
		t.Fatalf("bootstrap %+v %v", g1, err)
	}
	if c, _ := f.store.Claims().Get(f.ctx, claimID); c.ActivationID != g1.Grant.ActivationID {
		t.Fatal("claim does not name its activation")
	}
	a := f.activation(g1.Grant.ActivationID)
	if a.Fingerprint != d.fp || a.KeyThumbprint != d.thumb || a.DeviceName != "Studio Mac" || !a.LastHeartbeatAt.Equal(start.Add(20*time.Minute)) {
		t.Fatalf("activation %+v", a)
	}
	g2, err := f.svc.Bootstrap(f.ctx, bid)
	if err != nil || g2.Grant == nil || g2.Grant.Created || g2.Grant.ActivationID != g1.Grant.ActivationID || g2.Grant.CertificateSerial != g1.Grant.CertificateSerial {
		t.Fatalf("second bootstrap %+v %v", g2, err)
	}
	// With a device active, another device activates at once (no claim).
	if g := f.mustGrant(lic.Key, newDev(t, "fingerprint-2")); !g.Created {
		t.Fatal("second device")
	}
	// Once its activation ended, the claim activates nothing any more.
	id := f.mustCertID(g1.Grant.CertificateSerial, d, ports.OpDeactivate)
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: id}))
	_, err = f.svc.Bootstrap(f.ctx, bid)
	wantCode(t, err, license.CodeActivationRevoked, errs.Forbidden)
}

func TestClaimExpiryRejectionAndAdmin(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	r, err := f.activate(lic.Key, d)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Pending.ClaimID
	token := tokenOf(t, f.procs.all()[0])

	// At 15 min the claim has expired: bootstrap and decisions say so, and the same device gets a
	// new claim (another device is no longer blocked).
	f.clock.Set(start.Add(15 * time.Minute))
	id := must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, first, d.thumb))
	_, err = f.svc.Bootstrap(f.ctx, id)
	wantCode(t, err, license.CodeClaimExpired, errs.Gone)
	_, err = f.svc.DecideClaimByToken(f.ctx, token, true)
	wantCode(t, err, license.CodeClaimExpired, errs.Gone)
	_, err = f.svc.DecideClaim(f.ctx, first, true, "admin")
	wantCode(t, err, license.CodeClaimExpired, errs.Gone)
	if v, err := f.svc.ClaimByToken(f.ctx, token); err != nil || v.Status != "expired" {
		t.Fatalf("view %+v %v", v, err)
	}
	if _, ok, _ := f.svc.ResolveStatusKey(f.ctx, d.thumb); ok {
		t.Fatal("expired claim key resolves for status")
	}
	r2, err := f.activate(lic.Key, d)
	if err != nil || r2.Pending == nil || r2.Pending.ClaimID == first {
		t.Fatalf("new claim %+v %v", r2, err)
	}

	// Admin rejects: bootstrap says so; the other decision is a conflict; the same is a no-op.
	v, err := f.svc.DecideClaim(f.ctx, r2.Pending.ClaimID, false, "admin:alice")
	if err != nil || v.Status != "rejected" {
		t.Fatalf("reject %+v %v", v, err)
	}
	if _, err := f.svc.DecideClaim(f.ctx, r2.Pending.ClaimID, false, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.DecideClaim(f.ctx, r2.Pending.ClaimID, true, "admin:alice")
	wantCode(t, err, errs.CodeConflict, errs.Conflict)
	id2 := must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r2.Pending.ClaimID, d.thumb))
	_, err = f.svc.Bootstrap(f.ctx, id2)
	wantCode(t, err, license.CodeClaimRejected, errs.Gone)

	// Resolution errors.
	_, err = f.svc.ResolveClaim(f.ctx, "clm_nope", d.thumb)
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	_, err = f.svc.ResolveClaim(f.ctx, first, newDev(t, "x-device").thumb)
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)
	_, err = f.svc.Bootstrap(f.ctx, ports.DeviceIdentity{ClaimID: "clm_nope"})
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	_, err = f.svc.Bootstrap(f.ctx, ports.DeviceIdentity{ClaimID: first, Thumbprint: "other"})
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)
	_, err = f.svc.DecideClaim(f.ctx, "clm_nope", true, "admin")
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	_, err = f.svc.ClaimByToken(f.ctx, "")
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
	_, err = f.svc.ClaimByToken(f.ctx, "unknown-token")
	wantCode(t, err, license.CodeClaimNotFound, errs.NotFound)
}

func TestClaimWithoutOwnerEmailOnlyAdmin(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", func(c *ports.CreateLicenseCommand) { c.OwnerEmail = "" })
	d := newDev(t, "fingerprint-1")
	r, err := f.activate(lic.Key, d)
	if err != nil || r.Pending == nil {
		t.Fatalf("%+v %v", r, err)
	}
	if len(f.procs.all()) != 0 {
		t.Fatal("e-mail without an owner")
	}
	v, err := f.svc.DecideClaim(f.ctx, r.Pending.ClaimID, true, "admin:bob")
	if err != nil || v.Status != "approved" {
		t.Fatalf("%+v %v", v, err)
	}
	if c, _ := f.store.Claims().Get(f.ctx, r.Pending.ClaimID); c.DecidedBy != "admin:bob" {
		t.Fatalf("decided by %q", c.DecidedBy)
	}
	id := must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r.Pending.ClaimID, d.thumb))
	g, err := f.svc.Bootstrap(f.ctx, id)
	if err != nil || g.Grant == nil || g.Grant.CAChainPEM == "" {
		t.Fatalf("%+v %v", g, err)
	}
	// A license revoked after approval: the bootstrap is refused with the license state.
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", ""))
	_, err = f.svc.Bootstrap(f.ctx, id)
	wantCode(t, err, license.CodeLicenseRevoked, errs.Forbidden)
}

func TestClaimRefusedWhenSeatsHeld(t *testing.T) {
	// No active activation, but a seat still held past the transfer limit: no claim is opened
	// that could never be honoured.
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) {
		p.Policy.MaxActivations = 1
		p.Policy.TransfersPer30d = intp(0)
	})
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	// Switch the product to owner approval now that a device is active.
	f.product("synth", func(p *ports.ProductSpec) {
		p.Policy.MaxActivations = 1
		p.Policy.TransfersPer30d = intp(0)
		ownerApproval(p)
	})
	id := f.mustCertID(g.CertificateSerial, d, ports.OpDeactivate)
	res := must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: id}))
	if !res.SeatReleasedAt.Equal(start.Add(3*time.Hour)) || res.SeatsUsed != 1 {
		t.Fatalf("deactivate %+v", res)
	}
	_, err := f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
}

func TestOwnerApprovalReinstallSupersedesWithoutClaim(t *testing.T) {
	f := newFixture(t)
	f.product("synth", ownerApproval)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	r, err := f.activate(lic.Key, d)
	if err != nil {
		t.Fatal(err)
	}
	must[ports.ClaimView](t)(f.svc.DecideClaim(f.ctx, r.Pending.ClaimID, true, "admin"))
	g := must[ports.ActivateResult](t)(f.svc.Bootstrap(f.ctx, must[ports.DeviceIdentity](t)(f.svc.ResolveClaim(f.ctx, r.Pending.ClaimID, d.thumb))))
	// The only active device comes back with a new key: it supersedes itself at once.
	nd := d.rekey(t)
	r2, err := f.activate(lic.Key, nd)
	if err != nil || r2.Grant == nil || !r2.Grant.Created {
		t.Fatalf("%+v %v", r2, err)
	}
	if a := f.activation(g.Grant.ActivationID); a.Status != license.ActivationSuperseded {
		t.Fatalf("%+v", a)
	}
	// With no device active any more, a new device needs a claim again.
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(r2.Grant.CertificateSerial, nd, ports.OpDeactivate)}))
	if r3, err := f.activate(lic.Key, newDev(t, "fingerprint-2")); err != nil || r3.Pending == nil {
		t.Fatalf("%+v %v", r3, err)
	}
}
