package customers_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=16,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestSetPasswordStoresAnArgon2idPHCString(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	h.clock.Advance(time.Hour)
	noErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, "correct horse battery"))

	a, err := h.svc.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if !phcRE.MatchString(a.PasswordHash) {
		t.Fatalf("password hash %q is not a PHC argon2id string with the configured costs", a.PasswordHash)
	}
	if !a.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("updated at %v", a.UpdatedAt)
	}
	// The key is argon2id of the password under the stored salt and costs, nothing home-made.
	ph, err := account.ParsePasswordHash(a.PasswordHash)
	noErr(t, err)
	want := argon2.IDKey([]byte("correct horse battery"), ph.Salt, 1, 16, 1, 32)
	if !bytes.Equal(ph.Key, want) {
		t.Fatal("stored key is not argon2id(password, salt)")
	}
	// Setting it again uses a fresh salt.
	noErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, "correct horse battery"))
	b, err := h.svc.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if b.PasswordHash == a.PasswordHash {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestSetPasswordPolicy(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	wantErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, "short"), errs.Invalid, account.CodePasswordTooShort)
	wantErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, strings.Repeat("x", 257)), errs.Invalid, account.CodePasswordTooLong)
	wantErr(t, h.svc.SetPassword(t.Context(), "cus_missing", "long enough password"), errs.NotFound, account.CodeAccountNotFound)
	if n := h.hashes.runs.Load(); n != 0 {
		t.Fatalf("%d hashes computed for refused passwords", n)
	}
	a, err := h.svc.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if a.PasswordHash != "" {
		t.Fatal("a refused password was stored")
	}
	noErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, strings.Repeat("ü", 10)))
}

func TestSignInWithPassword(t *testing.T) {
	h := newHarness(t)
	first := h.signIn("ann@example.com", ports.SessionCookie)
	noErr(t, h.svc.SetPassword(t.Context(), first.Account.ID, "correct horse battery"))
	h.clock.Advance(time.Minute)

	g, err := h.svc.SignInWithPassword(t.Context(), " ANN@example.com", "correct horse battery", ports.SessionBearer,
		ports.SessionMeta{Addr: "203.0.113.5", UserAgent: "cli/1.0"})
	noErr(t, err)
	if g.Account.ID != first.Account.ID || g.Session.Kind != ports.SessionBearer || g.Session.Addr != "203.0.113.5" ||
		!g.ExpiresAt.Equal(t0.Add(time.Minute+30*24*time.Hour)) {
		t.Fatalf("grant %+v", g)
	}
	id, err := h.svc.Authenticate(t.Context(), g.Token)
	noErr(t, err)
	if id.AccountID != first.Account.ID || id.SessionID != g.Session.ID {
		t.Fatalf("identity %+v", id)
	}

	for _, pw := range []string{"correct horse batterY", "", "correct horse battery ", strings.Repeat("x", 2000)} {
		_, err := h.svc.SignInWithPassword(t.Context(), "ann@example.com", pw, ports.SessionBearer, ports.SessionMeta{Addr: "203.0.113.5"})
		wantErr(t, err, errs.Unauthenticated, account.CodeInvalidCredentials)
	}
	_, err = h.svc.SignInWithPassword(t.Context(), "not an address", "correct horse battery", ports.SessionBearer, ports.SessionMeta{})
	wantErr(t, err, errs.Invalid, account.CodeInvalidEmail)
	_, err = h.svc.SignInWithPassword(t.Context(), "ann@example.com", "correct horse battery", "", ports.SessionMeta{})
	wantErr(t, err, errs.Invalid, account.CodeSessionKindInvalid)
}

// An unknown address, an account without a password and a wrong password cost one argon2id run
// each, like a right password, and give one identical answer. (What is asserted is the work done,
// which is what makes the timing equal; timing itself is too noisy for a unit test.)
func TestPasswordFailuresDoEqualWorkAndAnswerAlike(t *testing.T) {
	h := newHarness(t)
	withPw := h.signIn("ann@example.com", ports.SessionCookie)
	noErr(t, h.svc.SetPassword(t.Context(), withPw.Account.ID, "correct horse battery"))
	h.signIn("nopass@example.com", ports.SessionCookie)
	n := &h.hashes.runs

	var answers []*errs.Error
	for _, c := range []struct{ email, pw string }{
		{"unknown@example.com", "correct horse battery"},
		{"nopass@example.com", "correct horse battery"},
		{"ann@example.com", "wrong horse battery"},
	} {
		before := n.Load()
		_, err := h.svc.SignInWithPassword(t.Context(), c.email, c.pw, ports.SessionCookie, ports.SessionMeta{Addr: "192.0.2.1"})
		answers = append(answers, wantErr(t, err, errs.Unauthenticated, account.CodeInvalidCredentials))
		if got := n.Load() - before; got != 1 {
			t.Fatalf("%s: %d argon2id runs, want exactly 1", c.email, got)
		}
	}
	for _, a := range answers[1:] {
		if a.Message != answers[0].Message || a.RetryAfter != answers[0].RetryAfter {
			t.Fatalf("answers differ: %+v vs %+v", a, answers[0])
		}
	}
	before := n.Load()
	_, err := h.svc.SignInWithPassword(t.Context(), "ann@example.com", "correct horse battery", ports.SessionCookie, ports.SessionMeta{Addr: "192.0.2.1"})
	noErr(t, err)
	if got := n.Load() - before; got != 1 {
		t.Fatalf("a right password: %d argon2id runs, want 1", got)
	}
}

func TestSignInWithPasswordRateLimits(t *testing.T) {
	h := newHarness(t)
	n := &h.hashes.runs
	ctx := t.Context()
	try := func(email, addr string) error {
		_, err := h.svc.SignInWithPassword(ctx, email, "some password", ports.SessionBearer, ports.SessionMeta{Addr: addr})
		return err
	}
	for i := range 10 {
		wantErr(t, try("ann@example.com", "192.0.2."+string(rune('1'+i%5))), errs.Unauthenticated, account.CodeInvalidCredentials)
	}
	e := wantErr(t, try("Ann@Example.com", "192.0.2.99"), errs.RateLimited, errs.CodeRateLimited)
	if e.RetryAfter != 15*time.Minute {
		t.Fatalf("retry after %v", e.RetryAfter)
	}
	if n.Load() != 10 {
		t.Fatalf("%d hashes: a rate-limited attempt must not hash", n.Load())
	}
	// Per client: 30 in 15 minutes across addresses.
	for i := range 29 {
		wantErr(t, try("u"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", "198.51.100.1"), errs.Unauthenticated, account.CodeInvalidCredentials)
	}
	wantErr(t, try("ann2@example.com", "198.51.100.1"), errs.Unauthenticated, account.CodeInvalidCredentials)
	wantErr(t, try("ann3@example.com", "198.51.100.1"), errs.RateLimited, errs.CodeRateLimited)
	h.clock.Advance(15 * time.Minute)
	wantErr(t, try("ann3@example.com", "198.51.100.1"), errs.Unauthenticated, account.CodeInvalidCredentials)
}

// Costs raised after a password was set: the next successful sign-in re-hashes it with the new
// costs (one extra run), and later sign-ins verify with one run again.
func TestSignInRehashesWithRaisedCosts(t *testing.T) {
	h := newHarness(t)
	g := h.signIn("ann@example.com", ports.SessionCookie)
	noErr(t, h.svc.SetPassword(t.Context(), g.Account.ID, "correct horse battery"))
	raised := h.another(withConfig(func(c *customers.Config) {
		c.Argon2 = account.PasswordParams{MemoryKiB: 32, Iterations: 2, Parallelism: 1}
	}))
	n := &h.hashes.runs
	n.Store(0)
	_, err := raised.SignInWithPassword(t.Context(), "ann@example.com", "correct horse battery", ports.SessionCookie, ports.SessionMeta{})
	noErr(t, err)
	if n.Load() != 2 {
		t.Fatalf("%d runs, want 2 (verify with the old costs, hash with the new)", n.Load())
	}
	a, err := raised.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if !strings.HasPrefix(a.PasswordHash, "$argon2id$v=19$m=32,t=2,p=1$") {
		t.Fatalf("hash not upgraded: %s", a.PasswordHash)
	}
	_, err = raised.SignInWithPassword(t.Context(), "ann@example.com", "correct horse battery", ports.SessionCookie, ports.SessionMeta{})
	noErr(t, err)
	if n.Load() != 3 {
		t.Fatalf("%d runs after the upgrade, want 3", n.Load())
	}
	// A wrong password never rewrites the hash.
	_, err = h.svc.SignInWithPassword(t.Context(), "ann@example.com", "wrong horse battery", ports.SessionCookie, ports.SessionMeta{})
	wantErr(t, err, errs.Unauthenticated, account.CodeInvalidCredentials)
	b, err := raised.Account(t.Context(), g.Account.ID)
	noErr(t, err)
	if b.PasswordHash != a.PasswordHash {
		t.Fatal("the hash changed after a failed sign-in")
	}
}

// The hash slots bound the argon2id runs at once; a caller that gives up while waiting for one
// gets its answer instead of queueing forever.
func TestHashSlotsBoundConcurrentHashes(t *testing.T) {
	h := newHarness(t, withConfig(func(c *customers.Config) { c.MaxConcurrentHashes = 1 }))
	g := h.signIn("ann@example.com", ports.SessionCookie)
	started, release := make(chan struct{}, 4), make(chan struct{})
	gate := func() {
		started <- struct{}{}
		<-release
	}
	h.hashes.gate.Store(&gate)
	done := make(chan error, 1)
	go func() { done <- h.svc.SetPassword(context.Background(), g.Account.ID, "first password!") }()
	<-started // the only slot is taken until release

	// With the slot taken, the only way out of the wait is the caller's context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	wantErr(t, customers.Derive(ctx, h.svc), errs.Unavailable, errs.CodeUnavailable)
	select {
	case <-started:
		t.Fatal("a second argon2id run started while the only slot was taken")
	default:
	}
	close(release)
	noErr(t, <-done)
	// The slot is free again.
	noErr(t, customers.Derive(t.Context(), h.svc))
}

func TestNewRequiresArgon2(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("New accepted Deps without Argon2")
		}
	}()
	newHarness(t, func(d *customersDeps) { d.Argon2 = nil })
}

func TestNewRefusesUnrunnableCosts(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("New accepted argon2id costs below 8 KiB per lane")
		}
	}()
	newHarness(t, withConfig(func(c *customers.Config) {
		c.Argon2 = account.PasswordParams{MemoryKiB: 4, Iterations: 1, Parallelism: 1}
	}))
}
