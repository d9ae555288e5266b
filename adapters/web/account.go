package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// The customer portal: sign-in by e-mail link and the account page.
//
//   - GET /sign-in shows a form for the e-mail address; POST /sign-in asks for a link and answers
//     the same page whether the address has an account or not.
//   - GET /auth/verify?token=… (the e-mail's link) only shows a "Sign in" button: a mail scanner
//     that follows the link must not spend it. The button POSTs the token to /auth/verify, which
//     signs in with a cookie session and redirects to /account. That POST must be same-origin
//     (Origin or Sec-Fetch-Site), so that a foreign page cannot sign a visitor into an account of
//     its choosing.
//   - GET /account shows the licenses (keys masked), devices, pending claims and orders;
//     POST /account carries the page's buttons (revoke a device, free a held seat, approve or reject
//     a claim, sign out) with a CSRF token derived from the session.
//
// Every form action and redirect is relative, so that the pages follow whatever prefix a proxy put
// in front of them.

// Paths of the portal.
const (
	SignInPath  = "/sign-in"
	VerifyPath  = "/auth/verify"
	AccountPath = "/account"

	// sessionCookie is the portal's session cookie; the HTTP API (adapters/httpapi) reads the same
	// name, so that a session started on either side works on both.
	sessionCookie = "samplero_session"
	maxFormValue  = 1024
	ordersShown   = 20
)

// AccountDeps are what the portal needs.
type AccountDeps struct {
	Customers ports.Customers
	Licensing ports.Licensing
	// Commerce lists the customer's orders on the account page; nil shows none.
	Commerce ports.Commerce
	Clock    ports.Clock
	// PublicURL is the origin browsers see (https://shop.example.com); "" takes the request's own.
	PublicURL string
	// TrustedProxies are the peers whose X-Forwarded-For names the client (for the sign-in rate
	// limits); empty trusts none.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// Account serves the portal pages.
type Account struct {
	d       AccountDeps
	origin  string
	signIn  *template.Template
	verify  *template.Template
	account *template.Template
	message *template.Template
	css     template.CSS
	csp     string
}

// NewAccount parses the embedded templates.
func NewAccount(d AccountDeps) (*Account, error) {
	switch {
	case d.Customers == nil:
		return nil, errors.New("web: Customers is required")
	case d.Licensing == nil:
		return nil, errors.New("web: Licensing is required")
	case d.Clock == nil:
		return nil, errors.New("web: Clock is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Account{d: d}
	if d.PublicURL != "" {
		u, err := url.Parse(d.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, errors.New("web: PublicURL must be an absolute URL")
		}
		p.origin = u.Scheme + "://" + u.Host
	}
	base, err := files.ReadFile("templates/page.css")
	if err != nil {
		return nil, err
	}
	extra, err := files.ReadFile("templates/account.css")
	if err != nil {
		return nil, err
	}
	css := append(append(base, '\n'), extra...)
	p.css = template.CSS(css)
	layout, err := template.ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	page := func(name string) (*template.Template, error) {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		return t.ParseFS(files, "templates/"+name)
	}
	if p.signIn, err = page("account_sign_in.html"); err != nil {
		return nil, err
	}
	if p.verify, err = page("account_verify.html"); err != nil {
		return nil, err
	}
	if p.account, err = page("account.html"); err != nil {
		return nil, err
	}
	if p.message, err = page("message.html"); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(css)
	p.csp = "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return p, nil
}

// Register adds the portal pages to r.
func (p *Account) Register(r fiber.Router) {
	r.Get(SignInPath, p.showSignIn)
	r.Post(SignInPath, p.requestLink)
	r.Get(VerifyPath, p.showVerify)
	r.Post(VerifyPath, p.signInWithLink)
	r.Get(AccountPath, p.showAccount)
	r.Post(AccountPath, p.act)
}

// --- rendering ---

func (p *Account) headers(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", p.csp)
	c.Set("Referrer-Policy", "no-referrer") // the verify page's URL holds a token
	c.Set("X-Frame-Options", "DENY")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Cache-Control", "no-store")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func (p *Account) render(c *fiber.Ctx, status int, t *template.Template, data any) error {
	p.headers(c)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		p.d.Logger.LogAttrs(c.UserContext(), slog.LevelError, "web: rendering", slog.String("error", err.Error()))
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.Status(fiber.StatusInternalServerError).SendString("Something went wrong. Please try again later.")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

func (p *Account) say(c *fiber.Ctx, status int, title, message, hint string) error {
	return p.render(c, status, p.message, messageData{Title: title, CSS: p.css, Message: message, Hint: hint})
}

// redirect answers 303 See Other to a relative location (the browser then GETs it).
func (p *Account) redirect(c *fiber.Ctx, location string) error {
	p.headers(c)
	return c.Redirect(location, fiber.StatusSeeOther)
}

// fail renders an error of a port as a page with a fixed text: nothing from the error but its kind
// reaches the page.
func (p *Account) fail(c *fiber.Ctx, err error) error {
	switch errs.KindOf(err) {
	case errs.RateLimited:
		return p.say(c, fiber.StatusTooManyRequests, "Please wait", "Too many attempts. Please try again in a few minutes.", "")
	case errs.Invalid:
		return p.say(c, fiber.StatusBadRequest, "Request not understood", "This request could not be processed.", "")
	case errs.NotFound:
		return p.say(c, fiber.StatusNotFound, "Not found", "This item does not exist or is no longer yours to change.", "")
	case errs.Conflict, errs.Gone:
		return p.say(c, fiber.StatusConflict, "Nothing to do", "This was already done, or can no longer be done.", "")
	case errs.Forbidden:
		return p.say(c, fiber.StatusForbidden, "Not allowed", "This cannot be done for this item.", "")
	}
	p.d.Logger.LogAttrs(c.UserContext(), slog.LevelError, "web: account page", slog.String("error", err.Error()))
	return p.say(c, fiber.StatusServiceUnavailable, "Please try again",
		"We could not process this request right now. Please try again in a few minutes.", "")
}

// --- sessions ---

// session resolves the session cookie; ok=false without a (live) session. A dead cookie is cleared.
func (p *Account) session(c *fiber.Ctx) (ident ports.CustomerIdentity, token string, ok bool, err error) {
	token = strings.Clone(c.Cookies(sessionCookie))
	if token == "" {
		return ident, "", false, nil
	}
	if len(token) > maxFormValue {
		p.clearCookie(c)
		return ident, "", false, nil
	}
	ident, err = p.d.Customers.Authenticate(c.UserContext(), token)
	if err != nil {
		if errs.KindOf(err) == errs.Unauthenticated {
			p.clearCookie(c)
			return ident, "", false, nil
		}
		return ident, "", false, err
	}
	return ident, token, true, nil
}

func (p *Account) setCookie(c *fiber.Ctx, g ports.SessionGrant) {
	maxAge := int(g.ExpiresAt.Sub(p.d.Clock.Now()) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: g.Token, Path: "/", MaxAge: maxAge,
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
}

func (p *Account) clearCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", Expires: time.Unix(0, 0).UTC(),
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
}

// csrfToken is the account page's form token: a MAC of a fixed text under the session token. Only
// the session's holder can compute it (the cookie is HttpOnly), and it changes with each session.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte("samplero portal form v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin reports whether the browser says the request comes from our own pages.
func (p *Account) sameOrigin(c *fiber.Ctx) bool {
	if c.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || origin == "null" {
		return false
	}
	own := p.origin
	if own == "" {
		own = c.Protocol() + "://" + c.Hostname()
	}
	return strings.EqualFold(origin, own)
}

// clientAddr is the socket peer, or behind a trusted proxy the right-most X-Forwarded-For entry that
// is not itself a trusted proxy (entries to its left could have been written by the client). The
// HTTP API computes the same; adapters do not share code.
func (p *Account) clientAddr(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	peer = peer.Unmap()
	addr := peer
	if p.trusted(peer) {
		var entries []string
		for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
			for _, e := range strings.Split(string(v), ",") {
				entries = append(entries, strings.TrimSpace(e))
			}
		}
		for i := len(entries) - 1; i >= 0; i-- {
			ip, err := netip.ParseAddr(entries[i])
			if err != nil {
				break
			}
			addr = ip.Unmap()
			if !p.trusted(addr) {
				break
			}
		}
	}
	return addr.String()
}

func (p *Account) trusted(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, pr := range p.d.TrustedProxies {
		if pr.Contains(ip) {
			return true
		}
	}
	return false
}

func formValue(c *fiber.Ctx, name string) string {
	v := c.FormValue(name)
	if len(v) > maxFormValue {
		return ""
	}
	return strings.Clone(v)
}

// --- sign-in ---

type signInData struct {
	Title string
	CSS   template.CSS
	Email string
	Error string
}

// showSignIn: GET /sign-in → the form; a signed-in visitor goes to the account page.
func (p *Account) showSignIn(c *fiber.Ctx) error {
	if _, _, ok, err := p.session(c); err == nil && ok {
		return p.redirect(c, "account")
	}
	return p.render(c, fiber.StatusOK, p.signIn, signInData{Title: "Sign in", CSS: p.css})
}

// requestLink: POST /sign-in (email) → the same "check your e-mail" page for any address.
func (p *Account) requestLink(c *fiber.Ctx) error {
	email := strings.TrimSpace(formValue(c, "email"))
	if email == "" || !strings.Contains(email, "@") || len(email) > 254 {
		return p.render(c, fiber.StatusBadRequest, p.signIn, signInData{Title: "Sign in", CSS: p.css, Email: email,
			Error: "Please enter the e-mail address you bought with."})
	}
	if err := p.d.Customers.RequestSignInLink(c.UserContext(), strings.ToLower(email), p.clientAddr(c)); err != nil {
		if errs.KindOf(err) == errs.Invalid {
			return p.render(c, fiber.StatusBadRequest, p.signIn, signInData{Title: "Sign in", CSS: p.css, Email: email,
				Error: "This does not look like an e-mail address."})
		}
		return p.fail(c, err)
	}
	return p.say(c, fiber.StatusOK, "Check your e-mail",
		"If "+email+" can receive e-mail, a sign-in link is on its way. Open it on this device: it works once, for 15 minutes.",
		"Nothing arrived? Look in your spam folder, or ask for a new link in a few minutes.")
}

type verifyData struct {
	Title string
	CSS   template.CSS
	Token string
}

// showVerify: GET /auth/verify?token=… → a page with a "Sign in" button. It spends nothing.
func (p *Account) showVerify(c *fiber.Ctx) error {
	token := strings.Clone(c.Query("token"))
	if token == "" || len(token) > maxFormValue {
		return p.say(c, fiber.StatusBadRequest, "Link incomplete", "This sign-in link is incomplete. Open it from the e-mail again.", "")
	}
	return p.render(c, fiber.StatusOK, p.verify, verifyData{Title: "Sign in", CSS: p.css, Token: token})
}

// signInWithLink: POST /auth/verify (token) → the cookie session, and 303 to the account page.
func (p *Account) signInWithLink(c *fiber.Ctx) error {
	if !p.sameOrigin(c) {
		return p.say(c, fiber.StatusForbidden, "Please use the sign-in page",
			"Open the link from your e-mail and press the Sign in button there.", "")
	}
	token := formValue(c, "token")
	if token == "" {
		return p.say(c, fiber.StatusBadRequest, "Link incomplete", "This sign-in link is incomplete. Open it from the e-mail again.", "")
	}
	ua := c.Get(fiber.HeaderUserAgent)
	if len(ua) > 256 {
		ua = ua[:256]
	}
	g, err := p.d.Customers.SignInWithLink(c.UserContext(), token, ports.SessionCookie,
		ports.SessionMeta{Addr: p.clientAddr(c), UserAgent: strings.ToValidUTF8(strings.Clone(ua), "")})
	if err != nil {
		if errs.KindOf(err) == errs.Unauthenticated {
			return p.say(c, fiber.StatusUnauthorized, "Link not valid",
				"This sign-in link was already used or has expired.", "Ask for a new link on the sign-in page.")
		}
		return p.fail(c, err)
	}
	p.setCookie(c, g)
	return p.redirect(c, "../account")
}

// --- the account page ---

type deviceRow struct {
	ID         string
	Name       string
	Platform   string
	Version    string
	LastSeen   string
	Status     string
	Active     bool
	CanRelease bool
	HeldUntil  string
}

type licenseRow struct {
	Product   string
	MaskedKey string
	Status    string
	Seats     string
	Expires   string
	Devices   []deviceRow
}

type claimRow struct {
	ID          string
	Product     string
	DeviceName  string
	Platform    string
	Fingerprint string
	RequestAddr string
	Requested   string
	Expires     string
}

type orderRow struct {
	Reference string
	Date      string
	Status    string
	Total     string
	Href      string
}

type accountData struct {
	Title     string
	CSS       template.CSS
	Email     string
	CSRF      string
	Notice    string
	Licenses  []licenseRow
	Claims    []claimRow
	HasOrders bool // the orders section is shown (Commerce configured)
	Orders    []orderRow
	MoreOrder bool
}

// notices are the fixed texts shown after a button did its work.
var notices = map[string]string{
	"revoked":  "The device was removed. Its seat is free.",
	"released": "The seat is free again.",
	"approved": "The device was approved. It can now finish its activation.",
	"rejected": "The device was rejected. If you did not ask for it, someone may have your key: reissue it.",
}

// showAccount: GET /account → the customer's licenses, devices, claims and orders.
func (p *Account) showAccount(c *fiber.Ctx) error {
	ident, token, ok, err := p.session(c)
	if err != nil {
		return p.fail(c, err)
	}
	if !ok {
		return p.redirect(c, "sign-in")
	}
	ctx := c.UserContext()
	ls, err := p.d.Licensing.OwnerLicenses(ctx, ident.Email)
	if err != nil {
		return p.fail(c, err)
	}
	data := accountData{Title: "Your account", CSS: p.css, Email: ident.Email, CSRF: csrfToken(token), Notice: notices[c.Query("done")]}
	for _, l := range ls {
		row := licenseRow{Product: l.Product, MaskedKey: l.MaskedKey, Status: l.Status,
			Seats: strconv.Itoa(l.SeatsUsed) + " of " + strconv.Itoa(l.MaxActivations) + " devices", Expires: "never"}
		if l.ExpiresAt != nil {
			row.Expires = stamp(*l.ExpiresAt)
		}
		for _, d := range l.Devices {
			dr := deviceRow{ID: d.ID, Name: d.DeviceName, Platform: platformName(d.Platform), Version: d.PluginVersion,
				LastSeen: "—", Status: d.Status, Active: d.Status == "active", CanRelease: d.CanReleaseSeat}
			if dr.Name == "" {
				dr.Name = "(unnamed)"
			}
			if d.LastHeartbeatAt != nil {
				dr.LastSeen = stamp(*d.LastHeartbeatAt)
			}
			if d.SeatHeldUntil != nil {
				dr.HeldUntil = stamp(*d.SeatHeldUntil)
			}
			row.Devices = append(row.Devices, dr)
		}
		data.Licenses = append(data.Licenses, row)
		for _, cl := range l.Claims {
			data.Claims = append(data.Claims, claimRow{ID: cl.ID, Product: l.Product, DeviceName: cl.DeviceName,
				Platform: platformName(cl.Platform), Fingerprint: cl.Fingerprint, RequestAddr: cl.RequestAddr,
				Requested: stamp(cl.CreatedAt), Expires: stamp(cl.ExpiresAt)})
		}
	}
	if p.d.Commerce != nil {
		data.HasOrders = true
		orders, next, err := p.d.Commerce.ListOrders(ctx, ports.OrderFilter{CustomerEmail: ident.Email, Page: ports.Page{Limit: ordersShown}})
		if err != nil {
			return p.fail(c, err)
		}
		data.MoreOrder = next != ""
		for _, v := range orders {
			o := v.Order
			if !strings.EqualFold(o.CustomerEmail, ident.Email) {
				continue // the filter scopes the list; never show another address's order anyway
			}
			ref := v.Reference
			status := statusText[o.Status][0]
			if status == "" {
				status = string(o.Status)
			}
			// The order page (orders.go) takes the order's access token, which the owner may have.
			href := "orders/" + url.PathEscape(o.ID) + "?" + url.Values{"token": {p.d.Commerce.AccessToken(o.ID)}}.Encode()
			data.Orders = append(data.Orders, orderRow{Reference: ref, Date: stamp(o.CreatedAt), Status: status,
				Total: money(o.TotalCents, o.Currency), Href: href})
		}
	}
	return p.render(c, fiber.StatusOK, p.account, data)
}

// act: POST /account (csrf, action, id) carries the account page's buttons.
func (p *Account) act(c *fiber.Ctx) error {
	ident, token, ok, err := p.session(c)
	if err != nil {
		return p.fail(c, err)
	}
	if !ok {
		return p.redirect(c, "sign-in")
	}
	got := formValue(c, "csrf")
	if !hmac.Equal([]byte(got), []byte(csrfToken(token))) {
		return p.say(c, fiber.StatusForbidden, "Please use your account page",
			"This request did not come from your account page. Open the page again and use its buttons.", "")
	}
	ctx, action, id := c.UserContext(), formValue(c, "action"), formValue(c, "id")
	if action == "sign-out" {
		if err := p.d.Customers.SignOut(ctx, token); err != nil {
			return p.fail(c, err)
		}
		p.clearCookie(c)
		return p.redirect(c, "sign-in")
	}
	if id == "" {
		return p.fail(c, errs.Validation("id is required"))
	}
	var done string
	switch action {
	case "revoke-device":
		_, err = p.d.Licensing.RevokeDevice(ctx, ident.Email, id)
		done = "revoked"
	case "release-seat":
		_, err = p.d.Licensing.OwnerReleaseSeat(ctx, ident.Email, id)
		done = "released"
	case "approve-claim", "reject-claim":
		approve := action == "approve-claim"
		_, err = p.d.Licensing.OwnerDecideClaim(ctx, ident.Email, id, approve)
		done = map[bool]string{true: "approved", false: "rejected"}[approve]
	default:
		err = errs.Validation("unknown action")
	}
	if err != nil {
		return p.fail(c, err)
	}
	return p.redirect(c, "account?done="+done)
}
