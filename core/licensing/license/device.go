package license

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Platforms a device may name.
const (
	PlatformMac   = "mac"
	PlatformWin   = "win"
	PlatformLinux = "linux"
)

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// ValidateFingerprint: 8 to 256 printable ASCII characters.
func ValidateFingerprint(fp string) error {
	if len(fp) < 8 || len(fp) > 256 || !printableASCII(fp) {
		return errs.Validation("device_fingerprint must be 8 to 256 printable ASCII characters")
	}
	return nil
}

// ValidateDeviceName: empty (absent), or 1 to 64 code points of valid UTF-8 without control characters.
func ValidateDeviceName(name string) error {
	if name == "" {
		return nil
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64 || hasControl(name) {
		return errs.Validation("device_name must be 1 to 64 characters without control characters")
	}
	return nil
}

// ValidatePlatform: mac, win or linux.
func ValidatePlatform(p string) error {
	switch p {
	case PlatformMac, PlatformWin, PlatformLinux:
		return nil
	}
	return errs.Validation("platform must be mac, win or linux")
}

// ValidatePluginVersion: 1 to 64 printable ASCII characters.
func ValidatePluginVersion(v string) error {
	if v == "" || len(v) > 64 || !printableASCII(v) {
		return errs.Validation("plugin_version must be 1 to 64 printable ASCII characters")
	}
	return nil
}

// DeviceInput is what a device says about itself on activate.
type DeviceInput struct {
	Fingerprint   string
	DeviceName    string
	Platform      string
	PluginVersion string
}

// ValidateDevice applies every device input rule, fingerprint first.
func ValidateDevice(d DeviceInput) error {
	if err := ValidateFingerprint(d.Fingerprint); err != nil {
		return err
	}
	if err := ValidatePlatform(d.Platform); err != nil {
		return err
	}
	if err := ValidatePluginVersion(d.PluginVersion); err != nil {
		return err
	}
	return ValidateDeviceName(d.DeviceName)
}

// NormalizeEmail checks an owner e-mail address: a bare addr-spec (no display name) of at most 254
// characters. It returns the trimmed address with its domain lower-cased.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 254 || !printableASCII(s) {
		return "", errs.Validation("owner_email is not a valid e-mail address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", errs.Validation("owner_email is not a valid e-mail address")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || !strings.Contains(s[at+1:], ".") {
		return "", errs.Validation("owner_email is not a valid e-mail address")
	}
	return s[:at] + "@" + strings.ToLower(s[at+1:]), nil
}
