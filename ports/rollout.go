package ports

import (
	"context"
	"crypto"
	"time"
)

// This file holds what the CA rollout workflow (workflows/carollout) needs besides ports.PKI: the
// health figures of an intermediate during its canary, recorded by the serve processes in the
// database so that the worker (another process) can read them, the self-test of a new
// intermediate over mutual TLS, and the expiry of an intermediate's last certificate.

// Rollout event kinds, as stored (persisted strings: never rename).
const (
	// RolloutEventIssueError: issuing a device certificate from the intermediate failed.
	RolloutEventIssueError = "issue_error"
	// RolloutEventValidationFailure: a device certificate from the intermediate was refused
	// (a forwarded certificate that did not verify, a self-test handshake the server refused).
	RolloutEventValidationFailure = "validation_failure"
	// RolloutEventChainCheck: the published chain and client-CA pool were checked for the
	// intermediate and were right.
	RolloutEventChainCheck = "chain_check"
	// RolloutEventChainFailure: that check found the chain or the pool wrong.
	RolloutEventChainFailure = "chain_failure"
)

// RolloutEvent is one health event of an intermediate.
type RolloutEvent struct {
	IntermediateID string
	Kind           string // one of the RolloutEvent* constants
	At             time.Time
	// Detail is for operators (an error code, a serial); never a secret or a client's input.
	Detail string
}

// RolloutFigures are an intermediate's health figures since a moment.
type RolloutFigures struct {
	// Issued counts device certificates the intermediate issued (the certificates table).
	Issued             int `json:"issued"`
	IssuanceErrors     int `json:"issuance_errors"`
	ValidationFailures int `json:"validation_failures"`
	ChainChecks        int `json:"chain_checks"`
	ChainFailures      int `json:"chain_failures"`
}

// RolloutEventRepo stores rollout events and answers the figures. Safe for concurrent use by
// several processes; errors are errs.Unavailable when the database cannot be reached.
type RolloutEventRepo interface {
	// Record appends one event. Events are facts: recording one twice counts it twice, so callers
	// record once per occurrence (a retried activity may add one more chain check; that is fine
	// for a figure compared with a threshold of failures, not of checks).
	Record(ctx context.Context, ev RolloutEvent) error
	// Figures counts intermediateID's events and issued certificates at or after since.
	Figures(ctx context.Context, intermediateID string, since time.Time) (RolloutFigures, error)
	// LastCertificateExpiry is the latest notAfter of the device certificates intermediateID issued
	// (revoked or replaced ones included: they were handed out); ok is false when it issued none.
	LastCertificateExpiry(ctx context.Context, intermediateID string) (t time.Time, ok bool, err error)
}

// ProbeCertificateIssuer issues the self-test certificate of a rollout: a device certificate
// from one named intermediate (whatever the shares say) for a throwaway key. It is not recorded
// as a device's certificate.
type ProbeCertificateIssuer interface {
	// IssueProbeCertificate signs a short-lived device certificate for pub from intermediateID,
	// which must be trusted and issuing (canary or active): errs.Conflict otherwise, errs.NotFound
	// for an unknown id.
	IssueProbeCertificate(ctx context.Context, intermediateID string, pub crypto.PublicKey) (IssuedCertificate, error)
	// CheckChain checks that the published chain (CAChainPEM) and the client-CA pool hold
	// intermediateID and that it verifies to the root. Nil when right; errs.Conflict
	// CHAIN_CHECK_FAILED with the reason when not.
	CheckChain(ctx context.Context, intermediateID string) error
}

// MTLSProbeResult is the outcome of one handshake against the device listener.
type MTLSProbeResult struct {
	// Accepted is true when the server completed the handshake with the client certificate and
	// answered a request over it.
	Accepted bool
	// Detail says what happened (the HTTP status, or why the server refused), for operators.
	Detail string
}

// MTLSProbe completes a real mutual-TLS handshake with the device listener.
type MTLSProbe interface {
	// Probe presents leaf (DER; the intermediate is not sent, as devices do not send it either)
	// with key and reports whether the server accepted it. A refusal by the server is a result,
	// not an error; the error is for a probe that could not run (listener unreachable).
	Probe(ctx context.Context, leafDER []byte, key crypto.Signer) (MTLSProbeResult, error)
}
