package license

import (
	"time"

	"github.com/samplero/samplero/core/errs"
)

// License status actions of the admin API.
const (
	ActionRevoke    = "revoke"
	ActionSuspend   = "suspend"
	ActionReinstate = "reinstate"
)

// ChangeStatus applies an admin action to a license's stored status:
//   - revoke: active or suspended → revoked (a refund or dispute must win over a suspension);
//   - suspend: active → suspended; a revoked license is not suspended (CONFLICT): revocation is the
//     stronger state and quietly downgrading it would be surprising; reinstate it first;
//   - reinstate: suspended or revoked → active (PROTOCOL.md section 5: reinstating restores the
//     devices; a revocation by mistake or a won dispute must be undoable).
//
// Repeating the action a license is already in changes nothing (changed=false) so that retries
// are harmless; the reason is then kept as first given. Any other action is VALIDATION_FAILED.
func ChangeStatus(l LicenseRecord, action, reason string, now time.Time) (LicenseRecord, bool, error) {
	var to LicenseStatus
	switch action {
	case ActionRevoke:
		to = LicenseRevoked
	case ActionSuspend:
		if l.Status == LicenseRevoked {
			return l, false, errs.E(errs.Conflict, errs.CodeConflict, "a revoked license cannot be suspended; reinstate it first")
		}
		to = LicenseSuspended
	case ActionReinstate:
		to = LicenseActive
	default:
		return l, false, errs.Validation("action must be revoke, suspend or reinstate")
	}
	if l.Status == to {
		return l, false, nil
	}
	l.Status = to
	l.StatusReason = reason
	if to == LicenseActive {
		l.StatusReason = ""
	}
	l.UpdatedAt = now
	return l, true, nil
}
