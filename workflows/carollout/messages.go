// Package carollout is the canary rollout of a new intermediate CA as a Temporal workflow
// (workflow ID carollout/<intermediate id>, task queue "samplero").
//
// Rollout runs: staged → canary (SetState with the share) → SelfTest (a certificate from the new
// intermediate for a throwaway key, presented in a real mutual-TLS handshake to the device
// listener) → health checks every CheckEvery during the soak (issuance errors, validation failures
// of its certificates, chain checks, read from the events the serve processes record in the
// database) → promote on the approve signal, or automatically after the soak when AutoPromote and
// healthy → the new intermediate active, the previous one retiring. The abort signal, a failed
// self-test or a check over a threshold rolls it back instead (rolled_back: issuance returns to
// the previous intermediate, the canary's certificates stay trusted and their devices are told to
// renew on heartbeat). Either way the workflow then waits, on a durable timer, until the last
// certificate of the intermediate on its way out (the previous one after a promotion, the new one
// after a rollback) has expired, and retires it. An abort after the promotion (during that wait)
// rolls the new intermediate back, which brings the previous one back to active.
//
// Queries: "state" (a State) and "figures" (the last ports.RolloutFigures).
//
// # Changing this workflow
//
// The registered names below are part of every recorded history and never change. The recorded
// histories in testdata/ must keep replaying (replay_test.go); a change to the commands the
// workflow issues goes behind workflow.GetVersion (change IDs in workflow.go), and new histories
// are recorded next to the old ones with
// SAMPLERO_RECORD_HISTORIES=1 go test -run TestRealServer ./workflows/carollout/.
package carollout

import (
	"time"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
)

// The registered names are part of every recorded history: never change them.
const (
	// TaskQueue is the queue every Samplero worker polls.
	TaskQueue = emaildelivery.TaskQueue

	WorkflowName = "carollout.Rollout"

	SetStateActivityName       = "carollout.SetState"
	SelfTestActivityName       = "carollout.SelfTest"
	CheckHealthActivityName    = "carollout.CheckHealth"
	LastCertExpiryActivityName = "carollout.LastCertificateExpiry"

	// StateQuery answers a State; FiguresQuery the last ports.RolloutFigures.
	StateQuery   = "state"
	FiguresQuery = "figures"
	// ApproveSignal promotes a canary (payload ApproveSignalPayload, optional); AbortSignal rolls
	// the new intermediate back (payload AbortSignalPayload, optional).
	ApproveSignal = "approve"
	AbortSignal   = "abort"
)

// Defaults of Input.
const (
	DefaultSharePercent = 5
	DefaultCheckEvery   = time.Minute
)

// WorkflowID is the deterministic ID of the rollout of intermediate id.
func WorkflowID(intermediateID string) string { return "carollout/" + intermediateID }

// Phases of a rollout, as the state query reports them.
const (
	PhaseStaged     = "staged"
	PhaseCanary     = "canary"
	PhasePromoted   = "promoted"    // the new intermediate is active; waiting to retire the previous one
	PhaseRolledBack = "rolled_back" // waiting to retire the rolled-back intermediate
	PhaseDone       = "done"
)

// Outcomes of a rollout.
const (
	OutcomePromoted   = "promoted"
	OutcomeRolledBack = "rolled_back"
)

// Input is the workflow's one input.
type Input struct {
	IntermediateID string `json:"intermediate_id"`
	// PreviousID is the intermediate active when the rollout starts: the one retired after a
	// promotion.
	PreviousID   string        `json:"previous_id"`
	SharePercent int           `json:"share_percent"` // 1..100; 0: 5
	Soak         time.Duration `json:"soak"`
	CheckEvery   time.Duration `json:"check_every"` // 0: a minute
	// The thresholds: a check that finds more than this many events since the canary began rolls
	// back.
	MaxIssuanceErrors     int  `json:"max_issuance_errors"`
	MaxValidationFailures int  `json:"max_validation_failures"`
	MaxChainFailures      int  `json:"max_chain_failures"`
	AutoPromote           bool `json:"auto_promote"`
}

// Result is the workflow's one result.
type Result struct {
	Outcome string `json:"outcome"` // promoted | rolled_back
	Reason  string `json:"reason,omitempty"`
	// Retired is the intermediate the final timer retired.
	Retired string               `json:"retired,omitempty"`
	Figures ports.RolloutFigures `json:"figures"`
}

// State answers the "state" query.
type State struct {
	Phase          string    `json:"phase"`
	IntermediateID string    `json:"intermediate_id"`
	PreviousID     string    `json:"previous_id"`
	Share          int       `json:"share"`
	CanaryStarted  time.Time `json:"canary_started,omitzero"`
	SoakUntil      time.Time `json:"soak_until,omitzero"`
	Checks         int       `json:"checks"`
	SelfTest       string    `json:"self_test,omitempty"`
	Outcome        string    `json:"outcome,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	// RetireAt is when the intermediate on its way out will be retired (its last certificate's
	// expiry); zero before the decision.
	RetireAt time.Time `json:"retire_at,omitzero"`
	Retired  string    `json:"retired,omitempty"`
}

// AbortSignalPayload is the payload of the abort signal (optional; a bare signal is fine).
type AbortSignalPayload struct {
	Reason string `json:"reason,omitempty"`
}

// ApproveSignalPayload is the payload of the approve signal (optional).
type ApproveSignalPayload struct {
	By string `json:"by,omitempty"`
}

// SetStateInput asks for a state change of one intermediate.
type SetStateInput struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Share int    `json:"share,omitempty"`
	Note  string `json:"note,omitempty"`
}

// SelfTestInput names the intermediate to self-test.
type SelfTestInput struct {
	IntermediateID string `json:"intermediate_id"`
}

// SelfTestResult is the self-test's outcome: not passing is a result, not an error.
type SelfTestResult struct {
	Passed bool   `json:"passed"`
	Serial string `json:"serial,omitempty"`
	Detail string `json:"detail"`
}

// CheckHealthInput asks for a health check of the intermediate since the canary began.
type CheckHealthInput struct {
	IntermediateID string    `json:"intermediate_id"`
	Since          time.Time `json:"since"`
}

// CheckHealthResult is a health check's figures and the chain check's outcome.
type CheckHealthResult struct {
	Figures     ports.RolloutFigures `json:"figures"`
	ChainOK     bool                 `json:"chain_ok"`
	ChainDetail string               `json:"chain_detail,omitempty"`
}

// LastCertExpiryInput names the intermediate whose last certificate's expiry is asked for.
type LastCertExpiryInput struct {
	IntermediateID string `json:"intermediate_id"`
}

// LastCertExpiryResult is the latest notAfter of its certificates; zero when it issued none.
type LastCertExpiryResult struct {
	NotAfter time.Time `json:"not_after,omitzero"`
}
