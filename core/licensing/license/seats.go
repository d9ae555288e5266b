package license

import "time"

// TransferWindow is the window over which transfers_per_30d counts.
const TransferWindow = 30 * 24 * time.Hour

// HoldsSeat reports whether a holds a seat at now: it is active, or it ended past the transfer
// limit and its hold (the exp of its last lease) is still after now.
func HoldsSeat(a ActivationRecord, now time.Time) bool {
	if a.Status == ActivationActive {
		return true
	}
	return a.SeatHeldUntil != nil && a.SeatHeldUntil.After(now)
}

// SeatsUsed counts the seats held at now by holders (which may include activations that no longer
// hold one; they are not counted).
func SeatsUsed(holders []ActivationRecord, now time.Time) int {
	n := 0
	for _, a := range holders {
		if HoldsSeat(a, now) {
			n++
		}
	}
	return n
}

// TransferWindowStart is the "since" for counting the transfers that still count at now: a transfer
// whose EndedAt is after it counts, so one made exactly 30 days ago no longer does.
func TransferWindowStart(now time.Time) time.Time { return now.Add(-TransferWindow) }

// EndActivation ends an active activation (deactivated, superseded or revoked) at now and applies
// the seat rules of PROTOCOL.md section 5. transfersUsed is the number of transfers of the license in
// the last 30 days. While it is below the policy's transfers_per_30d the seat is freed at once and
// the ending spends a transfer (FreedByTransfer). Past the limit the seat stays held until the exp of
// the last lease issued to the activation, so that a copied lease cannot multiply seats; when that
// exp is not after now (no lease can still be valid) the seat is freed at once without spending a
// transfer. The returned seatReleasedAt is when the seat stops counting.
func EndActivation(a ActivationRecord, to ActivationStatus, reason string, transfersUsed int, p Policy, now time.Time) (ended ActivationRecord, seatReleasedAt time.Time) {
	a.Status = to
	a.StatusReason = reason
	end := now
	a.EndedAt = &end
	a.UpdatedAt = now
	a.FreedByTransfer = false
	a.SeatHeldUntil = nil
	switch {
	case transfersUsed < p.TransfersPer30d:
		a.FreedByTransfer = true
		return a, now
	case a.LastLeaseExp != nil && a.LastLeaseExp.After(now):
		held := *a.LastLeaseExp
		a.SeatHeldUntil = &held
		return a, held
	default:
		return a, now
	}
}

// ReleaseSeat ends the hold on an ended activation's seat at now. changed is false when it held
// none (it is active, or its seat was already free).
func ReleaseSeat(a ActivationRecord, now time.Time) (ActivationRecord, bool) {
	if a.Status == ActivationActive || a.SeatHeldUntil == nil || !a.SeatHeldUntil.After(now) {
		return a, false
	}
	t := now
	a.SeatHeldUntil = &t
	a.UpdatedAt = now
	return a, true
}
