package license

import (
	"fmt"
	"io"
	"strings"
)

// KeyAlphabet is the alphabet of license keys: no I, O, 0, 1 (PROTOCOL.md section 1).
const KeyAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// keyBodyLen is the number of random characters of a key: 20 × 5 bits = 100 bits.
const keyBodyLen = 20

// Key prefixes by product type.
const (
	PrefixPlugin     = "VST"
	PrefixSamplePack = "DIG"
	PrefixOther      = "LIC"
)

// Product types.
const (
	TypePlugin     = "plugin"
	TypeSamplePack = "sample_pack"
	TypeBundle     = "bundle"
)

// PrefixForProductType returns the key prefix for a product type.
func PrefixForProductType(productType string) string {
	switch productType {
	case TypePlugin:
		return PrefixPlugin
	case TypeSamplePack:
		return PrefixSamplePack
	default:
		return PrefixOther
	}
}

func knownPrefix(p string) bool {
	return p == PrefixPlugin || p == PrefixSamplePack || p == PrefixOther
}

// GenerateKey draws a new canonical key (prefix and 20 characters, no dashes) from rand, which must
// be a cryptographic source (crypto/rand.Reader outside tests). Characters are drawn by rejection
// sampling so that each is uniform over the alphabet whatever the alphabet's length.
func GenerateKey(prefix string, rand io.Reader) (string, error) {
	if !knownPrefix(prefix) {
		return "", fmt.Errorf("license: unknown key prefix %q", prefix)
	}
	n := len(KeyAlphabet)
	limit := 256 - 256%n // bytes at or above limit would bias the draw
	var b strings.Builder
	b.Grow(len(prefix) + keyBodyLen)
	b.WriteString(prefix)
	buf := make([]byte, keyBodyLen)
	for count := 0; count < keyBodyLen; {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return "", fmt.Errorf("license: reading randomness: %w", err)
		}
		for _, c := range buf {
			if int(c) >= limit {
				continue
			}
			b.WriteByte(KeyAlphabet[int(c)%n])
			count++
			if count == keyBodyLen {
				break
			}
		}
	}
	return b.String(), nil
}

// NormalizeKey turns what a user typed into the canonical key: trimmed, upper-cased, without spaces
// and dashes. ok is false when the result is not a known prefix followed by 20 characters of the
// alphabet; such a key is simply not found.
func NormalizeKey(input string) (canonical string, ok bool) {
	s := strings.ToUpper(strings.TrimSpace(input))
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == ' ' || r == '-' {
			continue
		}
		if r > 0x7f {
			return "", false
		}
		b.WriteRune(r)
	}
	s = b.String()
	if len(s) != 3+keyBodyLen || !knownPrefix(s[:3]) {
		return "", false
	}
	for i := 3; i < len(s); i++ {
		if strings.IndexByte(KeyAlphabet, s[i]) < 0 {
			return "", false
		}
	}
	return s, true
}

// FormatKey writes a canonical key as PFX-XXXXX-XXXXX-XXXXX-XXXXX. Anything that is not canonical
// is returned unchanged.
func FormatKey(canonical string) string {
	if len(canonical) != 3+keyBodyLen {
		return canonical
	}
	var b strings.Builder
	b.WriteString(canonical[:3])
	for i := 3; i < len(canonical); i += 5 {
		b.WriteByte('-')
		b.WriteString(canonical[i : i+5])
	}
	return b.String()
}
