package carollout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// codeNotIssuing is core/pki.CodeNotIssuing (workflows do not import core services).
const codeNotIssuing = "INTERMEDIATE_NOT_ISSUING"

// Activities are the thin calls of the rollout to its ports.
type Activities struct {
	PKI    ports.PKI
	Probe  ports.ProbeCertificateIssuer
	MTLS   ports.MTLSProbe
	Events ports.RolloutEventRepo
}

// SetState asks the PKI for a state change. Idempotent: the PKI changes nothing when the
// intermediate already has the state (and share).
func (a *Activities) SetState(ctx context.Context, in SetStateInput) error {
	res, err := a.PKI.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: in.ID, State: in.State, Share: in.Share})
	if err != nil {
		return classify(err)
	}
	for _, c := range res.Changes {
		activity.GetLogger(ctx).Info("intermediate state changed", "id", c.ID, "from", c.From, "to", c.To, "share", c.Share, "why", in.Note)
	}
	return nil
}

// SelfTest issues a certificate from the new intermediate for a key made here and thrown away
// (never in a payload), presents it in a mutual-TLS handshake to the device listener and reports
// whether the server accepted it. The chain check runs first: a chain that does not list the
// intermediate would make the handshake fail for a reason the operator should read plainly.
// A refusal is recorded as a validation failure and returned as a failed result, not an error.
func (a *Activities) SelfTest(ctx context.Context, in SelfTestInput) (SelfTestResult, error) {
	if err := a.Probe.CheckChain(ctx, in.IntermediateID); err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return SelfTestResult{}, temporal.NewApplicationErrorWithCause(messageOf(err), errs.CodeOf(err), err)
		}
		if errs.KindOf(err) == errs.Conflict {
			a.record(ctx, in.IntermediateID, ports.RolloutEventChainFailure, errs.CodeOf(err))
			return SelfTestResult{Detail: messageOf(err)}, nil
		}
		return SelfTestResult{}, classify(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return SelfTestResult{}, classify(errs.Internalf("carollout: self-test key: %w", err))
	}
	cert, err := a.Probe.IssueProbeCertificate(ctx, in.IntermediateID, key.Public())
	if err != nil {
		// The CA of this process reloads the state file about once a second: an intermediate it
		// does not know yet, or does not see issuing yet, is worth another attempt.
		if errs.KindOf(err) == errs.Unavailable || errs.KindOf(err) == errs.NotFound || errs.CodeOf(err) == codeNotIssuing {
			return SelfTestResult{}, temporal.NewApplicationErrorWithCause(messageOf(err), errs.CodeOf(err), err)
		}
		a.record(ctx, in.IntermediateID, ports.RolloutEventIssueError, errs.CodeOf(err))
		return SelfTestResult{Detail: "issuing the self-test certificate failed: " + messageOf(err)}, nil
	}
	res, err := a.MTLS.Probe(ctx, cert.DER, key)
	if err != nil {
		// The listener could not be reached: retried by the policy, then the self-test failed.
		return SelfTestResult{}, classify(errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the device listener could not be reached", err))
	}
	if !res.Accepted {
		a.record(ctx, in.IntermediateID, ports.RolloutEventValidationFailure, "self-test "+cert.Serial)
		return SelfTestResult{Serial: cert.Serial, Detail: "the device listener refused certificate " + cert.Serial + ": " + res.Detail}, nil
	}
	return SelfTestResult{Passed: true, Serial: cert.Serial, Detail: "certificate " + cert.Serial + " accepted over mutual TLS (" + res.Detail + ")"}, nil
}

// CheckHealth runs a chain check (recorded as an event) and returns the figures since in.Since.
func (a *Activities) CheckHealth(ctx context.Context, in CheckHealthInput) (CheckHealthResult, error) {
	var out CheckHealthResult
	err := a.Probe.CheckChain(ctx, in.IntermediateID)
	switch {
	case err == nil:
		out.ChainOK = true
		err = a.Events.Record(ctx, ports.RolloutEvent{IntermediateID: in.IntermediateID, Kind: ports.RolloutEventChainCheck, At: now(ctx)})
	case errs.KindOf(err) == errs.Conflict:
		out.ChainDetail = messageOf(err)
		err = a.Events.Record(ctx, ports.RolloutEvent{IntermediateID: in.IntermediateID, Kind: ports.RolloutEventChainFailure, At: now(ctx), Detail: errs.CodeOf(err)})
	}
	if err != nil {
		return CheckHealthResult{}, classify(err)
	}
	out.Figures, err = a.Events.Figures(ctx, in.IntermediateID, in.Since)
	if err != nil {
		return CheckHealthResult{}, classify(err)
	}
	return out, nil
}

// LastCertificateExpiry is the latest notAfter of the intermediate's device certificates.
func (a *Activities) LastCertificateExpiry(ctx context.Context, in LastCertExpiryInput) (LastCertExpiryResult, error) {
	t, ok, err := a.Events.LastCertificateExpiry(ctx, in.IntermediateID)
	if err != nil {
		return LastCertExpiryResult{}, classify(err)
	}
	if !ok {
		return LastCertExpiryResult{}, nil
	}
	return LastCertExpiryResult{NotAfter: t.UTC()}, nil
}

// record is best effort: the figures miss one event rather than the self-test failing twice.
func (a *Activities) record(ctx context.Context, id, kind, detail string) {
	if err := a.Events.Record(ctx, ports.RolloutEvent{IntermediateID: id, Kind: kind, At: now(ctx), Detail: detail}); err != nil {
		activity.GetLogger(ctx).Warn("rollout event not recorded", "kind", kind, "error", err)
	}
}

// now is the start of this activity attempt as the server records it.
func now(ctx context.Context) time.Time {
	t := activity.GetInfo(ctx).StartedTime
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC()
}

// messageOf is the message of a domain error that may be shown; never an internal error's text.
func messageOf(err error) string {
	if e, ok := errs.As(err); ok && e.Kind != errs.Internal {
		return e.Message
	}
	return "unexpected failure"
}

// classify is the activity error classifier: a failure another attempt cannot fix (bad input, a
// refused state) is not retried; anything else (unavailable, internal) is. An internal error's own
// text stays in the cause (for operators in the Temporal UI), not in the message.
func classify(err error) error {
	code := errs.CodeOf(err)
	msg := messageOf(err)
	switch errs.KindOf(err) {
	case errs.Invalid, errs.NotFound, errs.Conflict, errs.Forbidden, errs.Gone, errs.Unauthenticated:
		return temporal.NewNonRetryableApplicationError(msg, code, err)
	}
	return temporal.NewApplicationErrorWithCause(msg, code, err)
}
