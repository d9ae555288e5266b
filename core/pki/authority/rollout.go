package authority

import (
	"strconv"
	"time"

	"github.com/samplero/samplero/core/errs"
)

// Codes of the hierarchy's rules.
const (
	CodeIntermediateNotFound = "INTERMEDIATE_NOT_FOUND"
	// CodeIntermediateNotValid: an intermediate outside its validity cannot start issuing.
	CodeIntermediateNotValid = "INTERMEDIATE_NOT_VALID"
	// CodeNoFallback: an active intermediate cannot be rolled back when the one it replaced is gone.
	CodeNoFallback = "NO_FALLBACK_INTERMEDIATE"
)

// Hierarchy is every intermediate of the CA with its state and share, and for each active one the
// intermediate it replaced. It guards what a single state change cannot see: exactly one
// intermediate issues by default (active), canary shares add up to at most 100 %, and a rollback
// always leaves an active intermediate behind.
type Hierarchy struct {
	ints     []Intermediate
	replaces map[string]string
}

// Change is one intermediate's move, as Hierarchy.Change made it.
type Change struct {
	ID       string
	From, To State
	Share    int
	// Replaces is the intermediate this one demoted when it became active ("" otherwise).
	Replaces string
}

// NewHierarchy builds the hierarchy from its intermediates (with their shares) and the replaces
// links of the state file. Ids must be unique.
func NewHierarchy(ints []Intermediate, replaces map[string]string) (*Hierarchy, error) {
	seen := map[string]bool{}
	for _, in := range ints {
		if seen[in.id] {
			return nil, errs.E(errs.Invalid, CodeInvalidIntermediate, "intermediate "+in.id+" is listed twice")
		}
		seen[in.id] = true
	}
	r := map[string]string{}
	for k, v := range replaces {
		if v != "" {
			r[k] = v
		}
	}
	return &Hierarchy{ints: append([]Intermediate(nil), ints...), replaces: r}, nil
}

// Intermediates returns the intermediates in their current states.
func (h *Hierarchy) Intermediates() []Intermediate { return append([]Intermediate(nil), h.ints...) }

// Replaces returns the intermediate id replaced when id became active ("" when none).
func (h *Hierarchy) Replaces(id string) string { return h.replaces[id] }

func (h *Hierarchy) index(id string) int {
	for i := range h.ints {
		if h.ints[i].id == id {
			return i
		}
	}
	return -1
}

// Change moves intermediate id to state to (with share percent when to is canary) at now, and
// returns every move it made, in order. Asking for the state and share it already has returns no
// change and no error, so a retried rollout step is harmless.
//
// Beyond State.CanBecome:
//   - canary needs a share of 1..100, an active intermediate for the other devices, and canary
//     shares adding up to at most 100; a canary's share can be changed by asking for canary again;
//   - canary and active need the intermediate's certificate valid at now;
//   - active demotes the active intermediate to retiring and remembers it as the rollback target;
//   - rolled_back of the active intermediate brings its rollback target (retiring, still valid)
//     back to active in the same change;
//   - the only active intermediate cannot go to retiring by itself: promoting another does that.
//
// On error nothing changes.
func (h *Hierarchy) Change(id string, to State, share int, now time.Time) ([]Change, error) {
	i := h.index(id)
	if i < 0 {
		return nil, errs.E(errs.NotFound, CodeIntermediateNotFound, "no intermediate "+id)
	}
	if _, err := ParseState(string(to)); err != nil {
		return nil, err
	}
	if share < 0 || share > MaxShare {
		return nil, errs.E(errs.Invalid, CodeInvalidShare, "a canary share is a percentage from 1 to 100")
	}
	if to != StateCanary && share != 0 {
		return nil, errs.E(errs.Invalid, CodeInvalidShare, "a share applies to the canary state only")
	}
	in := h.ints[i]
	if to == in.state && (to != StateCanary || share == in.share) {
		return nil, nil
	}
	if to != in.state && !in.state.CanBecome(to) {
		return nil, errs.E(errs.Conflict, CodeIllegalTransition, "intermediate "+id+" cannot move from "+string(in.state)+" to "+string(to))
	}
	if (to == StateCanary || to == StateActive) && !in.ValidAt(now) {
		return nil, errs.E(errs.Conflict, CodeIntermediateNotValid, "intermediate "+id+" is outside its validity ("+
			in.cert.NotBefore.UTC().Format(time.RFC3339)+" to "+in.cert.NotAfter.UTC().Format(time.RFC3339)+")")
	}
	var actives []int
	for j := range h.ints {
		if j != i && h.ints[j].state == StateActive {
			actives = append(actives, j)
		}
	}
	var changes []Change
	switch to {
	case StateCanary:
		if share < 1 {
			return nil, errs.E(errs.Invalid, CodeInvalidShare, "a canary needs a share from 1 to 100 percent")
		}
		if len(actives) == 0 {
			return nil, errs.E(errs.Conflict, CodeNoActiveIntermediate, "a canary needs an active intermediate for the other devices: make one active first")
		}
		total := share
		for j := range h.ints {
			if j != i && h.ints[j].state == StateCanary {
				total += h.ints[j].share
			}
		}
		if total > MaxShare {
			return nil, errs.E(errs.Invalid, CodeInvalidShare, "canary shares would add up to "+strconv.Itoa(total)+" %, more than 100 %")
		}
		changes = append(changes, Change{ID: id, From: in.state, To: to, Share: share})
	case StateActive:
		replaced := ""
		for _, j := range actives {
			if replaced == "" {
				replaced = h.ints[j].id
			}
			changes = append(changes, Change{ID: h.ints[j].id, From: StateActive, To: StateRetiring})
		}
		changes = append(changes, Change{ID: id, From: in.state, To: to, Replaces: replaced})
	case StateRetiring:
		if in.state == StateActive && len(actives) == 0 {
			return nil, errs.E(errs.Conflict, CodeNoActiveIntermediate, "intermediate "+id+" is the only active one: promote its successor to active, which retires it")
		}
		changes = append(changes, Change{ID: id, From: in.state, To: to})
	case StateRolledBack:
		if in.state == StateActive && len(actives) == 0 {
			target := h.replaces[id]
			j := h.index(target)
			if target == "" || j < 0 || h.ints[j].state != StateRetiring || !h.ints[j].ValidAt(now) {
				return nil, errs.E(errs.Conflict, CodeNoFallback, "intermediate "+id+" replaced no intermediate that is still retiring and valid: promote another one instead")
			}
			changes = append(changes, Change{ID: target, From: StateRetiring, To: StateActive, Replaces: h.replaces[target]})
		}
		changes = append(changes, Change{ID: id, From: in.state, To: to})
	default:
		changes = append(changes, Change{ID: id, From: in.state, To: to})
	}
	for _, c := range changes {
		j := h.index(c.ID)
		h.ints[j].state = c.To
		h.ints[j].share = c.Share
		if c.To == StateActive {
			if c.Replaces != "" {
				h.replaces[c.ID] = c.Replaces
			} else {
				delete(h.replaces, c.ID)
			}
		}
	}
	return changes, nil
}
