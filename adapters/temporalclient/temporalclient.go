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

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
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
