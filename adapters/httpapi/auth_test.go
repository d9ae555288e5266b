package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// setCookie returns the Set-Cookie header of the session cookie ("" when there is none).
func setCookie(res response) string {
	for _, v := range res.header.Values("Set-Cookie") {
		if strings.HasPrefix(v, sessionCookie+"=") {
			return v
		}
	}
	return ""
}

// cookieAttrs splits a Set-Cookie header into its lower-cased attributes (name=value first).
func cookieAttrs(v string) map[string]string {
	out := map[string]string{}
	for i, part := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if i == 0 {
			out["name"], out["value"] = k, val
			continue
		}
		out[strings.ToLower(k)] = val
	}
	return out
}

func TestAuthEmailLinkAnswersTheSameForAnyAddress(t *testing.T) {
	h := newMeHarness(t)
	h.cus.signIn(alice, ports.SessionBearer) // alice has an account; nobody@ has none
	known := h.post("/v1/auth/email-link", `{"email":" Alice@Example.com "}`)
	unknown := h.post("/v1/auth/email-link", `{"email":"nobody@example.com"}`)
	for _, res := range []response{known, unknown} {
		if res.status != 202 || string(res.body) != `{"status":"sent"}` {
			t.Fatalf("answer = %d %s", res.status, res.body)
		}
		if res.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("Cache-Control = %q", res.header.Get("Cache-Control"))
		}
	}
	if got := strings.Join(h.cus.requested, ","); got != alice+"|0.0.0.0,nobody@example.com|0.0.0.0" {
		t.Fatalf("links requested for %s", got)
	}
	h.problem(h.post("/v1/auth/email-link", `{"email":"not an address"}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/auth/email-link", `{}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/auth/email-link", `{"email":"a@b.c","extra":1}`), 400, errs.CodeValidationFailed)

	// The service's own limits (per address and per client) come back as 429 with Retry-After.
	h.cus.linkErr = &errs.Error{Kind: errs.RateLimited, Code: errs.CodeRateLimited, Message: "slow down", RetryAfter: 90 * time.Second}
	res := h.post("/v1/auth/email-link", `{"email":"nobody@example.com"}`)
	h.problem(res, 429, errs.CodeRateLimited)
	if res.header.Get("Retry-After") != "90" {
		t.Fatalf("Retry-After = %q", res.header.Get("Retry-After"))
	}
}

func TestAuthRoutesWithoutCustomers(t *testing.T) {
	h := newCommerceHarness(t)
	h.problem(h.post("/v1/auth/email-link", `{"email":"a@example.com"}`), 503, codeCustomersNotConfigured)
	h.problem(h.post("/v1/auth/verify", `{"token":"x"}`), 503, codeCustomersNotConfigured)
	h.problem(h.call(http.MethodGet, "/v1/me", "", map[string]string{"Authorization": "Bearer x"}), 503, codeCustomersNotConfigured)
	// Recovery needs only licensing.
	if res := h.post("/v1/recover", `{"email":"a@example.com"}`); res.status != 202 {
		t.Fatalf("recover = %d %s", res.status, res.body)
	}
}

func TestAuthVerifyBearer(t *testing.T) {
	h := newMeHarness(t)
	link := h.cus.link(alice)
	res := h.call(http.MethodPost, "/v1/auth/verify", `{"token":"`+link+`"}`, map[string]string{"User-Agent": "samplero-test/1"})
	m := h.json(res, 200)
	acc := m["account"].(map[string]any)
	if acc["email"] != alice || acc["has_password"] != false || !strings.HasPrefix(acc["id"].(string), "cus_") {
		t.Fatalf("account = %v", acc)
	}
	if m["expires_at"] != t0.Add(sessionTTL).Format(time.RFC3339) {
		t.Fatalf("expires_at = %v", m["expires_at"])
	}
	token, _ := m["token"].(string)
	if token == "" || setCookie(res) != "" {
		t.Fatalf("a bearer sign-in answers the token in the body only: %s / %q", res.body, setCookie(res))
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Fatal("the token's answer may be cached")
	}
	if meta := h.cus.metas[len(h.cus.metas)-1]; meta.Addr != "0.0.0.0" || meta.UserAgent != "samplero-test/1" {
		t.Fatalf("session meta = %+v", meta)
	}
	if me := h.json(h.req(token, http.MethodGet, "/v1/me", "", nil), 200); me["email"] != alice {
		t.Fatalf("me = %v", me)
	}
	// The link works once.
	h.problem(h.post("/v1/auth/verify", `{"token":"`+link+`","session":"bearer"}`), 401, "SIGN_IN_LINK_INVALID")
	h.problem(h.post("/v1/auth/verify", `{}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/auth/verify", `{"token":"x","session":"jar"}`), 400, errs.CodeValidationFailed)
}

func TestAuthVerifyCookie(t *testing.T) {
	h := newMeHarness(t)
	link := h.cus.link(alice)
	body := `{"token":"` + link + `","session":"cookie"}`

	// A cookie sign-in from another site (or with no origin at all) is refused before the link is
	// used: a foreign page must not sign a visitor into an account of its choosing.
	for _, hd := range []map[string]string{nil, {"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}} {
		h.problem(h.call(http.MethodPost, "/v1/auth/verify", body, hd), 403, codeCSRFRejected)
	}
	res := h.call(http.MethodPost, "/v1/auth/verify", body, map[string]string{"Origin": publicURL})
	m := h.json(res, 200)
	if _, ok := m["token"]; ok {
		t.Fatalf("a cookie sign-in leaks the token into the body: %s", res.body)
	}
	c := cookieAttrs(setCookie(res))
	if c["value"] == "" || c["path"] != "/" || c["max-age"] != "2592000" || strings.ToLower(c["samesite"]) != "lax" {
		t.Fatalf("cookie = %v", c)
	}
	if _, ok := c["httponly"]; !ok {
		t.Fatalf("cookie is not HttpOnly: %v", c)
	}
	if _, ok := c["secure"]; !ok {
		t.Fatalf("cookie is not Secure: %v", c)
	}
	if me := h.json(h.browser(c["value"], http.MethodGet, "/v1/me", ""), 200); me["email"] != alice {
		t.Fatalf("me = %v", me)
	}
	// Sec-Fetch-Site: same-origin is enough on its own.
	link2 := h.cus.link(bob)
	h.json(h.call(http.MethodPost, "/v1/auth/verify", `{"token":"`+link2+`","session":"cookie"}`, map[string]string{"Sec-Fetch-Site": "same-origin"}), 200)
}

func TestAuthPassword(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	h.problem(h.post("/v1/auth/password", `{"email":"alice@example.com","password":"correct horse"}`), 401, "INVALID_CREDENTIALS")

	res := h.req(tok, http.MethodPut, "/v1/me/password", `{"password":"correct horse"}`, nil)
	if res.status != 204 {
		t.Fatalf("set password = %d %s", res.status, res.body)
	}
	h.problem(h.req(tok, http.MethodPut, "/v1/me/password", `{"password":"short"}`, nil), 400, "PASSWORD_TOO_SHORT")
	h.problem(h.req(tok, http.MethodPut, "/v1/me/password", `{}`, nil), 400, errs.CodeValidationFailed)
	if me := h.json(h.req(tok, http.MethodGet, "/v1/me", "", nil), 200); me["has_password"] != true {
		t.Fatalf("me = %v", me)
	}

	m := h.json(h.post("/v1/auth/password", `{"email":"ALICE@example.com","password":"correct horse"}`), 200)
	if m["token"] == nil || m["account"].(map[string]any)["has_password"] != true {
		t.Fatalf("sign-in = %v", m)
	}
	// A wrong password and an unknown address are the same answer.
	wrong := h.problem(h.post("/v1/auth/password", `{"email":"alice@example.com","password":"wrong horse!"}`), 401, "INVALID_CREDENTIALS")
	unknown := h.problem(h.post("/v1/auth/password", `{"email":"nobody@example.com","password":"wrong horse!"}`), 401, "INVALID_CREDENTIALS")
	if wrong != unknown {
		t.Fatalf("answers differ: %+v / %+v", wrong, unknown)
	}
	h.problem(h.post("/v1/auth/password", `{"email":"alice@example.com"}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/auth/password", `{"email":"alice@example.com","password":"correct horse","session":"cookie"}`), 403, codeCSRFRejected)
	res = h.call(http.MethodPost, "/v1/auth/password", `{"email":"alice@example.com","password":"correct horse","session":"cookie"}`,
		map[string]string{"Origin": publicURL})
	if h.json(res, 200); setCookie(res) == "" {
		t.Fatal("a cookie password sign-in sets no cookie")
	}
}

func TestSessionInvalid(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	for name, hd := range map[string]map[string]string{
		"none":          nil,
		"basic scheme":  {"Authorization": "Basic " + tok},
		"empty bearer":  {"Authorization": "Bearer "},
		"unknown token": {"Authorization": "Bearer sst_unknown"},
		"huge token":    {"Authorization": "Bearer " + strings.Repeat("x", 2000)},
	} {
		res := h.call(http.MethodGet, "/v1/me/licenses", "", hd)
		h.problem(res, 401, codeSessionInvalid)
		if res.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	// A bad bearer token is not retried as the cookie.
	ck := h.cus.signIn(alice, ports.SessionCookie)
	h.problem(h.call(http.MethodGet, "/v1/me", "", map[string]string{"Authorization": "Bearer sst_unknown", "Cookie": sessionCookie + "=" + ck}), 401, codeSessionInvalid)

	// A dead cookie is answered 401 and cleared.
	res := h.browser("sst_dead", http.MethodGet, "/v1/me", "")
	h.problem(res, 401, codeSessionInvalid)
	if c := cookieAttrs(setCookie(res)); c["value"] != "" || c["expires"] == "" || !strings.Contains(c["expires"], "1970") {
		t.Fatalf("dead cookie not cleared: %v", c)
	}
	// Expired: the fake's sessions live 30 days on the injected clock.
	h.json(h.req(tok, http.MethodGet, "/v1/me", "", nil), 200)
	h.clock.Advance(sessionTTL)
	h.problem(h.req(tok, http.MethodGet, "/v1/me", "", nil), 401, codeSessionInvalid)
	if uc := h.lic.useCases(); len(uc) != 0 {
		t.Fatalf("licensing reached without a session: %v", uc)
	}
}

func TestCSRFRule(t *testing.T) {
	h := newMeHarness(t)
	ck := h.cus.signIn(alice, ports.SessionCookie)
	path := "/v1/me/devices/act_a1"
	body := `{"name":"Renamed"}`
	cookie := sessionCookie + "=" + ck

	// Reads need no origin.
	h.json(h.call(http.MethodGet, "/v1/me/licenses", "", map[string]string{"Cookie": cookie}), 200)
	for name, hd := range map[string]map[string]string{
		"no origin":      {},
		"foreign origin": {"Origin": "https://evil.example"},
		"http origin":    {"Origin": "http://shop.example.test"},
		"null origin":    {"Origin": "null"},
		"cross-site":     {"Sec-Fetch-Site": "cross-site"},
		"same-site":      {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.shop.example.test"},
	} {
		hd["Cookie"] = cookie
		h.problem(h.call(http.MethodPatch, path, body, hd), 403, codeCSRFRejected)
		if res := h.call(http.MethodPost, "/v1/auth/sign-out", "", hd); res.status != 403 {
			t.Errorf("%s: sign-out = %d", name, res.status)
		}
	}
	if n := h.licCalls("RenameDevice"); n != 0 {
		t.Fatalf("a cross-site request reached licensing %d times", n)
	}
	h.json(h.call(http.MethodPatch, path, body, map[string]string{"Cookie": cookie, "Origin": "HTTPS://SHOP.EXAMPLE.TEST"}), 200)
	h.json(h.call(http.MethodPatch, path, body, map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}), 200)
	// A bearer request needs no origin: browsers never attach the header on their own.
	tok := h.cus.signIn(alice, ports.SessionBearer)
	h.json(h.req(tok, http.MethodPatch, path, body, map[string]string{"Origin": "https://evil.example"}), 200)
}

func TestSignOut(t *testing.T) {
	h := newMeHarness(t)
	tok := h.cus.signIn(alice, ports.SessionBearer)
	other := h.cus.signIn(alice, ports.SessionBearer)
	res := h.req(tok, http.MethodPost, "/v1/auth/sign-out", "", nil)
	if res.status != 204 || setCookie(res) != "" {
		t.Fatalf("sign-out = %d, cookie %q", res.status, setCookie(res))
	}
	h.problem(h.req(tok, http.MethodGet, "/v1/me", "", nil), 401, codeSessionInvalid)
	h.json(h.req(other, http.MethodGet, "/v1/me", "", nil), 200)

	ck := h.cus.signIn(alice, ports.SessionCookie)
	res = h.browser(ck, http.MethodPost, "/v1/auth/sign-out", "")
	if c := cookieAttrs(setCookie(res)); res.status != 204 || c["value"] != "" || !strings.Contains(c["expires"], "1970") {
		t.Fatalf("cookie sign-out = %d, cookie %v", res.status, c)
	}
	h.problem(h.browser(ck, http.MethodGet, "/v1/me", ""), 401, codeSessionInvalid)

	// Everywhere: every live session of the account (other and a new cookie session), not bob's.
	ck2 := h.cus.signIn(alice, ports.SessionCookie)
	bobs := h.cus.signIn(bob, ports.SessionBearer)
	res = h.browser(ck2, http.MethodPost, "/v1/auth/sign-out-everywhere", "")
	if m := h.json(res, 200); m["revoked"] != 2.0 {
		t.Fatalf("revoked = %v", m)
	}
	if c := cookieAttrs(setCookie(res)); c["value"] != "" {
		t.Fatalf("cookie not cleared: %v", c)
	}
	h.problem(h.req(other, http.MethodGet, "/v1/me", "", nil), 401, codeSessionInvalid)
	h.json(h.req(bobs, http.MethodGet, "/v1/me", "", nil), 200)
	h.problem(h.post("/v1/auth/sign-out", ""), 401, codeSessionInvalid)
}

func TestRecoverAnswersTheSameForKnownAndUnknownAddresses(t *testing.T) {
	h := newMeHarness(t)
	known := h.post("/v1/recover", `{"email":"Alice@Example.com"}`)
	unknown := h.post("/v1/recover", `{"email":"nobody@example.com"}`)
	if known.status != 202 || string(known.body) != `{"status":"sent"}` || known.status != unknown.status || string(known.body) != string(unknown.body) {
		t.Fatalf("answers: %d %s / %d %s", known.status, known.body, unknown.status, unknown.body)
	}
	if got := strings.Join(h.owner.recovered, ","); got != alice+",nobody@example.com" {
		t.Fatalf("recovered %s", got)
	}
	h.problem(h.post("/v1/recover", `{"email":"@example.com"}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/recover", `{"email":"Alice <alice@example.com>"}`), 400, errs.CodeValidationFailed)
	h.problem(h.post("/v1/recover", `{}`), 400, errs.CodeValidationFailed)
	h.owner.fail("RecoverLicenses", errs.E(errs.Unavailable, errs.CodeUnavailable, "mail down"))
	h.problem(h.post("/v1/recover", `{"email":"carol@example.com"}`), 503, errs.CodeUnavailable)
}

// keyRecorder records the keys a rate limiter is asked about.
type keyRecorder struct {
	ports.RateLimiter
	mu   sync.Mutex
	keys []string
}

func (k *keyRecorder) Allow(ctx context.Context, key string, l ports.Limit) (bool, time.Duration, error) {
	k.mu.Lock()
	k.keys = append(k.keys, key)
	k.mu.Unlock()
	return k.RateLimiter.Allow(ctx, key, l)
}

func TestRecoverRateLimits(t *testing.T) {
	rec := &keyRecorder{}
	h := newMeHarness(t, func(d *Deps) { rec.RateLimiter = d.Limiter; d.Limiter = rec })
	// Per e-mail: 3 an hour, whatever the case or spacing of the address.
	for i, e := range []string{"alice@example.com", "ALICE@example.com", " alice@example.com"} {
		if res := h.post("/v1/recover", `{"email":"`+e+`"}`); res.status != 202 {
			t.Fatalf("recover %d = %d %s", i, res.status, res.body)
		}
	}
	res := h.post("/v1/recover", `{"email":"alice@example.com"}`)
	h.problem(res, 429, errs.CodeRateLimited)
	if res.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	if n := len(h.owner.recovered); n != 3 {
		t.Fatalf("recovered %d times", n)
	}
	// The limiter's backend never sees the address itself.
	for _, k := range rec.keys {
		if strings.Contains(strings.ToLower(k), "alice") {
			t.Fatalf("limiter key %q holds the address", k)
		}
	}
	h.clock.Advance(time.Hour)
	h.post("/v1/recover", `{"email":"alice@example.com"}`) // a new hour: allowed again
	if n := len(h.owner.recovered); n != 4 {
		t.Fatalf("recovered %d times after the window", n)
	}

	// Per client address: 10 an hour across addresses.
	h2 := newMeHarness(t)
	for i := range 10 {
		if res := h2.post("/v1/recover", `{"email":"user`+string(rune('a'+i))+`@example.com"}`); res.status != 202 {
			t.Fatalf("recover %d = %d", i, res.status)
		}
	}
	h2.problem(h2.post("/v1/recover", `{"email":"userz@example.com"}`), 429, errs.CodeRateLimited)
	if n := len(h2.owner.recovered); n != 10 {
		t.Fatalf("recovered %d times", n)
	}
}

// The customer routes share the public per-address limit.
func TestCustomerRoutesRateLimited(t *testing.T) {
	h := newMeHarness(t, func(d *Deps) { d.Config.RateLimits.PerAddress.Max = 2 })
	tok := h.cus.signIn(alice, ports.SessionBearer)
	h.json(h.req(tok, http.MethodGet, "/v1/me", "", nil), 200)
	h.json(h.req(tok, http.MethodGet, "/v1/me/licenses", "", nil), 200)
	h.problem(h.req(tok, http.MethodGet, "/v1/me", "", nil), 429, errs.CodeRateLimited)
	h.problem(h.post("/v1/auth/email-link", `{"email":"a@example.com"}`), 429, errs.CodeRateLimited)
}
