package licensing

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func TestActivateCreatesActivationCertificateAndLease(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.license("synth", nil)
	if !strings.HasPrefix(lic.Key, "VST-") {
		t.Fatalf("key %q", lic.Key)
	}
	d := newDev(t, "fingerprint-1")
	cmd := f.activateCmd(strings.ToLower(strings.ReplaceAll(lic.Key, "-", " ")), d)
	cmd.Product = "synth"
	r, err := f.svc.Activate(f.ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	g := r.Grant
	if g == nil || r.Pending != nil || !g.Created || !strings.HasPrefix(g.ActivationID, "act_") {
		t.Fatalf("result %+v", r)
	}
	if g.HeartbeatInterval != time.Hour || g.GracePeriod != 3*time.Hour || g.CAChainPEM == "" || g.MTLSURL != "https://127.0.0.1:8443" {
		t.Fatalf("grant %+v", g)
	}
	// The certificate carries the CSR's key, chains to the CA and names the activation.
	block, _ := pem.Decode([]byte(g.CertificatePEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(d.key.Public()) {
		t.Fatal("certificate does not carry the CSR key")
	}
	if err := f.ca.VerifyClientCertificate(f.ctx, cert, start); err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:samplero:activation:"+g.ActivationID {
		t.Fatalf("URIs %v", cert.URIs)
	}
	if g.CertificateSerial != strings.ToUpper(cert.SerialNumber.Text(16)) || !g.CertificateNotAfter.Equal(start.Add(license.DefaultCertificateValidity)) {
		t.Fatalf("serial %s notAfter %v", g.CertificateSerial, g.CertificateNotAfter)
	}
	// The lease.
	c := decodeLease(t, g.Lease)
	if c.Issuer != "https://licenses.example" || c.Subject != g.ActivationID || c.License != lic.ID || c.Product != "synth" ||
		len(c.Entitlements) != 1 || c.Entitlements[0] != "synth" || c.Fingerprint != d.fp || c.Confirmation.KID != d.thumb ||
		c.IssuedAt != start.Unix() || c.NotBefore != start.Unix() || c.HeartbeatDue != start.Add(time.Hour).Unix() ||
		c.Expires != start.Add(3*time.Hour).Unix() || c.LicenseExpiry != nil || c.Status != "active" {
		t.Fatalf("lease claims %+v", c)
	}
	// The records.
	a := f.activation(g.ActivationID)
	if a.Status != license.ActivationActive || a.KeyThumbprint != d.thumb || a.CertificateSerial != g.CertificateSerial ||
		!a.LastHeartbeatAt.Equal(start) || a.LastLeaseExp == nil || !a.LastLeaseExp.Equal(start.Add(3*time.Hour)) ||
		a.DeviceName != "Studio Mac" || a.Platform != "mac" || a.PluginVersion != "1.2.3" {
		t.Fatalf("activation %+v", a)
	}
	cr := f.cert(g.CertificateSerial)
	if cr.Status != license.CertificateCurrent || cr.ActivationID != a.ID || cr.KeyThumbprint != d.thumb || cr.IssuerID != "int-1" {
		t.Fatalf("certificate record %+v", cr)
	}
	// An instant activation asks nobody, but the owner hears of the new device.
	if m := f.procs.all(); len(m) != 1 || m[0].ID != "activated-"+g.ActivationID || m[0].Template != ports.TemplateDeviceActivated {
		t.Fatalf("an instant activation sent %+v", m)
	}
}

func TestActivateSameDeviceSameKeyIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.CertificateValidityS = i64p(2 * 3600) })
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	g1 := f.mustGrant(lic.Key, d)

	// 1 s before the certificate expires: the same certificate, a fresh lease, no heartbeat.
	f.clock.Advance(2*time.Hour - time.Second)
	g2 := f.mustGrant(lic.Key, d)
	if g2.Created || g2.ActivationID != g1.ActivationID || g2.CertificateSerial != g1.CertificateSerial {
		t.Fatalf("second grant %+v", g2)
	}
	block, _ := pem.Decode([]byte(g2.CertificatePEM))
	if block == nil || string(block.Bytes) != string(f.cert(g1.CertificateSerial).DER) {
		t.Fatal("the current certificate was not returned")
	}
	c := decodeLease(t, g2.Lease)
	if c.IssuedAt != start.Add(2*time.Hour-time.Second).Unix() || c.Expires != start.Add(3*time.Hour).Unix() || c.HeartbeatDue != start.Add(time.Hour).Unix() {
		t.Fatalf("the heartbeat clock moved: %+v", c)
	}
	if a := f.activation(g1.ActivationID); !a.LastHeartbeatAt.Equal(start) {
		t.Fatalf("LastHeartbeatAt moved to %v", a.LastHeartbeatAt)
	}

	// At notAfter the certificate has expired: a new one, the old one revoked.
	f.clock.Advance(time.Second)
	g3 := f.mustGrant(lic.Key, d)
	if g3.Created || g3.ActivationID != g1.ActivationID || g3.CertificateSerial == g1.CertificateSerial {
		t.Fatalf("third grant %+v", g3)
	}
	if f.cert(g1.CertificateSerial).Status != license.CertificateRevoked || f.activation(g1.ActivationID).CertificateSerial != g3.CertificateSerial {
		t.Fatal("expired certificate not replaced")
	}
	if used := must[ports.StatusResult](t)(f.svc.Status(f.ctx, lic.Key)).SeatsUsed; used != 1 {
		t.Fatalf("seats used %d", used)
	}
}

func TestActivateSupersedeIsATransferAndTellsTheOwner(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	g1 := f.mustGrant(lic.Key, d)
	f.clock.Advance(time.Minute)
	d2 := d.rekey(t)
	g2 := f.mustGrant(lic.Key, d2)
	if !g2.Created || g2.ActivationID == g1.ActivationID {
		t.Fatalf("grant %+v", g2)
	}
	old := f.activation(g1.ActivationID)
	if old.Status != license.ActivationSuperseded || !old.FreedByTransfer || old.SeatHeldUntil != nil || old.EndedAt == nil {
		t.Fatalf("old activation %+v", old)
	}
	if f.cert(g1.CertificateSerial).Status != license.CertificateRevoked {
		t.Fatal("old certificate not revoked")
	}
	if _, err := f.certID(g1.CertificateSerial, d, ports.OpValidate); errs.CodeOf(err) != license.CodeActivationRevoked {
		t.Fatalf("old certificate resolves: %v", err)
	}
	n, _ := f.store.Activations().TransfersSince(f.ctx, lic.ID, start.Add(-time.Hour))
	if n != 1 {
		t.Fatalf("transfers %d", n)
	}
	// The first activation was announced as a new device; the supersede only as a supersede.
	mails := f.procs.all()
	if len(mails) != 2 || mails[0].ID != "activated-"+g1.ActivationID || mails[1].ID != "supersede-"+g1.ActivationID || mails[1].To != "owner@example.com" ||
		!strings.Contains(mails[1].Text, d.fp) || !strings.Contains(mails[1].HTML, "Studio Mac") || mails[1].Template != "device_superseded" {
		t.Fatalf("mails %+v", mails)
	}
	st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, lic.Key))
	if st.SeatsUsed != 1 || st.SeatsTotal != 2 {
		t.Fatalf("status %+v", st)
	}
}

func TestActivateSupersedePastTransferLimit(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.TransfersPer30d = intp(0) })
	// A full license (1 seat): the old seat stays held, so the supersede is refused and nothing changes.
	full := f.license("synth", func(c *ports.CreateLicenseCommand) { c.MaxActivations = intp(1) })
	d := newDev(t, "fingerprint-1")
	g1 := f.mustGrant(full.Key, d)
	sent := len(f.procs.all()) // the first activation's
	_, err := f.activate(full.Key, d.rekey(t))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	if a := f.activation(g1.ActivationID); a.Status != license.ActivationActive || f.cert(g1.CertificateSerial).Status != license.CertificateCurrent {
		t.Fatal("refused supersede changed the old activation")
	}
	if len(f.procs.all()) != sent {
		t.Fatal("refused supersede sent e-mail")
	}
	// Once the last lease has expired (exp = 3 h), nothing can hold the seat: the supersede works
	// and frees the old seat at once without spending a transfer.
	f.clock.Set(start.Add(3*time.Hour - time.Second))
	_, err = f.activate(full.Key, d.rekey(t))
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	f.clock.Set(start.Add(3 * time.Hour))
	f.mustGrant(full.Key, d.rekey(t))
	if a := f.activation(g1.ActivationID); a.Status != license.ActivationSuperseded || a.FreedByTransfer || a.SeatHeldUntil != nil {
		t.Fatalf("old %+v", a)
	}

	// With a free seat, the supersede works and the old seat stays held until its lease's exp.
	f.clock.Set(start)
	roomy := f.license("synth", nil) // 2 seats
	e := newDev(t, "fingerprint-2")
	h1 := f.mustGrant(roomy.Key, e)
	f.mustGrant(roomy.Key, e.rekey(t))
	old := f.activation(h1.ActivationID)
	if old.FreedByTransfer || old.SeatHeldUntil == nil || !old.SeatHeldUntil.Equal(start.Add(3*time.Hour)) {
		t.Fatalf("old %+v", old)
	}
	for _, c := range []struct {
		at   time.Time
		want int
	}{{start.Add(3*time.Hour - time.Second), 2}, {start.Add(3 * time.Hour), 1}} {
		f.clock.Set(c.at)
		if st := must[ports.StatusResult](t)(f.svc.Status(f.ctx, roomy.Key)); st.SeatsUsed != c.want {
			t.Fatalf("at %v: seats %d want %d", c.at, st.SeatsUsed, c.want)
		}
	}
}

func TestActivateSeatLimitAndDeactivateFrees(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.license("synth", nil)
	a, b, c := newDev(t, "device-aaaa"), newDev(t, "device-bbbb"), newDev(t, "device-cccc")
	ga := f.mustGrant(lic.Key, a)
	f.mustGrant(lic.Key, b)
	_, err := f.activate(lic.Key, c)
	wantCode(t, err, license.CodeActivationLimitExceeded, errs.Conflict)
	id := f.mustCertID(ga.CertificateSerial, a, ports.OpDeactivate)
	res, err := f.svc.Deactivate(f.ctx, ports.DeactivateCommand{Identity: id})
	if err != nil || res.SeatsUsed != 1 || res.SeatsTotal != 2 || !res.SeatReleasedAt.Equal(start) {
		t.Fatalf("deactivate %+v %v", res, err)
	}
	f.mustGrant(lic.Key, c)
}

func TestActivateErrors(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	f.product("bundle-x", func(p *ports.ProductSpec) { p.Type = "bundle" })
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")

	for _, key := range []string{"", "VST-AAAA", "XYZ-ABCDE-FGHJK-LMNPQ-RSTUV", "VST-ABCDE-FGHJK-LMNPQ-RSTUV"} {
		_, err := f.activate(key, d)
		wantCode(t, err, license.CodeLicenseNotFound, errs.NotFound)
	}
	cmd := f.activateCmd(lic.Key, d)
	cmd.Product = "bundle-x"
	_, err := f.svc.Activate(f.ctx, cmd)
	wantCode(t, err, license.CodeProductMismatch, errs.Invalid)

	for name, mod := range map[string]func(*ports.ActivateCommand){
		"platform":       func(c *ports.ActivateCommand) { c.Platform = "ios" },
		"fingerprint":    func(c *ports.ActivateCommand) { c.Fingerprint = "short" },
		"plugin_version": func(c *ports.ActivateCommand) { c.PluginVersion = "" },
		"device_name":    func(c *ports.ActivateCommand) { c.DeviceName = "a\nb" },
	} {
		cmd := f.activateCmd(lic.Key, d)
		mod(&cmd)
		_, err := f.svc.Activate(f.ctx, cmd)
		if errs.CodeOf(err) != errs.CodeValidationFailed {
			t.Errorf("%s: %v", name, err)
		}
	}
	cmd = f.activateCmd(lic.Key, d)
	cmd.CSRPEM = "not a csr"
	_, err = f.svc.Activate(f.ctx, cmd)
	wantCode(t, err, license.CodeInvalidCSR, errs.Invalid)
	_, err = f.svc.ResolveCSR(f.ctx, "junk", d.thumb)
	wantCode(t, err, license.CodeInvalidCSR, errs.Invalid)

	other := newDev(t, "fingerprint-1")
	_, err = f.svc.ResolveCSR(f.ctx, d.csr, other.thumb)
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)
	cmd = f.activateCmd(lic.Key, d)
	cmd.Identity.Thumbprint = other.thumb
	_, err = f.svc.Activate(f.ctx, cmd)
	wantCode(t, err, license.CodeUnknownKey, errs.Unauthenticated)

	if rows, _, _ := f.svc.ListActivations(f.ctx, ports.ActivationFilter{LicenseID: lic.ID}); len(rows) != 0 {
		t.Fatalf("failed activations left %d rows", len(rows))
	}
}

func TestActivateLicenseStates(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	exp := start.Add(time.Hour)
	lic := f.license("synth", func(c *ports.CreateLicenseCommand) { c.ExpiresAt = &exp })
	d := newDev(t, "fingerprint-1")

	f.clock.Set(exp.Add(-time.Second))
	g := f.mustGrant(lic.Key, d)
	if c := decodeLease(t, g.Lease); c.LicenseExpiry == nil || *c.LicenseExpiry != exp.Unix() || c.Expires != exp.Unix() {
		t.Fatalf("lease not capped by license expiry: %+v", c)
	}
	f.clock.Set(exp)
	_, err := f.activate(lic.Key, d)
	wantCode(t, err, license.CodeLicenseExpired, errs.Forbidden)
	f.clock.Set(exp.Add(time.Second))
	_, err = f.activate(lic.Key, newDev(t, "fingerprint-2"))
	wantCode(t, err, license.CodeLicenseExpired, errs.Forbidden)

	f.clock.Set(start)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "suspend", "chargeback"))
	_, err = f.activate(lic.Key, d)
	wantCode(t, err, license.CodeLicenseSuspended, errs.Forbidden)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "revoke", "refund"))
	_, err = f.activate(lic.Key, d)
	wantCode(t, err, license.CodeLicenseRevoked, errs.Forbidden)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, lic.ID, "reinstate", ""))
	f.mustGrant(lic.Key, d)
}

func TestActivateBundleEntitlements(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	f.product("bundle-x", func(p *ports.ProductSpec) { p.Type = "bundle" })
	// Entitlements are not part of the admin spec; a bundle's are set on its record.
	p, _ := f.store.Products().Get(f.ctx, "bundle-x")
	p.Entitlements = []string{"synth", "drums"}
	if err := f.store.Products().Upsert(f.ctx, p); err != nil {
		t.Fatal(err)
	}
	// PutProduct again keeps them.
	f.product("bundle-x", func(p *ports.ProductSpec) { p.Type = "bundle"; p.Name = "Renamed" })
	lic := f.license("bundle-x", nil)
	if !strings.HasPrefix(lic.Key, "LIC-") {
		t.Fatalf("bundle key %q", lic.Key)
	}
	d := newDev(t, "fingerprint-1")
	cmd := f.activateCmd(lic.Key, d)
	cmd.Product = "drums"
	r, err := f.svc.Activate(f.ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if c := decodeLease(t, r.Grant.Lease); c.Product != "bundle-x" || strings.Join(c.Entitlements, ",") != "bundle-x,synth,drums" {
		t.Fatalf("lease %+v", c)
	}
	id := f.mustCertID(r.Grant.CertificateSerial, d, ports.OpValidate)
	v, err := f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id, Product: "synth"})
	if err != nil || strings.Join(v.License.Entitlements, ",") != "bundle-x,synth,drums" {
		t.Fatalf("validate %+v %v", v, err)
	}
	_, err = f.svc.Validate(f.ctx, ports.ValidateCommand{Identity: id, Product: "other"})
	wantCode(t, err, license.CodeProductMismatch, errs.Invalid)
}

// N concurrent activations of distinct devices on a license with S free seats create exactly
// min(N, S) activations.
func TestActivateConcurrentSeatsAreExact(t *testing.T) {
	f := newFixture(t)
	f.product("synth", func(p *ports.ProductSpec) { p.Policy.MaxActivations = 3 })
	lic := f.license("synth", nil)
	const n = 100
	cmds := make([]ports.ActivateCommand, n)
	for i := range cmds {
		cmds[i] = f.activateCmd(lic.Key, newDev(t, "concurrent-device-"+string(rune('A'+i%26))+strings.Repeat("x", i/26)))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, limited := 0, 0
	var other []error
	for i := range cmds {
		wg.Add(1)
		go func(cmd ports.ActivateCommand) {
			defer wg.Done()
			_, err := f.svc.Activate(f.ctx, cmd)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errs.CodeOf(err) == license.CodeActivationLimitExceeded:
				limited++
			default:
				other = append(other, err)
			}
		}(cmds[i])
	}
	wg.Wait()
	if ok != 3 || limited != n-3 || len(other) != 0 {
		t.Fatalf("ok=%d limited=%d other=%v", ok, limited, other)
	}
	rows, _, err := f.svc.ListActivations(f.ctx, ports.ActivationFilter{LicenseID: lic.ID, Page: ports.Page{Limit: 200}})
	if err != nil || len(rows) != 3 {
		t.Fatalf("%d activations stored (%v)", len(rows), err)
	}
}

func TestActivateFailuresOfDrivenPorts(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	lic := f.license("synth", nil)
	d := newDev(t, "fingerprint-1")
	f.ca.issueErr = errors.New("hsm down")
	_, err := f.activate(lic.Key, d)
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("issuer failure: %v", err)
	}
	f.ca.issueErr = nil
	if rows, _, _ := f.svc.ListActivations(f.ctx, ports.ActivationFilter{LicenseID: lic.ID}); len(rows) != 0 {
		t.Fatal("a failed issuance left an activation")
	}
	f.svc.d.Leases = testLeases{err: errors.New("no key")}
	_, err = f.activate(lic.Key, d)
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("signer failure: %v", err)
	}
	f.svc.d.Leases = testLeases{}
	// A failure to start an e-mail workflow is logged, not returned: the supersede committed.
	f.mustGrant(lic.Key, d)
	f.procs.err = errors.New("temporal down")
	if g := f.mustGrant(lic.Key, d.rekey(t)); !g.Created {
		t.Fatal("supersede failed with the mail process down")
	}
}
