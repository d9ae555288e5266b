package account

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Password length policy, in characters. The upper bound keeps the hashing cost of a request
// bounded and is far beyond any passphrase a person types or a manager generates.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// CheckPassword applies the password policy: valid UTF-8 without control characters, at least
// MinPasswordLen and at most MaxPasswordLen characters. Nothing else is imposed (no composition
// rules, which push people towards predictable patterns); spaces count and are kept.
func CheckPassword(p string) error {
	if !utf8.ValidString(p) {
		return errs.E(errs.Invalid, CodePasswordInvalid, "the password is not valid text")
	}
	n := utf8.RuneCountInString(p)
	if n < MinPasswordLen {
		return errs.E(errs.Invalid, CodePasswordTooShort, fmt.Sprintf("the password must have at least %d characters", MinPasswordLen))
	}
	if n > MaxPasswordLen {
		return errs.E(errs.Invalid, CodePasswordTooLong, fmt.Sprintf("the password must have at most %d characters", MaxPasswordLen))
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return errs.E(errs.Invalid, CodePasswordInvalid, "the password must not contain control characters")
		}
	}
	return nil
}

// PasswordParams are the argon2id cost parameters (RFC 9106).
type PasswordParams struct {
	MemoryKiB   uint32 // m: memory in KiB
	Iterations  uint32 // t: passes over the memory
	Parallelism uint8  // p: lanes
}

// DefaultPasswordParams are the production costs: 64 MiB, 3 passes, 2 lanes (RFC 9106's second
// recommended option, adapted to two lanes for small servers).
var DefaultPasswordParams = PasswordParams{MemoryKiB: 64 * 1024, Iterations: 3, Parallelism: 2}

// WithDefaults fills each zero field from DefaultPasswordParams.
func (p PasswordParams) WithDefaults() PasswordParams {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultPasswordParams.MemoryKiB
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultPasswordParams.Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultPasswordParams.Parallelism
	}
	return p
}

// Bounds on parameters read back from a stored hash: argon2 needs at least 8 KiB per lane, and a
// corrupted row must not make one sign-in allocate gigabytes or spin for minutes.
const (
	maxMemoryKiB  = 1 << 20 // 1 GiB
	maxIterations = 64
)

// Validate reports parameters argon2id cannot run or this server refuses to run.
func (p PasswordParams) Validate() error {
	switch {
	case p.Parallelism == 0:
		return errs.Internalf("account: argon2id parallelism must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Parallelism):
		return errs.Internalf("account: argon2id memory %d KiB is below 8 KiB per lane", p.MemoryKiB)
	case p.MemoryKiB > maxMemoryKiB:
		return errs.Internalf("account: argon2id memory %d KiB is above %d KiB", p.MemoryKiB, maxMemoryKiB)
	case p.Iterations == 0 || p.Iterations > maxIterations:
		return errs.Internalf("account: argon2id iterations %d outside 1..%d", p.Iterations, maxIterations)
	}
	return nil
}

// Salt and key sizes of new hashes (RFC 9106 section 4: 128-bit salt, 256-bit tag).
const (
	SaltLen = 16
	KeyLen  = 32
)

// argon2Version is the only argon2 version written and accepted (0x13).
const argon2Version = 19

// PasswordHash is a parsed argon2id PHC string.
type PasswordHash struct {
	Params PasswordParams
	Salt   []byte
	Key    []byte
}

var phcB64 = base64.RawStdEncoding // the PHC string format's B64: standard alphabet, no padding

// String formats the hash as a PHC string: $argon2id$v=19$m=65536,t=3,p=2$<salt>$<key>.
func (h PasswordHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2Version,
		h.Params.MemoryKiB, h.Params.Iterations, h.Params.Parallelism,
		phcB64.EncodeToString(h.Salt), phcB64.EncodeToString(h.Key))
}

// NeedsRehash reports whether a hash was made with other costs than want (or another key size),
// so that a successful sign-in can store a fresh hash with the current costs.
func (h PasswordHash) NeedsRehash(want PasswordParams) bool {
	return h.Params != want || len(h.Key) != KeyLen || len(h.Salt) < SaltLen
}

// ParsePasswordHash parses a PHC string written by String. Anything else (another algorithm or
// version, parameters out of bounds, bad encoding) is an internal error: stored hashes are only
// ever written by this package, so a bad one is corruption, never a customer's mistake.
func ParsePasswordHash(s string) (PasswordHash, error) {
	bad := func(why string) (PasswordHash, error) {
		return PasswordHash{}, errs.Internalf("account: stored password hash %s", why)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return bad("is not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2Version) {
		return bad("has an unsupported version")
	}
	var h PasswordHash
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("has malformed parameters")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return bad("has malformed parameters")
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil || (len(v) > 1 && v[0] == '0') {
			return bad("has malformed parameters")
		}
		switch name {
		case "m":
			h.Params.MemoryKiB = uint32(n)
		case "t":
			h.Params.Iterations = uint32(n)
		default:
			h.Params.Parallelism = uint8(n)
		}
	}
	if err := h.Params.Validate(); err != nil {
		return PasswordHash{}, err
	}
	var err error
	if h.Salt, err = phcB64.Strict().DecodeString(parts[4]); err != nil || len(h.Salt) < 8 || len(h.Salt) > 64 {
		return bad("has a malformed salt")
	}
	if h.Key, err = phcB64.Strict().DecodeString(parts[5]); err != nil || len(h.Key) < 16 || len(h.Key) > 64 {
		return bad("has a malformed key")
	}
	return h, nil
}
