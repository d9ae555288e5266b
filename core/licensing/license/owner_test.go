package license

import (
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

func TestMaskKey(t *testing.T) {
	cases := map[string]string{
		"VSTABCDEFGHJKLMNPQRSTUV": "VST-ABCDE-•••••-•••••-RSTUV",
		"DIG23456789ABCDEFGHJKLM": "DIG-23456-•••••-•••••-HJKLM",
		"":                        "•••••",
		"VST-ABCDE":               "•••••",
		"XYZABCDEFGHJKLMNPQRSTUV": "•••••", // unknown prefix
		"VSTABCDEFGHJKLMNPQRST0V": "•••••", // 0 is not in the alphabet
	}
	for in, want := range cases {
		if got := MaskKey(in); got != want {
			t.Errorf("MaskKey(%q) = %q, want %q", in, got, want)
		}
	}
	// The masked key never carries the hidden groups.
	k := "VSTABCDEFGHJKLMNPQRSTUV"
	if m := MaskKey(k); strings.Contains(m, "FGHJK") || strings.Contains(m, "LMNPQ") {
		t.Fatalf("%q leaks a hidden group", m)
	}
}

func TestOwnerKeyAndOwnedBy(t *testing.T) {
	k, err := OwnerKey("  Ann.Lee@Example.COM ")
	if err != nil || k != "ann.lee@example.com" {
		t.Fatalf("OwnerKey = %q, %v", k, err)
	}
	if _, err := OwnerKey("not an address"); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad address: %v", err)
	}
	l := LicenseRecord{OwnerEmail: "Ann.Lee@example.com"}
	cases := []struct {
		name  string
		l     LicenseRecord
		owner string
		want  bool
	}{
		{"same address, other case", l, "ann.lee@example.com", true},
		{"other owner", l, "bob@example.com", false},
		{"no owner asks", l, "", false},
		{"license without owner", LicenseRecord{}, "ann.lee@example.com", false},
		{"both empty", LicenseRecord{}, "", false},
	}
	for _, c := range cases {
		if got := OwnedBy(c.l, c.owner); got != c.want {
			t.Errorf("%s: OwnedBy = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRenameActivation(t *testing.T) {
	a := ActivationRecord{DeviceName: "old", UpdatedAt: t0}
	now := t0.Add(time.Hour)
	got, err := RenameActivation(a, "  Studio Mac Pro  ", now)
	if err != nil || got.DeviceName != "Studio Mac Pro" || !got.UpdatedAt.Equal(now) {
		t.Fatalf("rename: %+v, %v", got, err)
	}
	if got, err := RenameActivation(a, strings.Repeat("é", 100), now); err != nil || got.DeviceName != strings.Repeat("é", 100) {
		t.Fatalf("100 characters refused: %v", err)
	}
	for name, in := range map[string]string{
		"empty":         "",
		"blank":         "   ",
		"101 chars":     strings.Repeat("a", 101),
		"control":       "a\x07b",
		"newline":       "a\nb",
		"invalid UTF-8": "a\xffb",
	} {
		got, err := RenameActivation(a, in, now)
		if errs.CodeOf(err) != errs.CodeValidationFailed || got.DeviceName != "old" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
}

func TestRevokeByOwnerFreesTheSeatAtOnce(t *testing.T) {
	lease := t0.Add(48 * time.Hour)
	a := ActivationRecord{Status: ActivationActive, LastLeaseExp: &lease}
	now := t0.Add(time.Hour)
	got := RevokeByOwner(a, "revoked by the owner", now)
	if got.Status != ActivationRevoked || got.EndedAt == nil || !got.EndedAt.Equal(now) || got.FreedByTransfer ||
		got.SeatHeldUntil != nil || got.StatusReason != "revoked by the owner" {
		t.Fatalf("revoked: %+v", got)
	}
	// Even where a device's own deactivation would hold the seat (no transfer left), it is free.
	held, _ := EndActivation(a, ActivationDeactivated, "", 3, Policy{TransfersPer30d: 3}, now)
	if !HoldsSeat(held, now) || HoldsSeat(got, now) {
		t.Fatalf("held %v, revoked %v", HoldsSeat(held, now), HoldsSeat(got, now))
	}
}

func TestExpiryNoticeDue(t *testing.T) {
	now := t0
	lic := func(exp time.Duration, mod func(*LicenseRecord)) LicenseRecord {
		l := LicenseRecord{OwnerEmail: "o@example.com", Status: LicenseActive, ExpiresAt: tp(now.Add(exp))}
		if mod != nil {
			mod(&l)
		}
		return l
	}
	week := ExpiryWarning
	cases := []struct {
		name string
		l    LicenseRecord
		want ExpiryNotice
	}{
		{"perpetual", LicenseRecord{OwnerEmail: "o@example.com", Status: LicenseActive}, ExpiryNoticeNone},
		{"in 8 days", lic(8*24*time.Hour, nil), ExpiryNoticeNone},
		{"1s past the warning window", lic(week+time.Second, nil), ExpiryNoticeNone},
		{"exactly 7 days", lic(week, nil), ExpiryNoticeExpiring},
		{"in 1 second", lic(time.Second, nil), ExpiryNoticeExpiring},
		{"already warned", lic(time.Hour, func(l *LicenseRecord) { l.ExpiryWarnedAt = tp(now) }), ExpiryNoticeNone},
		{"expires now", lic(0, nil), ExpiryNoticeExpired},
		{"expired an hour ago, warned before", lic(-time.Hour, func(l *LicenseRecord) { l.ExpiryWarnedAt = tp(now) }), ExpiryNoticeExpired},
		{"expired, already told", lic(-time.Hour, func(l *LicenseRecord) { l.ExpiredNoticedAt = tp(now) }), ExpiryNoticeNone},
		{"expired 29 days ago", lic(-29*24*time.Hour, nil), ExpiryNoticeExpired},
		{"expired exactly 30 days ago", lic(-ExpiredNoticeWindow, nil), ExpiryNoticeNone},
		{"no owner", lic(time.Hour, func(l *LicenseRecord) { l.OwnerEmail = "" }), ExpiryNoticeNone},
		{"suspended", lic(time.Hour, func(l *LicenseRecord) { l.Status = LicenseSuspended }), ExpiryNoticeNone},
		{"revoked and expired", lic(-time.Hour, func(l *LicenseRecord) { l.Status = LicenseRevoked }), ExpiryNoticeNone},
	}
	for _, c := range cases {
		if got := ExpiryNoticeDue(c.l, now); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestMarkExpiryNotice(t *testing.T) {
	l := LicenseRecord{OwnerEmail: "o@example.com", Status: LicenseActive, ExpiresAt: tp(t0.Add(time.Hour))}
	w := MarkExpiryNotice(l, ExpiryNoticeExpiring, t0)
	if w.ExpiryWarnedAt == nil || !w.ExpiryWarnedAt.Equal(t0) || w.ExpiredNoticedAt != nil || ExpiryNoticeDue(w, t0) != ExpiryNoticeNone {
		t.Fatalf("warned: %+v", w)
	}
	// Once it has expired, the other notice is due, once.
	later := t0.Add(2 * time.Hour)
	if ExpiryNoticeDue(w, later) != ExpiryNoticeExpired {
		t.Fatal("expired notice not due after the warning")
	}
	e := MarkExpiryNotice(w, ExpiryNoticeExpired, later)
	if e.ExpiredNoticedAt == nil || !e.ExpiredNoticedAt.Equal(later) || ExpiryNoticeDue(e, later) != ExpiryNoticeNone {
		t.Fatalf("told: %+v", e)
	}
	if got := MarkExpiryNotice(l, ExpiryNoticeNone, t0); got.ExpiryWarnedAt != nil || got.ExpiredNoticedAt != nil {
		t.Fatalf("no notice marked something: %+v", got)
	}
}

func TestRequestTrust(t *testing.T) {
	if RequestTrust(true) != 4 || RequestTrust(false) != 3 {
		t.Fatalf("trust %d %d", RequestTrust(true), RequestTrust(false))
	}
}
