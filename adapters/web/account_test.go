package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

const (
	alice     = "alice@example.com"
	bob       = "bob@example.com"
	publicURL = "https://shop.example.test"
)

var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type fixedClock struct{}

func (fixedClock) Now() time.Time { return now }

// portalCustomers is a ports.Customers with single-use links and revocable sessions in memory.
type portalCustomers struct {
	mu        sync.Mutex
	links     map[string]string // token → e-mail
	sessions  map[string]string // token → e-mail ("" = revoked)
	requested []string          // "email|addr"
	linkErr   error
	n         int
}

func (f *portalCustomers) RequestSignInLink(_ context.Context, email, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.linkErr != nil {
		return f.linkErr
	}
	f.requested = append(f.requested, email+"|"+addr)
	return nil
}

func (f *portalCustomers) SignInWithLink(_ context.Context, token string, kind ports.SessionKind, _ ports.SessionMeta) (ports.SessionGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	email, ok := f.links[token]
	if !ok || kind != ports.SessionCookie {
		return ports.SessionGrant{}, errs.E(errs.Unauthenticated, "SIGN_IN_LINK_INVALID", "no such link")
	}
	delete(f.links, token)
	f.n++
	tok := "sst_portal_" + string(rune('a'+f.n))
	f.sessions[tok] = email
	return ports.SessionGrant{Token: tok, Account: ports.Account{ID: "cus_" + email, Email: email}, ExpiresAt: now.Add(30 * 24 * time.Hour)}, nil
}

func (f *portalCustomers) SignInWithPassword(context.Context, string, string, ports.SessionKind, ports.SessionMeta) (ports.SessionGrant, error) {
	return ports.SessionGrant{}, errs.Internalf("not used by the portal")
}

func (f *portalCustomers) Authenticate(_ context.Context, token string) (ports.CustomerIdentity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	email := f.sessions[token]
	if email == "" {
		return ports.CustomerIdentity{}, errs.E(errs.Unauthenticated, "SESSION_INVALID", "no such session")
	}
	return ports.CustomerIdentity{AccountID: "cus_" + email, Email: email, SessionID: "ses_" + token}, nil
}

func (f *portalCustomers) SetPassword(context.Context, string, string) error { return nil }
func (f *portalCustomers) Account(context.Context, string) (ports.Account, error) {
	return ports.Account{}, errs.Internalf("not used by the portal")
}

func (f *portalCustomers) SignOut(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions[token] = ""
	return nil
}

func (f *portalCustomers) SignOutEverywhere(context.Context, string) (int, error) { return 0, nil }

// portalLicensing answers the owner calls, scoped by owner as the port says: another owner's
// device or claim is NOT_FOUND. Any other call hits the nil interface and fails the test.
type portalLicensing struct {
	ports.Licensing
	mu      sync.Mutex
	byOwner map[string][]ports.OwnerLicenseView
	calls   []string
}

func (f *portalLicensing) OwnerLicenses(_ context.Context, owner string) ([]ports.OwnerLicenseView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byOwner[owner], nil
}

func (f *portalLicensing) find(owner, id string) bool {
	for _, l := range f.byOwner[owner] {
		for _, d := range l.Devices {
			if d.ID == id {
				return true
			}
		}
		for _, c := range l.Claims {
			if c.ID == id {
				return true
			}
		}
	}
	return false
}

func (f *portalLicensing) act(name, owner, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.find(owner, id) {
		return errs.E(errs.NotFound, "ACTIVATION_NOT_FOUND", "no such device")
	}
	f.calls = append(f.calls, name+" "+owner+" "+id)
	return nil
}

func (f *portalLicensing) RevokeDevice(_ context.Context, owner, id string) (ports.OwnerLicenseView, error) {
	return ports.OwnerLicenseView{}, f.act("revoke", owner, id)
}

func (f *portalLicensing) OwnerReleaseSeat(_ context.Context, owner, id string) (ports.OwnerLicenseView, error) {
	return ports.OwnerLicenseView{}, f.act("release", owner, id)
}

func (f *portalLicensing) OwnerDecideClaim(_ context.Context, owner, id string, approve bool) (ports.ClaimView, error) {
	d := "reject"
	if approve {
		d = "approve"
	}
	if err := f.act(d, owner, id); err != nil {
		return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
	}
	return ports.ClaimView{ID: id}, nil
}

// portalOrders lists orders by e-mail.
type portalOrders struct {
	ports.Commerce
	orders []ports.OrderView
	filter ports.OrderFilter
}

func (f *portalOrders) ListOrders(_ context.Context, of ports.OrderFilter) ([]ports.OrderView, string, error) {
	f.filter = of
	var out []ports.OrderView
	for _, v := range f.orders {
		if v.Order.CustomerEmail == of.CustomerEmail {
			out = append(out, v)
		}
	}
	return out, "", nil
}

func (f *portalOrders) AccessToken(id string) string { return "tok-" + id }

type portal struct {
	t   *testing.T
	app *fiber.App
	cus *portalCustomers
	lic *portalLicensing
	com *portalOrders
}

func portalSetup(t *testing.T) *portal {
	t.Helper()
	hb := now.Add(-time.Hour)
	held := now.Add(48 * time.Hour)
	p := &portal{t: t,
		cus: &portalCustomers{links: map[string]string{}, sessions: map[string]string{}},
		lic: &portalLicensing{byOwner: map[string][]ports.OwnerLicenseView{
			alice: {{ID: "lic_a", MaskedKey: "VST-AAAAA-•••••-•••••-DDDD1", Status: "active", Product: "synth", MaxActivations: 3, SeatsUsed: 2,
				CreatedAt: now,
				Devices: []ports.OwnerDevice{
					{ActivationView: ports.ActivationView{ID: "act_a1", Status: "active", DeviceName: `<b>Studio</b>`, Platform: "mac",
						PluginVersion: "1.2.3", LastHeartbeatAt: &hb}},
					{ActivationView: ports.ActivationView{ID: "act_a2", Status: "deactivated", Platform: "win"}, SeatHeldUntil: &held, CanReleaseSeat: true},
				},
				Claims: []ports.ClaimView{{ID: "clm_a", Status: "pending", DeviceName: "Laptop", Platform: "mac", Fingerprint: "fp-alice-3",
					RequestAddr: "203.0.113.7", CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}},
			}},
			bob: {{ID: "lic_b", MaskedKey: "VST-BBBBB-•••••-•••••-EEEE2", Status: "active", Product: "drums", MaxActivations: 2,
				Devices: []ports.OwnerDevice{{ActivationView: ports.ActivationView{ID: "act_b1", Status: "active", DeviceName: "Bob's PC", Platform: "win"}}},
				Claims:  []ports.ClaimView{{ID: "clm_b", Status: "pending", Platform: "win"}}}},
		}},
		com: &portalOrders{orders: []ports.OrderView{
			{Order: order.Order{ID: "ord_a1", Number: 3, CustomerEmail: alice, Status: order.StatusFulfilled, Currency: "USD", TotalCents: 4900, CreatedAt: now},
				Reference: "LS-000003"},
			{Order: order.Order{ID: "ord_b1", Number: 2, CustomerEmail: bob, Status: order.StatusFulfilled, Currency: "USD", TotalCents: 100, CreatedAt: now},
				Reference: "LS-000002"},
		}},
	}
	acc, err := NewAccount(AccountDeps{Customers: p.cus, Licensing: p.lic, Commerce: p.com, Clock: fixedClock{}, PublicURL: publicURL,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}})
	if err != nil {
		t.Fatal(err)
	}
	p.app = fiber.New()
	acc.Register(p.app)
	return p
}

// session signs email in directly and returns the cookie value.
func (p *portal) session(email string) string {
	p.cus.mu.Lock()
	defer p.cus.mu.Unlock()
	p.cus.n++
	tok := "sst_direct_" + string(rune('a'+p.cus.n))
	p.cus.sessions[tok] = email
	return tok
}

func (p *portal) link(email string) string {
	p.cus.mu.Lock()
	defer p.cus.mu.Unlock()
	tok := "sil_" + email
	p.cus.links[tok] = email
	return tok
}

func (p *portal) get(path, cookie string) (*http.Response, string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", sessionCookie+"="+cookie)
	}
	return do(p.t, p.app, req)
}

func (p *portal) form(path, cookie string, v url.Values, header map[string]string) (*http.Response, string) {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		req.Header.Set("Cookie", sessionCookie+"="+cookie)
	}
	for k, val := range header {
		req.Header.Set(k, val)
	}
	return do(p.t, p.app, req)
}

func sessionSetCookie(res *http.Response) (string, bool) {
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			return c.Raw, true
		}
	}
	return "", false
}

func TestNewAccountNeedsItsPorts(t *testing.T) {
	if _, err := NewAccount(AccountDeps{Licensing: &portalLicensing{}, Clock: fixedClock{}}); err == nil {
		t.Fatal("no error without Customers")
	}
	if _, err := NewAccount(AccountDeps{Customers: &portalCustomers{}, Licensing: &portalLicensing{}, Clock: fixedClock{}, PublicURL: "/relative"}); err == nil {
		t.Fatal("no error for a relative PublicURL")
	}
}

func TestSignInPage(t *testing.T) {
	p := portalSetup(t)
	res, body := p.get(SignInPath, "")
	if res.StatusCode != 200 || !strings.Contains(body, `method="post" action="sign-in"`) || !strings.Contains(body, `name="email"`) {
		t.Fatalf("sign-in page %d: %s", res.StatusCode, body)
	}
	csp := res.Header.Get("Content-Security-Policy")
	page, _ := files.ReadFile("templates/page.css")
	extra, _ := files.ReadFile("templates/account.css")
	sum := sha256.Sum256(append(append(page, '\n'), extra...))
	if !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q does not allow exactly the page's style", csp)
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatal("security headers missing")
	}
	// Signed in already: straight to the account.
	res, _ = p.get(SignInPath, p.session(alice))
	if res.StatusCode != 303 || res.Header.Get("Location") != "account" {
		t.Fatalf("signed-in visitor: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestRequestLinkAnswersTheSameForAnyAddress(t *testing.T) {
	p := portalSetup(t)
	res, known := p.form(SignInPath, "", url.Values{"email": {" Alice@Example.com "}}, map[string]string{"X-Forwarded-For": "198.51.100.9"})
	if res.StatusCode != 200 || !strings.Contains(known, "Check your e-mail") {
		t.Fatalf("known: %d %s", res.StatusCode, known)
	}
	_, unknown := p.form(SignInPath, "", url.Values{"email": {"nobody@example.com"}}, nil)
	if strings.ReplaceAll(known, "Alice@Example.com", "X") != strings.ReplaceAll(unknown, "nobody@example.com", "X") {
		t.Fatal("the page differs for a known and an unknown address")
	}
	// The address behind the trusted proxy is the client's, for the service's rate limits.
	if got := strings.Join(p.cus.requested, ","); got != "alice@example.com|198.51.100.9,nobody@example.com|0.0.0.0" {
		t.Fatalf("requested %s", got)
	}
	res, body := p.form(SignInPath, "", url.Values{"email": {"nope"}}, nil)
	if res.StatusCode != 400 || !strings.Contains(body, `class="error"`) || !strings.Contains(body, `value="nope"`) {
		t.Fatalf("bad address: %d %s", res.StatusCode, body)
	}
	p.cus.linkErr = errs.E(errs.RateLimited, errs.CodeRateLimited, "slow down")
	if res, _ := p.form(SignInPath, "", url.Values{"email": {alice}}, nil); res.StatusCode != 429 {
		t.Fatalf("rate limited: %d", res.StatusCode)
	}
}

func TestVerifyShowsAButtonAndSpendsNothing(t *testing.T) {
	p := portalSetup(t)
	link := p.link(alice)
	res, body := p.get(VerifyPath+"?token="+url.QueryEscape(link), "")
	if res.StatusCode != 200 || !strings.Contains(body, `method="post" action="verify"`) || !strings.Contains(body, `value="`+link+`"`) {
		t.Fatalf("verify page %d: %s", res.StatusCode, body)
	}
	if res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the token could leak through Referer")
	}
	if _, ok := p.cus.links[link]; !ok {
		t.Fatal("showing the page spent the link")
	}
	if res, _ := p.get(VerifyPath, ""); res.StatusCode != 400 {
		t.Fatalf("no token: %d", res.StatusCode)
	}
}

func TestVerifySignsInWithACookie(t *testing.T) {
	p := portalSetup(t)
	link := p.link(alice)
	v := url.Values{"token": {link}}
	// A cross-site form (or one without any origin header) cannot spend the link.
	for _, hd := range []map[string]string{nil, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}} {
		if res, _ := p.form(VerifyPath, "", v, hd); res.StatusCode != 403 {
			t.Fatalf("cross-site verify: %d", res.StatusCode)
		}
	}
	if _, ok := p.cus.links[link]; !ok {
		t.Fatal("a refused request spent the link")
	}
	res, _ := p.form(VerifyPath, "", v, map[string]string{"Origin": publicURL})
	if res.StatusCode != 303 || res.Header.Get("Location") != "../account" {
		t.Fatalf("verify: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	raw, ok := sessionSetCookie(res)
	attrs := strings.ToLower(raw)
	if !ok || !strings.Contains(attrs, "httponly") || !strings.Contains(attrs, "secure") || !strings.Contains(attrs, "samesite=lax") ||
		!strings.Contains(attrs, "path=/") || !strings.Contains(attrs, "max-age=2592000") {
		t.Fatalf("cookie = %q", raw)
	}
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			cookie = c.Value
		}
	}
	if res, body := p.get(AccountPath, cookie); res.StatusCode != 200 || !strings.Contains(body, alice) {
		t.Fatalf("account after sign-in: %d", res.StatusCode)
	}
	// The link works once.
	if res, body := p.form(VerifyPath, "", v, map[string]string{"Sec-Fetch-Site": "same-origin"}); res.StatusCode != 401 || !strings.Contains(body, "already used or has expired") {
		t.Fatalf("second use: %d %s", res.StatusCode, body)
	}
}

func TestAccountPage(t *testing.T) {
	p := portalSetup(t)
	res, _ := p.get(AccountPath, "")
	if res.StatusCode != 303 || res.Header.Get("Location") != "sign-in" {
		t.Fatalf("signed out: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, _ = p.get(AccountPath, "sst_dead")
	if raw, _ := sessionSetCookie(res); res.StatusCode != 303 || !strings.Contains(raw, "1970") {
		t.Fatalf("dead cookie: %d, cleared %q", res.StatusCode, raw)
	}

	ck := p.session(alice)
	res, body := p.get(AccountPath, ck)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	csrf := csrfToken(ck)
	for _, want := range []string{alice, "VST-AAAAA-•••••-•••••-DDDD1", "2 of 3 devices", "&lt;b&gt;Studio&lt;/b&gt;", "macOS", "1.2.3",
		`name="action" value="revoke-device"`, `name="id" value="act_a1"`, `name="action" value="release-seat"`, `name="id" value="act_a2"`,
		`name="action" value="approve-claim"`, `name="action" value="reject-claim"`, `name="id" value="clm_a"`, "fp-alice-3", "203.0.113.7",
		`name="csrf" value="` + csrf + `"`, `name="action" value="sign-out"`, `action="account"`,
		"LS-000003", "49.00 USD", `href="orders/ord_a1?token=tok-ord_a1"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<b>Studio") {
		t.Error("device name not escaped")
	}
	for _, theirs := range []string{bob, "lic_b", "act_b1", "clm_b", "LS-000002", "drums", "Bob"} {
		if strings.Contains(body, theirs) {
			t.Errorf("alice's page shows bob's %q", theirs)
		}
	}
	if p.com.filter.CustomerEmail != alice || p.com.filter.Limit != ordersShown {
		t.Fatalf("orders filter = %+v", p.com.filter)
	}
	if _, body := p.get(AccountPath+"?done=revoked", ck); !strings.Contains(body, "The device was removed") {
		t.Fatal("no notice")
	}
	if _, body := p.get(AccountPath+"?done=%3Cscript%3E", ck); strings.Contains(body, "<script>") || strings.Contains(body, `class="notice"`) {
		t.Fatal("a notice that is not one of ours was shown")
	}
}

func TestAccountActions(t *testing.T) {
	p := portalSetup(t)
	ck := p.session(alice)
	csrf := csrfToken(ck)
	post := func(cookie string, v url.Values) (*http.Response, string) { return p.form(AccountPath, cookie, v, nil) }

	for _, tc := range []struct {
		action, id, done, call string
	}{
		{"revoke-device", "act_a1", "revoked", "revoke " + alice + " act_a1"},
		{"release-seat", "act_a2", "released", "release " + alice + " act_a2"},
		{"approve-claim", "clm_a", "approved", "approve " + alice + " clm_a"},
		{"reject-claim", "clm_a", "rejected", "reject " + alice + " clm_a"},
	} {
		res, body := post(ck, url.Values{"csrf": {csrf}, "action": {tc.action}, "id": {tc.id}})
		if res.StatusCode != 303 || res.Header.Get("Location") != "account?done="+tc.done {
			t.Fatalf("%s: %d %q %s", tc.action, res.StatusCode, res.Header.Get("Location"), body)
		}
		if last := p.lic.calls[len(p.lic.calls)-1]; last != tc.call {
			t.Fatalf("%s called %q", tc.action, last)
		}
	}
	n := len(p.lic.calls)

	// A form without the session's token (a cross-site form, or another session's page) does nothing.
	for _, bad := range []string{"", "x", csrfToken("another session")} {
		if res, _ := post(ck, url.Values{"csrf": {bad}, "action": {"revoke-device"}, "id": {"act_a1"}}); res.StatusCode != 403 {
			t.Fatalf("csrf %q: %d", bad, res.StatusCode)
		}
	}
	// Without a session: back to sign-in.
	if res, _ := post("", url.Values{"csrf": {csrf}, "action": {"revoke-device"}, "id": {"act_a1"}}); res.StatusCode != 303 || res.Header.Get("Location") != "sign-in" {
		t.Fatalf("no session: %d", res.StatusCode)
	}
	// Bob's device and claim through alice's page: not found, as a missing one.
	for _, v := range []url.Values{
		{"csrf": {csrf}, "action": {"revoke-device"}, "id": {"act_b1"}},
		{"csrf": {csrf}, "action": {"approve-claim"}, "id": {"clm_b"}},
		{"csrf": {csrf}, "action": {"release-seat"}, "id": {"act_missing"}},
	} {
		if res, _ := post(ck, v); res.StatusCode != 404 {
			t.Fatalf("%v: %d", v, res.StatusCode)
		}
	}
	if res, _ := post(ck, url.Values{"csrf": {csrf}, "action": {"explode"}, "id": {"act_a1"}}); res.StatusCode != 400 {
		t.Fatalf("unknown action: %d", res.StatusCode)
	}
	if res, _ := post(ck, url.Values{"csrf": {csrf}, "action": {"revoke-device"}}); res.StatusCode != 400 {
		t.Fatalf("no id: %d", res.StatusCode)
	}
	if len(p.lic.calls) != n {
		t.Fatalf("refused requests reached licensing: %v", p.lic.calls[n:])
	}

	// Sign out: the session ends and the cookie is cleared.
	res, _ := post(ck, url.Values{"csrf": {csrf}, "action": {"sign-out"}})
	if raw, _ := sessionSetCookie(res); res.StatusCode != 303 || res.Header.Get("Location") != "sign-in" || !strings.Contains(raw, "1970") {
		t.Fatalf("sign-out: %d %q %q", res.StatusCode, res.Header.Get("Location"), raw)
	}
	if res, _ := p.get(AccountPath, ck); res.StatusCode != 303 {
		t.Fatalf("account after sign-out: %d", res.StatusCode)
	}
}

// The portal pages are in docs/openapi.yaml.
func TestAccountPagesDocumented(t *testing.T) {
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"\n  /sign-in:\n    get:", "\n  /auth/verify:\n    get:", "\n  /account:\n    get:"} {
		if !strings.Contains(string(spec), path) {
			t.Errorf("docs/openapi.yaml lacks %q", path)
		}
	}
	for _, op := range []string{"/sign-in", "/auth/verify", "/account"} {
		i := strings.Index(string(spec), "\n  "+op+":\n")
		if i < 0 || !strings.Contains(string(spec)[i:min(i+3000, len(spec))], "    post:") {
			t.Errorf("docs/openapi.yaml lacks POST %s", op)
		}
	}
}
