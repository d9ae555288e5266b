package catalog

import (
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Limits of the free-text fields of a version.
const (
	MaxReleaseNotesLen = 20000 // code points
	MaxFileNameLen     = 200   // bytes, after sanitising
	// CurrentProtocolVersion is the device protocol version spoken today; MinProtocolVersion
	// defaults to it.
	CurrentProtocolVersion = 1
)

// Platforms lists the valid platforms in display order.
var Platforms = []Platform{PlatformWin, PlatformMac, PlatformLinux, PlatformAll}

// ParsePlatform checks a platform name (win, mac, linux or all; case-insensitive).
// INVALID_PLATFORM otherwise.
func ParsePlatform(s string) (Platform, error) {
	p := Platform(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Platforms, p) {
		return p, nil
	}
	return "", errs.E(errs.Invalid, CodeInvalidPlatform, "platform must be win, mac, linux or all")
}

// ValidateVersion checks a version as it is about to be stored: a semantic version, a valid
// platform, MinProtocolVersion ≥ 1, release notes of at most 20,000 code points without control
// characters other than tab and newlines, and a published version must have an asset.
func ValidateVersion(v Version) error {
	if _, err := ParseVersion(v.Version); err != nil {
		return err
	}
	if _, err := ParsePlatform(string(v.Platform)); err != nil || string(v.Platform) != strings.ToLower(string(v.Platform)) {
		return errs.E(errs.Invalid, CodeInvalidPlatform, "platform must be win, mac, linux or all")
	}
	if v.MinProtocolVersion < 1 {
		return errs.E(errs.Invalid, CodeInvalidVersion, "min_protocol_version must be at least 1")
	}
	if !utf8.ValidString(v.ReleaseNotes) || utf8.RuneCountInString(v.ReleaseNotes) > MaxReleaseNotesLen || hasControl(v.ReleaseNotes, true) {
		return errs.E(errs.Invalid, CodeInvalidVersion, "release notes must be at most 20000 characters of text")
	}
	if v.StorageKey != "" && v.FileName == "" {
		return errs.E(errs.Invalid, CodeInvalidFileName, "a version with an asset needs a file name")
	}
	if v.Published && v.StorageKey == "" {
		return errs.E(errs.Invalid, CodeVersionNoAsset, "a version without an uploaded file cannot be published")
	}
	if v.SizeBytes < 0 {
		return errs.E(errs.Invalid, CodeInvalidVersion, "size must not be negative")
	}
	return nil
}

// hasControl reports control characters; with text set, tab, CR and LF are allowed (multi-line
// text such as release notes).
func hasControl(s string, text bool) bool {
	for _, r := range s {
		if text && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// newer reports whether a ranks above b: higher semver precedence, then (two versions of equal
// precedence can only come from old rows) the later creation, then the larger id, so that the
// order is total and every caller picks the same "latest".
func newer(a, b Version) bool {
	if c := CompareVersions(a.Version, b.Version); c != 0 {
		return c > 0
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// SortNewestFirst sorts versions in place: highest semver precedence first; versions of equal
// precedence by platform (win, mac, linux, all), then as newer ranks them, so the order is total.
func SortNewestFirst(vs []Version) {
	slices.SortStableFunc(vs, func(a, b Version) int {
		if c := CompareVersions(a.Version, b.Version); c != 0 {
			return -c
		}
		if pa, pb := slices.Index(Platforms, a.Platform), slices.Index(Platforms, b.Platform); pa != pb {
			return pa - pb
		}
		switch {
		case newer(a, b):
			return -1
		case newer(b, a):
			return 1
		}
		return 0
	})
}

// Latest returns the highest published version of exactly platform (an "all" asset is the latest
// of platform "all" only); ok=false when there is none.
func Latest(vs []Version, platform Platform) (latest Version, ok bool) {
	for _, v := range vs {
		if v.Platform != platform || !v.Published {
			continue
		}
		if !ok || newer(v, latest) {
			latest, ok = v, true
		}
	}
	return latest, ok
}

// LatestByPlatform returns the latest published version of each platform that has one.
func LatestByPlatform(vs []Version) map[Platform]Version {
	out := map[Platform]Version{}
	for _, p := range Platforms {
		if v, ok := Latest(vs, p); ok {
			out[p] = v
		}
	}
	return out
}

// SameRelease reports whether two versions would collide: the same platform and versions of equal
// precedence (1.0.0+a and 1.0.0+b are one release to semver, and "latest" between them would be
// arbitrary).
func SameRelease(a, b Version) bool {
	return a.Platform == b.Platform && CompareVersions(a.Version, b.Version) == 0
}

// SanitizeFileName turns a client-supplied file name into one safe as the last segment of a storage
// key and as a download's saved name: the base name only (any directories, either slash, dropped),
// ASCII letters, digits, '.', '-' and '_' kept, every run of other characters turned into one '_',
// no leading dots (no hidden files, no "..") and at most 200 bytes with the extension kept.
// INVALID_FILE_NAME when nothing usable is left.
func SanitizeFileName(name string) (string, error) {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimSpace(name))
	var b strings.Builder
	pendingUnderscore := false
	for _, r := range name {
		r = foldRune(r)
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			if pendingUnderscore && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingUnderscore = false
			b.WriteRune(r)
			continue
		}
		pendingUnderscore = true
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > MaxFileNameLen {
		ext := path.Ext(s)
		if len(ext) > 20 {
			ext = ""
		}
		s = s[:MaxFileNameLen-len(ext)] + ext
	}
	if s == "" || strings.Trim(s, "._-") == "" {
		return "", errs.E(errs.Invalid, CodeInvalidFileName, "file name must contain letters or digits")
	}
	return s, nil
}

// foldRune folds an accented Latin letter that has a one-letter ASCII spelling, keeping its case;
// other runes are returned unchanged.
func foldRune(r rune) rune {
	lower := unicode.ToLower(r)
	f := folds[lower]
	if len(f) != 1 {
		return r
	}
	if lower != r {
		return unicode.ToUpper(rune(f[0]))
	}
	return rune(f[0])
}
