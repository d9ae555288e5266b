package license

import "time"

// ClaimTTL is how long a first-activation claim stays open.
const ClaimTTL = 15 * time.Minute

// ClaimStatusAt is the claim's status at now: a pending claim is expired from its ExpiresAt on
// (ExpiresAt ≤ now), matching ClaimRepo.OpenByLicense, which returns claims whose ExpiresAt is after now.
func ClaimStatusAt(c ClaimRecord, now time.Time) ClaimStatus {
	if c.Status == ClaimPending && !now.Before(c.ExpiresAt) {
		return ClaimExpired
	}
	return c.Status
}
