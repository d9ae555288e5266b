package catalog

import (
	"strings"
	"testing"

	"github.com/samplero/samplero/core/errs"
)

func TestSlugify(t *testing.T) {
	long := strings.Repeat("abcdefghij ", 10) // 110 characters, a space every 11
	cases := []struct {
		name, want string
	}{
		{"Space Echo", "space-echo"},
		{"  Space   Echo!!  ", "space-echo"},
		{"Crème Brûlée Délay", "creme-brulee-delay"},
		{"Straße Ødegaard Łódź", "strasse-odegaard-lodz"},
		{"Æther Œuvre", "aether-oeuvre"},
		{"ÀÉÎÕÜ", "aeiou"},
		{"TB-303 / Acid++", "tb-303-acid"},
		{"---Leading and trailing---", "leading-and-trailing"},
		{"v2.0_Synth", "v2-0-synth"},
		{"日本のシンセ", "product"},         // nothing foldable: the fallback
		{"", "product"},               // empty
		{"X", "product-x"},            // one character is too short for licensing
		{"日本 X", "product-x"},         // one usable character after the script
		{"Synth 日本 Pad", "synth-pad"}, // the run of unusable characters is one hyphen
		{"ABC", "abc"},
		{long, strings.TrimRight(strings.ReplaceAll(long, " ", "-")[:64], "-")},
	}
	for _, c := range cases {
		got := Slugify(c.name)
		if got != c.want {
			t.Errorf("Slugify(%q) = %q, want %q", c.name, got, c.want)
		}
		if err := ValidateSlug(got); err != nil {
			t.Errorf("Slugify(%q) = %q does not validate: %v", c.name, got, err)
		}
		if len(got) > MaxSlugLen {
			t.Errorf("Slugify(%q) is %d long", c.name, len(got))
		}
	}
}

func TestSlugifyCutsAtAHyphenBoundary(t *testing.T) {
	// 63 letters then a separator then more: the cut at 64 must not leave a trailing hyphen.
	name := strings.Repeat("a", 63) + " bcd"
	got := Slugify(name)
	if got != strings.Repeat("a", 63) {
		t.Fatalf("got %q", got)
	}
}

func TestWithSuffix(t *testing.T) {
	long := strings.Repeat("a", 60) + "-bcd"
	cases := []struct {
		base string
		n    int
		want string
	}{
		{"space-echo", 0, "space-echo"},
		{"space-echo", 1, "space-echo"},
		{"space-echo", 2, "space-echo-2"},
		{"space-echo", 17, "space-echo-17"},
		{long, 1, long},
		{long, 2, strings.Repeat("a", 60) + "-b-2"},   // cut to 62, then -2
		{long, 100, strings.Repeat("a", 60) + "-100"}, // cut to 60 ("-" dropped), then -100
		{strings.Repeat("a", 59) + "-bcd", 1000, strings.Repeat("a", 59) + "-1000"},
	}
	for _, c := range cases {
		got := WithSuffix(c.base, c.n)
		if got != c.want {
			t.Errorf("WithSuffix(%q, %d) = %q, want %q", c.base, c.n, got, c.want)
		}
		if err := ValidateSlug(got); err != nil {
			t.Errorf("WithSuffix(%q, %d) = %q does not validate: %v", c.base, c.n, got, err)
		}
	}
}

func TestValidateSlug(t *testing.T) {
	ok := []string{"ab", "a1", "1a", "space-echo", "a-", strings.Repeat("z", 64), "0-0"}
	bad := []string{"", "a", "-ab", "Space", "space echo", "space_echo", "spåce", strings.Repeat("z", 65), "ab/cd", "ab.cd"}
	for _, s := range ok {
		if err := ValidateSlug(s); err != nil {
			t.Errorf("ValidateSlug(%q): %v", s, err)
		}
	}
	for _, s := range bad {
		err := ValidateSlug(s)
		if errs.CodeOf(err) != CodeInvalidSlug || errs.KindOf(err) != errs.Invalid {
			t.Errorf("ValidateSlug(%q) = %v, want INVALID_SLUG", s, err)
		}
	}
}
