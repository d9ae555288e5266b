// Package web is the server-rendered pages of Samplero: the owner's confirmation of a first-activation
// claim (PROTOCOL.md section 6, POST /v1/activate 202) and the buyer's order page with its download
// links (orders.go). Templates and styles are embedded.
//
// The page is safe to be opened by mail scanners: GET only shows the claim; the decision is a POST
// from the page carrying the single-use token from the e-mail. The token is the only credential,
// so no CSRF token is needed: a cross-site form cannot know it, and it is spent by the first
// decision. The page sends no Referer (the token is in its URL), cannot be framed, and is not cached.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// ConfirmPath is where the owner's e-mail links to (the licensing service writes the same path
// into the e-mail; the token travels in the query).
const ConfirmPath = "/claims/confirm"

//go:embed templates
var files embed.FS

// Deps are what the pages need.
type Deps struct {
	Licensing ports.Licensing
	// Commerce serves the order pages; nil serves none.
	Commerce ports.Commerce
	Logger   *slog.Logger
}

// Pages serves the owner pages.
type Pages struct {
	lic     ports.Licensing
	com     ports.Commerce
	log     *slog.Logger
	confirm *template.Template
	message *template.Template
	order   *template.Template
	css     template.CSS
	csp     string
}

// New parses the embedded templates.
func New(d Deps) (*Pages, error) {
	if d.Licensing == nil {
		return nil, errors.New("web: Licensing is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	css, err := files.ReadFile("templates/page.css")
	if err != nil {
		return nil, err
	}
	base, err := template.ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	page := func(name string) (*template.Template, error) {
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		return t.ParseFS(files, "templates/"+name)
	}
	p := &Pages{lic: d.Licensing, com: d.Commerce, log: d.Logger, css: template.CSS(css)}
	if p.confirm, err = page("confirm.html"); err != nil {
		return nil, err
	}
	if p.message, err = page("message.html"); err != nil {
		return nil, err
	}
	if p.order, err = page("order.html"); err != nil {
		return nil, err
	}
	// The only style is the embedded one, allowed by its hash: no inline script or style can run.
	sum := sha256.Sum256(css)
	p.csp = "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	return p, nil
}

// Register adds the pages to r (the composition root mounts them on the HTTP app).
func (p *Pages) Register(r fiber.Router) {
	r.Get(ConfirmPath, p.showClaim)
	r.Post(ConfirmPath, p.decideClaim)
	if p.com != nil {
		p.registerOrders(r)
	}
}

func (p *Pages) headers(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", p.csp)
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Frame-Options", "DENY")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Cache-Control", "no-store")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
}

type confirmData struct {
	Title     string
	CSS       template.CSS
	Claim     ports.ClaimView
	Platform  string
	Requested string
	Expires   string
	Token     string
	Action    string
}

type messageData struct {
	Title   string
	CSS     template.CSS
	Message string
	Hint    string
}

func (p *Pages) render(c *fiber.Ctx, status int, t *template.Template, data any) error {
	p.headers(c)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		p.log.LogAttrs(c.UserContext(), slog.LevelError, "web: rendering", slog.String("error", err.Error()))
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.Status(fiber.StatusInternalServerError).SendString("Something went wrong. Please try again later.")
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

func (p *Pages) say(c *fiber.Ctx, status int, title, message, hint string) error {
	return p.render(c, status, p.message, messageData{Title: title, CSS: p.css, Message: message, Hint: hint})
}

// fail renders a domain error as a page. Messages are fixed texts: nothing from the error reaches
// the page but its code.
func (p *Pages) fail(c *fiber.Ctx, err error) error {
	switch errs.CodeOf(err) {
	case license.CodeClaimNotFound:
		return p.say(c, fiber.StatusNotFound, "Link not valid",
			"This confirmation link is not valid or has already been used.", "")
	case license.CodeClaimExpired:
		return p.say(c, fiber.StatusGone, "Request expired",
			"This request expired before it was decided. The device can ask again.", "")
	case errs.CodeConflict:
		return p.say(c, fiber.StatusConflict, "Already decided",
			"This request was already decided and cannot be changed here.", "")
	}
	if k := errs.KindOf(err); k == errs.Invalid {
		return p.say(c, fiber.StatusBadRequest, "Request not understood", "This request could not be processed.", "")
	}
	p.log.LogAttrs(c.UserContext(), slog.LevelError, "web: claim page", slog.String("error", err.Error()))
	return p.say(c, fiber.StatusServiceUnavailable, "Please try again",
		"We could not process this request right now. Please try again in a few minutes.", "")
}

var platforms = map[string]string{"mac": "macOS", "win": "Windows", "linux": "Linux"}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2 January 2006, 15:04:05 UTC")
}

// showClaim: GET /claims/confirm?token=… shows the claim. It changes nothing.
func (p *Pages) showClaim(c *fiber.Ctx) error {
	token := strings.Clone(c.Query("token"))
	if token == "" {
		return p.say(c, fiber.StatusBadRequest, "Link incomplete", "This confirmation link is incomplete. Open it from the e-mail again.", "")
	}
	claim, err := p.lic.ClaimByToken(c.UserContext(), token)
	if err != nil {
		return p.fail(c, err)
	}
	switch license.ClaimStatus(claim.Status) {
	case license.ClaimPending:
	case license.ClaimApproved:
		return p.say(c, fiber.StatusOK, "Already approved", "This device was already approved.", "")
	case license.ClaimRejected:
		return p.say(c, fiber.StatusOK, "Already rejected", "This device was already rejected.", "")
	case license.ClaimExpired:
		return p.say(c, fiber.StatusGone, "Request expired", "This request expired before it was decided. The device can ask again.", "")
	default:
		return p.say(c, fiber.StatusOK, "Nothing to decide", "This request cannot be decided here.", "")
	}
	platform := platforms[claim.Platform]
	if platform == "" {
		platform = claim.Platform
	}
	return p.render(c, fiber.StatusOK, p.confirm, confirmData{
		Title:     "Confirm a new device",
		CSS:       p.css,
		Claim:     claim,
		Platform:  platform,
		Requested: stamp(claim.CreatedAt),
		Expires:   stamp(claim.ExpiresAt),
		Token:     token,
		// Relative, so that it follows whatever prefix a proxy put in front of the page.
		Action: "confirm",
	})
}

// decideClaim: POST /claims/confirm with token and decision=approve|reject.
func (p *Pages) decideClaim(c *fiber.Ctx) error {
	token := strings.Clone(c.FormValue("token"))
	decision := c.FormValue("decision")
	if token == "" || (decision != "approve" && decision != "reject") {
		return p.say(c, fiber.StatusBadRequest, "Request not understood", "Please use the buttons on the confirmation page.", "")
	}
	if _, err := p.lic.DecideClaimByToken(c.UserContext(), token, decision == "approve"); err != nil {
		return p.fail(c, err)
	}
	if decision == "approve" {
		return p.say(c, fiber.StatusOK, "Device approved",
			"The device can now finish its activation. You can close this page.", "")
	}
	return p.say(c, fiber.StatusOK, "Device rejected",
		"The device was not activated.",
		"If you did not start this request, someone else may have your license key: reissue it from your account, and the old key stops working.")
}
