package customers_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

var t0 = time.Date(2026, 6, 1, 9, 30, 0, 0, time.UTC)

// tinyArgon2 keeps the tests fast; the format and the code path are the production ones.
var tinyArgon2 = account.PasswordParams{MemoryKiB: 16, Iterations: 1, Parallelism: 1}

const publicURL = "https://licenses.example.com"

// fakeProcesses records the e-mails started; err makes SendEmail fail.
type fakeProcesses struct {
	mu     sync.Mutex
	emails []ports.EmailMessage
	err    error
}

var _ ports.Processes = (*fakeProcesses)(nil)

func (p *fakeProcesses) SendEmail(_ context.Context, m ports.EmailMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.emails = append(p.emails, m)
	return nil
}

func (p *fakeProcesses) StartFulfillment(context.Context, string) error {
	return errors.New("fake processes: not used by customers")
}

func (p *fakeProcesses) StartRevocation(context.Context, string, string, string) error {
	return errors.New("fake processes: not used by customers")
}

func (p *fakeProcesses) sent() []ports.EmailMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ports.EmailMessage(nil), p.emails...)
}

// hashes is the harness's argon2.IDKey: it counts the runs (the equal-work guarantee of
// SignInWithPassword is about runs, not timing) and can hold each run at a gate.
type hashes struct {
	runs atomic.Int64
	gate atomic.Pointer[func()]
}

func (c *hashes) idKey(password, salt []byte, t, m uint32, p uint8, keyLen uint32) []byte {
	c.runs.Add(1)
	if g := c.gate.Load(); g != nil {
		(*g)()
	}
	return argon2.IDKey(password, salt, t, m, p, keyLen)
}

type harness struct {
	t       *testing.T
	hashes  *hashes
	clock   *portstest.FakeClock
	store   *portstest.MemStore
	limiter ports.RateLimiter
	procs   *fakeProcesses
	emails  *portstest.EmailRenderer
	deps    customers.Deps
	svc     *customers.Service
}

type customersDeps = customers.Deps

type option func(*customersDeps)

func withConfig(f func(*customers.Config)) option {
	return func(d *customers.Deps) { f(&d.Config) }
}

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	clock := portstest.NewFakeClock(t0)
	store := portstest.NewMemStore(portstest.WithClock(clock))
	h := &harness{t: t, clock: clock, store: store, limiter: portstest.NewMemRateLimiter(clock),
		procs: &fakeProcesses{}, emails: portstest.NewEmailRenderer(), hashes: &hashes{}}
	h.deps = customers.Deps{
		Clock: clock, Tx: store.Tx(), Accounts: store.Accounts(), Links: store.SignInLinks(), Sessions: store.Sessions(),
		Limiter: h.limiter, Processes: h.procs, Emails: h.emails, Argon2: h.hashes.idKey,
		Config: customers.Config{PublicURL: publicURL + "/", Argon2: tinyArgon2},
	}
	for _, o := range opts {
		o(&h.deps)
	}
	h.svc = customers.New(h.deps)
	return h
}

// another returns a second service over the same stores and clock, with other options.
func (h *harness) another(opts ...option) *customers.Service {
	d := h.deps
	for _, o := range opts {
		o(&d)
	}
	return customers.New(d)
}

// lastToken is the token of the newest sign-in link e-mailed to email.
func (h *harness) lastToken(email string) string {
	h.t.Helper()
	sent := h.procs.sent()
	for i := len(sent) - 1; i >= 0; i-- {
		if sent[i].To != email {
			continue
		}
		// The fake renderer writes every field of the data as a "Name: value" line.
		_, rest, ok := strings.Cut(sent[i].Text, "URL: ")
		if !ok {
			break
		}
		link, _, _ := strings.Cut(rest, "\n")
		u, err := url.Parse(link)
		if err != nil {
			h.t.Fatalf("link %q: %v", link, err)
		}
		return u.Query().Get("token")
	}
	h.t.Fatalf("no sign-in e-mail to %s among %d", email, len(sent))
	return ""
}

// requestToken asks for a link for email and returns its token.
func (h *harness) requestToken(email string) string {
	h.t.Helper()
	if err := h.svc.RequestSignInLink(h.t.Context(), email, "198.51.100.7"); err != nil {
		h.t.Fatalf("RequestSignInLink(%s): %v", email, err)
	}
	norm, _ := account.NormalizeEmail(email)
	return h.lastToken(norm)
}

// signIn signs email in by link and returns the grant.
func (h *harness) signIn(email string, kind ports.SessionKind) ports.SessionGrant {
	h.t.Helper()
	g, err := h.svc.SignInWithLink(h.t.Context(), h.requestToken(email), kind, ports.SessionMeta{Addr: "198.51.100.7", UserAgent: "test"})
	if err != nil {
		h.t.Fatalf("SignInWithLink(%s): %v", email, err)
	}
	return g
}

func wantErr(t *testing.T, err error, kind errs.Kind, code string) *errs.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s, got nil", kind, code)
	}
	e, ok := errs.As(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("want %s %s, got %v", kind, code, err)
	}
	return e
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}
