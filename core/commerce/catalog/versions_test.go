package catalog

import (
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]Platform{"win": PlatformWin, "MAC": PlatformMac, " linux ": PlatformLinux, "all": PlatformAll} {
		got, err := ParsePlatform(in)
		if err != nil || got != want {
			t.Errorf("ParsePlatform(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "windows", "macos", "any", "ios"} {
		_, err := ParsePlatform(in)
		if errs.CodeOf(err) != CodeInvalidPlatform || errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParsePlatform(%q) = %v, want INVALID_PLATFORM", in, err)
		}
	}
}

func TestValidateVersion(t *testing.T) {
	good := Version{Version: "1.2.3", Platform: PlatformMac, MinProtocolVersion: 1, StorageKey: "k", FileName: "a.zip", Published: true}
	if err := ValidateVersion(good); err != nil {
		t.Fatal(err)
	}
	draft := good
	draft.StorageKey, draft.FileName, draft.Published = "", "", false
	if err := ValidateVersion(draft); err != nil {
		t.Fatalf("a draft without an asset is fine: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Version)
		code string
	}{
		{"bad semver", func(v *Version) { v.Version = "1.2" }, CodeInvalidVersion},
		{"bad platform", func(v *Version) { v.Platform = "ios" }, CodeInvalidPlatform},
		{"upper-case platform", func(v *Version) { v.Platform = "MAC" }, CodeInvalidPlatform},
		{"protocol 0", func(v *Version) { v.MinProtocolVersion = 0 }, CodeInvalidVersion},
		{"protocol negative", func(v *Version) { v.MinProtocolVersion = -1 }, CodeInvalidVersion},
		{"notes too long", func(v *Version) { v.ReleaseNotes = strings.Repeat("é", MaxReleaseNotesLen+1) }, CodeInvalidVersion},
		{"notes with NUL", func(v *Version) { v.ReleaseNotes = "fixed\x00" }, CodeInvalidVersion},
		{"published without asset", func(v *Version) { v.StorageKey = "" }, CodeVersionNoAsset},
		{"asset without file name", func(v *Version) { v.FileName = "" }, CodeInvalidFileName},
		{"negative size", func(v *Version) { v.SizeBytes = -1 }, CodeInvalidVersion},
	}
	for _, c := range cases {
		v := good
		c.mod(&v)
		err := ValidateVersion(v)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
	notes := good
	notes.ReleaseNotes = "Line one\n\tLine two\r\n" + strings.Repeat("é", 100)
	if err := ValidateVersion(notes); err != nil {
		t.Fatalf("multi-line notes: %v", err)
	}
}

func TestLatest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := func(id, ver string, p Platform, published bool) Version {
		return Version{ID: id, Version: ver, Platform: p, Published: published, CreatedAt: t0}
	}
	vs := []Version{
		v("a", "1.0.0", PlatformMac, true),
		v("b", "1.10.0", PlatformMac, true),
		v("c", "1.9.0", PlatformMac, true),
		v("d", "2.0.0", PlatformMac, false),        // a draft never wins
		v("e", "2.0.0-rc.1", PlatformMac, true),    // a published pre-release of 2.0.0 beats 1.10.0
		v("f", "3.0.0", PlatformWin, true),         // another platform
		v("g", "0.1.0", PlatformAll, true),         // "all" is its own platform
		v("h", "0.2.0", PlatformLinux, false),      // only drafts on linux
		v("i", "not-a-version", PlatformWin, true), // never the latest
	}
	cases := []struct {
		p    Platform
		want string
		ok   bool
	}{
		{PlatformMac, "e", true},
		{PlatformWin, "f", true},
		{PlatformAll, "g", true},
		{PlatformLinux, "", false},
	}
	for _, c := range cases {
		got, ok := Latest(vs, c.p)
		if ok != c.ok || got.ID != c.want {
			t.Errorf("Latest(%s) = %q, %v; want %q, %v", c.p, got.ID, ok, c.want, c.ok)
		}
	}
	m := LatestByPlatform(vs)
	if len(m) != 3 || m[PlatformMac].ID != "e" || m[PlatformWin].ID != "f" || m[PlatformAll].ID != "g" {
		t.Fatalf("LatestByPlatform = %+v", m)
	}
	if _, ok := Latest(nil, PlatformMac); ok {
		t.Fatal("no versions, no latest")
	}
}

func TestLatestTieBreak(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Equal precedence can only come from old rows; the later one wins, then the larger id, so
	// every caller agrees whatever the input order.
	a := Version{ID: "a", Version: "1.0.0+1", Platform: PlatformWin, Published: true, CreatedAt: t0}
	b := Version{ID: "b", Version: "1.0.0+2", Platform: PlatformWin, Published: true, CreatedAt: t0.Add(time.Second)}
	c := Version{ID: "c", Version: "1.0.0", Platform: PlatformWin, Published: true, CreatedAt: t0.Add(time.Second)}
	for _, vs := range [][]Version{{a, b, c}, {c, b, a}, {b, a, c}} {
		if got, _ := Latest(vs, PlatformWin); got.ID != "c" {
			t.Fatalf("Latest = %s, want c", got.ID)
		}
	}
}

func TestSanitizeFileName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Space Echo 1.2.3.zip", "Space_Echo_1.2.3.zip"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\Desktop\plugin-mac.dmg`, "plugin-mac.dmg"},
		{".hidden.zip", "hidden.zip"},
		{"..zip", "zip"},
		{"Crème brûlée.pkg", "Creme_brulee.pkg"},
		{"日本語 synth.zip", "synth.zip"},
		{"a  b\t\nc.zip", "a_b_c.zip"},
		{"name;rm -rf.zip", "name_rm_-rf.zip"},
		{"x" + strings.Repeat("y", 300) + ".zip", "x" + strings.Repeat("y", MaxFileNameLen-5) + ".zip"},
	}
	for _, c := range cases {
		got, err := SanitizeFileName(c.in)
		if err != nil || got != c.want {
			t.Errorf("SanitizeFileName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if len(got) > MaxFileNameLen {
			t.Errorf("SanitizeFileName(%q) is %d long", c.in, len(got))
		}
	}
	for _, in := range []string{"", "   ", "..", "/", "日本語", "...", "___", "a/.."} {
		_, err := SanitizeFileName(in)
		if errs.CodeOf(err) != CodeInvalidFileName {
			t.Errorf("SanitizeFileName(%q) = %v, want INVALID_FILE_NAME", in, err)
		}
	}
}
