package fulfillment

import (
	"context"
	"fmt"
	"sync"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/ports"
)

// fakeFulfilment is a scripted ports.Fulfilment: each method answers with the errors scripted for
// it in turn, then succeeds; every call is recorded. It is registered through register, so the real
// activity code (and its classifier) runs in the tests.
type fakeFulfilment struct {
	mu       sync.Mutex
	calls    []string
	fails    map[string][]error
	operator string   // FlagForSupport's To; "" = no operator configured
	reasons  []string // FlagForSupport reasons
	revoked  []string // "order status reason" of RevokeOrder calls that succeeded
	// block, when set for a method, is waited on before the method answers (real-server tests).
	block map[string]chan struct{}
}

var _ ports.Fulfilment = (*fakeFulfilment)(nil)

func newFake() *fakeFulfilment {
	return &fakeFulfilment{fails: map[string][]error{}, block: map[string]chan struct{}{}, operator: "ops@example.com"}
}

// fail scripts errors for a method.
func (f *fakeFulfilment) fail(method string, errs ...error) *fakeFulfilment {
	f.fails[method] = append(f.fails[method], errs...)
	return f
}

func (f *fakeFulfilment) next(ctx context.Context, method string) error {
	f.mu.Lock()
	ch := f.block[method]
	f.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	if q := f.fails[method]; len(q) > 0 {
		f.fails[method] = q[1:]
		return q[0]
	}
	return nil
}

func (f *fakeFulfilment) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeFulfilment) count(method string) int {
	n := 0
	for _, c := range f.callLog() {
		if c == method {
			n++
		}
	}
	return n
}

func (f *fakeFulfilment) MarkOrderPaid(ctx context.Context, orderID string) error {
	return f.next(ctx, "MarkOrderPaid")
}

func (f *fakeFulfilment) IssueEntitlements(ctx context.Context, orderID string) (ports.IssueResult, error) {
	if err := f.next(ctx, "IssueEntitlements"); err != nil {
		return ports.IssueResult{}, err
	}
	return ports.IssueResult{
		LicenseIDs:     []string{"lic_" + orderID + "_1", "lic_" + orderID + "_2"},
		EntitlementIDs: []string{"ent_" + orderID + "_1"},
	}, nil
}

func (f *fakeFulfilment) UnlockDownloads(ctx context.Context, orderID string) error {
	return f.next(ctx, "UnlockDownloads")
}

func (f *fakeFulfilment) DeliveryEmail(ctx context.Context, orderID string) (ports.EmailMessage, error) {
	if err := f.next(ctx, "DeliveryEmail"); err != nil {
		return ports.EmailMessage{}, err
	}
	return ports.EmailMessage{
		ID: "delivery-" + orderID, To: "buyer@example.com", Subject: "Your order",
		Text: "Key: VST-AAAA", HTML: "<p>Key: VST-AAAA</p>", Template: "delivery",
	}, nil
}

func (f *fakeFulfilment) MarkFulfilled(ctx context.Context, orderID string) error {
	return f.next(ctx, "MarkFulfilled")
}

func (f *fakeFulfilment) FlagForSupport(ctx context.Context, orderID, reason string) (ports.EmailMessage, error) {
	if err := f.next(ctx, "FlagForSupport"); err != nil {
		return ports.EmailMessage{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasons = append(f.reasons, reason)
	return ports.EmailMessage{
		ID: fmt.Sprintf("support-%s-%d", orderID, len(f.reasons)), To: f.operator,
		Subject: "Order needs attention", Text: reason, Template: "support",
	}, nil
}

func (f *fakeFulfilment) RevokeOrder(ctx context.Context, orderID string, status order.Status, reason string) error {
	if err := f.next(ctx, "RevokeOrder"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, orderID+" "+string(status)+" "+reason)
	return nil
}

func (f *fakeFulfilment) RefundEmail(ctx context.Context, orderID string) (ports.EmailMessage, error) {
	if err := f.next(ctx, "RefundEmail"); err != nil {
		return ports.EmailMessage{}, err
	}
	return ports.EmailMessage{
		ID: "refund-" + orderID, To: "buyer@example.com", Subject: "Your order was refunded",
		Text: "Refunded", Template: "refund",
	}, nil
}

// fakeMailer records what the emaildelivery child delivers; fails scripts errors per message ID.
type fakeMailer struct {
	mu    sync.Mutex
	sent  []ports.EmailMessage // accepted deliveries
	tries map[string]int
	fails map[string][]error
}

var _ ports.Mailer = (*fakeMailer)(nil)

func newMailer() *fakeMailer {
	return &fakeMailer{tries: map[string]int{}, fails: map[string][]error{}}
}

func (m *fakeMailer) Send(_ context.Context, msg ports.EmailMessage) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries[msg.ID]++
	if q := m.fails[msg.ID]; len(q) > 0 {
		m.fails[msg.ID] = q[1:]
		return "", q[0]
	}
	m.sent = append(m.sent, msg)
	return "provider-" + msg.ID, nil
}

// delivered returns the IDs of the accepted messages, in order.
func (m *fakeMailer) delivered() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for _, msg := range m.sent {
		ids = append(ids, msg.ID)
	}
	return ids
}

func (m *fakeMailer) message(id string) (ports.EmailMessage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.sent {
		if msg.ID == id {
			return msg, true
		}
	}
	return ports.EmailMessage{}, false
}
