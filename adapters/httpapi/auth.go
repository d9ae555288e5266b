package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Customer sign-in (/v1/auth/*), license recovery (/v1/recover) and the authentication of the
// customer API (/v1/me/*, me*.go).
//
// A session travels either as a bearer token (API clients) or as the samplero_session cookie (the
// portal in a browser). A cookie is sent by the browser on its own, so a request authenticated by
// it that changes something must come from our own origin: the Origin header names the public URL's
// origin, or Sec-Fetch-Site says same-origin. Anything else is 403 CSRF_REJECTED. A bearer token
// is never sent by a browser on its own, so bearer requests need no such check. The cookie sign-ins
// (verify and password with "session":"cookie") take the same check, so that a foreign page cannot
// sign a visitor into an account of its choosing (login CSRF).

const (
	// sessionCookie is the portal's session cookie. The web adapter reads the same name (adapters
	// do not import each other, so the name is written in both).
	sessionCookie = "samplero_session"

	localsCustomer = "samplero.customer"

	codeSessionInvalid         = "SESSION_INVALID"          // errs.Unauthenticated: no, an unknown, a revoked or an expired session
	codeCSRFRejected           = "CSRF_REJECTED"            // errs.Forbidden: a cookie request that is not same-origin
	codeCustomersNotConfigured = "CUSTOMERS_NOT_CONFIGURED" // errs.Unavailable: the server runs without customer accounts

	limitKeyRecoverAddr  = "recover:addr:"
	limitKeyRecoverEmail = "recover:email:"
	maxEmailLen          = 254
	maxSecretLen         = 1024 // tokens and passwords; anything longer is not one of ours
	headerSecFetchSite   = "Sec-Fetch-Site"
)

// Recovery e-mails every license of an address to that address: these limits keep it from being
// used to flood an inbox (per e-mail) or to sweep many addresses (per client address).
var (
	recoverPerEmail   = ports.Limit{Max: 3, Window: time.Hour}
	recoverPerAddress = ports.Limit{Max: 10, Window: time.Hour}
)

// customerSession is the signed-in customer of a request, copied out of Fiber's buffers.
type customerSession struct {
	ident  ports.CustomerIdentity
	token  string
	cookie bool // authenticated by the session cookie (not a bearer token)
}

func (a *api) customers() (ports.Customers, error) {
	if a.deps.Customers == nil {
		return nil, errs.E(errs.Unavailable, codeCustomersNotConfigured, "customer accounts are not enabled on this server")
	}
	return a.deps.Customers, nil
}

// noStore marks an answer as not to be kept by any cache: these carry tokens, keys and personal data.
func noStore(c *fiber.Ctx) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
}

// customer authenticates /v1/me/* and the sign-out calls: a bearer token when an Authorization
// header is present (a bad one is not retried as a cookie), else the session cookie. The identity
// goes into Locals; a cookie request that changes something must be same-origin.
func (a *api) customer(c *fiber.Ctx) error {
	noStore(c)
	cus, err := a.customers()
	if err != nil {
		return err
	}
	s := customerSession{}
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		const scheme = "bearer "
		if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
			return a.sessionInvalid(c, false)
		}
		s.token = strings.TrimSpace(h[len(scheme):])
	} else {
		s.token, s.cookie = strings.Clone(c.Cookies(sessionCookie)), true
	}
	if s.token == "" || len(s.token) > maxSecretLen {
		return a.sessionInvalid(c, s.cookie && s.token != "")
	}
	s.token = strings.Clone(s.token)
	if s.cookie && unsafeMethod(c.Method()) && !a.sameOrigin(c) {
		// Checked before the session is looked up: a forged request learns nothing about it.
		return errs.E(errs.Forbidden, codeCSRFRejected, "a request authenticated by the session cookie must come from this site")
	}
	id, err := cus.Authenticate(c.UserContext(), s.token)
	if err != nil {
		if errs.KindOf(err) == errs.Unauthenticated {
			return a.sessionInvalid(c, s.cookie)
		}
		return err
	}
	s.ident = ports.CustomerIdentity{AccountID: strings.Clone(id.AccountID), Email: strings.Clone(id.Email), SessionID: strings.Clone(id.SessionID)}
	c.Locals(localsCustomer, s)
	return c.Next()
}

// sessionInvalid answers 401 SESSION_INVALID; a dead cookie is cleared so the browser stops sending it.
func (a *api) sessionInvalid(c *fiber.Ctx, clearCookie bool) error {
	if clearCookie {
		clearSessionCookie(c)
	}
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="samplero"`)
	return errs.E(errs.Unauthenticated, codeSessionInvalid, "sign in first: the session is missing, expired or revoked")
}

// session returns the customer that customer put into Locals.
func session(c *fiber.Ctx) customerSession {
	s, _ := c.Locals(localsCustomer).(customerSession)
	return s
}

func unsafeMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace:
		return false
	}
	return true
}

// sameOrigin reports whether a browser says the request comes from our own pages: Origin equal to
// the public URL's origin (or, without a public URL, this request's own), or Sec-Fetch-Site:
// same-origin. A request with neither header is refused: every browser that sends cookies on a
// cross-site POST also sends at least one of them.
func (a *api) sameOrigin(c *fiber.Ctx) bool {
	if c.Get(headerSecFetchSite) == "same-origin" {
		return true
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || origin == "null" {
		return false
	}
	return strings.EqualFold(origin, a.ownOrigin(c))
}

// ownOrigin is scheme://host[:port] of the public URL, or of this request when none is configured.
func (a *api) ownOrigin(c *fiber.Ctx) string {
	if a.cfg.PublicURL != "" {
		if u, err := url.Parse(a.cfg.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return c.Protocol() + "://" + c.Hostname()
}

// sessionKind reads the "session" field: "bearer" (the default) or "cookie".
func sessionKind(s *string) (ports.SessionKind, error) {
	if s == nil {
		return ports.SessionBearer, nil
	}
	switch k := ports.SessionKind(*s); k {
	case ports.SessionCookie, ports.SessionBearer:
		return k, nil
	}
	return "", errs.Validation(`session must be "cookie" or "bearer"`)
}

func (a *api) meta(c *fiber.Ctx) ports.SessionMeta {
	ua := c.Get(fiber.HeaderUserAgent)
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return ports.SessionMeta{Addr: a.clientAddr(c), UserAgent: strings.ToValidUTF8(strings.Clone(ua), "")}
}

// normEmail checks and lower-cases an e-mail address: a bare addr-spec of at most 254 characters.
func normEmail(name string, s *string) (string, error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", errs.Validation(name + " is required")
	}
	e := strings.ToLower(strings.TrimSpace(*s))
	if len(e) > maxEmailLen {
		return "", errs.Validation(name + " must be an e-mail address")
	}
	if addr, err := mail.ParseAddress(e); err != nil || addr.Address != e || addr.Name != "" {
		return "", errs.Validation(name + " must be an e-mail address")
	}
	return e, nil
}

func secret(name string, s *string) (string, error) {
	if s == nil || *s == "" {
		return "", errs.Validation(name + " is required")
	}
	if len(*s) > maxSecretLen {
		return "", errs.Validation(name + " is too long")
	}
	return *s, nil
}

type accountBody struct {
	ID          string  `json:"id"`
	Email       string  `json:"email"`
	HasPassword bool    `json:"has_password"`
	CreatedAt   *string `json:"created_at"`
}

func accountOf(a ports.Account) accountBody {
	return accountBody{ID: a.ID, Email: a.Email, HasPassword: a.PasswordHash != "", CreatedAt: rfc3339(a.CreatedAt)}
}

type signInBody struct {
	Account   accountBody `json:"account"`
	ExpiresAt *string     `json:"expires_at"`
	Token     *string     `json:"token,omitempty"`
}

// signedIn answers a new session: the token in the body (bearer) or in the cookie (cookie).
func (a *api) signedIn(c *fiber.Ctx, kind ports.SessionKind, g ports.SessionGrant) error {
	noStore(c)
	out := signInBody{Account: accountOf(g.Account), ExpiresAt: rfc3339(g.ExpiresAt)}
	if kind == ports.SessionCookie {
		maxAge := int(g.ExpiresAt.Sub(a.deps.Clock.Now()) / time.Second)
		if maxAge < 1 {
			maxAge = 1
		}
		c.Cookie(&fiber.Cookie{
			Name: sessionCookie, Value: g.Token, Path: "/", MaxAge: maxAge,
			Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		})
	} else {
		tok := g.Token
		out.Token = &tok
	}
	return render(c, fiber.StatusOK, out)
}

// clearSessionCookie tells the browser to drop the session cookie (same attributes, in the past).
func clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: "", Path: "/", Expires: time.Unix(0, 0).UTC(),
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
	})
}

type sentBody struct {
	Status string `json:"status"`
}

// authEmailLink: POST /v1/auth/email-link {"email"} → 202 {"status":"sent"}, the same whether the
// address has an account or not (an unknown address gets a link that creates one).
func (a *api) authEmailLink(c *fiber.Ctx) error {
	noStore(c)
	cus, err := a.customers()
	if err != nil {
		return err
	}
	var req struct {
		Email *string `json:"email"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	email, err := normEmail("email", req.Email)
	if err != nil {
		return err
	}
	if err := cus.RequestSignInLink(c.UserContext(), email, a.clientAddr(c)); err != nil {
		return err
	}
	return render(c, fiber.StatusAccepted, sentBody{Status: "sent"})
}

// authVerify: POST /v1/auth/verify {"token","session"} → 200 the account and the session.
func (a *api) authVerify(c *fiber.Ctx) error {
	noStore(c)
	cus, err := a.customers()
	if err != nil {
		return err
	}
	var req struct {
		Token   *string `json:"token"`
		Session *string `json:"session"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	token, err := secret("token", req.Token)
	if err != nil {
		return err
	}
	kind, err := a.signInKind(c, req.Session)
	if err != nil {
		return err
	}
	g, err := cus.SignInWithLink(c.UserContext(), token, kind, a.meta(c))
	if err != nil {
		return err
	}
	return a.signedIn(c, kind, g)
}

// authPassword: POST /v1/auth/password {"email","password","session"} → 200 like verify; a wrong
// password, an unknown address and an account without a password are all 401 INVALID_CREDENTIALS.
func (a *api) authPassword(c *fiber.Ctx) error {
	noStore(c)
	cus, err := a.customers()
	if err != nil {
		return err
	}
	var req struct {
		Email    *string `json:"email"`
		Password *string `json:"password"`
		Session  *string `json:"session"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	email, err := normEmail("email", req.Email)
	if err != nil {
		return err
	}
	password, err := secret("password", req.Password)
	if err != nil {
		return err
	}
	kind, err := a.signInKind(c, req.Session)
	if err != nil {
		return err
	}
	g, err := cus.SignInWithPassword(c.UserContext(), email, password, kind, a.meta(c))
	if err != nil {
		return err
	}
	return a.signedIn(c, kind, g)
}

// signInKind reads the session kind; a cookie sign-in must come from our own pages (login CSRF).
func (a *api) signInKind(c *fiber.Ctx, s *string) (ports.SessionKind, error) {
	kind, err := sessionKind(s)
	if err != nil {
		return "", err
	}
	if kind == ports.SessionCookie && !a.sameOrigin(c) {
		return "", errs.E(errs.Forbidden, codeCSRFRejected, "a cookie sign-in must come from this site")
	}
	return kind, nil
}

// authSignOut: POST /v1/auth/sign-out → 204; this session is revoked and the cookie cleared.
func (a *api) authSignOut(c *fiber.Ctx) error {
	s := session(c)
	if err := a.deps.Customers.SignOut(c.UserContext(), s.token); err != nil {
		return err
	}
	if s.cookie {
		clearSessionCookie(c)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// authSignOutEverywhere: POST /v1/auth/sign-out-everywhere → {"revoked":n}: every session of the
// account, this one included.
func (a *api) authSignOutEverywhere(c *fiber.Ctx) error {
	s := session(c)
	n, err := a.deps.Customers.SignOutEverywhere(c.UserContext(), s.ident.AccountID)
	if err != nil {
		return err
	}
	if s.cookie {
		clearSessionCookie(c)
	}
	return render(c, fiber.StatusOK, struct {
		Revoked int `json:"revoked"`
	}{n})
}

// recoverLicenses: POST /v1/recover {"email"} → 202 {"status":"sent"} always: every license of the
// address is e-mailed to it, and the answer never says whether there was any. Limited per e-mail
// address and per client address.
func (a *api) recoverLicenses(c *fiber.Ctx) error {
	noStore(c)
	var req struct {
		Email *string `json:"email"`
	}
	if err := decodeStrict(c.Request().Body(), &req); err != nil {
		return err
	}
	email, err := normEmail("email", req.Email)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := a.limit(ctx, limitKeyRecoverAddr+a.clientAddr(c), recoverPerAddress); err != nil {
		return err
	}
	// The limiter's backend (Redis) sees a hash, not the address.
	sum := sha256.Sum256([]byte(email))
	if err := a.limit(ctx, limitKeyRecoverEmail+hex.EncodeToString(sum[:16]), recoverPerEmail); err != nil {
		return err
	}
	if err := a.deps.Licensing.RecoverLicenses(ctx, email); err != nil {
		return err
	}
	return render(c, fiber.StatusAccepted, sentBody{Status: "sent"})
}
