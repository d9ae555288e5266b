package catalog

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/samplero/samplero/core/errs"
)

// MaxSlugLen is the longest slug.
const MaxSlugLen = 64

// minSlugLen is the shortest slug. A one-character slug would fit the catalog's pattern, but the
// licensing context (which every product is registered with under the same slug) refuses slugs
// shorter than two characters, so the catalog refuses them first with its own code.
const minSlugLen = 2

// fallbackSlug is the slug of a product whose name has no character a slug can use (a name written
// only in a non-Latin script, say); uniqueness suffixes make it product-2, product-3…
const fallbackSlug = "product"

// ValidateSlug checks an explicit slug: ^[a-z0-9][a-z0-9-]{1,63}$ (lower-case ASCII letters, digits
// and hyphens, starting with a letter or digit, 2 to 64 characters). INVALID_SLUG otherwise.
func ValidateSlug(slug string) error {
	if len(slug) < minSlugLen || len(slug) > MaxSlugLen {
		return errs.E(errs.Invalid, CodeInvalidSlug, "slug must be 2 to 64 characters")
	}
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return errs.E(errs.Invalid, CodeInvalidSlug, "slug may contain only a-z, 0-9 and - and must start with a letter or digit")
		}
	}
	return nil
}

// folds maps the accented Latin letters that have an obvious ASCII spelling (after lower-casing).
// Anything not here and not ASCII becomes a separator: "where simple" is the rule, and a wrong
// transliteration is worse than a hyphen.
var folds = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'ā': "a", 'ă': "a", 'ą': "a",
	'æ': "ae",
	'ç': "c", 'ć': "c", 'č': "c", 'ĉ': "c", 'ċ': "c",
	'ď': "d", 'đ': "d", 'ð': "d",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ē': "e", 'ĕ': "e", 'ė': "e", 'ę': "e", 'ě': "e",
	'ĝ': "g", 'ğ': "g", 'ġ': "g", 'ģ': "g",
	'ĥ': "h", 'ħ': "h",
	'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ī': "i", 'ĭ': "i", 'į': "i", 'ı': "i",
	'ĵ': "j",
	'ķ': "k",
	'ĺ': "l", 'ļ': "l", 'ľ': "l", 'ł': "l",
	'ñ': "n", 'ń': "n", 'ņ': "n", 'ň': "n",
	'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o", 'ō': "o", 'ŏ': "o", 'ő': "o",
	'œ': "oe",
	'ŕ': "r", 'ř': "r", 'ŗ': "r",
	'ś': "s", 'š': "s", 'ş': "s", 'ŝ': "s", 'ș': "s",
	'ß': "ss",
	'ť': "t", 'ţ': "t", 'ț': "t", 'þ': "th",
	'ù': "u", 'ú': "u", 'û': "u", 'ü': "u", 'ū': "u", 'ŭ': "u", 'ů': "u", 'ű': "u", 'ų': "u",
	'ŵ': "w",
	'ý': "y", 'ÿ': "y", 'ŷ': "y",
	'ź': "z", 'ż': "z", 'ž': "z",
}

// Slugify derives a slug from a product name: lower-case ASCII, accented Latin letters folded to
// their base letter, every run of other characters turned into one hyphen, no hyphen at either end,
// at most 64 characters. A name that leaves fewer than two characters gets a usable slug anyway:
// nothing left → "product", one character c → "product-c". The result always passes ValidateSlug.
func Slugify(name string) string {
	var b strings.Builder
	pendingHyphen := false
	put := func(s string) {
		if pendingHyphen && b.Len() > 0 {
			b.WriteByte('-')
		}
		pendingHyphen = false
		b.WriteString(s)
	}
	for _, r := range name {
		r = unicode.ToLower(r)
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			put(string(r))
		case folds[r] != "":
			put(folds[r])
		default:
			pendingHyphen = true
		}
		if b.Len() >= MaxSlugLen {
			break
		}
	}
	s := trimSlug(b.String(), MaxSlugLen)
	switch len(s) {
	case 0:
		return fallbackSlug
	case 1:
		return fallbackSlug + "-" + s
	}
	return s
}

// WithSuffix returns the n-th candidate for a slug that is taken: base itself for n ≤ 1, then
// base-2, base-3…, with base shortened so that the result still fits in 64 characters.
func WithSuffix(base string, n int) string {
	if n <= 1 {
		return trimSlug(base, MaxSlugLen)
	}
	suffix := "-" + strconv.Itoa(n)
	return trimSlug(base, MaxSlugLen-len(suffix)) + suffix
}

// trimSlug cuts s to at most max bytes (slugs are ASCII) and drops hyphens left at the end.
func trimSlug(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.TrimRight(s, "-")
}
