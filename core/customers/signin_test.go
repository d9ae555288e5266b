package customers_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func TestRequestSignInLinkSendsASingleUseLink(t *testing.T) {
	h := newHarness(t)
	noErr(t, h.svc.RequestSignInLink(t.Context(), "  Ann.Lee@Example.COM ", "198.51.100.7"))

	calls := h.emails.Calls()
	if len(calls) != 1 || calls[0].Template != ports.TemplateSignInLink || calls[0].Err != nil {
		t.Fatalf("rendered %+v", calls)
	}
	data := calls[0].Data.(ports.SignInLinkEmail)
	token, ok := strings.CutPrefix(data.URL, publicURL+"/auth/verify?token=")
	if !ok || !account.WellFormedLinkToken(token) {
		t.Fatalf("link %q: want %s/auth/verify?token=<43 base64url characters>", data.URL, publicURL)
	}
	if !data.ExpiresAt.Equal(t0.Add(15*time.Minute)) || data.Addr != "198.51.100.7" {
		t.Fatalf("e-mail data %+v", data)
	}

	sent := h.procs.sent()
	if len(sent) != 1 {
		t.Fatalf("%d e-mails started, want 1", len(sent))
	}
	m := sent[0]
	sum := sha256.Sum256([]byte(token))
	if m.ID != "signin-"+hex.EncodeToString(sum[:])[:16] {
		t.Fatalf("message id %q: want signin- and the first 16 hex digits of the token's SHA-256", m.ID)
	}
	// The rendered parts travel unchanged; the fake's text carries the link.
	if m.To != "ann.lee@example.com" || m.Template != ports.TemplateSignInLink || m.Subject != calls[0].Subject ||
		m.Text != calls[0].Text || m.HTML != calls[0].HTML || !strings.Contains(m.Text, data.URL) {
		t.Fatalf("message %+v", m)
	}

	// What is stored is the hash: using it directly works (and spends the link).
	l, err := h.store.SignInLinks().Use(t.Context(), sum[:], t0)
	noErr(t, err)
	if l.Email != "ann.lee@example.com" || l.Purpose != account.PurposeSignIn || !l.ExpiresAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("stored link %+v", l)
	}
}

func TestRequestSignInLinkRefusesMalformedAddresses(t *testing.T) {
	h := newHarness(t)
	for _, e := range []string{"", "ann", "ann@localhost", "Ann <ann@example.com>", "ann@example.com\r\nBcc: x@example.com"} {
		wantErr(t, h.svc.RequestSignInLink(t.Context(), e, "198.51.100.7"), errs.Invalid, account.CodeInvalidEmail)
	}
	if n := len(h.procs.sent()); n != 0 {
		t.Fatalf("%d e-mails sent for malformed addresses", n)
	}
}

func TestSignInWithLinkCreatesTheAccountOnFirstUse(t *testing.T) {
	h := newHarness(t)
	h.clock.Advance(1500 * time.Millisecond) // the service keeps whole seconds
	now := t0.Add(time.Second)
	token := h.requestToken("Ann@Example.com")
	g, err := h.svc.SignInWithLink(t.Context(), token, ports.SessionCookie,
		ports.SessionMeta{Addr: "2001:db8::1", UserAgent: "Mozilla/5.0\r\nX-Evil: 1"})
	noErr(t, err)

	if !strings.HasPrefix(g.Account.ID, "cus_") || g.Account.Email != "ann@example.com" || g.Account.PasswordHash != "" ||
		!g.Account.EmailVerifiedAt.Equal(now) || !g.Account.CreatedAt.Equal(now) {
		t.Fatalf("account %+v", g.Account)
	}
	stored, err := h.store.Accounts().ByEmail(t.Context(), "ann@example.com")
	noErr(t, err)
	if stored.ID != g.Account.ID {
		t.Fatalf("stored account %s, granted %s", stored.ID, g.Account.ID)
	}
	if !account.WellFormedSessionToken(g.Token) {
		t.Fatalf("session token %q", g.Token)
	}
	s := g.Session
	sum := sha256.Sum256([]byte(g.Token))
	if !strings.HasPrefix(s.ID, "ses_") || string(s.TokenHash) != string(sum[:]) || s.AccountID != g.Account.ID ||
		s.Kind != ports.SessionCookie || !s.CreatedAt.Equal(now) || !s.LastSeenAt.Equal(now) ||
		!s.ExpiresAt.Equal(now.Add(30*24*time.Hour)) || !g.ExpiresAt.Equal(s.ExpiresAt) || s.RevokedAt != nil {
		t.Fatalf("session %+v", s)
	}
	if s.Addr != "2001:db8::1" || s.UserAgent != "Mozilla/5.0X-Evil: 1" {
		t.Fatalf("client meta stored as %q / %q", s.Addr, s.UserAgent)
	}
	got, err := h.store.Sessions().ByTokenHash(t.Context(), sum[:])
	noErr(t, err)
	if got.ID != s.ID {
		t.Fatalf("stored session %s, granted %s", got.ID, s.ID)
	}

	id, err := h.svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	if id != (ports.CustomerIdentity{AccountID: g.Account.ID, Email: "ann@example.com", SessionID: s.ID}) {
		t.Fatalf("identity %+v", id)
	}

	// A later link of the same address signs in to the same account, with its own session.
	h.clock.Advance(time.Hour)
	g2 := h.signIn("ANN@example.com", ports.SessionBearer)
	if g2.Account.ID != g.Account.ID || !g2.Account.CreatedAt.Equal(now) {
		t.Fatalf("second sign-in got account %+v, want %s unchanged", g2.Account, g.Account.ID)
	}
	if g2.Session.ID == s.ID || g2.Token == g.Token || g2.Session.Kind != ports.SessionBearer {
		t.Fatalf("second session %+v", g2.Session)
	}
}

func TestSignInLinkIsSingleUse(t *testing.T) {
	h := newHarness(t)
	token := h.requestToken("ann@example.com")
	_, err := h.svc.SignInWithLink(t.Context(), token, ports.SessionBearer, ports.SessionMeta{})
	noErr(t, err)
	_, err = h.svc.SignInWithLink(t.Context(), token, ports.SessionBearer, ports.SessionMeta{})
	wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
}

func TestSignInLinkConcurrentUsesGiveOneSession(t *testing.T) {
	h := newHarness(t)
	token := h.requestToken("ann@example.com")
	const racers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	grants := make(chan ports.SessionGrant, racers)
	errc := make(chan error, racers)
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			g, err := h.svc.SignInWithLink(context.Background(), token, ports.SessionBearer, ports.SessionMeta{})
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
	if len(grants) != 1 {
		t.Fatalf("%d concurrent uses of one link signed in, want exactly 1", len(grants))
	}
	for err := range errc {
		wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
	}
	g := <-grants
	if _, err := h.svc.Authenticate(t.Context(), g.Token); err != nil {
		t.Fatalf("the winner's session: %v", err)
	}
}

func TestSignInLinkExpiresAfter15Minutes(t *testing.T) {
	h := newHarness(t)
	early := h.requestToken("ann@example.com")
	late := h.requestToken("ann@example.com")
	h.clock.Advance(15*time.Minute - time.Second)
	_, err := h.svc.SignInWithLink(t.Context(), early, ports.SessionBearer, ports.SessionMeta{})
	noErr(t, err)
	h.clock.Advance(time.Second)
	_, err = h.svc.SignInWithLink(t.Context(), late, ports.SessionBearer, ports.SessionMeta{})
	wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
}

func TestSignInWithLinkRefusesJunkAndBadKinds(t *testing.T) {
	h := newHarness(t)
	token := h.requestToken("ann@example.com")
	for _, junk := range []string{"", "abc", token + "x", strings.ToUpper(token[:1]) + token[1:] + "=", "sps_" + token} {
		_, err := h.svc.SignInWithLink(t.Context(), junk, ports.SessionBearer, ports.SessionMeta{})
		wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
	}
	// An unknown well-formed token is the same answer.
	other, _ := account.NewLinkToken()
	_, err := h.svc.SignInWithLink(t.Context(), other, ports.SessionBearer, ports.SessionMeta{})
	wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
	// A bad session kind is refused before the link is spent.
	_, err = h.svc.SignInWithLink(t.Context(), token, "jwt", ports.SessionMeta{})
	wantErr(t, err, errs.Invalid, account.CodeSessionKindInvalid)
	_, err = h.svc.SignInWithLink(t.Context(), token, ports.SessionCookie, ports.SessionMeta{})
	noErr(t, err)
}

// A known and an unknown address take the same path: both get nil and one e-mail of the same
// shape, and both run into the same rate limit at the same count with the same wait.
func TestKnownAndUnknownAddressesAnswerAlike(t *testing.T) {
	h := newHarness(t)
	h.signIn("known@example.com", ports.SessionBearer)
	before := len(h.procs.sent())
	h.clock.Advance(time.Minute)

	results := map[string][]error{}
	for range 6 {
		for _, e := range []string{"known@example.com", "unknown@example.com"} {
			results[e] = append(results[e], h.svc.RequestSignInLink(t.Context(), e, "198.51.100.8"))
		}
	}
	// The known address used one request for its sign-in above: compare the last four of each.
	k, u := results["known@example.com"], results["unknown@example.com"]
	for i := range 4 {
		noErr(t, k[i])
		noErr(t, u[i])
	}
	ke := wantErr(t, k[4], errs.RateLimited, errs.CodeRateLimited)
	noErr(t, u[4])
	ue := wantErr(t, u[5], errs.RateLimited, errs.CodeRateLimited)
	wantErr(t, k[5], errs.RateLimited, errs.CodeRateLimited)
	if ke.Message != ue.Message || ke.RetryAfter <= 0 || ue.RetryAfter <= 0 {
		t.Fatalf("rate limits differ: %+v vs %+v", ke, ue)
	}

	sent := h.procs.sent()[before:]
	counts := map[string]int{}
	shape := map[string]string{}
	for _, m := range sent {
		counts[m.To]++
		token := h.lastToken(m.To)
		shape[m.To] = strings.ReplaceAll(m.Template+"|"+m.Subject+"|"+m.Text, token, "TOKEN")
	}
	if counts["known@example.com"] != 4 || counts["unknown@example.com"] != 5 {
		t.Fatalf("e-mails per address: %v", counts)
	}
	if shape["known@example.com"] != shape["unknown@example.com"] {
		t.Fatalf("the e-mails differ:\n%s\n%s", shape["known@example.com"], shape["unknown@example.com"])
	}
	// The unknown address's link creates its account.
	g, err := h.svc.SignInWithLink(t.Context(), h.lastToken("unknown@example.com"), ports.SessionBearer, ports.SessionMeta{})
	noErr(t, err)
	if g.Account.Email != "unknown@example.com" {
		t.Fatalf("account %+v", g.Account)
	}
}

func TestRequestSignInLinkRateLimits(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	for i := range 5 {
		if err := h.svc.RequestSignInLink(ctx, "ann@example.com", "198.51.100.7"); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	h.clock.Advance(10 * time.Minute)
	// Per address: other clients are limited too (the address is the target).
	e := wantErr(t, h.svc.RequestSignInLink(ctx, "ANN@example.com", "203.0.113.9"), errs.RateLimited, errs.CodeRateLimited)
	if e.RetryAfter != 5*time.Minute {
		t.Fatalf("retry after %v, want the 5 minutes left of the window", e.RetryAfter)
	}
	if n := len(h.procs.sent()); n != 5 {
		t.Fatalf("%d e-mails sent, want 5", n)
	}
	h.clock.Advance(5 * time.Minute)
	noErr(t, h.svc.RequestSignInLink(ctx, "ann@example.com", "198.51.100.7"))

	// Per client: 20 in 15 minutes, whatever the addresses; another client is not affected.
	h2 := newHarness(t)
	for i := range 20 {
		noErr(t, h2.svc.RequestSignInLink(ctx, "user"+string(rune('a'+i))+"@example.com", "192.0.2.1"))
	}
	wantErr(t, h2.svc.RequestSignInLink(ctx, "fresh@example.com", "192.0.2.1"), errs.RateLimited, errs.CodeRateLimited)
	noErr(t, h2.svc.RequestSignInLink(ctx, "fresh@example.com", "192.0.2.2"))
	// Requests without a client address share one bucket rather than escape the limit.
	for i := range 20 {
		noErr(t, h2.svc.RequestSignInLink(ctx, "anon"+string(rune('a'+i))+"@example.com", ""))
	}
	wantErr(t, h2.svc.RequestSignInLink(ctx, "anon@example.com", " "), errs.RateLimited, errs.CodeRateLimited)
}

func TestRequestSignInLinkFailures(t *testing.T) {
	// A limiter that is down refuses (fail closed) and sends nothing.
	h := newHarness(t, func(d *customersDeps) { d.Limiter = portstest.FailingRateLimiter{} })
	wantErr(t, h.svc.RequestSignInLink(t.Context(), "ann@example.com", "198.51.100.7"), errs.Unavailable, errs.CodeUnavailable)
	if n := len(h.procs.sent()); n != 0 {
		t.Fatalf("%d e-mails sent without a limiter", n)
	}

	// A failed start of the e-mail is the answer: the customer must ask again.
	h = newHarness(t)
	h.procs.err = errs.E(errs.Unavailable, errs.CodeUnavailable, "temporal down")
	wantErr(t, h.svc.RequestSignInLink(t.Context(), "ann@example.com", "198.51.100.7"), errs.Unavailable, errs.CodeUnavailable)
	h.procs.err = errors.New("boom")
	err := h.svc.RequestSignInLink(t.Context(), "ann@example.com", "198.51.100.7")
	wantErr(t, err, errs.Internal, errs.CodeInternal)
	if e, _ := errs.As(err); strings.Contains(e.Message, "boom") {
		t.Fatalf("internal cause leaked into the message: %q", e.Message)
	}

	h = newHarness(t)
	h.emails.Fail(errs.Internalf("template broken"))
	wantErr(t, h.svc.RequestSignInLink(t.Context(), "ann@example.com", "198.51.100.7"), errs.Internal, errs.CodeInternal)
}

// Many first sign-ins of one address at once (each with its own link) make one account.
func TestConcurrentFirstSignInsCreateOneAccount(t *testing.T) {
	h := newHarness(t)
	const n = 5 // the per-address limit of links
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = h.requestToken("race@example.com")
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	ids := make(chan string, n)
	errc := make(chan error, n)
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			g, err := h.svc.SignInWithLink(context.Background(), tok, ports.SessionBearer, ports.SessionMeta{})
			if err != nil {
				errc <- err
				return
			}
			ids <- g.Account.ID
		}()
	}
	close(start)
	wg.Wait()
	close(ids)
	close(errc)
	for err := range errc {
		t.Fatalf("a concurrent first sign-in failed: %v", err)
	}
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("%d accounts for one address: %v", len(seen), seen)
	}
}

// racingAccounts simulates the race a database shows and the in-memory store cannot (its lock
// serialises transactions): the first lookup misses an account another sign-in has committed, so
// the insert meets the unique e-mail. The service must run the use case again and use that account.
type racingAccounts struct {
	ports.AccountRepo
	mu     sync.Mutex
	missed int
}

func (r *racingAccounts) ByEmail(ctx context.Context, email string) (ports.Account, error) {
	r.mu.Lock()
	first := r.missed == 0
	r.missed++
	r.mu.Unlock()
	if first {
		return ports.Account{}, errs.E(errs.NotFound, errs.CodeNotFound, "account not found")
	}
	return r.AccountRepo.ByEmail(ctx, email)
}

func TestFirstSignInThatLosesTheRaceUsesTheWinnersAccount(t *testing.T) {
	h := newHarness(t)
	winner := ports.Account{ID: "cus_winner", Email: "race@example.com", EmailVerifiedAt: t0, CreatedAt: t0, UpdatedAt: t0}
	noErr(t, h.store.Accounts().Insert(t.Context(), winner))
	racing := &racingAccounts{AccountRepo: h.store.Accounts()}
	svc := h.another(func(d *customersDeps) { d.Accounts = racing })

	token := h.requestToken("race@example.com")
	g, err := svc.SignInWithLink(t.Context(), token, ports.SessionBearer, ports.SessionMeta{})
	noErr(t, err)
	if g.Account.ID != "cus_winner" || g.Session.AccountID != "cus_winner" {
		t.Fatalf("signed in to %+v, want the winner's account", g.Account)
	}
	if racing.missed != 2 {
		t.Fatalf("account looked up %d times, want 2 (the miss, then the retry)", racing.missed)
	}
	// The first attempt's use of the link was rolled back with it, and the retry spent it.
	_, err = svc.SignInWithLink(t.Context(), token, ports.SessionBearer, ports.SessionMeta{})
	wantErr(t, err, errs.Unauthenticated, account.CodeSignInLinkInvalid)
}
