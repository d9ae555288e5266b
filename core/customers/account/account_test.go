package account_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/customers/account"
	"github.com/samplero/samplero/core/errs"
)

func TestNormalizeEmail(t *testing.T) {
	ok := []struct{ in, want string }{
		{"ann@example.com", "ann@example.com"},
		{"  Ann.Lee+Synths@Example.COM \t", "ann.lee+synths@example.com"},
		{"o'brien@mail.example.co.uk", "o'brien@mail.example.co.uk"},
		{"x@a-b.io", "x@a-b.io"},
		{"Jörg@Bücher.de", "jörg@bücher.de"},
		{"user@xn--bcher-kva.de", "user@xn--bcher-kva.de"},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
	}
	for _, c := range ok {
		got, err := account.NormalizeEmail(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", "   ", "ann", "ann@", "@example.com", "ann@@example.com", "ann@b@example.com",
		"ann@localhost", "ann@example", "ann@.example.com", "ann@example..com", "ann@example.com.",
		"ann@-example.com", "ann@example-.com", ".ann@example.com", "ann.@example.com", "an..n@example.com",
		"ann lee@example.com", "ann@exa mple.com", "Ann <ann@example.com>", "\"ann\"@example.com",
		"ann@[192.168.0.1]", "ann@192.168.0.1", "ann@example.com\r\nBcc: eve@example.com", "ann,eve@example.com",
		"ann;eve@example.com", "ann@exam_ple.com", "ann\x00@example.com", "ann@example.com\x00",
		strings.Repeat("a", 65) + "@example.com",
		"ann@" + strings.Repeat("a", 64) + ".com",
		"a@" + strings.Repeat(strings.Repeat("b", 60)+".", 5) + "com",
		"ann@exa\xffmple.com",
	}
	for _, in := range bad {
		got, err := account.NormalizeEmail(in)
		if err == nil {
			t.Errorf("NormalizeEmail(%q) = %q, want INVALID_EMAIL", in, got)
			continue
		}
		if errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != account.CodeInvalidEmail {
			t.Errorf("NormalizeEmail(%q): want invalid INVALID_EMAIL, got %v", in, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	cases := []struct {
		in   string
		code string
	}{
		{"correct horse", ""},
		{"0123456789", ""},
		{"ünïcødé-päß", ""},
		{strings.Repeat("é", account.MaxPasswordLen), ""}, // characters, not bytes
		{"012345678", account.CodePasswordTooShort},
		{"", account.CodePasswordTooShort},
		{"ääääääääa", account.CodePasswordTooShort},
		{strings.Repeat("x", account.MaxPasswordLen+1), account.CodePasswordTooLong},
		{"0123456789\n", account.CodePasswordInvalid},
		{"0123456789\x00", account.CodePasswordInvalid},
		{"0123456789\xff", account.CodePasswordInvalid},
	}
	for _, c := range cases {
		err := account.CheckPassword(c.in)
		if c.code == "" {
			if err != nil {
				t.Errorf("CheckPassword(%q): %v", c.in, err)
			}
			continue
		}
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("CheckPassword(%q): want %s, got %v", c.in, c.code, err)
		}
	}
}

func TestPasswordParamsDefaults(t *testing.T) {
	got := account.PasswordParams{}.WithDefaults()
	want := account.PasswordParams{MemoryKiB: 65536, Iterations: 3, Parallelism: 2}
	if got != want {
		t.Fatalf("defaults: got %+v want %+v", got, want)
	}
	if got := (account.PasswordParams{Iterations: 1}).WithDefaults(); got.Iterations != 1 || got.MemoryKiB != 65536 {
		t.Fatalf("a set field must be kept: %+v", got)
	}
	for _, p := range []account.PasswordParams{
		{MemoryKiB: 15, Iterations: 1, Parallelism: 2},
		{MemoryKiB: 64, Iterations: 0, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 65, Parallelism: 1},
		{MemoryKiB: 2 << 20, Iterations: 1, Parallelism: 1},
		{MemoryKiB: 64, Iterations: 1, Parallelism: 0},
	} {
		if err := p.Validate(); errs.KindOf(err) != errs.Internal {
			t.Errorf("Validate(%+v): want an internal error, got %v", p, err)
		}
	}
	if err := (account.PasswordParams{MemoryKiB: 16, Iterations: 1, Parallelism: 2}).Validate(); err != nil {
		t.Fatalf("smallest valid parameters refused: %v", err)
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	h := account.PasswordHash{
		Params: account.PasswordParams{MemoryKiB: 65536, Iterations: 3, Parallelism: 2},
		Salt:   bytes.Repeat([]byte{0xfb}, account.SaltLen),
		Key:    bytes.Repeat([]byte{0x01, 0x02}, account.KeyLen/2),
	}
	s := h.String()
	want := "$argon2id$v=19$m=65536,t=3,p=2$" + base64.RawStdEncoding.EncodeToString(h.Salt) + "$" + base64.RawStdEncoding.EncodeToString(h.Key)
	if s != want {
		t.Fatalf("PHC string\n got %s\nwant %s", s, want)
	}
	back, err := account.ParsePasswordHash(s)
	if err != nil {
		t.Fatal(err)
	}
	if back.Params != h.Params || !bytes.Equal(back.Salt, h.Salt) || !bytes.Equal(back.Key, h.Key) {
		t.Fatalf("round trip: %+v", back)
	}
	if back.NeedsRehash(h.Params) {
		t.Fatal("same parameters need no rehash")
	}
	if !back.NeedsRehash(account.PasswordParams{MemoryKiB: 65536, Iterations: 4, Parallelism: 2}) {
		t.Fatal("other parameters need a rehash")
	}
	short := back
	short.Key = short.Key[:16]
	if !short.NeedsRehash(h.Params) {
		t.Fatal("another key size needs a rehash")
	}
}

func TestParsePasswordHashRefusesCorruption(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))
	key := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	for _, s := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=65536,t=3,p=2$" + salt + "$" + key,
		"$argon2id$v=16$m=65536,t=3,p=2$" + salt + "$" + key,
		"$argon2id$m=65536,t=3,p=2$" + salt + "$" + key,
		"$argon2id$v=19$t=3,m=65536,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=65536,t=3$" + salt + "$" + key,
		"$argon2id$v=19$m=065536,t=3,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=65536,t=3,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=3,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=9999999,t=3,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=65536,t=0,p=2$" + salt + "$" + key,
		"$argon2id$v=19$m=65536,t=3,p=2$" + salt + "==$" + key,
		"$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=65536,t=3,p=2$$" + key,
		"$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$AAAA",
		"$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key[:len(key)-1] + "!",
	} {
		if _, err := account.ParsePasswordHash(s); errs.KindOf(err) != errs.Internal {
			t.Errorf("ParsePasswordHash(%q): want an internal error, got %v", s, err)
		}
	}
}

func TestTokens(t *testing.T) {
	tok, hash := account.NewLinkToken()
	if len(tok) != 43 || !account.WellFormedLinkToken(tok) {
		t.Fatalf("link token %q: want 43 base64url characters", tok)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 32 {
		t.Fatalf("link token must be 32 random bytes: %v", err)
	}
	sum := sha256.Sum256([]byte(tok))
	if !bytes.Equal(hash, sum[:]) || !bytes.Equal(account.HashToken(tok), hash) {
		t.Fatal("the stored hash must be SHA-256 of the token text")
	}
	tok2, _ := account.NewLinkToken()
	if tok2 == tok {
		t.Fatal("two tokens are equal")
	}

	st, sh := account.NewSessionToken()
	if !strings.HasPrefix(st, "sps_") || len(st) != 47 || !account.WellFormedSessionToken(st) {
		t.Fatalf("session token %q", st)
	}
	if !bytes.Equal(sh, account.HashToken(st)) {
		t.Fatal("session hash covers the prefix too")
	}
	if account.WellFormedLinkToken(st) || account.WellFormedSessionToken(tok) {
		t.Fatal("a session token is not a link token and back")
	}
	for _, junk := range []string{"", "sps_", "abc", tok + "A", tok[:42] + "+", strings.Repeat("=", 43), "sps_" + tok[:42] + "/"} {
		if account.WellFormedLinkToken(junk) && junk != tok {
			t.Errorf("junk link token accepted: %q", junk)
		}
		if account.WellFormedSessionToken(junk) {
			t.Errorf("junk session token accepted: %q", junk)
		}
	}
	// 43 characters carry 258 bits: a last character with either of its 2 spare bits set is not
	// what NewLinkToken gives (and would be a second spelling of the same bytes).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[42])
	if odd := tok[:42] + string(alphabet[last|1]); account.WellFormedLinkToken(odd) {
		t.Errorf("non-canonical token accepted: %q", odd)
	}

	id := account.NewID(account.IDPrefixAccount)
	if !strings.HasPrefix(id, "cus_") || len(id) != 30 || strings.ToLower(id) != id {
		t.Fatalf("id %q", id)
	}
	if got := account.LinkMessageID([]byte{0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xff, 0xff}); got != "signin-abcdef0123456789" {
		t.Fatalf("message id %q", got)
	}
}

func TestSessionRules(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	if !account.SessionActive(nil, exp, now) {
		t.Fatal("fresh session inactive")
	}
	if account.SessionActive(nil, exp, exp) {
		t.Fatal("a session expires at ExpiresAt exactly")
	}
	if account.SessionActive(&now, exp, now) {
		t.Fatal("revoked session active")
	}
	if account.TouchDue(now, now.Add(account.TouchInterval-time.Second)) {
		t.Fatal("touched before the interval")
	}
	if !account.TouchDue(now, now.Add(account.TouchInterval)) {
		t.Fatal("not touched after the interval")
	}
	if err := account.CheckSessionKind("cookie"); err != nil {
		t.Fatal(err)
	}
	if err := account.CheckSessionKind("bearer"); err != nil {
		t.Fatal(err)
	}
	if err := account.CheckSessionKind("jwt"); errs.CodeOf(err) != account.CodeSessionKindInvalid {
		t.Fatalf("want SESSION_KIND_INVALID, got %v", err)
	}
}

func TestClientMeta(t *testing.T) {
	addr, ua := account.ClientMeta(" 203.0.113.7\n", "Mozilla/5.0\x00 (X11)\r\n"+strings.Repeat("é", 200))
	if addr != "203.0.113.7" {
		t.Fatalf("addr %q", addr)
	}
	if strings.ContainsAny(ua, "\x00\r\n") || len(ua) > 256 || !strings.HasPrefix(ua, "Mozilla/5.0 (X11)") {
		t.Fatalf("user agent %q", ua)
	}
	if !strings.HasSuffix(ua, "é") {
		t.Fatalf("a cut must not split a character: %q", ua[len(ua)-4:])
	}
}
