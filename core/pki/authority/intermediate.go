package authority

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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
)

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
// Today that is the one active intermediate. The CA rollout adds canary selection here: a canary
// intermediate will take the activations whose hash of activationID falls inside its share, so
// that one activation keeps landing on the same intermediate across renewals. Zero active
// intermediates is errs.Unavailable NO_ACTIVE_INTERMEDIATE; more than one is a broken hierarchy
// (internal).
func SelectIssuer(candidates []Intermediate, activationID string) (Intermediate, error) {
	var active []Intermediate
	for _, c := range candidates {
		if c.state == StateActive {
			active = append(active, c)
		}
	}
	switch len(active) {
	case 1:
		return active[0], nil
	case 0:
		return Intermediate{}, errs.E(errs.Unavailable, CodeNoActiveIntermediate, "no intermediate CA is active")
	default:
		return Intermediate{}, errs.Internalf("authority: %d intermediates are active, want exactly one", len(active))
	}
}
