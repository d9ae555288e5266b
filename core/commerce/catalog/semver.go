package catalog

import (
	"strconv"
	"strings"

	"github.com/samplero/samplero/core/errs"
)

// maxVersionLen bounds a version string; real ones are a dozen characters.
const maxVersionLen = 128

// SemVer is a parsed semantic version (https://semver.org, 2.0.0).
type SemVer struct {
	Major, Minor, Patch uint64
	// Pre holds the dot-separated pre-release identifiers ("rc.1" → ["rc", "1"]); empty for a
	// release.
	Pre []string
	// Build is the build metadata after "+", kept for display; it never takes part in precedence.
	Build string
}

// String formats v back into its canonical text.
func (v SemVer) String() string {
	s := strconv.FormatUint(v.Major, 10) + "." + strconv.FormatUint(v.Minor, 10) + "." + strconv.FormatUint(v.Patch, 10)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

func invalidVersion(msg string) error {
	return errs.E(errs.Invalid, CodeInvalidVersion, msg)
}

// ParseVersion parses MAJOR.MINOR.PATCH[-prerelease][+build] strictly as semver 2.0 defines it:
// numeric parts without leading zeros, identifiers of [0-9A-Za-z-] that are never empty, numeric
// pre-release identifiers without leading zeros. No "v" prefix, no surrounding spaces.
// INVALID_VERSION otherwise.
func ParseVersion(s string) (SemVer, error) {
	const form = "version must be a semantic version MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.2.3"
	if s == "" || len(s) > maxVersionLen {
		return SemVer{}, invalidVersion(form)
	}
	var v SemVer
	rest := s
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build = rest[i+1:]
		rest = rest[:i]
		for _, id := range strings.Split(v.Build, ".") {
			if !isIdentifier(id) {
				return SemVer{}, invalidVersion(form)
			}
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		v.Pre = strings.Split(pre, ".")
		for _, id := range v.Pre {
			if !isIdentifier(id) || isNumeric(id) && len(id) > 1 && id[0] == '0' {
				return SemVer{}, invalidVersion(form)
			}
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return SemVer{}, invalidVersion(form)
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if !isNumeric(p) || len(p) > 1 && p[0] == '0' {
			return SemVer{}, invalidVersion(form)
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return SemVer{}, invalidVersion("version numbers must fit in 64 bits")
		}
		*nums[i] = n
	}
	return v, nil
}

// isIdentifier: one or more of [0-9A-Za-z-].
func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Compare orders a and b by semver precedence: -1 when a < b, 0 when equal, +1 when a > b. Major,
// minor and patch compare numerically; a pre-release ranks below its release; pre-release
// identifiers compare one by one (numeric ones numerically and below alphanumeric ones, the others
// in ASCII order), and a shorter list of equal leading identifiers ranks lower. Build metadata is
// ignored, so 1.0.0+a and 1.0.0+b are equal.
func Compare(a, b SemVer) int {
	for _, p := range [][2]uint64{{a.Major, b.Major}, {a.Minor, b.Minor}, {a.Patch, b.Patch}} {
		if p[0] != p[1] {
			if p[0] < p[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.Pre) == 0 && len(b.Pre) == 0:
		return 0
	case len(a.Pre) == 0:
		return 1
	case len(b.Pre) == 0:
		return -1
	}
	for i := 0; i < len(a.Pre) && i < len(b.Pre); i++ {
		if c := compareIdentifier(a.Pre[i], b.Pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(a.Pre) < len(b.Pre):
		return -1
	case len(a.Pre) > len(b.Pre):
		return 1
	}
	return 0
}

func compareIdentifier(x, y string) int {
	xn, yn := isNumeric(x), isNumeric(y)
	switch {
	case xn && yn:
		// Numeric identifiers have no leading zeros, so a longer one is larger; this also works
		// for numbers beyond 64 bits.
		if len(x) != len(y) {
			if len(x) < len(y) {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	case xn:
		return -1
	case yn:
		return 1
	}
	return strings.Compare(x, y)
}

// CompareVersions compares two version strings by semver precedence. A string that does not parse
// ranks below every valid version (and such strings compare among themselves as text), so that a
// bad row can never become the latest.
func CompareVersions(a, b string) int {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	switch {
	case ea == nil && eb == nil:
		return Compare(va, vb)
	case ea == nil:
		return 1
	case eb == nil:
		return -1
	}
	return strings.Compare(a, b)
}
