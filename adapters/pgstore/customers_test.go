package pgstore_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func customersStores(s *pgstore.Store) portstest.CustomersStores {
	return portstest.CustomersStores{Tx: s.Tx(), Accounts: s.Accounts(), Links: s.SignInLinks(), Sessions: s.Sessions()}
}

func TestCustomersContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunCustomersContract(t, func(t *testing.T) portstest.CustomersStores { return customersStores(b.open(t)) })
		})
	}
}

// The in-memory SQLite database (one connection) runs the contract too, races included.
func TestCustomersSQLiteInMemory(t *testing.T) {
	s, err := pgstore.Open(t.Context(), "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	portstest.RunCustomersContract(t, func(t *testing.T) portstest.CustomersStores {
		// Every subtest needs empty tables: empty them rather than open another database.
		for _, table := range []string{"customer_sessions", "customer_sign_in_links", "customer_accounts"} {
			if _, err := s.DB().ExecContext(t.Context(), "DELETE FROM "+table); err != nil {
				t.Fatal(err)
			}
		}
		return customersStores(s)
	})
}

func TestCustomersSchema(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			have := schemaObjects(t, b.open(t))
			for _, want := range []string{"customer_accounts", "customer_accounts_email_key", "customer_sign_in_links",
				"customer_sign_in_links_expires_idx", "customer_sessions", "customer_sessions_token_hash_key",
				"customer_sessions_account_idx"} {
				if !have[want] {
					t.Errorf("%s missing after up", want)
				}
			}
		})
	}
}

// linkRecorder is the e-mail side of the customers service for these tests: the renderer puts the
// link in the text, the process records it.
type linkRecorder struct {
	mu    sync.Mutex
	links map[string][]string // by recipient
}

func (r *linkRecorder) Render(template string, data any) (string, string, string, error) {
	d, ok := data.(ports.SignInLinkEmail)
	if !ok {
		return "", "", "", errs.Internalf("unexpected %s %T", template, data)
	}
	return "sign in", d.URL, d.URL, nil
}

func (r *linkRecorder) SendEmail(_ context.Context, m ports.EmailMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.links[m.To] = append(r.links[m.To], m.Text)
	return nil
}

func (r *linkRecorder) StartFulfillment(context.Context, string) error                { return nil }
func (r *linkRecorder) StartRevocation(context.Context, string, string, string) error { return nil }

// The customers service on the real databases: what the in-memory store cannot show is the race of
// two first sign-ins of one address on PostgreSQL, where the loser's insert meets the winner's
// unique e-mail, its transaction is aborted, and the use case must run again to find the account.
func TestCustomersServiceOnDatabases(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			clock := portstest.NewFakeClock(base)
			rec := &linkRecorder{links: map[string][]string{}}
			svc := customers.New(customers.Deps{
				Clock: clock, Tx: s.Tx(), Accounts: s.Accounts(), Links: s.SignInLinks(), Sessions: s.Sessions(),
				Limiter: portstest.NewMemRateLimiter(clock), Processes: rec, Emails: rec, Argon2: argon2.IDKey,
				Config: customers.Config{PublicURL: "https://example.com",
					Argon2: account.PasswordParams{MemoryKiB: 16, Iterations: 1, Parallelism: 1}},
			})
			ctx := t.Context()
			const n = 5
			for range n {
				if err := svc.RequestSignInLink(ctx, "race@example.com", "192.0.2.1"); err != nil {
					t.Fatal(err)
				}
			}
			var tokens []string
			for _, link := range rec.links["race@example.com"] {
				u, err := url.Parse(link)
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, u.Query().Get("token"))
			}
			if len(tokens) != n {
				t.Fatalf("%d links", len(tokens))
			}

			// n different links of one address at once: one account, n sessions.
			var wg sync.WaitGroup
			start := make(chan struct{})
			grants := make(chan ports.SessionGrant, 2*n)
			errc := make(chan error, 2*n)
			for _, tok := range tokens {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					g, err := svc.SignInWithLink(context.Background(), tok, ports.SessionBearer, ports.SessionMeta{})
					if err != nil {
						errc <- err
						return
					}
					grants <- g
				}()
			}
			close(start)
			wg.Wait()
			close(grants)
			close(errc)
			for err := range errc {
				t.Fatalf("a concurrent first sign-in failed: %v", err)
			}
			ids := map[string]bool{}
			var some ports.SessionGrant
			for g := range grants {
				ids[g.Account.ID] = true
				some = g
			}
			if len(ids) != 1 {
				t.Fatalf("%d accounts for one address", len(ids))
			}
			id, err := svc.Authenticate(ctx, some.Token)
			if err != nil || id.Email != "race@example.com" {
				t.Fatalf("identity %+v, %v", id, err)
			}

			// Every link is spent: using any again fails.
			for _, tok := range tokens {
				_, err := svc.SignInWithLink(ctx, tok, ports.SessionBearer, ports.SessionMeta{})
				if !errs.Is(err, account.CodeSignInLinkInvalid) {
					t.Fatalf("reused link: want SIGN_IN_LINK_INVALID, got %v", err)
				}
			}

			// Password and sign-out everywhere on the real tables.
			if err := svc.SetPassword(ctx, some.Account.ID, "correct horse battery"); err != nil {
				t.Fatal(err)
			}
			g, err := svc.SignInWithPassword(ctx, "Race@Example.com", "correct horse battery", ports.SessionCookie, ports.SessionMeta{Addr: "192.0.2.1"})
			if err != nil || !strings.HasPrefix(g.Token, "sps_") {
				t.Fatalf("password sign-in: %v", err)
			}
			revoked, err := svc.SignOutEverywhere(ctx, some.Account.ID)
			if err != nil || revoked != n+1 {
				t.Fatalf("signed out %d (%v), want %d", revoked, err, n+1)
			}
			if _, err := svc.Authenticate(ctx, g.Token); !errs.Is(err, account.CodeSessionInvalid) {
				t.Fatalf("after sign-out everywhere: %v", err)
			}
		})
	}
}
