package fulfillment

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err          error
		nonRetryable bool
		typ, msg     string
	}{
		{errs.Validation("bad order id"), true, errs.CodeValidationFailed, "bad order id"},
		{errs.E(errs.NotFound, errs.CodeNotFound, "no such order"), true, errs.CodeNotFound, "no such order"},
		{errs.E(errs.Conflict, CodeOrderRevoked, "refunded"), true, CodeOrderRevoked, "refunded"},
		{errs.E(errs.Forbidden, "NOPE", "not allowed"), true, "NOPE", "not allowed"},
		{errs.E(errs.Gone, "GONE", "gone"), true, "GONE", "gone"},
		{errs.E(errs.Unavailable, errs.CodeUnavailable, "db down"), false, errs.CodeUnavailable, "db down"},
		{errs.E(errs.RateLimited, errs.CodeRateLimited, "slow down"), false, errs.CodeRateLimited, "slow down"},
		// Internal details never reach the operator's message (they stay in the cause).
		{errs.Internalf("pq: secret detail"), false, errs.CodeInternal, "unexpected failure"},
		{fmt.Errorf("wrapped: %w", errors.New("io timeout")), false, errs.CodeInternal, "unexpected failure"},
		{context.DeadlineExceeded, false, errs.CodeInternal, "unexpected failure"},
	}
	for _, c := range cases {
		var app *temporal.ApplicationError
		if !errors.As(classify(c.err), &app) {
			t.Fatalf("classify(%v) is not an ApplicationError", c.err)
		}
		if app.NonRetryable() != c.nonRetryable || app.Type() != c.typ || app.Message() != c.msg {
			t.Errorf("classify(%v) = type %q message %q nonretryable %v; want %q %q %v",
				c.err, app.Type(), app.Message(), app.NonRetryable(), c.typ, c.msg, c.nonRetryable)
		}
		if !errors.Is(app, c.err) {
			t.Errorf("classify(%v) lost its cause", c.err)
		}
	}
	if classify(nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}

// incompleteMail renders e-mails without a recipient.
type incompleteMail struct{ *fakeFulfilment }

func (incompleteMail) DeliveryEmail(context.Context, string) (ports.EmailMessage, error) {
	return ports.EmailMessage{ID: "delivery-ord_1"}, nil
}

func TestActivitiesRefuseWhatTheyCannotSend(t *testing.T) {
	acts := &Activities{Fulfilment: incompleteMail{newFake()}}
	_, err := acts.DeliveryEmail(context.Background(), OrderInput{OrderID: "ord_1"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != CodeEmailIncomplete || !app.NonRetryable() {
		t.Fatalf("DeliveryEmail without a recipient: %v", err)
	}

	// A support alert without a recipient is fine: no operator is configured.
	f := newFake()
	f.operator = ""
	acts = &Activities{Fulfilment: f}
	msg, err := acts.FlagForSupport(context.Background(), FlagInput{OrderID: "ord_1", Reason: "X: y"})
	if err != nil || msg.To != "" || msg.MessageID != "support-ord_1-1" {
		t.Fatalf("FlagForSupport = %+v, %v", msg, err)
	}

	// RevokeOrder checks the status before the port sees it.
	err = acts.RevokeOrder(context.Background(), RevokeInput{OrderID: "ord_1", Status: "paid"})
	if !errors.As(err, &app) || app.Type() != errs.CodeValidationFailed || !app.NonRetryable() {
		t.Fatalf("RevokeOrder with status paid: %v", err)
	}
	if f.count("RevokeOrder") != 0 {
		t.Fatal("the port was called with a bad status")
	}
}
