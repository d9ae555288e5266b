package customers_test

import (
	"context"
	"testing"
	"time"

	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

func TestSessionsExpire(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	h.clock.Advance(30*24*time.Hour - time.Second)
	_, err := h.svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	h.clock.Advance(time.Second)
	_, err = h.svc.Authenticate(t.Context(), g.Token)
	wantErr(t, err, errs.Unauthenticated, account.CodeSessionInvalid)

	short := newHarness(t, withConfig(func(c *customers.Config) { c.SessionTTL = time.Hour }))
	g = short.signIn("ann@example.com", ports.SessionBearer)
	if !g.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expires at %v with a 1 hour TTL", g.ExpiresAt)
	}
	short.clock.Advance(time.Hour)
	_, err = short.svc.Authenticate(t.Context(), g.Token)
	wantErr(t, err, errs.Unauthenticated, account.CodeSessionInvalid)
}

func TestAuthenticateRefusesUnknownTokens(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	unknown, _ := account.NewSessionToken()
	for _, tok := range []string{"", "sps_", "Bearer " + g.Token, g.Token[4:], g.Token + "A", unknown} {
		_, err := h.svc.Authenticate(t.Context(), tok)
		wantErr(t, err, errs.Unauthenticated, account.CodeSessionInvalid)
	}
}

// countingSessions counts Touch calls and can make them fail.
type countingSessions struct {
	ports.SessionRepo
	touches int
	fail    bool
}

func (c *countingSessions) Touch(ctx context.Context, id string, at time.Time) error {
	c.touches++
	if c.fail {
		return errs.E(errs.Unavailable, errs.CodeUnavailable, "database down")
	}
	return c.SessionRepo.Touch(ctx, id, at)
}

func TestAuthenticateTouchesAtMostEveryFiveMinutes(t *testing.T) {
	h := newHarness(t)
	sessions := &countingSessions{SessionRepo: h.store.Sessions()}
	svc := h.another(func(d *customersDeps) { d.Sessions = sessions })
	g := h.signIn("ann@example.com", ports.SessionCookie)
	lastSeen := func() time.Time {
		s, err := h.store.Sessions().ByTokenHash(t.Context(), g.Session.TokenHash)
		noErr(t, err)
		return s.LastSeenAt
	}
	for range 3 {
		h.clock.Advance(time.Minute)
		_, err := svc.Authenticate(t.Context(), g.Token)
		noErr(t, err)
	}
	if sessions.touches != 0 || !lastSeen().Equal(t0) {
		t.Fatalf("touched %d times within 5 minutes (last seen %v)", sessions.touches, lastSeen())
	}
	h.clock.Advance(2 * time.Minute)
	_, err := svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	if sessions.touches != 1 || !lastSeen().Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after 5 minutes: %d touches, last seen %v", sessions.touches, lastSeen())
	}
	_, err = svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	if sessions.touches != 1 {
		t.Fatal("touched again right after a touch")
	}
	// A failed touch is logged, not returned: the request goes on.
	sessions.fail = true
	h.clock.Advance(10 * time.Minute)
	id, err := svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	if id.SessionID != g.Session.ID || sessions.touches != 2 {
		t.Fatalf("identity %+v after a failed touch (%d touches)", id, sessions.touches)
	}
}

func TestSignOut(t *testing.T) {
	h := newHarness(t)
	a := h.signIn("ann@example.com", ports.SessionCookie)
	b := h.signIn("ann@example.com", ports.SessionBearer)
	h.clock.Advance(time.Minute)
	noErr(t, h.svc.SignOut(t.Context(), a.Token))
	_, err := h.svc.Authenticate(t.Context(), a.Token)
	wantErr(t, err, errs.Unauthenticated, account.CodeSessionInvalid)
	s, err := h.store.Sessions().ByTokenHash(t.Context(), a.Session.TokenHash)
	noErr(t, err)
	if s.RevokedAt == nil || !s.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("revoked at %v", s.RevokedAt)
	}
	// The other session of the account stays signed in.
	_, err = h.svc.Authenticate(t.Context(), b.Token)
	noErr(t, err)
	// Idempotent: again, junk and unknown tokens are nothing to do.
	unknown, _ := account.NewSessionToken()
	for _, tok := range []string{a.Token, "", "junk", unknown} {
		noErr(t, h.svc.SignOut(t.Context(), tok))
	}
	s2, err := h.store.Sessions().ByTokenHash(t.Context(), a.Session.TokenHash)
	noErr(t, err)
	if !s2.RevokedAt.Equal(*s.RevokedAt) {
		t.Fatal("signing out again moved the revocation time")
	}
}

func TestSignOutEverywhere(t *testing.T) {
	h := newHarness(t)
	a1 := h.signIn("ann@example.com", ports.SessionCookie)
	a2 := h.signIn("ann@example.com", ports.SessionBearer)
	a3 := h.signIn("ann@example.com", ports.SessionBearer)
	bob := h.signIn("bob@example.com", ports.SessionCookie)
	noErr(t, h.svc.SignOut(t.Context(), a3.Token))

	n, err := h.svc.SignOutEverywhere(t.Context(), a1.Account.ID)
	noErr(t, err)
	if n != 2 {
		t.Fatalf("signed out %d sessions, want the 2 still signed in", n)
	}
	for _, g := range []ports.SessionGrant{a1, a2, a3} {
		_, err := h.svc.Authenticate(t.Context(), g.Token)
		wantErr(t, err, errs.Unauthenticated, account.CodeSessionInvalid)
	}
	if _, err := h.svc.Authenticate(t.Context(), bob.Token); err != nil {
		t.Fatalf("another account's session was signed out: %v", err)
	}
	n, err = h.svc.SignOutEverywhere(t.Context(), a1.Account.ID)
	noErr(t, err)
	if n != 0 {
		t.Fatalf("second sign-out everywhere revoked %d", n)
	}
	// Signing in again works after signing out everywhere.
	again := h.signIn("ann@example.com", ports.SessionCookie)
	if _, err := h.svc.Authenticate(t.Context(), again.Token); err != nil {
		t.Fatal(err)
	}
}

func TestAccount(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	a, err := h.svc.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if a != g.Account {
		t.Fatalf("account %+v, granted %+v", a, g.Account)
	}
	_, err = h.svc.Account(t.Context(), "cus_missing")
	wantErr(t, err, errs.NotFound, account.CodeAccountNotFound)
}
