package license

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// Id prefixes (PROTOCOL.md section 1).
const (
	IDPrefixLicense    = "lic_"
	IDPrefixActivation = "act_"
	IDPrefixClaim      = "clm_"
	IDPrefixProduct    = "prd_"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns prefix followed by 26 lower-case base32 characters of 128 random bits.
func NewID(prefix string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error and always fills b (Go 1.24+).
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
