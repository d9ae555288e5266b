package license

import (
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func tp(t time.Time) *time.Time { return &t }

func TestEffectiveLicenseStatus(t *testing.T) {
	exp := t0.Add(time.Hour)
	cases := []struct {
		name string
		l    LicenseRecord
		now  time.Time
		want LicenseStatus
	}{
		{"perpetual", LicenseRecord{Status: LicenseActive}, t0, LicenseActive},
		{"1s before expiry", LicenseRecord{Status: LicenseActive, ExpiresAt: &exp}, exp.Add(-time.Second), LicenseActive},
		{"at expiry", LicenseRecord{Status: LicenseActive, ExpiresAt: &exp}, exp, LicenseExpired},
		{"1s after expiry", LicenseRecord{Status: LicenseActive, ExpiresAt: &exp}, exp.Add(time.Second), LicenseExpired},
		{"suspended over expired", LicenseRecord{Status: LicenseSuspended, ExpiresAt: &exp}, exp.Add(time.Hour), LicenseSuspended},
		{"revoked over expired", LicenseRecord{Status: LicenseRevoked, ExpiresAt: &exp}, exp.Add(time.Hour), LicenseRevoked},
		{"revoked", LicenseRecord{Status: LicenseRevoked}, t0, LicenseRevoked},
	}
	for _, c := range cases {
		if got := EffectiveLicenseStatus(c.l, c.now); got != c.want {
			t.Errorf("%s: %s want %s", c.name, got, c.want)
		}
	}
}

func TestDeviceStatusBoundaries(t *testing.T) {
	p := Policy{HeartbeatInterval: time.Hour, GracePeriod: 3 * time.Hour}
	a := ActivationRecord{LastHeartbeatAt: t0}
	active := LicenseRecord{Status: LicenseActive}
	cases := []struct {
		name   string
		l      LicenseRecord
		now    time.Time
		status string
		valid  bool
		action string
	}{
		{"fresh", active, t0, DeviceActive, true, ""},
		{"1s before interval", active, t0.Add(time.Hour - time.Second), DeviceActive, true, ""},
		{"at interval", active, t0.Add(time.Hour), DeviceActive, true, ""},
		{"1s after interval", active, t0.Add(time.Hour + time.Second), DeviceGracePeriod, true, ActionHeartbeatRequired},
		{"1s before grace end", active, t0.Add(3*time.Hour - time.Second), DeviceGracePeriod, true, ActionHeartbeatRequired},
		{"at grace end", active, t0.Add(3 * time.Hour), DeviceGracePeriod, true, ActionHeartbeatRequired},
		{"1s after grace end", active, t0.Add(3*time.Hour + time.Second), DeviceGracePeriodExpired, false, ActionHeartbeatRequired},
		{"suspended wins", LicenseRecord{Status: LicenseSuspended}, t0, "suspended", false, ""},
		{"revoked wins over grace expiry", LicenseRecord{Status: LicenseRevoked}, t0.Add(10 * time.Hour), "revoked", false, ""},
		{"expired wins", LicenseRecord{Status: LicenseActive, ExpiresAt: tp(t0.Add(time.Minute))}, t0.Add(2 * time.Hour), "expired", false, ""},
	}
	for _, c := range cases {
		st, valid, action := DeviceStatus(c.l, a, p, c.now)
		if st != c.status || valid != c.valid || action != c.action {
			t.Errorf("%s: got %s %v %q", c.name, st, valid, action)
		}
	}
	if !IsGraceState(DeviceGracePeriod) || !IsGraceState(DeviceGracePeriodExpired) || IsGraceState(DeviceActive) {
		t.Fatal("IsGraceState")
	}
	if GraceStatus(a, p, t0.Add(2*time.Hour)) != DeviceGracePeriod {
		t.Fatal("GraceStatus")
	}
}

func TestHeartbeatDueGraceRemainingLeaseExpiry(t *testing.T) {
	p := Policy{HeartbeatInterval: time.Hour, GracePeriod: 3 * time.Hour}
	a := ActivationRecord{LastHeartbeatAt: t0}
	if got := HeartbeatDue(a, p); !got.Equal(t0.Add(time.Hour)) {
		t.Fatal(got)
	}
	for _, c := range []struct {
		now  time.Time
		want time.Duration
	}{{t0, 3 * time.Hour}, {t0.Add(3*time.Hour - time.Second), time.Second}, {t0.Add(3 * time.Hour), 0}, {t0.Add(3*time.Hour + time.Second), 0}} {
		if got := GraceRemaining(a, p, c.now); got != c.want {
			t.Errorf("GraceRemaining at %v = %v want %v", c.now, got, c.want)
		}
	}
	l := LicenseRecord{}
	if got := LeaseExpiry(l, a, p); !got.Equal(t0.Add(3 * time.Hour)) {
		t.Fatal(got)
	}
	l.ExpiresAt = tp(t0.Add(time.Hour))
	if got := LeaseExpiry(l, a, p); !got.Equal(t0.Add(time.Hour)) {
		t.Fatal("lease exp not capped by license expiry", got)
	}
	l.ExpiresAt = tp(t0.Add(5 * time.Hour))
	if got := LeaseExpiry(l, a, p); !got.Equal(t0.Add(3 * time.Hour)) {
		t.Fatal(got)
	}
}

func TestSeatsUsedBoundaries(t *testing.T) {
	held := t0.Add(time.Hour)
	holders := []ActivationRecord{
		{Status: ActivationActive},
		{Status: ActivationDeactivated, SeatHeldUntil: &held},
		{Status: ActivationSuperseded, FreedByTransfer: true},
		{Status: ActivationDeactivated},
	}
	for _, c := range []struct {
		now  time.Time
		want int
	}{{held.Add(-time.Second), 2}, {held, 1}, {held.Add(time.Second), 1}} {
		if got := SeatsUsed(holders, c.now); got != c.want {
			t.Errorf("at %v: %d want %d", c.now, got, c.want)
		}
	}
}

func TestEndActivationSeatRules(t *testing.T) {
	p := Policy{TransfersPer30d: 3}
	leaseExp := t0.Add(2 * time.Hour)
	a := ActivationRecord{ID: "act_1", Status: ActivationActive, LastLeaseExp: &leaseExp}
	cases := []struct {
		name      string
		a         ActivationRecord
		used      int
		now       time.Time
		transfer  bool
		heldUntil *time.Time
		released  time.Time
	}{
		{"below limit frees at once", a, 2, t0, true, nil, t0},
		{"at limit holds until lease exp", a, 3, t0, false, &leaseExp, leaseExp},
		{"at limit, 1s before lease exp", a, 3, leaseExp.Add(-time.Second), false, &leaseExp, leaseExp},
		{"at limit, lease exp reached: free", a, 3, leaseExp, false, nil, leaseExp},
		{"at limit, 1s after lease exp: free", a, 3, leaseExp.Add(time.Second), false, nil, leaseExp.Add(time.Second)},
		{"at limit, never leased", ActivationRecord{Status: ActivationActive}, 5, t0, false, nil, t0},
	}
	for _, c := range cases {
		got, rel := EndActivation(c.a, ActivationDeactivated, "device", c.used, p, c.now)
		if got.Status != ActivationDeactivated || got.EndedAt == nil || !got.EndedAt.Equal(c.now) || got.StatusReason != "device" {
			t.Errorf("%s: ended %+v", c.name, got)
		}
		if got.FreedByTransfer != c.transfer {
			t.Errorf("%s: FreedByTransfer %v", c.name, got.FreedByTransfer)
		}
		if (got.SeatHeldUntil == nil) != (c.heldUntil == nil) || (c.heldUntil != nil && !got.SeatHeldUntil.Equal(*c.heldUntil)) {
			t.Errorf("%s: SeatHeldUntil %v", c.name, got.SeatHeldUntil)
		}
		if !rel.Equal(c.released) {
			t.Errorf("%s: released %v want %v", c.name, rel, c.released)
		}
		if HoldsSeat(got, c.now) != (c.heldUntil != nil) {
			t.Errorf("%s: HoldsSeat", c.name)
		}
	}
	// The hold is taken from a copy: changing the input later does not move it.
	got, _ := EndActivation(a, ActivationSuperseded, "", 3, p, t0)
	*a.LastLeaseExp = t0
	if !got.SeatHeldUntil.Equal(t0.Add(2 * time.Hour)) {
		t.Fatal("hold aliases the lease exp")
	}
}

func TestTransferWindowStart(t *testing.T) {
	// A transfer counts while its EndedAt is after the window start.
	ended := t0
	counts := func(now time.Time) bool { return ended.After(TransferWindowStart(now)) }
	if !counts(t0.Add(TransferWindow - time.Second)) {
		t.Fatal("1s before 30 d: should count")
	}
	if counts(t0.Add(TransferWindow)) || counts(t0.Add(TransferWindow+time.Second)) {
		t.Fatal("at/after 30 d: should not count")
	}
}

func TestReleaseSeat(t *testing.T) {
	held := t0.Add(time.Hour)
	a := ActivationRecord{Status: ActivationDeactivated, SeatHeldUntil: &held}
	got, changed := ReleaseSeat(a, t0)
	if !changed || HoldsSeat(got, t0) {
		t.Fatal("not released")
	}
	if _, changed := ReleaseSeat(got, t0); changed {
		t.Fatal("released twice")
	}
	if _, changed := ReleaseSeat(ActivationRecord{Status: ActivationActive}, t0); changed {
		t.Fatal("released an active seat")
	}
	if _, changed := ReleaseSeat(a, held); changed {
		t.Fatal("released an expired hold")
	}
}

func TestCertificateAcceptedOverlap(t *testing.T) {
	c := ReplaceCertificate(CertificateRecord{Status: CertificateCurrent}, t0)
	end := t0.Add(24 * time.Hour)
	if c.Status != CertificateReplaced || !c.OverlapUntil.Equal(end) {
		t.Fatalf("%+v", c)
	}
	cases := []struct {
		name     string
		c        CertificateRecord
		mutating bool
		now      time.Time
		want     bool
	}{
		{"current", CertificateRecord{Status: CertificateCurrent}, true, t0, true},
		{"replaced, read, 1s before end", c, false, end.Add(-time.Second), true},
		{"replaced, read, at end", c, false, end, false},
		{"replaced, read, 1s after end", c, false, end.Add(time.Second), false},
		{"replaced, mutating, inside overlap", c, true, t0, false},
		{"revoked", RevokeCertificate(CertificateRecord{Status: CertificateCurrent}, "x", t0), false, t0, false},
	}
	for _, k := range cases {
		if got := CertificateAccepted(k.c, k.mutating, k.now); got != k.want {
			t.Errorf("%s: %v", k.name, got)
		}
	}
	r := RevokeCertificate(CertificateRecord{Status: CertificateCurrent}, "first", t0)
	r2 := RevokeCertificate(r, "second", t0.Add(time.Hour))
	if r2.RevokeReason != "first" || !r2.RevokedAt.Equal(t0) {
		t.Fatal("re-revocation changed the record")
	}
}

func TestRenewHint(t *testing.T) {
	year := 365 * 24 * time.Hour
	nb := t0
	na := t0.Add(year)
	day30 := 30 * 24 * time.Hour
	cases := []struct {
		name        string
		nb, na, now time.Time
		rolling     bool
		want        bool
	}{
		{"1 year cert, fresh", nb, na, t0, false, false},
		{"1s before 30 d window", nb, na, na.Add(-day30 - time.Second), false, false},
		{"at 30 d window", nb, na, na.Add(-day30), false, true},
		{"1s into 30 d window", nb, na, na.Add(-day30 + time.Second), false, true},
		{"rolling back", nb, na, t0, true, true},
		// 30 h validity: the window is 10 h.
		{"short cert, 1s before third", nb, nb.Add(30 * time.Hour), nb.Add(20*time.Hour - time.Second), false, false},
		{"short cert, at third", nb, nb.Add(30 * time.Hour), nb.Add(20 * time.Hour), false, true},
		{"expired cert", nb, nb.Add(time.Hour), nb.Add(2 * time.Hour), false, true},
	}
	for _, c := range cases {
		if got := RenewHint(c.nb, c.na, c.now, c.rolling); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

func TestClaimStatusAt(t *testing.T) {
	c := ClaimRecord{Status: ClaimPending, CreatedAt: t0, ExpiresAt: t0.Add(ClaimTTL)}
	for _, k := range []struct {
		now  time.Time
		want ClaimStatus
	}{{t0.Add(15*time.Minute - time.Second), ClaimPending}, {t0.Add(15 * time.Minute), ClaimExpired}, {t0.Add(15*time.Minute + time.Second), ClaimExpired}} {
		if got := ClaimStatusAt(c, k.now); got != k.want {
			t.Errorf("at %v: %s", k.now, got)
		}
	}
	c.Status = ClaimApproved
	if ClaimStatusAt(c, t0.Add(time.Hour)) != ClaimApproved {
		t.Fatal("approved claim expired")
	}
}

func TestChangeStatus(t *testing.T) {
	cases := []struct {
		from    LicenseStatus
		action  string
		to      LicenseStatus
		changed bool
		code    string
	}{
		{LicenseActive, "revoke", LicenseRevoked, true, ""},
		{LicenseSuspended, "revoke", LicenseRevoked, true, ""},
		{LicenseRevoked, "revoke", LicenseRevoked, false, ""},
		{LicenseActive, "suspend", LicenseSuspended, true, ""},
		{LicenseSuspended, "suspend", LicenseSuspended, false, ""},
		{LicenseRevoked, "suspend", LicenseRevoked, false, errs.CodeConflict},
		{LicenseSuspended, "reinstate", LicenseActive, true, ""},
		{LicenseRevoked, "reinstate", LicenseActive, true, ""},
		{LicenseActive, "reinstate", LicenseActive, false, ""},
		{LicenseActive, "delete", LicenseActive, false, errs.CodeValidationFailed},
	}
	for _, c := range cases {
		got, changed, err := ChangeStatus(LicenseRecord{Status: c.from, StatusReason: "old"}, c.action, "why", t0)
		if c.code != "" {
			if errs.CodeOf(err) != c.code {
				t.Errorf("%s %s: err %v", c.from, c.action, err)
			}
			continue
		}
		if err != nil || got.Status != c.to || changed != c.changed {
			t.Errorf("%s %s: %s %v %v", c.from, c.action, got.Status, changed, err)
		}
		if changed && c.to != LicenseActive && got.StatusReason != "why" {
			t.Errorf("%s %s: reason %q", c.from, c.action, got.StatusReason)
		}
		if changed && c.to == LicenseActive && got.StatusReason != "" {
			t.Errorf("reinstate kept reason")
		}
	}
}
