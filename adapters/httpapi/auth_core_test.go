package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

// The sign-in and session routes on the real customers service (the fakes above fix the adapter's
// behaviour; this proves it fits the service's): e-mail link → cookie session → the account →
// password → password sign-in → sign out everywhere.

type emailProcesses struct {
	mu     sync.Mutex
	emails []ports.EmailMessage
}

func (p *emailProcesses) SendEmail(_ context.Context, m ports.EmailMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emails = append(p.emails, m)
	return nil
}
func (p *emailProcesses) StartFulfillment(context.Context, string) error { return errors.New("unused") }
func (p *emailProcesses) StartRevocation(context.Context, string, string, string) error {
	return errors.New("unused")
}

func TestAuthOnTheCustomersService(t *testing.T) {
	var renderer *portstest.EmailRenderer
	h := newMeHarness(t, func(d *Deps) {
		store := portstest.NewMemStore(portstest.WithClock(d.Clock))
		renderer = portstest.NewEmailRenderer()
		d.Customers = customers.New(customers.Deps{
			Clock: d.Clock, Tx: store.Tx(), Accounts: store.Accounts(), Links: store.SignInLinks(), Sessions: store.Sessions(),
			Limiter: d.Limiter, Processes: &emailProcesses{}, Emails: renderer, Argon2: argon2.IDKey,
			Config: customers.Config{PublicURL: publicURL, Argon2: account.PasswordParams{MemoryKiB: 16, Iterations: 1, Parallelism: 1}},
		})
	})
	if res := h.post("/v1/auth/email-link", `{"email":"Alice@Example.com"}`); res.status != 202 {
		t.Fatalf("email-link = %d %s", res.status, res.body)
	}
	calls := renderer.CallsOf(ports.TemplateSignInLink)
	if len(calls) != 1 {
		t.Fatalf("sign-in e-mails rendered: %d", len(calls))
	}
	link, err := url.Parse(calls[0].Data.(ports.SignInLinkEmail).URL)
	if err != nil || link.Path != "/auth/verify" || link.Query().Get("token") == "" {
		t.Fatalf("link %v (%v): the web page /auth/verify takes it", link, err)
	}
	token := link.Query().Get("token")

	res := h.call(http.MethodPost, "/v1/auth/verify", `{"token":"`+token+`","session":"cookie"}`, map[string]string{"Origin": publicURL})
	m := h.json(res, 200)
	if acc := m["account"].(map[string]any); acc["email"] != alice || acc["has_password"] != false {
		t.Fatalf("account = %v", acc)
	}
	ck := cookieAttrs(setCookie(res))["value"]
	if ck == "" {
		t.Fatal("no session cookie")
	}
	h.problem(h.call(http.MethodPost, "/v1/auth/verify", `{"token":"`+token+`"}`, nil), 401, "SIGN_IN_LINK_INVALID")
	if me := h.json(h.browser(ck, http.MethodGet, "/v1/me", ""), 200); me["email"] != alice {
		t.Fatalf("me = %v", me)
	}

	if res := h.browser(ck, http.MethodPut, "/v1/me/password", `{"password":"correct horse battery"}`); res.status != 204 {
		t.Fatalf("set password = %d %s", res.status, res.body)
	}
	h.problem(h.browser(ck, http.MethodPut, "/v1/me/password", `{"password":"short"}`), 400, account.CodePasswordTooShort)
	m = h.json(h.post("/v1/auth/password", `{"email":"alice@example.com","password":"correct horse battery"}`), 200)
	bearer, _ := m["token"].(string)
	if bearer == "" || m["account"].(map[string]any)["has_password"] != true {
		t.Fatalf("password sign-in = %v", m)
	}
	h.problem(h.post("/v1/auth/password", `{"email":"alice@example.com","password":"wrong horse battery"}`), 401, account.CodeInvalidCredentials)

	if m := h.json(h.req(bearer, http.MethodPost, "/v1/auth/sign-out-everywhere", "", nil), 200); m["revoked"] != 2.0 {
		t.Fatalf("sign-out-everywhere = %v", m)
	}
	h.problem(h.browser(ck, http.MethodGet, "/v1/me", ""), 401, codeSessionInvalid)
	h.problem(h.req(bearer, http.MethodGet, "/v1/me", "", nil), 401, codeSessionInvalid)
	if strings.Contains(string(h.post("/v1/auth/email-link", `{"email":"nobody@example.com"}`).body), "nobody") {
		t.Fatal("the answer echoes the address")
	}
}
