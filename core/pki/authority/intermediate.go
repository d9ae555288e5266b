package authority

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
)

// State is where an intermediate is in its life cycle (PROTOCOL.md section 10). Persisted as its
// string.
type State string

const (
	// StateStaged: created and published in ca_chain, not yet issuing, so devices and proxies learn it
	// before the first certificate it signs arrives.
	StateStaged State = "staged"
	// StateCanary: issues a configured share of new device certificates.
	StateCanary State = "canary"
	// StateActive: issues every new device certificate not sent to a canary.
	StateActive State = "active"
	// StateRetiring: issues nothing; trusted until its last certificate expires.
	StateRetiring State = "retiring"
	// StateRetired: trusted no more, never used again.
	StateRetired State = "retired"
	// StateRolledBack: issues nothing and asks its devices to renew (heartbeat renew_certificate);
	// trusted until its certificates are replaced or expire, so devices keep working meanwhile.
	StateRolledBack State = "rolled_back"
)

// Codes of this aggregate.
const (
	CodeInvalidIntermediate  = "INVALID_INTERMEDIATE"
	CodeIllegalTransition    = "ILLEGAL_INTERMEDIATE_TRANSITION"
	CodeNoActiveIntermediate = "NO_ACTIVE_INTERMEDIATE"
	CodeInvalidShare         = "INVALID_SHARE"
)

// MaxShare is the whole of new device certificates: shares are percentages.
const MaxShare = 100

// transitions lists the moves a rollout may make. A rollback can happen from canary and after a
// promotion (active); the intermediate it replaced goes back from retiring to active.
var transitions = map[State][]State{
	StateStaged:     {StateCanary, StateActive, StateRetired},
	StateCanary:     {StateActive, StateRolledBack},
	StateActive:     {StateRetiring, StateRolledBack},
	StateRetiring:   {StateActive, StateRetired},
	StateRolledBack: {StateRetired},
	StateRetired:    nil,
}

// ParseState reads a persisted state.
func ParseState(s string) (State, error) {
	st := State(s)
	if _, ok := transitions[st]; !ok {
		return "", errs.E(errs.Invalid, CodeInvalidIntermediate, "unknown intermediate state")
	}
	return st, nil
}

// Trusted reports whether certificates of an intermediate in this state are accepted and the
// intermediate is listed in ca_chain: every state but retired.
func (s State) Trusted() bool { return s != StateRetired && s != "" }

// Issues reports whether an intermediate in this state may sign new device certificates.
func (s State) Issues() bool { return s == StateActive || s == StateCanary }

// CanBecome reports whether a rollout may move an intermediate from s to to.
func (s State) CanBecome(to State) bool {
	for _, t := range transitions[s] {
		if t == to {
			return true
		}
	}
	return false
}

// Intermediate is one intermediate CA of the hierarchy: its certificate and state. The key is not
// here; it stays in the CA key store.
type Intermediate struct {
	id    string
	cert  *x509.Certificate
	state State
	share int
}

// NewIntermediate checks and builds an intermediate: a non-empty id, a CA certificate that may sign
// certificates, and a known state. It is also how a stored intermediate is read back.
func NewIntermediate(id string, cert *x509.Certificate, state string) (Intermediate, error) {
	if id == "" {
		return Intermediate{}, errs.E(errs.Invalid, CodeInvalidIntermediate, "intermediate id is empty")
	}
	if cert == nil || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return Intermediate{}, errs.E(errs.Invalid, CodeInvalidIntermediate, "intermediate certificate is not a signing CA")
	}
	st, err := ParseState(state)
	if err != nil {
		return Intermediate{}, err
	}
	return Intermediate{id: id, cert: cert, state: st}, nil
}

func (i Intermediate) ID() string                     { return i.id }
func (i Intermediate) Certificate() *x509.Certificate { return i.cert }
func (i Intermediate) State() State                   { return i.state }

// Share is the percentage of new device certificates a canary intermediate signs; 0 in any other
// state.
func (i Intermediate) Share() int {
	if i.state != StateCanary {
		return 0
	}
	return i.share
}

// WithShare returns the intermediate with a canary share of share percent (0 to 100). The share
// counts only while the intermediate is a canary.
func (i Intermediate) WithShare(share int) (Intermediate, error) {
	if share < 0 || share > MaxShare {
		return Intermediate{}, errs.E(errs.Invalid, CodeInvalidShare, "a canary share is a percentage from 0 to 100")
	}
	i.share = share
	return i, nil
}

// ChainOrder ranks a state in ca_chain: the intermediates that issue first, the ones being phased
// in next, the ones on their way out last. Ties are broken by id wherever a chain is written, so
// that every writer of the same hierarchy writes the same bytes.
func ChainOrder(s State) int {
	switch s {
	case StateActive:
		return 0
	case StateCanary:
		return 1
	case StateStaged:
		return 2
	case StateRetiring:
		return 3
	default:
		return 4
	}
}

// ValidAt reports whether the intermediate's own certificate is within its validity at t.
func (i Intermediate) ValidAt(t time.Time) bool {
	return !t.Before(i.cert.NotBefore) && !t.After(i.cert.NotAfter)
}

// Transition moves the intermediate to state to, or fails with errs.Conflict
// ILLEGAL_INTERMEDIATE_TRANSITION and leaves it unchanged.
func (i *Intermediate) Transition(to State) error {
	if !i.state.CanBecome(to) {
		return errs.E(errs.Conflict, CodeIllegalTransition, "intermediate cannot move from "+string(i.state)+" to "+string(to))
	}
	i.state = to
	return nil
}

// IntermediateID derives a stable id for an intermediate certificate: "int_" and the first 8 bytes
// of SHA-256 over its SubjectPublicKeyInfo, in hex. Key stores that have no id of their own use it,
// so the IssuerID recorded with a device certificate survives a re-issue of the intermediate
// certificate for the same key.
func IntermediateID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "int_" + hex.EncodeToString(sum[:8])
}

// SelectIssuer picks the intermediate that signs the next device certificate of activationID.
//
// Each canary intermediate with a share takes the activations whose bucket falls inside its share:
// the bucket is SHA-256 over the canary's id and the activation id, reduced to 0..9999, and the
// canary takes it when it is below share*100 (scaled up for a second canary by what the first left
// over, so that each gets its own share of all activations). The bucket depends on nothing else, so one
// activation lands on the same intermediate at every renewal for as long as the rollout lasts,
// and each rollout (each canary id) picks a different set of activations rather than sending the
// same unlucky devices to every canary. Canaries are tried in id order; every other activation
// goes to the one active intermediate.
//
// Zero active intermediates is errs.Unavailable NO_ACTIVE_INTERMEDIATE (a canary alone never
// issues: the rest of the devices would have nowhere to go); more than one is a broken hierarchy
// (internal).
func SelectIssuer(candidates []Intermediate, activationID string) (Intermediate, error) {
	var active []Intermediate
	var canaries []Intermediate
	for _, c := range candidates {
		switch {
		case c.state == StateActive:
			active = append(active, c)
		case c.state == StateCanary && c.share > 0:
			canaries = append(canaries, c)
		}
	}
	switch len(active) {
	case 1:
	case 0:
		return Intermediate{}, errs.E(errs.Unavailable, CodeNoActiveIntermediate, "no intermediate CA is active")
	default:
		return Intermediate{}, errs.Internalf("authority: %d intermediates are active, want exactly one", len(active))
	}
	slices.SortFunc(canaries, func(a, b Intermediate) int { return strings.Compare(a.id, b.id) })
	// Each canary draws from what the canaries before it left: taking share/remaining of the
	// activations that reach it gives it exactly share of all of them.
	remaining := uint64(MaxShare)
	for _, c := range canaries {
		if remaining == 0 {
			break
		}
		if canaryBucket(c.id, activationID)*remaining < uint64(c.share)*100*MaxShare {
			return c, nil
		}
		remaining -= min(uint64(c.share), remaining)
	}
	return active[0], nil
}

// canaryBucket maps (canary, activation) to 0..9999. The modulo bias of 2^64 mod 10000 is far
// below anything a share could notice.
func canaryBucket(canaryID, activationID string) uint64 {
	h := sha256.New()
	h.Write([]byte("samplero canary\x00"))
	h.Write([]byte(canaryID))
	h.Write([]byte{0})
	h.Write([]byte(activationID))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8]) % 10000
}
