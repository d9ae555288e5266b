package licensing

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// activated returns a fixture with product "synth" (heartbeat 1 h, grace 3 h, 2 seats), a license
// and one activated device.
func activated(t *testing.T, mod func(*ports.ProductSpec)) (*fixture, ports.LicenseView, *dev, *ports.ActivationGrant) {
	f := newFixture(t)
	f.product("synth", mod)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	return f, lic, d, f.mustGrant(lic.Key, d)
}

func TestValidateGraceBoundaries(t *testing.T) {
	f, lic, d, g := activated(t, nil)
	id := f.mustCertID(g.CertificateSerial, d, ports.OpValidate)
	cases := []struct {
		at        time.Duration
		status    string
		valid     bool
		action    string
		remaining time.Duration
	}{
		{0, "active", true, "", 3 * time.Hour},
		{time.Hour - time.Second, "active", true, "", 2*time.Hour + time.Second},
		{time.Hour, "active", true, "", 2 * time.Hour},
		{time.Hour + time.Second, "grace_period", true, "heartbeat_required", 2*time.Hour - time.Second},
		{3*time.Hour - time.Second, "grace_period", true, "heartbeat_required", time.Second},
		{3 * time.Hour, "grace_period", true, "heartbeat_required", 0},
		{3*time.Hour + time.Second, "grace_period_expired", false, "heartbeat_required", 0},
	}
	for _, c := range cases {
		f.clock.Set(start.Add(c.at))
		v, err := f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id, Product: "synth", PluginVersion: "1.2.4"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != c.status || v.Valid != c.valid || v.Action != c.action || v.GracePeriodRemaining != c.remaining ||
			!v.HeartbeatDueAt.Equal(start.Add(time.Hour)) || v.ActivationID != g.ActivationID ||
			v.License.ID != lic.ID || v.License.Product != "synth" || v.License.ExpiresAt != nil {
			t.Errorf("at +%v: %+v", c.at, v)
		}
	}
	if a := f.activation(g.ActivationID); !a.LastHeartbeatAt.Equal(start) {
		t.Fatal("validate moved the heartbeat clock")
	}
	// The license state wins over the grace states.
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", ""))
	v := must[ports.ValidateResult](t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id}))
	if v.Valid || v.Status != "suspended" || v.Action != "" {
		t.Fatalf("suspended: %+v", v)
	}
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", ""))
	if v := must[ports.ValidateResult](t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id})); v.Valid || v.Status != "revoked" {
		t.Fatalf("revoked: %+v", v)
	}
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "reinstate", ""))
	f.clock.Set(start)
	if v := must[ports.ValidateResult](t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id})); !v.Valid || v.Status != "active" {
		t.Fatalf("reinstated: %+v", v)
	}
	_, err := f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id, Product: "other"})
	wantCode(t, err, license.CodeProductMismatch, errs.Invalid)
	_, err = f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: ports.DeviceIdentity{ActivationID: "act_missing"}})
	wantCode(t, err, license.CodeActivationRevoked, errs.Forbidden)
	_, err = f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id, PluginVersion: strings.Repeat("x", 65)})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
}

func TestValidateExpiredLicense(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	exp := start.Add(2 * time.Hour)
	lic := f.license("synth", func(c *ports.CreateLicenseCommand) { c.ExpiresAt = &exp })
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	id := f.mustCertID(g.CertificateSerial, d, ports.OpValidate)
	f.clock.Set(exp.Add(-time.Second))
	if v := must[ports.ValidateResult](t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id})); v.Status != "grace_period" || v.License.ExpiresAt == nil || !v.License.ExpiresAt.Equal(exp) {
		t.Fatalf("%+v", v)
	}
	f.clock.Set(exp)
	if v := must[ports.ValidateResult](t)(f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id})); v.Valid || v.Status != "expired" {
		t.Fatalf("%+v", v)
	}
	st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, lic.Key))
	if st.Status != "expired" || st.ExpiresAt == nil || !st.ExpiresAt.Equal(exp) {
		t.Fatalf("%+v", st)
	}
	hb := must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: id}))
	if hb.Valid || hb.Status != "expired" || hb.Lease != "" {
		t.Fatalf("%+v", hb)
	}
}

func TestHeartbeat(t *testing.T) {
	f, lic, d, g := activated(t, func(p *ports.ProductSpec) { p.Policy.CertificateValidityS = i64p(90 * 24 * 3600) })
	id := f.mustCertID(g.CertificateSerial, d, ports.OpHeartbeat)

	hb := func() ports.HeartbeatResult {
		t.Helper()
		return must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: id, PluginVersion: "2.0"}))
	}
	// On time: no previous status.
	f.clock.Set(start.Add(time.Hour))
	r := hb()
	now := start.Add(time.Hour)
	if !r.Valid || r.Status != "active" || r.PreviousStatus != "" || r.Recovered || r.RenewCertificate ||
		!r.HeartbeatDueAt.Equal(now.Add(time.Hour)) || r.GracePeriodRemaining != 3*time.Hour {
		t.Fatalf("%+v", r)
	}
	c := decodeLease(t, r.Lease)
	if c.IssuedAt != now.Unix() || c.Expires != now.Add(3*time.Hour).Unix() || c.HeartbeatDue != now.Add(time.Hour).Unix() {
		t.Fatalf("lease %+v", c)
	}
	a := f.activation(g.ActivationID)
	if !a.LastHeartbeatAt.Equal(now) || a.PluginVersion != "2.0" || !a.LastLeaseExp.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("activation %+v", a)
	}
	// 1 s into grace: recovered from grace_period.
	now = now.Add(time.Hour + time.Second)
	f.clock.Set(now)
	if r := hb(); r.PreviousStatus != "grace_period" || !r.Recovered || r.Status != "active" {
		t.Fatalf("%+v", r)
	}
	// 1 s after the grace period: recovered from grace_period_expired.
	now = now.Add(3*time.Hour + time.Second)
	f.clock.Set(now)
	if r := hb(); r.PreviousStatus != "grace_period_expired" || !r.Recovered || !r.Valid {
		t.Fatalf("%+v", r)
	}
	// Suspended: valid false and nothing moves.
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", ""))
	f.clock.Set(now.Add(time.Minute))
	if r := hb(); r.Valid || r.Status != "suspended" || r.Lease != "" {
		t.Fatalf("%+v", r)
	}
	if a := f.activation(g.ActivationID); !a.LastHeartbeatAt.Equal(now) {
		t.Fatal("heartbeat moved on a suspended license")
	}
	_, err := f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: id, PluginVersion: "\x01"})
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
}

func TestHeartbeatRenewHint(t *testing.T) {
	// 90-day certificates: the hint turns on 30 days before notAfter.
	f, _, d, g := activated(t, func(p *ports.ProductSpec) { p.Policy.CertificateValidityS = i64p(90 * 24 * 3600) })
	id := f.mustCertID(g.CertificateSerial, d, ports.OpHeartbeat)
	hint := func(at time.Time) bool {
		f.clock.Set(at)
		return must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: id})).RenewCertificate
	}
	window := g.CertificateNotAfter.Add(-30 * 24 * time.Hour)
	if hint(window.Add(-time.Second)) || !hint(window) {
		t.Fatal("30-day window")
	}
	f.clock.Set(start)
	f.ca.rolling = true
	if !hint(start) {
		t.Fatal("rollback hint")
	}
	f.ca.rolling = false
	f.ca.rollErr = errors.New("pki down")
	if hint(start) {
		t.Fatal("an unknown rollback status turned the hint on")
	}
	// A 30 h certificate: a third of its validity (10 h) is shorter than 30 days.
	f2, _, d2, g2 := activated(t, func(p *ports.ProductSpec) { p.Policy.CertificateValidityS = i64p(30 * 3600) })
	id2 := f2.mustCertID(g2.CertificateSerial, d2, ports.OpHeartbeat)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{20*time.Hour - time.Second, false}, {20 * time.Hour, true}} {
		f2.clock.Set(start.Add(c.at))
		if got := must[ports.HeartbeatResult](t)(f2.svc.Heartbeat(f2.ctx, ports.HeartbeatCommand{Identity: id2})).RenewCertificate; got != c.want {
			t.Errorf("at +%v: %v", c.at, got)
		}
	}
}

func TestDeactivateSeatRulesAndTransferWindow(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(1); p.Policy.MaxActivations = 1 })
	lic := f.license("synth", nil)

	deactivate := func(d *dev, g *ports.ActivationGrant) ports.DeactivateResult {
		t.Helper()
		id := f.mustCertID(g.CertificateSerial, d, ports.OpDeactivate)
		return must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: id}))
	}
	// First deactivation: a transfer, freed at once.
	d1 := newDev(t, "device-0001")
	g1 := f.mustGrant(lic.Key, d1)
	r := deactivate(d1, g1)
	if r.SeatsUsed != 0 || r.SeatsTotal != 1 || !r.SeatReleasedAt.Equal(start) {
		t.Fatalf("%+v", r)
	}
	a1 := f.activation(g1.ActivationID)
	if a1.Status != license.ActivationDeactivated || !a1.FreedByTransfer || f.cert(g1.CertificateSerial).Status != license.CertificateRevoked {
		t.Fatalf("%+v", a1)
	}
	_, err := f.certID(g1.CertificateSerial, d1, ports.OpValidate)
	wantCode(t, err, license.CodeActivationRevoked, errs.Forbidden)

	// Second, 1 s before the first transfer leaves the 30-day window: the seat is held until the
	// last lease's exp (activation + 3 h).
	t2 := start.Add(30*24*time.Hour - time.Second)
	f.clock.Set(t2)
	d2 := newDev(t, "device-0002")
	g2 := f.mustGrant(lic.Key, d2)
	r = deactivate(d2, g2)
	if r.SeatsUsed != 1 || !r.SeatReleasedAt.Equal(t2.Add(3*time.Hour)) {
		t.Fatalf("%+v", r)
	}
	_, err = f.activate(lic.Key, newDev(t, "device-0003"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	f.clock.Set(t2.Add(3*time.Hour - time.Second))
	_, err = f.activate(lic.Key, newDev(t, "device-0003"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	f.clock.Set(t2.Add(3 * time.Hour))
	d3 := newDev(t, "device-0003")
	g3 := f.mustGrant(lic.Key, d3)

	// By now (30 d + 3 h - 1 s after it) the first transfer has left the window, so this
	// deactivation is a transfer again and frees the seat at once.
	r = deactivate(d3, g3)
	if r.SeatsUsed != 0 || !r.SeatReleasedAt.Equal(t2.Add(3*time.Hour)) {
		t.Fatalf("outside the window the deactivation is a transfer again: %+v", r)
	}
}

func TestDeactivateTransferWindowAtBoundary(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(1); p.Policy.MaxActivations = 1 })
	lic := f.license("synth", nil)
	d1 := newDev(t, "device-0001")
	g1 := f.mustGrant(lic.Key, d1)
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g1.CertificateSerial, d1, ports.OpDeactivate)}))
	// Exactly 30 days later the first transfer no longer counts: freed at once.
	t2 := start.Add(30 * 24 * time.Hour)
	f.clock.Set(t2)
	d2 := newDev(t, "device-0002")
	g2 := f.mustGrant(lic.Key, d2)
	r := must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g2.CertificateSerial, d2, ports.OpDeactivate)}))
	if r.SeatsUsed != 0 || !r.SeatReleasedAt.Equal(t2) || !f.activation(g2.ActivationID).FreedByTransfer {
		t.Fatalf("%+v", r)
	}
}

func TestRenewOverlapAndKeyChange(t *testing.T) {
	f, lic, d, g := activated(t, nil)
	f.clock.Set(start.Add(time.Hour))
	renewAt := start.Add(time.Hour)
	id := f.mustCertID(g.CertificateSerial, d, ports.OpRenew)

	// Renew with a new Ed25519 key.
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	nd := devWithKey(t, d.fp, edKey)
	_, err := f.svc.Renew(f.ctx, ports.RenewCommand{Identity: id, CSRPEM: "junk"})
	wantCode(t, err, license.CodeInvalidCSR, errs.Invalid)
	r, err := f.svc.Renew(f.ctx, ports.RenewCommand{Identity: id, CSRPEM: nd.csr})
	if err != nil {
		t.Fatal(err)
	}
	if r.CertificateSerial == g.CertificateSerial || r.CAChainPEM == "" || !r.CertificateNotAfter.Equal(renewAt.Add(license.DefaultCertificateValidity)) {
		t.Fatalf("%+v", r)
	}
	c := decodeLease(t, r.Lease)
	if c.Confirmation.KID != nd.thumb || c.Expires != start.Add(3*time.Hour).Unix() {
		t.Fatalf("lease %+v", c)
	}
	a := f.activation(g.ActivationID)
	if a.KeyThumbprint != nd.thumb || a.CertificateSerial != r.CertificateSerial || !a.LastHeartbeatAt.Equal(start) {
		t.Fatalf("activation %+v", a)
	}
	old := f.cert(g.CertificateSerial)
	if old.Status != license.CertificateReplaced || !old.OverlapUntil.Equal(renewAt.Add(24*time.Hour)) {
		t.Fatalf("old %+v", old)
	}
	nc := f.cert(r.CertificateSerial)
	if nc.KeyThumbprint != nd.thumb || nc.Status != license.CertificateCurrent {
		t.Fatalf("new %+v", nc)
	}

	// The new certificate with the new key works; the new certificate with the old key does not.
	newID := f.mustCertID(r.CertificateSerial, nd, ports.OpRenew)
	if _, ok := newID.PublicKey.(ed25519.PublicKey); !ok {
		t.Fatalf("identity key %T", newID.PublicKey)
	}
	_, err = f.certID(r.CertificateSerial, d, ports.OpValidate)
	wantCode(t, err, license.CodeKeyMismatch, errs.Forbidden)

	// The old certificate with its old key: validate and heartbeat until 1 s before the overlap
	// ends, never renew or deactivate.
	end := renewAt.Add(24 * time.Hour)
	f.clock.Set(end.Add(-time.Second))
	oldID := f.mustCertID(g.CertificateSerial, d, ports.OpValidate)
	if oldID.PublicKey == nil || oldID.Thumbprint != d.thumb || oldID.ActivationID != g.ActivationID {
		t.Fatalf("old identity %+v", oldID)
	}
	f.mustCertID(g.CertificateSerial, d, ports.OpHeartbeat)
	for _, op := range []ports.DeviceOp{ports.OpRenew, ports.OpDeactivate} {
		_, err = f.certID(g.CertificateSerial, d, op)
		wantCode(t, err, license.CodeCertificateRevoked, errs.Forbidden)
	}
	if hb := must[ports.HeartbeatResult](t)(f.svc.Heartbeat(f.ctx, ports.HeartbeatCommand{Identity: oldID})); !hb.Valid {
		t.Fatalf("%+v", hb)
	}
	// The service checks again under its lock: the old identity cannot deactivate or renew.
	_, err = f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: oldID})
	wantCode(t, err, license.CodeCertificateRevoked, errs.Forbidden)
	_, err = f.svc.Renew(f.ctx, ports.RenewCommand{Identity: oldID, CSRPEM: d.csr})
	wantCode(t, err, license.CodeCertificateRevoked, errs.Forbidden)
	f.clock.Set(end)
	for _, op := range []ports.DeviceOp{ports.OpValidate, ports.OpHeartbeat} {
		_, err = f.certID(g.CertificateSerial, d, op)
		wantCode(t, err, license.CodeCertificateRevoked, errs.Forbidden)
	}
	// Without a certificate, only the current key is known.
	_, err = f.svc.ResolveKey(f.ctx, d.thumb, ports.OpValidate)
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)
	kid, err := f.svc.ResolveKey(f.ctx, nd.thumb, ports.OpRenew)
	if err != nil || kid.ActivationID != g.ActivationID || kid.MTLS {
		t.Fatalf("%+v %v", kid, err)
	}
	// Renew with the same key again; the license must be active.
	r2 := must[ports.RenewResult](t)(f.svc.Renew(f.ctx, ports.RenewCommand{Identity: kid, CSRPEM: nd.csr}))
	if f.cert(r.CertificateSerial).Status != license.CertificateReplaced || f.activation(g.ActivationID).CertificateSerial != r2.CertificateSerial {
		t.Fatal("same-key renewal")
	}
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", ""))
	_, err = f.svc.Renew(f.ctx, ports.RenewCommand{Identity: f.mustCertID(r2.CertificateSerial, nd, ports.OpRenew), CSRPEM: nd.csr})
	wantCode(t, err, license.CodeLicenseSuspended, errs.Forbidden)
	// Deactivation revokes every certificate of the activation, overlapping ones included.
	must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(r2.CertificateSerial, nd, ports.OpDeactivate)}))
	for _, s := range []string{g.CertificateSerial, r.CertificateSerial, r2.CertificateSerial} {
		if f.cert(s).Status != license.CertificateRevoked {
			t.Fatalf("certificate %s not revoked", s)
		}
	}
}

func TestResolveCertificateAndKey(t *testing.T) {
	f, lic, d, g := activated(t, nil)
	_, err := f.certID("DEADBEEF", d, ports.OpValidate)
	wantCode(t, err, license.CodeCertificateUnknown, errs.Forbidden)
	// The serial is canonicalised on lookup: lower case and leading zeros are the same serial.
	id, err := f.certID("00"+strings.ToLower(g.CertificateSerial), d, ports.OpValidate)
	if err != nil || !id.MTLS || id.CertificateSerial != g.CertificateSerial || id.LicenseID != lic.ID || id.ActivationID != g.ActivationID {
		t.Fatalf("%+v %v", id, err)
	}
	_, err = f.certID(g.CertificateSerial, newDev(t, "x-device"), ports.OpValidate)
	wantCode(t, err, license.CodeKeyMismatch, errs.Forbidden)
	kid, err := f.svc.ResolveKey(f.ctx, d.thumb, ports.OpHeartbeat)
	if err != nil || kid.ActivationID != g.ActivationID || kid.PublicKey == nil {
		t.Fatalf("%+v %v", kid, err)
	}
	if sid, ok, err := f.svc.ResolveStatusKey(f.ctx, d.thumb); err != nil || !ok || sid.ActivationID != g.ActivationID {
		t.Fatalf("status key %+v %v %v", sid, ok, err)
	}
	if _, ok, err := f.svc.ResolveStatusKey(f.ctx, "nobody"); ok || err != nil {
		t.Fatal("unknown status key resolved")
	}
	_, err = f.svc.ResolveKey(f.ctx, "nobody", ports.OpValidate)
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)
	// A revoked certificate of an active activation (an expired one replaced on re-activation).
	f.clock.Set(start.Add(time.Minute))
	st := f.cert(g.CertificateSerial)
	if err := f.store.Certificates().Update(f.ctx, license.RevokeCertificate(st, "test", start)); err != nil {
		t.Fatal(err)
	}
	_, err = f.certID(g.CertificateSerial, d, ports.OpValidate)
	wantCode(t, err, license.CodeCertificateRevoked, errs.Forbidden)
}

func TestStatusAndLicenseIDForKey(t *testing.T) {
	f, lic, _, _ := activated(t, nil)
	st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, strings.ToLower(lic.Key)))
	if st.Status != "active" || st.SeatsUsed != 1 || st.SeatsTotal != 2 || st.ExpiresAt != nil {
		t.Fatalf("%+v", st)
	}
	if id, err := f.svc.LicenseIDForKey(f.ctx, " "+lic.Key+" "); err != nil || id != lic.ID {
		t.Fatalf("%q %v", id, err)
	}
	for _, k := range []string{"nope", "VST-ABCDE-FGHJK-LMNPQ-RSTUV"} {
		_, err := f.svc.Status(f.ctx, k)
		wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
		_, err = f.svc.LicenseIDForKey(f.ctx, k)
		wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
	}
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", "refund"))
	if st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, lic.Key)); st.Status != "revoked" || st.SeatsUsed != 1 {
		t.Fatalf("%+v", st)
	}
}
