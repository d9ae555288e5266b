package licensing

import (
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func TestPutAndGetProduct(t *testing.T) {
	f := newFixture(t)
	p := f.product("synth", nil)
	if p.Policy.HeartbeatInterval != time.Hour || p.Policy.GracePeriod != 3*time.Hour || p.Policy.TransfersPer30d != 3 ||
		p.Policy.FirstActivation != license.FirstInstant || p.Policy.CertificateValidity != license.DefaultCertificateValidity || !p.CreatedAt.Equal(start) {
		t.Fatalf("%+v", p)
	}
	f.clock.Advance(time.Minute)
	p2 := f.product("synth", func(s *ports.ProductSpec) { s.Policy.MaxActivations = 5; s.Policy.DurationS = i64p(86400) })
	if !p2.CreatedAt.Equal(start) || !p2.UpdatedAt.Equal(start.Add(time.Minute)) || p2.Policy.MaxActivations != 5 || p2.Policy.Duration != 24*time.Hour {
		t.Fatalf("%+v", p2)
	}
	got, err := f.svc.GetProduct(f.ctx, "synth")
	if err != nil || got.Policy.MaxActivations != 5 {
		t.Fatalf("%+v %v", got, err)
	}
	_, err = f.svc.GetProduct(f.ctx, "nope")
	wantCode(t, err, license.CodeProductNotFound, errs.NotFound)
	for name, mod := range map[string]func(*ports.ProductSpec){
		"slug":     func(s *ports.ProductSpec) { s.Slug = "Bad Slug" },
		"type":     func(s *ports.ProductSpec) { s.Type = "app" },
		"currency": func(s *ports.ProductSpec) { s.Currency = "euro" },
		"price":    func(s *ports.ProductSpec) { s.PriceCents = -1 },
		"seats":    func(s *ports.ProductSpec) { s.Policy.MaxActivations = 0 },
		"grace":    func(s *ports.ProductSpec) { s.Policy.GracePeriodS = 60 },
		"first":    func(s *ports.ProductSpec) { s.Policy.FirstActivation = "never" },
	} {
		spec := ports.ProductSpec{Slug: "ok-slug", Name: "n", Type: "plugin", Currency: "USD", Policy: ports.PolicySpec{MaxActivations: 1, HeartbeatIntervalS: 3600}}
		mod(&spec)
		_, err := f.svc.PutProduct(f.ctx, spec)
		if errs.CodeOf(err) != errs.CodeValidationFailed {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCreateLicense(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	f.product("loops", func(s *ports.ProductSpec) { s.Type = "sample_pack"; s.Policy.DurationS = i64p(3600) })

	v := f.license("synth", func(c *ports.CreateLicenseCommand) { c.OwnerEmail = " Ann@Example.COM " })
	if !strings.HasPrefix(v.ID, "lic_") || v.Status != "active" || v.Product != "synth" || v.OwnerEmail != "Ann@example.com" ||
		v.MaxActivations != 2 || v.SeatsUsed != 0 || v.ExpiresAt != nil || len(v.Activations) != 0 || !v.CreatedAt.Equal(start) {
		t.Fatalf("%+v", v)
	}
	canonical, ok := license.NormalizeKey(v.Key)
	if !ok || license.FormatKey(canonical) != v.Key || !strings.HasPrefix(v.Key, "VST-") {
		t.Fatalf("key %q", v.Key)
	}
	rec, _ := f.store.Licenses().Get(f.ctx, v.ID)
	if strings.Contains(string(rec.KeyHash), canonical) || string(rec.KeyHash) != string(testVault{}.Lookup(canonical)) || rec.KeyPrefix != "VST" {
		t.Fatalf("stored key %+v", rec)
	}

	w := f.license("loops", func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(7); c.OwnerEmail = "" })
	if !strings.HasPrefix(w.Key, "DIG-") || w.MaxActivations != 7 || w.OwnerEmail != "" || w.ExpiresAt == nil || !w.ExpiresAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("%+v", w)
	}
	exp := start.Add(48*time.Hour + 500*time.Millisecond)
	x := f.license("loops", func(c *ports.CreateLicenseCommand) { c.ExpiresAt = &exp })
	if !x.ExpiresAt.Equal(start.Add(48 * time.Hour)) {
		t.Fatalf("explicit expiry %v", x.ExpiresAt)
	}

	for name, cmd := range map[string]ports.CreateLicenseCommand{
		"unknown product": {Product: "nope"},
		"bad email":       {Product: "synth", OwnerEmail: "not-an-email"},
		"zero seats":      {Product: "synth", MaxActivations: intp(0)},
		"past expiry":     {Product: "synth", ExpiresAt: &start},
	} {
		_, err := f.svc.CreateLicense(f.ctx, cmd)
		if errs.CodeOf(err) != errs.CodeValidationFailed {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Idempotency: the same key returns the first license, whatever else the retry says.
	a := f.license("synth", func(c *ports.CreateLicenseCommand) { c.IdempotencyKey = "fulfillment/ord_1#0" })
	b := f.license("loops", func(c *ports.CreateLicenseCommand) { c.IdempotencyKey = "fulfillment/ord_1#0" })
	c := f.license("synth", func(c *ports.CreateLicenseCommand) { c.IdempotencyKey = "fulfillment/ord_1#1" })
	if a.ID != b.ID || a.Key != b.Key || b.Product != "synth" || c.ID == a.ID {
		t.Fatalf("idempotency: %s %s %s", a.ID, b.ID, c.ID)
	}
}

func TestGetListAndChangeLicense(t *testing.T) {
	f, lic, d, g := activated(t, nil)
	v, err := f.svc.GetLicense(f.ctx, lic.ID)
	if err != nil || v.Key != lic.Key || v.SeatsUsed != 1 || len(v.Activations) != 1 {
		t.Fatalf("%+v %v", v, err)
	}
	av := v.Activations[0]
	if av.ID != g.ActivationID || av.Status != "active" || av.DeviceFingerprint != d.fp || av.DeviceName != "Studio Mac" ||
		av.Platform != "mac" || av.CertificateSerial != g.CertificateSerial || av.LastHeartbeatAt == nil || !av.LastHeartbeatAt.Equal(start) {
		t.Fatalf("%+v", av)
	}
	_, err = f.svc.GetLicense(f.ctx, "lic_nope")
	wantCode(t, err, errs.CodeNotFound, errs.NotFound)

	f.license("synth", nil)
	rows, next, err := f.svc.ListLicenses(f.ctx, ports.LicenseFilter{Product: "synth", Page: ports.Page{Limit: 1}})
	if err != nil || len(rows) != 1 || next == "" || rows[0].Key == "" {
		t.Fatalf("%+v %q %v", rows, next, err)
	}
	rows2, next2, err := f.svc.ListLicenses(f.ctx, ports.LicenseFilter{Product: "synth", Page: ports.Page{Limit: 1, Cursor: next}})
	if err != nil || len(rows2) != 1 || next2 != "" || rows2[0].ID == rows[0].ID {
		t.Fatalf("%+v %q %v", rows2, next2, err)
	}
	acts, _, err := f.svc.ListActivations(f.ctx, ports.ActivationFilter{Fingerprint: d.fp})
	if err != nil || len(acts) != 1 || acts[0].LicenseID != lic.ID {
		t.Fatalf("%+v %v", acts, err)
	}

	v = must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", "fraud check"))
	if v.Status != "suspended" || len(v.Activations) != 1 || v.Activations[0].Status != "active" {
		t.Fatalf("%+v", v)
	}
	if rec, _ := f.store.Licenses().Get(f.ctx, lic.ID); rec.StatusReason != "fraud check" {
		t.Fatalf("reason %q", rec.StatusReason)
	}
	v = must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", "refund"))
	if v.Status != "revoked" {
		t.Fatal(v.Status)
	}
	_, err = f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", "")
	wantCode(t, err, errs.CodeConflict, errs.Conflict)
	_, err = f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "destroy", "")
	wantCode(t, err, errs.CodeValidationFailed, errs.Invalid)
	_, err = f.svc.ChangeLicenseStatus(f.ctx, "lic_nope", "revoke", "")
	wantCode(t, err, errs.CodeNotFound, errs.NotFound)
	if v := must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "reinstate", "")); v.Status != "active" {
		t.Fatal(v.Status)
	}
	// An expired license reads expired unless revoked or suspended.
	exp := start.Add(time.Hour)
	e := f.license("synth", func(c *ports.CreateLicenseCommand) { c.ExpiresAt = &exp })
	f.clock.Set(exp)
	if v := must[ports.LicenseView](t)(f.svc.GetLicense(f.ctx, e.ID)); v.Status != "expired" {
		t.Fatal(v.Status)
	}
	if v := must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, e.ID, "suspend", "")); v.Status != "suspended" {
		t.Fatal(v.Status)
	}
}

func TestReleaseSeat(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(0); p.Policy.MaxActivations = 1 })
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	g := f.mustGrant(lic.Key, d)
	_, err := f.svc.ReleaseSeat(f.ctx, g.ActivationID)
	wantCode(t, err, errs.CodeConflict, errs.Conflict)
	r := must[ports.DeactivateResult](t)(f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpDeactivate)}))
	if r.SeatsUsed != 1 {
		t.Fatalf("%+v", r)
	}
	_, err = f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	f.clock.Advance(time.Minute)
	v := must[ports.LicenseView](t)(f.svc.ReleaseSeat(f.ctx, g.ActivationID))
	if v.SeatsUsed != 0 {
		t.Fatalf("%+v", v)
	}
	if a := f.activation(g.ActivationID); a.SeatHeldUntil == nil || !a.SeatHeldUntil.Equal(start.Add(time.Minute)) {
		t.Fatalf("%+v", a)
	}
	must[ports.LicenseView](t)(f.svc.ReleaseSeat(f.ctx, g.ActivationID)) // again: no-op
	f.mustGrant(lic.Key, newDev(t, "fingerprint-2"))
	_, err = f.svc.ReleaseSeat(f.ctx, "act_nope")
	wantCode(t, err, errs.CodeNotFound, errs.NotFound)
}
