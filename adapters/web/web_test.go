package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// fakeClaims is the slice of ports.Licensing the page uses; the embedded nil interface makes any
// other call fail the test loudly.
type fakeClaims struct {
	ports.Licensing
	claim     ports.ClaimView
	decideErr error
	decided   []string
	looked    int
}

const goodToken = "tok_good_0123456789abcdef"

func (f *fakeClaims) ClaimByToken(_ context.Context, token string) (ports.ClaimView, error) {
	f.looked++
	if token != goodToken {
		return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
	}
	return f.claim, nil
}

func (f *fakeClaims) DecideClaimByToken(_ context.Context, token string, approve bool) (ports.ClaimView, error) {
	if f.decideErr != nil {
		return ports.ClaimView{}, f.decideErr
	}
	if token != goodToken {
		return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
	}
	d := "reject"
	if approve {
		d = "approve"
	}
	f.decided = append(f.decided, d)
	return f.claim, nil
}

func setup(t *testing.T) (*fiber.App, *fakeClaims) {
	t.Helper()
	f := &fakeClaims{claim: ports.ClaimView{
		ID: "clm_1", Status: "pending", DeviceName: `<script>alert(1)</script>Studio`, Platform: "mac",
		Fingerprint: "fp-12345678", RequestAddr: "203.0.113.5",
		CreatedAt: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 11, 29, 12, 15, 0, 0, time.UTC),
	}}
	p, err := New(Deps{Licensing: f})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	p.Register(app)
	return app, f
}

func do(t *testing.T, app *fiber.App, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func post(token, decision string) *http.Request {
	form := url.Values{"token": {token}, "decision": {decision}}
	req := httptest.NewRequest(http.MethodPost, ConfirmPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func TestShowClaim(t *testing.T) {
	app, f := setup(t)
	res, body := do(t, app, httptest.NewRequest(http.MethodGet, ConfirmPath+"?token="+goodToken, nil))
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	for _, want := range []string{"macOS", "fp-12345678", "203.0.113.5", "29 November 2026, 12:00:00 UTC",
		"&lt;script&gt;alert(1)&lt;/script&gt;Studio", `name="decision" value="approve"`, `name="decision" value="reject"`,
		`value="` + goodToken + `"`, `method="post"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("device name is not escaped")
	}
	if len(f.decided) != 0 {
		t.Fatal("GET decided the claim")
	}
	for h, want := range map[string]string{
		"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	csp := res.Header.Get("Content-Security-Policy")
	css, _ := files.ReadFile("templates/page.css")
	sum := sha256.Sum256(css)
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
		!strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP = %q", csp)
	}
	if !strings.Contains(body, "<style>"+string(css)+"</style>") {
		t.Error("the inline style is not byte-identical to the hashed one")
	}
}

func TestShowClaimErrorsAndStates(t *testing.T) {
	app, f := setup(t)
	res, _ := do(t, app, httptest.NewRequest(http.MethodGet, ConfirmPath, nil))
	if res.StatusCode != 400 {
		t.Fatalf("no token: %d", res.StatusCode)
	}
	res, _ = do(t, app, httptest.NewRequest(http.MethodGet, ConfirmPath+"?token=nope", nil))
	if res.StatusCode != 404 {
		t.Fatalf("unknown token: %d", res.StatusCode)
	}
	for status, code := range map[string]int{"approved": 200, "rejected": 200, "expired": 410} {
		f.claim.Status = status
		res, body := do(t, app, httptest.NewRequest(http.MethodGet, ConfirmPath+"?token="+goodToken, nil))
		if res.StatusCode != code || strings.Contains(body, "<form") {
			t.Fatalf("%s: status %d, buttons shown %v", status, res.StatusCode, strings.Contains(body, "<form"))
		}
	}
	if len(f.decided) != 0 {
		t.Fatal("GET decided the claim")
	}
}

func TestDecideClaim(t *testing.T) {
	app, f := setup(t)
	res, body := do(t, app, post(goodToken, "approve"))
	if res.StatusCode != 200 || !strings.Contains(body, "Device approved") {
		t.Fatalf("approve: %d %s", res.StatusCode, body)
	}
	res, body = do(t, app, post(goodToken, "reject"))
	if res.StatusCode != 200 || !strings.Contains(body, "reissue") {
		t.Fatalf("reject: %d %s", res.StatusCode, body)
	}
	if strings.Join(f.decided, ",") != "approve,reject" {
		t.Fatalf("decisions = %v", f.decided)
	}
	for _, bad := range [][2]string{{goodToken, "maybe"}, {"", "approve"}} {
		res, _ = do(t, app, post(bad[0], bad[1]))
		if res.StatusCode != 400 {
			t.Fatalf("%v: status %d", bad, res.StatusCode)
		}
	}
	if len(f.decided) != 2 {
		t.Fatal("an invalid form decided something")
	}
	res, _ = do(t, app, post("spent", "approve"))
	if res.StatusCode != 404 {
		t.Fatalf("spent token: %d", res.StatusCode)
	}
	f.decideErr = errs.E(errs.Gone, license.CodeClaimExpired, "expired")
	res, _ = do(t, app, post(goodToken, "approve"))
	if res.StatusCode != 410 {
		t.Fatalf("expired: %d", res.StatusCode)
	}
	f.decideErr = errs.Internalf("db password=hunter2")
	res, body = do(t, app, post(goodToken, "approve"))
	if res.StatusCode != 503 || strings.Contains(body, "hunter2") {
		t.Fatalf("internal: %d %s", res.StatusCode, body)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatal("error pages lack the security headers")
	}
}
