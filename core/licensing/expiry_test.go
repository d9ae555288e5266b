package licensing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

const day = 24 * time.Hour

func (f *fixture) expiring(owner string, in time.Duration) ports.LicenseView {
	f.t.Helper()
	exp := f.clock.Now().Add(in)
	return f.ownedBy("synth", owner, func(c *ports.CreateLicenseCommand) { c.ExpiresAt = &exp })
}

func (f *fixture) notices(now time.Time) int {
	f.t.Helper()
	n, err := f.svc.SendExpiryNotices(f.ctx, now)
	if err != nil {
		f.t.Fatalf("SendExpiryNotices: %v", err)
	}
	return n
}

func (f *fixture) stored(id string) license.LicenseRecord {
	f.t.Helper()
	l, err := f.store.Licenses().Get(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func TestExpiryNoticesOncePerLicense(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	soon := f.expiring(ann, 3*day)
	f.expiring(bob, 8*day)                                   // not yet
	f.ownedBy("synth", ann, nil)                             // perpetual
	f.license("synth", func(c *ports.CreateLicenseCommand) { // no owner
		exp := start.Add(day)
		c.OwnerEmail, c.ExpiresAt = "", &exp
	})
	revoked := f.expiring(ann, 2*day)
	must[ports.LicenseView](t)(f.svc.ChangeLicenseStatus(f.ctx, revoked.ID, "revoke", "refund"))

	if n := f.notices(start); n != 1 {
		t.Fatalf("first run sent %d", n)
	}
	mails := f.mailsOf(ports.TemplateLicenseExpiring)
	if len(mails) != 1 || mails[0].ID != "expiring-"+soon.ID || mails[0].To != ann {
		t.Fatalf("mails %+v", f.procs.all())
	}
	calls := f.mails.CallsOf(ports.TemplateLicenseExpiring)
	data, _ := calls[0].Data.(ports.LicenseExpiryEmail)
	if data.Product != "Product synth" || !data.ExpiresAt.Equal(start.Add(3*day)) || data.AccountURL != "http://127.0.0.1:8080/account" ||
		data.KeyMasked != license.MaskKey(strings.ReplaceAll(soon.Key, "-", "")) || strings.Contains(mails[0].Text, soon.Key) {
		t.Fatalf("data %+v", data)
	}
	if l := f.stored(soon.ID); l.ExpiryWarnedAt == nil || !l.ExpiryWarnedAt.Equal(start) || l.ExpiredNoticedAt != nil {
		t.Fatalf("stored %+v", l)
	}
	// The same day again, and the next day: nothing new.
	if n := f.notices(start.Add(time.Hour)); n != 0 {
		t.Fatalf("second run sent %d", n)
	}
	if n := f.notices(start.Add(day)); n != 1 { // bob's license is now 7 days out
		t.Fatalf("next day sent %d", n)
	}
	if got := len(f.mailsOf(ports.TemplateLicenseExpiring)); got != 2 {
		t.Fatalf("%d warnings", got)
	}
	// Expired: told once, whatever the time of the run.
	at := start.Add(3 * day)
	if n := f.notices(at); n != 1 {
		t.Fatalf("expiry run sent %d", n)
	}
	if m := f.mailsOf(ports.TemplateLicenseExpired); len(m) != 1 || m[0].ID != "expired-"+soon.ID {
		t.Fatalf("expired mails %+v", m)
	}
	if l := f.stored(soon.ID); l.ExpiredNoticedAt == nil || !l.ExpiredNoticedAt.Equal(at) {
		t.Fatalf("stored %+v", l)
	}
	if n := f.notices(at.Add(time.Hour)); n != 0 {
		t.Fatalf("repeat sent %d", n)
	}
}

func TestExpiryNoticesSkipTheWarningOfAnExpiredLicenseAndOldOnes(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	l := f.expiring(ann, 10*day)
	old := f.expiring(bob, time.Hour)
	// The first run after both expired (the schedule was down): one expired notice for l, none for
	// the license that expired more than the window ago, and never a late warning.
	now := start.Add(10*day + license.ExpiredNoticeWindow - time.Hour)
	if got := f.notices(now); got != 1 {
		t.Fatalf("sent %d", got)
	}
	if m := f.procs.all(); len(m) != 1 || m[0].ID != "expired-"+l.ID {
		t.Fatalf("mails %+v", m)
	}
	if s := f.stored(old.ID); s.ExpiredNoticedAt != nil || s.ExpiryWarnedAt != nil {
		t.Fatalf("old license %+v", s)
	}
}

func TestExpiryNoticesRetryAfterAFailedStart(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	a := f.expiring(ann, day)
	b := f.expiring(bob, 2*day)
	f.procs.mu.Lock()
	f.procs.err = errors.New("temporal down")
	f.procs.mu.Unlock()
	n, err := f.svc.SendExpiryNotices(f.ctx, start)
	if err == nil || n != 0 || errs.KindOf(err) != errs.Internal {
		t.Fatalf("n %d err %v", n, err)
	}
	// Nothing recorded: the next attempt sends both.
	if s := f.stored(a.ID); s.ExpiryWarnedAt != nil {
		t.Fatalf("recorded without a start: %+v", s)
	}
	f.procs.mu.Lock()
	f.procs.err = nil
	f.procs.mu.Unlock()
	if got := f.notices(start); got != 2 {
		t.Fatalf("retry sent %d", got)
	}
	ids := map[string]bool{}
	for _, m := range f.procs.all() {
		ids[m.ID] = true
	}
	if !ids["expiring-"+a.ID] || !ids["expiring-"+b.ID] {
		t.Fatalf("ids %v", ids)
	}
}

// More licenses than one page: every one gets its notice exactly once.
func TestExpiryNoticesPages(t *testing.T) {
	f := newFixture(t)
	f.product("synth", nil)
	const total = expiryPage + 5
	for i := range total {
		f.expiring(ann, time.Hour+time.Duration(i%3)*time.Minute) // ties on expires_at: ordered by id
	}
	if got := f.notices(start); got != total {
		t.Fatalf("sent %d, want %d", got, total)
	}
	ids := map[string]int{}
	for _, m := range f.procs.all() {
		if m.Template == ports.TemplateLicenseExpiring {
			ids[m.ID]++
		}
	}
	if len(ids) != total {
		t.Fatalf("%d distinct notices for %d licenses", len(ids), total)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s sent %d times", id, n)
		}
	}
	if got := f.notices(start); got != 0 {
		t.Fatalf("second run sent %d", got)
	}
}
