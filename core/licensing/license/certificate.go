package license

import "time"

// RenewalOverlap is how long a certificate replaced by a renewal keeps working for validate and
// heartbeat.
const RenewalOverlap = 24 * time.Hour

// renewWindow is how long before expiry a device is told to renew, unless a third of the
// certificate's validity is shorter.
const renewWindow = 30 * 24 * time.Hour

// CertificateAccepted reports whether c may authenticate a request at now. The activation's current
// certificate always may; a certificate replaced by a renewal may only for validate and heartbeat
// (mutating is false) and only while now is before OverlapUntil (the overlap ends exclusively at
// OverlapUntil = replacement + 24 h); a revoked one never may.
func CertificateAccepted(c CertificateRecord, mutating bool, now time.Time) bool {
	switch c.Status {
	case CertificateCurrent:
		return true
	case CertificateReplaced:
		return !mutating && c.OverlapUntil != nil && now.Before(*c.OverlapUntil)
	default:
		return false
	}
}

// ReplaceCertificate marks c as replaced by a renewal at now, with its 24 h overlap.
func ReplaceCertificate(c CertificateRecord, now time.Time) CertificateRecord {
	c.Status = CertificateReplaced
	until := now.Add(RenewalOverlap)
	c.OverlapUntil = &until
	return c
}

// RevokeCertificate revokes c at now. A certificate already revoked keeps its first revocation.
func RevokeCertificate(c CertificateRecord, reason string, now time.Time) CertificateRecord {
	if c.Status == CertificateRevoked {
		return c
	}
	c.Status = CertificateRevoked
	t := now
	c.RevokedAt = &t
	c.RevokeReason = reason
	return c
}

// RenewHint reports whether a device should renew its certificate: it expires within 30 days, or
// within a third of its validity if that is shorter, or its intermediate is being rolled back. The
// window is inclusive: exactly 30 days before notAfter the hint is already on.
func RenewHint(notBefore, notAfter, now time.Time, rollingBack bool) bool {
	if rollingBack {
		return true
	}
	window := renewWindow
	if third := notAfter.Sub(notBefore) / 3; third < window {
		window = third
	}
	return notAfter.Sub(now) <= window
}
