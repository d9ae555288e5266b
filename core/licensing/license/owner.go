package license

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Trust levels of PROTOCOL.md section 5, as devices get them in trust_level and owners see the
// last one of each device.
const (
	TrustNone       = 0
	TrustKeyOnly    = 1
	TrustMTLS       = 2
	TrustSigned     = 3
	TrustMTLSSigned = 4
)

// RequestTrust is the trust level of a signed device request that reached a certificate-bound use
// case (validate, heartbeat): every such request is signed, and mtls says whether a client
// certificate proved its key as well.
func RequestTrust(mtls bool) int {
	if mtls {
		return TrustMTLSSigned
	}
	return TrustSigned
}

// keyMask stands for a hidden group of a masked key.
const keyMask = "•••••"

// MaskKey writes a canonical key as its owner's lists show it: the prefix, the first and the last
// group, the groups between masked (VST-ABCDE-•••••-•••••-WXYZ1). Enough to tell keys apart, not
// enough to use one. Anything that is not a canonical key is masked whole.
func MaskKey(canonical string) string {
	if _, ok := NormalizeKey(canonical); !ok || len(canonical) != 3+keyBodyLen {
		return keyMask
	}
	f := FormatKey(canonical) // PFX-AAAAA-BBBBB-CCCCC-DDDDD
	groups := strings.Split(f, "-")
	for i := 2; i < len(groups)-1; i++ {
		groups[i] = keyMask
	}
	return strings.Join(groups, "-")
}

// OwnerKey is the form an owner is compared in: a valid address (NormalizeEmail), all lower case.
// Signed-in customers are identified by their lower-case verified address, while licenses keep the
// address as it was given (only its domain lower-cased), so comparisons go through this.
func OwnerKey(email string) (string, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	return strings.ToLower(e), nil
}

// OwnedBy reports whether owner (a lower-case address) owns l. A license without an owner e-mail
// belongs to nobody: only admins see it.
func OwnedBy(l LicenseRecord, owner string) bool {
	return owner != "" && l.OwnerEmail != "" && strings.ToLower(l.OwnerEmail) == owner
}

// MaxOwnerDeviceName bounds the name an owner gives a device (devices name themselves in at most 64).
const MaxOwnerDeviceName = 100

// RenameActivation gives a the name its owner chose: trimmed, 1 to 100 characters of valid UTF-8
// without control characters; anything else is VALIDATION_FAILED.
func RenameActivation(a ActivationRecord, name string, now time.Time) (ActivationRecord, error) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxOwnerDeviceName || hasControl(name) {
		return a, errs.Validation("name must be 1 to 100 characters without control characters")
	}
	a.DeviceName = name
	a.UpdatedAt = now
	return a, nil
}

// RevokeByOwner ends an active activation at its owner's request. Unlike a device's own
// deactivation (EndActivation), the seat is freed at once and never held, and no transfer is spent:
// the owner may release a held seat anyway (ReleaseSeat), so holding it would only make them take a
// second step.
func RevokeByOwner(a ActivationRecord, reason string, now time.Time) ActivationRecord {
	a.Status = ActivationRevoked
	a.StatusReason = reason
	end := now
	a.EndedAt = &end
	a.FreedByTransfer = false
	a.SeatHeldUntil = nil
	a.UpdatedAt = now
	return a
}

// Expiry notices.
const (
	// ExpiryWarning is how long before its expiry the owner of a license is warned.
	ExpiryWarning = 7 * 24 * time.Hour
	// ExpiredNoticeWindow bounds how long after its expiry a license's owner is still told it
	// expired: the daily run catches up after an outage, but licenses that expired long before the
	// notices existed (or before an owner e-mail was set) do not all get an e-mail at once.
	ExpiredNoticeWindow = 30 * 24 * time.Hour
)

// ExpiryNotice names an expiry e-mail.
type ExpiryNotice string

const (
	ExpiryNoticeNone     ExpiryNotice = ""
	ExpiryNoticeExpiring ExpiryNotice = "expiring"
	ExpiryNoticeExpired  ExpiryNotice = "expired"
)

// ExpiryNoticeDue is the expiry e-mail l's owner is owed at now, if any. Only a license with an
// owner e-mail and the stored status active gets one (a suspended or revoked license's owner has
// heard about it otherwise). It expires at ExpiresAt (EffectiveLicenseStatus), so:
//   - ExpiresAt in (now - ExpiredNoticeWindow, now] and no ExpiredNoticedAt → expired;
//   - ExpiresAt in (now, now + ExpiryWarning] and no ExpiryWarnedAt → expiring.
//
// A license that expired before it was warned gets only the expired notice. The repository's
// LicenseRepo.ExpiringUnwarned and ExpiredUnnoticed select exactly these.
func ExpiryNoticeDue(l LicenseRecord, now time.Time) ExpiryNotice {
	if l.OwnerEmail == "" || l.Status != LicenseActive || l.ExpiresAt == nil {
		return ExpiryNoticeNone
	}
	exp := *l.ExpiresAt
	if !exp.After(now) {
		if l.ExpiredNoticedAt == nil && exp.After(now.Add(-ExpiredNoticeWindow)) {
			return ExpiryNoticeExpired
		}
		return ExpiryNoticeNone
	}
	if l.ExpiryWarnedAt == nil && !exp.After(now.Add(ExpiryWarning)) {
		return ExpiryNoticeExpiring
	}
	return ExpiryNoticeNone
}

// MarkExpiryNotice records that notice n was sent at now.
func MarkExpiryNotice(l LicenseRecord, n ExpiryNotice, now time.Time) LicenseRecord {
	t := now
	switch n {
	case ExpiryNoticeExpiring:
		l.ExpiryWarnedAt = &t
	case ExpiryNoticeExpired:
		l.ExpiredNoticedAt = &t
	default:
		return l
	}
	l.UpdatedAt = now
	return l
}
