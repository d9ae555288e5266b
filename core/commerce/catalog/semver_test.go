package catalog

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/samplero/samplero/core/errs"
)

func TestParseVersion(t *testing.T) {
	valid := []struct {
		in                  string
		major, minor, patch uint64
		pre                 []string
		build               string
	}{
		{"0.0.0", 0, 0, 0, nil, ""},
		{"1.2.3", 1, 2, 3, nil, ""},
		{"10.20.30", 10, 20, 30, nil, ""},
		{"1.0.0-alpha", 1, 0, 0, []string{"alpha"}, ""},
		{"1.0.0-alpha.1", 1, 0, 0, []string{"alpha", "1"}, ""},
		{"1.0.0-0.3.7", 1, 0, 0, []string{"0", "3", "7"}, ""},
		{"1.0.0-x.7.z.92", 1, 0, 0, []string{"x", "7", "z", "92"}, ""},
		{"1.0.0-x-y-z.--", 1, 0, 0, []string{"x-y-z", "--"}, ""},
		{"1.0.0-alpha+001", 1, 0, 0, []string{"alpha"}, "001"},
		{"1.0.0+20130313144700", 1, 0, 0, nil, "20130313144700"},
		{"1.0.0-beta+exp.sha.5114f85", 1, 0, 0, []string{"beta"}, "exp.sha.5114f85"},
		{"1.0.0+21AF26D3----117B344092BD", 1, 0, 0, nil, "21AF26D3----117B344092BD"},
		{"18446744073709551615.0.0", 18446744073709551615, 0, 0, nil, ""},
		{"1.0.0-rc.1+build.1", 1, 0, 0, []string{"rc", "1"}, "build.1"},
	}
	for _, c := range valid {
		v, err := ParseVersion(c.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", c.in, err)
			continue
		}
		if v.Major != c.major || v.Minor != c.minor || v.Patch != c.patch || !slices.Equal(v.Pre, c.pre) || v.Build != c.build {
			t.Errorf("ParseVersion(%q) = %+v", c.in, v)
		}
		if v.String() != c.in {
			t.Errorf("ParseVersion(%q).String() = %q", c.in, v.String())
		}
	}
	invalid := []string{
		"", "1", "1.2", "1.2.3.4", "v1.2.3", " 1.2.3", "1.2.3 ", "01.2.3", "1.02.3", "1.2.03",
		"1.2.3-", "1.2.3+", "1.2.3-01", "1.2.3-alpha..1", "1.2.3-alpha_1", "1.2.3+build..1",
		"1.2.3+bu ild", "-1.2.3", "1.-2.3", "a.b.c", "1.2.3-ä", "18446744073709551616.0.0",
		"1..3", strings.Repeat("1", 130) + ".0.0",
	}
	for _, s := range invalid {
		_, err := ParseVersion(s)
		if errs.CodeOf(err) != CodeInvalidVersion || errs.KindOf(err) != errs.Invalid {
			t.Errorf("ParseVersion(%q) = %v, want INVALID_VERSION", s, err)
		}
	}
}

// TestComparePrecedence checks the ordering example of semver.org section 11 and a few more,
// in every pair and after shuffling.
func TestComparePrecedence(t *testing.T) {
	ordered := []string{
		"0.9.9",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.9.0",
		"1.10.0", // numeric, not text: 10 > 9
		"1.10.1",
		"2.0.0-0",
		"2.0.0-1",
		"2.0.0-10",
		"2.0.0-a",
		"2.0.0",
		"10.0.0",
	}
	for i := range ordered {
		for j := range ordered {
			a, b := ordered[i], ordered[j]
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	vs := make([]Version, len(ordered))
	for i, s := range ordered {
		vs[i] = Version{ID: s, Version: s, Platform: PlatformMac}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
	SortNewestFirst(vs)
	for i, v := range vs {
		if want := ordered[len(ordered)-1-i]; v.Version != want {
			t.Fatalf("position %d: %s, want %s", i, v.Version, want)
		}
	}
}

func TestCompareIgnoresBuild(t *testing.T) {
	if c := CompareVersions("1.0.0+a", "1.0.0+b"); c != 0 {
		t.Fatalf("build metadata took part: %d", c)
	}
	if c := CompareVersions("1.0.0-rc.1+zzz", "1.0.0-rc.1"); c != 0 {
		t.Fatalf("build metadata took part: %d", c)
	}
	if !SameRelease(Version{Version: "1.0.0+a", Platform: PlatformWin}, Version{Version: "1.0.0+b", Platform: PlatformWin}) {
		t.Fatal("1.0.0+a and 1.0.0+b are one release")
	}
	if SameRelease(Version{Version: "1.0.0", Platform: PlatformWin}, Version{Version: "1.0.0", Platform: PlatformMac}) {
		t.Fatal("one version on two platforms is two releases")
	}
}

func TestCompareInvalidRanksLowest(t *testing.T) {
	if CompareVersions("garbage", "0.0.0-0") != -1 || CompareVersions("0.0.0-0", "garbage") != 1 {
		t.Fatal("an unparsable version must rank below every valid one")
	}
	if CompareVersions("garbage", "garbage") != 0 || CompareVersions("a", "b") != -1 {
		t.Fatal("unparsable versions compare as text among themselves")
	}
}
