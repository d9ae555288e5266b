package portstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// CustomersStores is one set of customers repositories over one backing store, as the customers
// repository contract needs it.
type CustomersStores struct {
	Tx       ports.Tx
	Accounts ports.AccountRepo
	Links    ports.SignInLinkRepo
	Sessions ports.SessionRepo
}

// CustomersStores returns the customers repositories of s, for RunCustomersContract.
func (s *MemStore) CustomersStores() CustomersStores {
	return CustomersStores{Tx: s.Tx(), Accounts: s.Accounts(), Links: s.SignInLinks(), Sessions: s.Sessions()}
}

// RunCustomersContract checks that the customers repositories and Tx built by newStores behave as
// ports/customers.go promises. newStores must return empty stores, independent of any other call.
func RunCustomersContract(t *testing.T, newStores func(t *testing.T) CustomersStores) {
	t.Run("AccountRoundTrip", func(t *testing.T) { testAccountRoundTrip(t, newStores(t)) })
	t.Run("AccountUniqueEmail", func(t *testing.T) { testAccountUniqueEmail(t, newStores(t)) })
	t.Run("AccountInsertRace", func(t *testing.T) { testAccountInsertRace(t, newStores(t)) })
	t.Run("SignInLinkUse", func(t *testing.T) { testSignInLinkUse(t, newStores(t)) })
	t.Run("SignInLinkExpiry", func(t *testing.T) { testSignInLinkExpiry(t, newStores(t)) })
	t.Run("SignInLinkUseRace", func(t *testing.T) { testSignInLinkUseRace(t, newStores(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, newStores(t)) })
	t.Run("SessionRevokeAll", func(t *testing.T) { testSessionRevokeAll(t, newStores(t)) })
	t.Run("CustomersTxRollback", func(t *testing.T) { testCustomersTxRollback(t, newStores(t)) })
}

// ---- samples ----

func sampleAccount(id, email string, n int) ports.Account {
	return ports.Account{
		ID: id, Email: email, EmailVerifiedAt: at(time.Duration(n) * time.Minute),
		CreatedAt: at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleLink(seed byte, email string, created time.Time) ports.SignInLink {
	h := make([]byte, 32)
	for i := range h {
		h[i] = seed + byte(i)
	}
	return ports.SignInLink{TokenHash: h, Email: email, Purpose: account.PurposeSignIn,
		CreatedAt: created, ExpiresAt: created.Add(account.SignInLinkTTL)}
}

func sampleSession(id, accountID string, seed byte, n int) ports.Session {
	h := make([]byte, 32)
	for i := range h {
		h[i] = seed ^ byte(i*7)
	}
	return ports.Session{
		ID: id, TokenHash: h, AccountID: accountID, Kind: ports.SessionBearer,
		CreatedAt: at(time.Duration(n) * time.Minute), ExpiresAt: at(time.Duration(n)*time.Minute + 30*24*time.Hour),
		LastSeenAt: at(time.Duration(n) * time.Minute), UserAgent: "samplero-test/1.0 (Ünïcode ok)", Addr: "2001:db8::7",
	}
}

func wantLinkInvalid(t *testing.T, err error) {
	t.Helper()
	wantCode(t, err, account.CodeSignInLinkInvalid)
	wantKind(t, err, errs.Unauthenticated)
}

// ---- accounts ----

func testAccountRoundTrip(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	_, err := s.Accounts.Get(ctx, "cus_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantKind(t, err, errs.NotFound)
	_, err = s.Accounts.ByEmail(ctx, "nobody@example.com")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Accounts.Update(ctx, sampleAccount("cus_missing", "x@example.com", 1)), errs.CodeNotFound)

	a := sampleAccount("cus_1", "ann@example.com", 1)
	// Sub-second precision survives as microseconds, like every other time of the stores.
	a.EmailVerifiedAt = a.EmailVerifiedAt.Add(123456 * time.Microsecond)
	noErr(t, s.Accounts.Insert(ctx, a))
	got, err := s.Accounts.Get(ctx, "cus_1")
	noErr(t, err)
	same(t, "account by id", a, got)
	got, err = s.Accounts.ByEmail(ctx, "ann@example.com")
	noErr(t, err)
	same(t, "account by e-mail", a, got)
	// The repositories compare e-mails exactly: normalising is the service's job.
	_, err = s.Accounts.ByEmail(ctx, "Ann@example.com")
	wantCode(t, err, errs.CodeNotFound)

	a.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	a.UpdatedAt = at(time.Hour)
	noErr(t, s.Accounts.Update(ctx, a))
	got, err = s.Accounts.Get(ctx, "cus_1")
	noErr(t, err)
	same(t, "updated account", a, got)
}

func testAccountUniqueEmail(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	noErr(t, s.Accounts.Insert(ctx, sampleAccount("cus_1", "ann@example.com", 1)))
	noErr(t, s.Accounts.Insert(ctx, sampleAccount("cus_2", "bob@example.com", 2)))
	err := s.Accounts.Insert(ctx, sampleAccount("cus_3", "ann@example.com", 3))
	wantCode(t, err, errs.CodeConflict)
	wantKind(t, err, errs.Conflict)
	wantCode(t, s.Accounts.Insert(ctx, sampleAccount("cus_1", "new@example.com", 3)), errs.CodeConflict)
	// An update may not take another account's address either.
	wantCode(t, s.Accounts.Update(ctx, sampleAccount("cus_2", "ann@example.com", 2)), errs.CodeConflict)
	got, err := s.Accounts.Get(ctx, "cus_2")
	noErr(t, err)
	same(t, "e-mail after a refused update", "bob@example.com", got.Email)
	_, err = s.Accounts.Get(ctx, "cus_3")
	wantCode(t, err, errs.CodeNotFound)
}

// Two sign-ins creating the account of one address at once: exactly one insert wins, the other is
// CONFLICT (the service then loads the winner's account).
func testAccountInsertRace(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	const racers = 4
	var wg sync.WaitGroup
	start := make(chan struct{})
	errc := make(chan error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errc <- s.Tx.InTx(ctx, func(ctx context.Context) error {
				return s.Accounts.Insert(ctx, sampleAccount(fmt.Sprintf("cus_%d", i), "race@example.com", i))
			})
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	wins := 0
	for err := range errc {
		if err == nil {
			wins++
			continue
		}
		wantCode(t, err, errs.CodeConflict)
	}
	if wins != 1 {
		t.Fatalf("%d inserts of one e-mail succeeded, want exactly 1", wins)
	}
}

// ---- sign-in links ----

func testSignInLinkUse(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	l := sampleLink(1, "ann@example.com", at(0))
	noErr(t, s.Links.Insert(ctx, l))
	wantCode(t, s.Links.Insert(ctx, sampleLink(1, "eve@example.com", at(0))), errs.CodeConflict)

	_, err := s.Links.Use(ctx, sampleLink(99, "", at(0)).TokenHash, at(time.Minute))
	wantLinkInvalid(t, err)
	_, err = s.Links.Use(ctx, nil, at(time.Minute))
	wantLinkInvalid(t, err)

	now := at(time.Minute + 250*time.Millisecond)
	got, err := s.Links.Use(ctx, l.TokenHash, now)
	noErr(t, err)
	want := l
	want.UsedAt = &now
	same(t, "used link", want, got)

	// Single use: the second use fails however soon it comes.
	_, err = s.Links.Use(ctx, l.TokenHash, now)
	wantLinkInvalid(t, err)
	_, err = s.Links.Use(ctx, l.TokenHash, at(2*time.Minute))
	wantLinkInvalid(t, err)

	// Other links are independent.
	other := sampleLink(2, "ann@example.com", at(time.Minute))
	noErr(t, s.Links.Insert(ctx, other))
	_, err = s.Links.Use(ctx, other.TokenHash, at(3*time.Minute))
	noErr(t, err)
}

func testSignInLinkExpiry(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	l := sampleLink(1, "ann@example.com", at(0))
	noErr(t, s.Links.Insert(ctx, l))
	// A link expires at ExpiresAt exactly (expires_at > now).
	_, err := s.Links.Use(ctx, l.TokenHash, l.ExpiresAt)
	wantLinkInvalid(t, err)
	_, err = s.Links.Use(ctx, l.TokenHash, l.ExpiresAt.Add(time.Hour))
	wantLinkInvalid(t, err)

	l2 := sampleLink(2, "ann@example.com", at(0))
	noErr(t, s.Links.Insert(ctx, l2))
	got, err := s.Links.Use(ctx, l2.TokenHash, l2.ExpiresAt.Add(-time.Microsecond))
	noErr(t, err)
	if got.UsedAt == nil || !got.UsedAt.Equal(l2.ExpiresAt.Add(-time.Microsecond)) {
		t.Fatalf("used at %v", got.UsedAt)
	}
	// An expired use changed nothing: it is not "used" by having been tried.
	_, err = s.Links.Use(ctx, l.TokenHash, l.ExpiresAt.Add(-time.Minute))
	noErr(t, err)
}

// Of many concurrent uses of one link exactly one succeeds, in transactions as the service runs it.
func testSignInLinkUseRace(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	l := sampleLink(7, "race@example.com", at(0))
	noErr(t, s.Links.Insert(ctx, l))
	const racers = 6
	var wg sync.WaitGroup
	start := make(chan struct{})
	errc := make(chan error, racers)
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errc <- s.Tx.InTx(ctx, func(ctx context.Context) error {
				_, err := s.Links.Use(ctx, l.TokenHash, at(time.Minute))
				return err
			})
		}()
	}
	close(start)
	wg.Wait()
	close(errc)
	wins := 0
	for err := range errc {
		if err == nil {
			wins++
			continue
		}
		wantLinkInvalid(t, err)
	}
	if wins != 1 {
		t.Fatalf("%d concurrent uses of one link succeeded, want exactly 1", wins)
	}
}

// ---- sessions ----

func testSessions(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	noErr(t, s.Accounts.Insert(ctx, sampleAccount("cus_1", "ann@example.com", 1)))
	_, err := s.Sessions.ByTokenHash(ctx, []byte("missing"))
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Sessions.ByTokenHash(ctx, nil)
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Sessions.Touch(ctx, "ses_missing", at(0)), errs.CodeNotFound)
	wantCode(t, s.Sessions.Revoke(ctx, "ses_missing", at(0)), errs.CodeNotFound)

	x := sampleSession("ses_1", "cus_1", 1, 1)
	noErr(t, s.Sessions.Insert(ctx, x))
	cookie := sampleSession("ses_2", "cus_1", 2, 2)
	cookie.Kind, cookie.UserAgent, cookie.Addr = ports.SessionCookie, "", ""
	noErr(t, s.Sessions.Insert(ctx, cookie))
	got, err := s.Sessions.ByTokenHash(ctx, x.TokenHash)
	noErr(t, err)
	same(t, "session", x, got)
	got, err = s.Sessions.ByTokenHash(ctx, cookie.TokenHash)
	noErr(t, err)
	same(t, "cookie session", cookie, got)

	dupHash := sampleSession("ses_3", "cus_1", 1, 3)
	wantCode(t, s.Sessions.Insert(ctx, dupHash), errs.CodeConflict)
	dupID := sampleSession("ses_1", "cus_1", 9, 3)
	wantCode(t, s.Sessions.Insert(ctx, dupID), errs.CodeConflict)
	// A session of a missing account is a bug of the caller (a foreign key in the databases).
	orphan := sampleSession("ses_4", "cus_missing", 4, 4)
	if err := s.Sessions.Insert(ctx, orphan); err == nil {
		t.Fatal("a session of a missing account was stored")
	}

	seen := at(10*time.Minute + 500*time.Microsecond)
	noErr(t, s.Sessions.Touch(ctx, "ses_1", seen))
	got, err = s.Sessions.ByTokenHash(ctx, x.TokenHash)
	noErr(t, err)
	x.LastSeenAt = seen
	same(t, "touched session", x, got)

	revoked := at(20 * time.Minute)
	noErr(t, s.Sessions.Revoke(ctx, "ses_1", revoked))
	// Revoking again keeps the first time.
	noErr(t, s.Sessions.Revoke(ctx, "ses_1", at(30*time.Minute)))
	got, err = s.Sessions.ByTokenHash(ctx, x.TokenHash)
	noErr(t, err)
	x.RevokedAt = &revoked
	same(t, "revoked session", x, got)
	// The other session is untouched.
	got, err = s.Sessions.ByTokenHash(ctx, cookie.TokenHash)
	noErr(t, err)
	same(t, "other session", cookie, got)
}

func testSessionRevokeAll(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	noErr(t, s.Accounts.Insert(ctx, sampleAccount("cus_1", "ann@example.com", 1)))
	noErr(t, s.Accounts.Insert(ctx, sampleAccount("cus_2", "bob@example.com", 2)))
	for i := range 3 {
		noErr(t, s.Sessions.Insert(ctx, sampleSession(fmt.Sprintf("ses_a%d", i), "cus_1", byte(10+i), i)))
	}
	noErr(t, s.Sessions.Insert(ctx, sampleSession("ses_b", "cus_2", 20, 1)))
	early := at(time.Minute)
	noErr(t, s.Sessions.Revoke(ctx, "ses_a0", early))

	n, err := s.Sessions.RevokeAll(ctx, "cus_1", at(time.Hour))
	noErr(t, err)
	if n != 2 {
		t.Fatalf("RevokeAll revoked %d, want the 2 unrevoked sessions", n)
	}
	n, err = s.Sessions.RevokeAll(ctx, "cus_1", at(2*time.Hour))
	noErr(t, err)
	if n != 0 {
		t.Fatalf("RevokeAll again revoked %d, want 0", n)
	}
	n, err = s.Sessions.RevokeAll(ctx, "cus_none", at(2*time.Hour))
	noErr(t, err)
	if n != 0 {
		t.Fatalf("RevokeAll of an account without sessions revoked %d", n)
	}
	for i, want := range []time.Time{early, at(time.Hour), at(time.Hour)} {
		got, err := s.Sessions.ByTokenHash(ctx, sampleSession("", "", byte(10+i), 0).TokenHash)
		noErr(t, err)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(want) {
			t.Fatalf("session %d revoked at %v, want %v", i, got.RevokedAt, want)
		}
	}
	b, err := s.Sessions.ByTokenHash(ctx, sampleSession("", "", 20, 0).TokenHash)
	noErr(t, err)
	if b.RevokedAt != nil {
		t.Fatal("RevokeAll revoked another account's session")
	}
}

func testCustomersTxRollback(t *testing.T, s CustomersStores) {
	ctx := t.Context()
	boom := errors.New("sign-in failed")
	l := sampleLink(3, "ann@example.com", at(0))
	noErr(t, s.Links.Insert(ctx, l))
	// The sign-in use case: use the link, create the account, start a session; a failure at the end
	// undoes all three, so the link works again.
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.Links.Use(ctx, l.TokenHash, at(time.Minute)); err != nil {
			return err
		}
		if err := s.Accounts.Insert(ctx, sampleAccount("cus_rb", "ann@example.com", 1)); err != nil {
			return err
		}
		if err := s.Sessions.Insert(ctx, sampleSession("ses_rb", "cus_rb", 5, 1)); err != nil {
			return err
		}
		// Reads in the transaction see its own writes.
		if _, err := s.Accounts.ByEmail(ctx, "ann@example.com"); err != nil {
			t.Errorf("own write not visible: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	_, err = s.Accounts.Get(ctx, "cus_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Sessions.ByTokenHash(ctx, sampleSession("", "", 5, 0).TokenHash)
	wantCode(t, err, errs.CodeNotFound)

	// Committed, the same work sticks and the link is spent.
	noErr(t, s.Tx.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.Links.Use(ctx, l.TokenHash, at(time.Minute)); err != nil {
			return err
		}
		if err := s.Accounts.Insert(ctx, sampleAccount("cus_ok", "ann@example.com", 1)); err != nil {
			return err
		}
		return s.Sessions.Insert(ctx, sampleSession("ses_ok", "cus_ok", 6, 1))
	}))
	_, err = s.Links.Use(ctx, l.TokenHash, at(2*time.Minute))
	wantLinkInvalid(t, err)
	_, err = s.Sessions.ByTokenHash(ctx, sampleSession("", "", 6, 0).TokenHash)
	noErr(t, err)

	// A rolled-back revocation leaves the session usable.
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.Sessions.RevokeAll(ctx, "cus_ok", at(time.Hour)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	got, err := s.Sessions.ByTokenHash(ctx, sampleSession("", "", 6, 0).TokenHash)
	noErr(t, err)
	if got.RevokedAt != nil {
		t.Fatal("a rolled-back RevokeAll revoked the session")
	}
}
