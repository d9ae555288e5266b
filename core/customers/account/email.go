package account

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Address limits of RFC 5321 (section 4.5.3.1): a path holds at most 254 octets, a local part 64,
// a domain 253 and a DNS label 63.
const (
	maxEmailLen  = 254
	maxLocalLen  = 64
	maxDomainLen = 253
	maxLabelLen  = 63
)

// NormalizeEmail returns the address as the customers context stores and compares it: surrounding
// space removed and lower case, so that one mailbox is one account however it is typed. It
// accepts the addresses people actually use (dot-atom local parts, host names with at least two
// labels, international characters) and refuses the rest with errs.Invalid INVALID_EMAIL: quoted
// local parts, IP literals, display names ("Ann <ann@example.com>") and anything that could smuggle
// a second recipient or a header into an e-mail. Whether the mailbox exists is for the sign-in link
// to find out.
func NormalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if e == "" {
		return "", invalidEmail("an e-mail address is required")
	}
	if len(e) > maxEmailLen || !utf8.ValidString(e) {
		return "", invalidEmail("the e-mail address is not valid")
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || strings.Contains(domain, "@") {
		return "", invalidEmail("the e-mail address must contain one @")
	}
	if !validLocal(local) || !validDomain(domain) {
		return "", invalidEmail("the e-mail address is not valid")
	}
	return e, nil
}

func invalidEmail(msg string) error { return errs.E(errs.Invalid, CodeInvalidEmail, msg) }

// forbiddenInAddress are the characters that only quoted local parts, display names or IP
// literals need, and header injection uses.
const forbiddenInAddress = "\"(),:;<>[\\]`"

func validLocal(local string) bool {
	if local == "" || len(local) > maxLocalLen {
		return false
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for _, r := range local {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || strings.ContainsRune(forbiddenInAddress, r) {
			return false
		}
	}
	return true
}

func validDomain(domain string) bool {
	if domain == "" || len(domain) > maxDomainLen {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false // "localhost" and other single labels never receive mail from the Internet
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelLen || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if r < utf8.RuneSelf {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
					return false
				}
			} else if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) {
				return false // an internationalised label, before its punycode form
			}
		}
	}
	tld := labels[len(labels)-1]
	return strings.TrimFunc(tld, func(r rune) bool { return r >= '0' && r <= '9' }) != "" // not an IPv4 address
}
