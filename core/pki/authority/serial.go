package authority

import (
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/samplero/samplero/core/errs"
)

// serialBytes is the amount of randomness in a new serial: 128 bits, twice the 64 that PROTOCOL.md
// section 1 asks for, and well under the 20 octets RFC 5280 allows once DER adds a sign byte.
const serialBytes = 16

// maxSerialHexDigits is RFC 5280's limit of 20 octets, written in hex.
const maxSerialHexDigits = 40

// NewSerial draws a positive, non-zero certificate serial of 128 random bits from rand.
func NewSerial(rand io.Reader) (*big.Int, error) {
	buf := make([]byte, serialBytes)
	// A zero draw has probability 2^-128; seeing it means the source is broken, and a second try
	// tells a fluke from a reader that only produces zeros.
	for range 2 {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, fmt.Errorf("authority: read serial randomness: %w", err)
		}
		n := new(big.Int).SetBytes(buf)
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, fmt.Errorf("authority: random source returned only zeros")
}

// CanonicalSerial writes a serial as PROTOCOL.md section 1 fixes it: upper-case hex of the positive
// integer, no leading zeros (0x0A1B is "A1B"). Because it works on the integer, the 00 byte DER puts
// in front of a serial whose high bit is set never shows. A nil serial is "". Serials are positive;
// a zero or negative one (only a foreign certificate can carry it) is written "0" or with a leading
// "-", forms ParseSerial refuses, so it never matches a certificate on record.
func CanonicalSerial(n *big.Int) string {
	if n == nil {
		return ""
	}
	return strings.ToUpper(n.Text(16))
}

// ParseSerial normalises a serial typed or forwarded by someone else into the canonical form:
// surrounding space trimmed, ':' separators (as OpenSSL prints serials) dropped, leading zeros
// stripped, upper-cased. Anything that is not a positive hex integer of at most 20 octets is
// errs.Invalid VALIDATION_FAILED.
func ParseSerial(s string) (string, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	if s == "" {
		return "", errs.Validation("certificate serial is empty")
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return "", errs.Validation("certificate serial must be hexadecimal")
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "", errs.Validation("certificate serial must be positive")
	}
	if len(s) > maxSerialHexDigits {
		return "", errs.Validation("certificate serial is longer than 20 octets")
	}
	return strings.ToUpper(s), nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
