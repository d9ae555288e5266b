package license

import "time"

// Device statuses of PROTOCOL.md section 5 (besides the license statuses, which win).
const (
	DeviceActive             = "active"
	DeviceGracePeriod        = "grace_period"
	DeviceGracePeriodExpired = "grace_period_expired"

	ActionHeartbeatRequired = "heartbeat_required"
)

// EffectiveLicenseStatus applies the precedence revoked > suspended > expired > active. A license is
// expired from the instant ExpiresAt is reached (ExpiresAt ≤ now): expires_at is the first second it
// no longer works, just as a lease's exp is (nbf ≤ now < exp).
func EffectiveLicenseStatus(l LicenseRecord, now time.Time) LicenseStatus {
	switch l.Status {
	case LicenseRevoked:
		return LicenseRevoked
	case LicenseSuspended:
		return LicenseSuspended
	}
	if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) {
		return LicenseExpired
	}
	return LicenseActive
}

// DeviceStatus is the status a device gets from validate: the license state when it is not active,
// else the grace state from t = now − last heartbeat: t ≤ interval → active; t ≤ grace →
// grace_period (valid, heartbeat required); otherwise grace_period_expired (invalid, heartbeat
// required). Both bounds are inclusive, as PROTOCOL.md section 5 writes them.
func DeviceStatus(l LicenseRecord, a ActivationRecord, p Policy, now time.Time) (status string, valid bool, action string) {
	if st := EffectiveLicenseStatus(l, now); st != LicenseActive {
		return string(st), false, ""
	}
	return graceStatus(a.LastHeartbeatAt, p, now)
}

func graceStatus(last time.Time, p Policy, now time.Time) (string, bool, string) {
	t := now.Sub(last)
	switch {
	case t <= p.HeartbeatInterval:
		return DeviceActive, true, ""
	case t <= p.GracePeriod:
		return DeviceGracePeriod, true, ActionHeartbeatRequired
	default:
		return DeviceGracePeriodExpired, false, ActionHeartbeatRequired
	}
}

// GraceStatus is the grace state alone (ignoring the license), used to tell whether a heartbeat
// recovers a device.
func GraceStatus(a ActivationRecord, p Policy, now time.Time) string {
	st, _, _ := graceStatus(a.LastHeartbeatAt, p, now)
	return st
}

// IsGraceState reports whether status is grace_period or grace_period_expired.
func IsGraceState(status string) bool {
	return status == DeviceGracePeriod || status == DeviceGracePeriodExpired
}

// HeartbeatDue is when the next heartbeat is due: last heartbeat + interval.
func HeartbeatDue(a ActivationRecord, p Policy) time.Time {
	return a.LastHeartbeatAt.Add(p.HeartbeatInterval)
}

// GraceRemaining is the time until the grace period ends, 0 once it has.
func GraceRemaining(a ActivationRecord, p Policy, now time.Time) time.Duration {
	d := a.LastHeartbeatAt.Add(p.GracePeriod).Sub(now)
	if d < 0 {
		return 0
	}
	return d
}

// LeaseExpiry is the exp of a lease issued now: last successful heartbeat + grace, never after the
// license's expiry.
func LeaseExpiry(l LicenseRecord, a ActivationRecord, p Policy) time.Time {
	exp := a.LastHeartbeatAt.Add(p.GracePeriod)
	if l.ExpiresAt != nil && l.ExpiresAt.Before(exp) {
		exp = *l.ExpiresAt
	}
	return exp
}
