package temporalclient

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/workflows/emaildelivery"
	"github.com/samplero/samplero/workflows/fulfillment"
)

// countingFulfilment counts the calls per method and order. MarkOrderPaid waits on gate when one is
// set for the order (to hold a run open); fail scripts errors per method and order.
type countingFulfilment struct {
	mu    sync.Mutex
	calls map[string]int // "Method order"
	gate  map[string]chan struct{}
	fail  map[string][]error
}

var _ ports.Fulfilment = (*countingFulfilment)(nil)

func (f *countingFulfilment) call(ctx context.Context, method, orderID string) error {
	f.mu.Lock()
	gate := f.gate[orderID]
	f.mu.Unlock()
	if gate != nil && method == "MarkOrderPaid" {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := method + " " + orderID
	f.calls[key]++
	if q := f.fail[key]; len(q) > 0 {
		f.fail[key] = q[1:]
		return q[0]
	}
	return nil
}

func (f *countingFulfilment) count(method, orderID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method+" "+orderID]
}

func (f *countingFulfilment) MarkOrderPaid(ctx context.Context, id string) error {
	return f.call(ctx, "MarkOrderPaid", id)
}

func (f *countingFulfilment) IssueEntitlements(ctx context.Context, id string) (ports.IssueResult, error) {
	return ports.IssueResult{LicenseIDs: []string{"lic_" + id}}, f.call(ctx, "IssueEntitlements", id)
}

func (f *countingFulfilment) UnlockDownloads(ctx context.Context, id string) error {
	return f.call(ctx, "UnlockDownloads", id)
}

func (f *countingFulfilment) DeliveryEmail(ctx context.Context, id string) (ports.EmailMessage, error) {
	return ports.EmailMessage{ID: "delivery-" + id, To: "buyer@example.com", Subject: "s", Text: "t"}, f.call(ctx, "DeliveryEmail", id)
}

func (f *countingFulfilment) MarkFulfilled(ctx context.Context, id string) error {
	return f.call(ctx, "MarkFulfilled", id)
}

func (f *countingFulfilment) FlagForSupport(ctx context.Context, id, _ string) (ports.EmailMessage, error) {
	n := f.count("FlagForSupport", id) + 1
	return ports.EmailMessage{ID: "support-" + id + "-" + strconv.Itoa(n), To: "ops@example.com", Subject: "s", Text: "t"}, f.call(ctx, "FlagForSupport", id)
}

func (f *countingFulfilment) RevokeOrder(ctx context.Context, id string, _ order.Status, _ string) error {
	return f.call(ctx, "RevokeOrder", id)
}

func (f *countingFulfilment) RefundEmail(ctx context.Context, id string) (ports.EmailMessage, error) {
	return ports.EmailMessage{ID: "refund-" + id, To: "buyer@example.com", Subject: "s", Text: "t"}, f.call(ctx, "RefundEmail", id)
}

// runID is the run now under a workflow ID (the newest one).
func runID(ctx context.Context, t *testing.T, c *Client, id string) string {
	t.Helper()
	d, err := c.SDK().DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

func waitRun(ctx context.Context, t *testing.T, c *Client, id string, result any) error {
	t.Helper()
	return c.SDK().GetWorkflow(ctx, id, "").Get(ctx, result)
}

func TestStartFulfillmentAndRevocationRunOnce(t *testing.T) {
	c := dialWhenUp(t, startDevServer(t))
	f := &countingFulfilment{calls: map[string]int{}, gate: map[string]chan struct{}{}, fail: map[string][]error{}}
	mailer := &countingMailer{sent: map[string]int{}}
	w := worker.New(c.SDK(), emaildelivery.TaskQueue, worker.Options{})
	emaildelivery.Register(w, mailer)
	fulfillment.Register(w, f)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("fulfilment: a second start is a no-op while running and after completion", func(t *testing.T) {
		gate := make(chan struct{})
		f.mu.Lock()
		f.gate["ord_once"] = gate
		f.mu.Unlock()
		id := fulfillment.WorkflowID("ord_once")
		if err := c.StartFulfillment(ctx, "ord_once"); err != nil {
			t.Fatal(err)
		}
		first := runID(ctx, t, c, id)
		// The run is held open in MarkOrderPaid by the gate.
		if err := c.StartFulfillment(ctx, "ord_once"); err != nil {
			t.Fatalf("second start while running: %v", err)
		}
		if got := runID(ctx, t, c, id); got != first {
			t.Fatalf("a second run %s started while %s was open", got, first)
		}
		close(gate)
		var res fulfillment.FulfilResult
		if err := waitRun(ctx, t, c, id, &res); err != nil || res.Outcome != fulfillment.OutcomeFulfilled {
			t.Fatalf("result %+v, %v", res, err)
		}
		if err := c.StartFulfillment(ctx, "ord_once"); err != nil {
			t.Fatalf("start after completion: %v", err)
		}
		if got := runID(ctx, t, c, id); got != first {
			t.Fatalf("a second run %s started after %s completed", got, first)
		}
		if n := f.count("MarkOrderPaid", "ord_once"); n != 1 {
			t.Fatalf("MarkOrderPaid ran %d times, want 1", n)
		}
		mailer.mu.Lock()
		n := mailer.sent["delivery-ord_once"]
		mailer.mu.Unlock()
		if n != 1 {
			t.Fatalf("delivery e-mail sent %d times, want 1", n)
		}
	})

	t.Run("fulfilment: a failed run may be started again", func(t *testing.T) {
		f.mu.Lock()
		f.fail["UnlockDownloads ord_flagged"] = []error{errs.E(errs.Conflict, "ENTITLEMENT_STATE", "cannot unlock")}
		f.mu.Unlock()
		id := fulfillment.WorkflowID("ord_flagged")
		if err := c.StartFulfillment(ctx, "ord_flagged"); err != nil {
			t.Fatal(err)
		}
		first := runID(ctx, t, c, id)
		if err := waitRun(ctx, t, c, id, nil); err == nil {
			t.Fatal("the first run succeeded, want it flagged for support")
		}
		if f.count("FlagForSupport", "ord_flagged") != 1 {
			t.Fatal("the failed run did not flag the order")
		}
		// What an admin's release of the held order does.
		if err := c.StartFulfillment(ctx, "ord_flagged"); err != nil {
			t.Fatal(err)
		}
		second := runID(ctx, t, c, id)
		if second == first {
			t.Fatal("no new run after the failed one")
		}
		var res fulfillment.FulfilResult
		if err := c.SDK().GetWorkflow(ctx, id, second).Get(ctx, &res); err != nil || res.Outcome != fulfillment.OutcomeFulfilled {
			t.Fatalf("second run: %+v, %v", res, err)
		}
		if f.count("MarkFulfilled", "ord_flagged") != 1 {
			t.Fatalf("MarkFulfilled ran %d times", f.count("MarkFulfilled", "ord_flagged"))
		}
	})

	t.Run("revocation: a second start is a no-op", func(t *testing.T) {
		id := fulfillment.RevocationID("ord_refunded")
		for i := 0; i < 2; i++ {
			if err := c.StartRevocation(ctx, "ord_refunded", "refunded", "customer asked"); err != nil {
				t.Fatalf("StartRevocation #%d: %v", i+1, err)
			}
		}
		first := runID(ctx, t, c, id)
		var res fulfillment.RevokeResult
		if err := waitRun(ctx, t, c, id, &res); err != nil || res.Outcome != fulfillment.OutcomeRevoked {
			t.Fatalf("result %+v, %v", res, err)
		}
		if err := c.StartRevocation(ctx, "ord_refunded", "disputed", "chargeback"); err != nil {
			t.Fatalf("start after completion: %v", err)
		}
		if got := runID(ctx, t, c, id); got != first {
			t.Fatalf("a second run %s started after %s completed", got, first)
		}
		if n := f.count("RevokeOrder", "ord_refunded"); n != 1 {
			t.Fatalf("RevokeOrder ran %d times, want 1", n)
		}
	})

	t.Run("the started workflow has the registered name on the samplero queue", func(t *testing.T) {
		d, err := c.SDK().DescribeWorkflowExecution(ctx, fulfillment.WorkflowID("ord_once"), "")
		if err != nil {
			t.Fatal(err)
		}
		info := d.GetWorkflowExecutionInfo()
		if info.GetType().GetName() != fulfillment.FulfilWorkflowName || info.GetTaskQueue() != "samplero" {
			t.Fatalf("type %q queue %q", info.GetType().GetName(), info.GetTaskQueue())
		}
	})
}

func TestStartRefusesBadInput(t *testing.T) {
	c := &Client{} // never reaches the server
	ctx := context.Background()
	for name, err := range map[string]error{
		"fulfilment without order":  c.StartFulfillment(ctx, ""),
		"revocation without order":  c.StartRevocation(ctx, "", "refunded", ""),
		"revocation of status paid": c.StartRevocation(ctx, "ord_1", "paid", ""),
	} {
		if errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: %v, want an invalid-input error", name, err)
		}
	}
}

func TestStartWithoutServerIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// A lazily connected client to a port nobody listens on: the start itself fails.
	sdk, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:" + strconv.Itoa(freePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	c := &Client{sdk: sdk}
	if err := c.StartFulfillment(ctx, "ord_1"); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("StartFulfillment: %v, want unavailable", err)
	}
	if err := c.StartRevocation(ctx, "ord_1", "refunded", ""); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("StartRevocation: %v, want unavailable", err)
	}
}
