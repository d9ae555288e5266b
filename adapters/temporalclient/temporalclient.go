// Package temporalclient connects to Temporal: it starts workflows for the cores (ports.Processes)
// and hands the one SDK client of the process to the workers built in cmd.
package temporalclient

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
	"github.com/samplero/samplero/workflows/fulfillment"
)

// Options says where the Temporal frontend is.
type Options struct {
	Address   string      // host:port of the frontend; default 127.0.0.1:7233
	Namespace string      // default "default"
	TLS       *tls.Config // nil for a plain connection (the dev server)
	Logger    *slog.Logger
}

// Client is the process's Temporal client.
type Client struct {
	sdk client.Client
}

var _ ports.Processes = (*Client)(nil)

// Dial connects to the frontend and checks that it answers. It does not retry: callers that start
// before Temporal does (dev) wait with Healthy first.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Address == "" {
		opts.Address = "127.0.0.1:7233"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	co := client.Options{
		HostPort:          opts.Address,
		Namespace:         opts.Namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: opts.TLS},
	}
	if opts.Logger != nil {
		co.Logger = tlog.NewStructuredLogger(opts.Logger.With("component", "temporal"))
	}
	c, err := client.DialContext(ctx, co)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "temporal is unavailable", err)
	}
	return &Client{sdk: c}, nil
}

// SDK returns the underlying client, for workers.
func (c *Client) SDK() client.Client { return c.sdk }

// Close closes the connection.
func (c *Client) Close() { c.sdk.Close() }

// Healthy reports whether the frontend answers its health check.
func (c *Client) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.sdk.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "temporal is unavailable", err)
	}
	return nil
}

// SendEmail starts email/<msg.ID>. The ID policy refuses a second run under the same ID, even
// after the first one finished, so a message is delivered once however often it is asked for;
// "already started" is therefore success.
func (c *Client) SendEmail(ctx context.Context, msg ports.EmailMessage) error {
	if msg.ID == "" {
		return errs.Validation("an e-mail needs an id")
	}
	opts := client.StartWorkflowOptions{
		ID:                                       emaildelivery.WorkflowID(msg.ID),
		TaskQueue:                                emaildelivery.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
	_, err := c.sdk.ExecuteWorkflow(ctx, opts, emaildelivery.WorkflowName, emaildelivery.InputFrom(msg))
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err == nil || errors.As(err, &started) {
		return nil
	}
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "could not start the e-mail delivery", err)
}

// StartFulfillment starts fulfillment/<orderID>. Asking again while the run is open, or after it
// completed, is a no-op ("already started" is success), so a webhook delivered twice or a resume
// after a crash never fulfils twice. A run that failed (flagged for support, or the order was held)
// may be started again: that is how an admin's release of the order resumes it, and every step is
// idempotent.
func (c *Client) StartFulfillment(ctx context.Context, orderID string) error {
	if orderID == "" {
		return errs.Validation("a fulfilment needs an order id")
	}
	return c.startOnce(ctx, fulfillment.WorkflowID(orderID), fulfillment.FulfilWorkflowName,
		fulfillment.FulfilInput{OrderID: orderID}, "could not start the fulfilment")
}

// StartRevocation starts revocation/<orderID> for a refunded or disputed order, with the same
// start-once rule as StartFulfillment.
func (c *Client) StartRevocation(ctx context.Context, orderID, status, reason string) error {
	if orderID == "" {
		return errs.Validation("a revocation needs an order id")
	}
	if status != string(order.StatusRefunded) && status != string(order.StatusDisputed) {
		return errs.Validation("a revocation's status is refunded or disputed")
	}
	return c.startOnce(ctx, fulfillment.RevocationID(orderID), fulfillment.RevokeWorkflowName,
		fulfillment.RevokeInput{OrderID: orderID, Status: status, Reason: reason}, "could not start the revocation")
}

// startOnce starts a workflow that must run once per ID. An open run under the ID refuses the start
// (CONFLICT_POLICY_FAIL) and so does a completed one; a failed, cancelled, terminated or timed-out
// one does not (ALLOW_DUPLICATE_FAILED_ONLY).
func (c *Client) startOnce(ctx context.Context, id, workflow string, input any, failure string) error {
	opts := client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                fulfillment.TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}
	_, err := c.sdk.ExecuteWorkflow(ctx, opts, workflow, input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err == nil || errors.As(err, &started) {
		return nil
	}
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, failure, err)
}
