package httpapi

// Air-gapped activation (PROTOCOL.md section 8) through POST /v1/me/offline-activations: the
// request file runs the online checks in their order with the offline window, the license must be
// the uploader's, and the answer file carries the signed answer the online request would have got.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

const (
	offlineOwnerEmail = "owner@example.com"
	offlineOwnerToken = "tok-owner"
	offlineOtherToken = "tok-other"
	offlineKey        = "VST-AAAAA-BBBBB-CCCCC-DDDDD" // the key of the harness's activate body
)

// offlineCustomers is a ports.Customers that knows two bearer sessions: the owner's and another
// customer's. Only Authenticate is reached by these tests.
type offlineCustomers struct{}

var _ ports.Customers = offlineCustomers{}

func (offlineCustomers) Authenticate(_ context.Context, token string) (ports.CustomerIdentity, error) {
	switch token {
	case offlineOwnerToken:
		return ports.CustomerIdentity{AccountID: "cus_owner", Email: offlineOwnerEmail, SessionID: "ses_1"}, nil
	case offlineOtherToken:
		return ports.CustomerIdentity{AccountID: "cus_other", Email: "other@example.com", SessionID: "ses_2"}, nil
	}
	return ports.CustomerIdentity{}, errs.E(errs.Unauthenticated, codeSessionInvalid, "no such session")
}
func (offlineCustomers) RequestSignInLink(context.Context, string, string) error {
	return errs.Internalf("not used")
}
func (offlineCustomers) SignInWithLink(context.Context, string, ports.SessionKind, ports.SessionMeta) (ports.SessionGrant, error) {
	return ports.SessionGrant{}, errs.Internalf("not used")
}
func (offlineCustomers) SignInWithPassword(context.Context, string, string, ports.SessionKind, ports.SessionMeta) (ports.SessionGrant, error) {
	return ports.SessionGrant{}, errs.Internalf("not used")
}
func (offlineCustomers) SetPassword(context.Context, string, string) error {
	return errs.Internalf("not used")
}
func (offlineCustomers) Account(context.Context, string) (ports.Account, error) {
	return ports.Account{}, errs.Internalf("not used")
}
func (offlineCustomers) SignOut(context.Context, string) error { return errs.Internalf("not used") }
func (offlineCustomers) SignOutEverywhere(context.Context, string) (int, error) {
	return 0, errs.Internalf("not used")
}

// offlineOwnedLicensing decides OwnerLicense by a table of (owner, license key) and records the calls;
// everything else goes to the wrapped licensing.
type offlineOwnedLicensing struct {
	ports.Licensing
	owned map[string]string // normalised license key → owner e-mail
	calls *[]string
}

func (l offlineOwnedLicensing) OwnerLicense(ctx context.Context, owner, ref string) (ports.OwnerLicenseView, error) {
	*l.calls = append(*l.calls, owner+" "+ref)
	key := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(ref), "-", ""))
	if l.owned[key] != owner {
		return ports.OwnerLicenseView{}, errs.E(errs.NotFound, license.CodeLicenseNotFound, "no such license")
	}
	return ports.OwnerLicenseView{ID: "lic_1", Status: "active"}, nil
}

// offlineHarness is the harness with customer sessions and the owner table; the licensing double
// behind it is h.lic as in every other adapter test.
type offlineHarness struct {
	*harness
	ownerCalls []string
}

func newOfflineHarness(t *testing.T) *offlineHarness {
	o := &offlineHarness{}
	o.harness = newHarness(t, func(d *Deps) {
		d.Customers = offlineCustomers{}
		d.Licensing = offlineOwnedLicensing{Licensing: d.Licensing, owned: map[string]string{"VSTAAAAABBBBBCCCCCDDDDD": offlineOwnerEmail}, calls: &o.ownerCalls}
	})
	return o
}

// offlineFile is the request file of a signed offline activate request.
func (h *harness) offlineFile(body []byte, p httpsig.RequestParams, key crypto.Signer) ([]byte, string) {
	h.t.Helper()
	if p.Created == 0 {
		p.Created = h.clock.Now().Unix()
	}
	if p.Nonce == "" {
		p.Nonce = httpsig.NewNonce()
	}
	if key == nil {
		key = h.dev
	}
	sh, err := httpsig.SignRequest(http.MethodPost, "/v1/activate", body, p, key)
	if err != nil {
		h.t.Fatal(err)
	}
	f := map[string]any{"samplero_offline": 1, "path": "/v1/activate", "body": base64.StdEncoding.EncodeToString(body), "headers": map[string]string{
		"Content-Digest": sh.Get("Content-Digest"), "Signature-Input": sh.Get("Signature-Input"), "Signature": sh.Get("Signature"),
	}}
	return offlineJSON(f), p.Nonce
}

func offlineJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// offlinePost uploads a file as the customer with this bearer token ("" = none).
func (h *harness) offlinePost(token string, file []byte) response {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/me/offline-activations", bytes.NewReader(file))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: buf.Bytes(), path: "/v1/me/offline-activations"}
}

// offlineInner is the device answer an answer file carries, verified as a device verifies it.
type offlineInner struct {
	status int
	body   []byte
}

// offlineAnswerOf checks the shape of a 200 answer file and verifies the answer it carries against the
// server key, the request's nonce, the path /v1/activate and created = now.
func (h *harness) offlineAnswerOf(res response, nonce string) offlineInner {
	h.t.Helper()
	if res.status != 200 {
		h.t.Fatalf("upload status = %d, want 200 (body %s)", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("Content-Type = %q", ct)
	}
	if cd := res.header.Get("Content-Disposition"); cd != `attachment; filename="samplero-activation-answer.json"` {
		h.t.Fatalf("Content-Disposition = %q", cd)
	}
	if res.header.Get("Signature") != "" {
		h.t.Fatal("the upload's own answer is signed: only the device answer inside the file is")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(res.body, &raw); err != nil {
		h.t.Fatalf("answer file: %v: %s", err, res.body)
	}
	if len(raw) != 4 || string(raw["samplero_offline"]) != "1" {
		h.t.Fatalf("answer file fields: %s", res.body)
	}
	var f struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.Unmarshal(res.body, &f); err != nil {
		h.t.Fatal(err)
	}
	if len(f.Headers) != 3 || f.Headers["Content-Digest"] == "" || f.Headers["Signature-Input"] == "" || f.Headers["Signature"] == "" {
		h.t.Fatalf("answer headers: %v", f.Headers)
	}
	body, err := base64.StdEncoding.DecodeString(f.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	hdr := http.Header{}
	for k, v := range f.Headers {
		hdr.Set(k, v)
	}
	info, err := httpsig.VerifyResponse(f.Status, "/v1/activate", body, hdr, nonce, h.keys.keyFor)
	if err != nil {
		h.t.Fatalf("answer signature: %v (status %d, body %s)", err, f.Status, body)
	}
	if info.Created != h.clock.Now().Unix() {
		h.t.Fatalf("answer created = %d, want %d", info.Created, h.clock.Now().Unix())
	}
	return offlineInner{status: f.Status, body: body}
}

// offlineInnerProblem checks that the carried answer is the problem code with status.
func (h *harness) offlineInnerProblem(a offlineInner, status int, code string) {
	h.t.Helper()
	var p problem
	if err := json.Unmarshal(a.body, &p); err != nil || a.status != status || p.Status != status || p.Code != code || p.Type != problemType(code) {
		h.t.Fatalf("inner answer = %d %s, want %d %s", a.status, a.body, status, code)
	}
}

func (h *harness) offlineActivateCalls() int {
	n := 0
	for _, c := range h.lic.useCases() {
		if c == "Activate" {
			n++
		}
	}
	return n
}

func TestOfflineActivationAnswerFile(t *testing.T) {
	h := newOfflineHarness(t)
	// Written six days ago, uploaded now.
	file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Created: h.clock.Now().Add(-6 * 24 * time.Hour).Unix(), Tag: httpsig.OfflineTag}, nil)
	res := h.offlinePost(offlineOwnerToken, file)
	if cc := res.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Fatalf("Cache-Control = %q", cc)
	}
	a := h.offlineAnswerOf(res, nonce)
	if a.status != 201 {
		t.Fatalf("inner status %d: %s", a.status, a.body)
	}
	var grant map[string]any
	if err := json.Unmarshal(a.body, &grant); err != nil || grant["activation_id"] != "act_1" || grant["status"] != "active" || grant["trust_level"] != float64(3) {
		t.Fatalf("grant %s", a.body)
	}
	// The same core call as online, with the same fields.
	cmd := h.lic.lastActivate
	if h.offlineActivateCalls() != 1 || cmd.LicenseKey != offlineKey || cmd.Fingerprint != "fp-12345678" || cmd.Platform != "mac" || cmd.DeviceName != "Studio Mac" || cmd.Identity.Thumbprint != h.devID {
		t.Fatalf("activate command %+v (calls %v)", cmd, h.lic.useCases())
	}
	// The owner check ran with the session's e-mail and the body's key.
	if len(h.ownerCalls) != 1 || h.ownerCalls[0] != offlineOwnerEmail+" "+offlineKey {
		t.Fatalf("owner checks %v", h.ownerCalls)
	}
	// The nonce is remembered for 7 days and 300 s: the store still holds it just before, and
	// not after.
	ctx := context.Background()
	h.clock.Advance(7*24*time.Hour + 299*time.Second)
	if fresh, _ := h.nonces.Reserve(ctx, h.devID, nonce, time.Second); fresh {
		t.Fatal("the offline nonce was forgotten before 7 days + 300 s")
	}
	h.clock.Advance(2 * time.Second)
	if fresh, _ := h.nonces.Reserve(ctx, h.devID, nonce, time.Second); !fresh {
		t.Fatal("the offline nonce is kept longer than 7 days + 300 s")
	}
}

func TestOfflineActivationWindow(t *testing.T) {
	for _, tc := range []struct {
		name   string
		age    time.Duration
		status int
		code   string
	}{
		{"6 days old", 6 * 24 * time.Hour, 201, ""},
		{"exactly 7 days old", 7 * 24 * time.Hour, 201, ""},
		{"7 days and 1 s old", 7*24*time.Hour + time.Second, 401, codeStaleRequest},
		{"8 days old", 8 * 24 * time.Hour, 401, codeStaleRequest},
		{"300 s ahead", -300 * time.Second, 201, ""},
		{"301 s ahead", -301 * time.Second, 401, codeStaleRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOfflineHarness(t)
			file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Created: h.clock.Now().Add(-tc.age).Unix(), Tag: httpsig.OfflineTag}, nil)
			a := h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce)
			if tc.code == "" {
				if a.status != tc.status || h.offlineActivateCalls() != 1 {
					t.Fatalf("inner %d %s, activate calls %d", a.status, a.body, h.offlineActivateCalls())
				}
				return
			}
			h.offlineInnerProblem(a, tc.status, tc.code)
			h.noUseCase()
			if h.nonces.Len() != 0 {
				t.Fatal("a stale request spent its nonce")
			}
		})
	}
}

// A plain HTML form in the portal uploads the file as the part named "file".
func TestOfflineActivationFormUpload(t *testing.T) {
	h := newOfflineHarness(t)
	file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
	form := func(field string) response {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		_ = w.WriteField("note", "studio machine")
		fw, _ := w.CreateFormFile(field, "samplero-activation-request.json")
		_, _ = fw.Write(file)
		_ = w.Close()
		req := httptest.NewRequest(http.MethodPost, "/v1/me/offline-activations", &buf)
		req.Header.Set("Content-Type", w.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+offlineOwnerToken)
		res, err := h.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{status: res.StatusCode, header: res.Header, body: b}
	}
	h.problem(form("upload"), 400, codeOfflineFileInvalid)
	h.noUseCase()
	if a := h.offlineAnswerOf(form("file"), nonce); a.status != 201 || h.offlineActivateCalls() != 1 {
		t.Fatalf("form upload: %d %s", a.status, a.body)
	}
}

func TestOfflineActivationNonceReuse(t *testing.T) {
	h := newOfflineHarness(t)
	file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Created: h.clock.Now().Add(-time.Hour).Unix(), Tag: httpsig.OfflineTag}, nil)
	if a := h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce); a.status != 201 {
		t.Fatalf("first upload: %d %s", a.status, a.body)
	}
	// The same file again, three days later (well past the online 600 s).
	h.clock.Advance(3 * 24 * time.Hour)
	h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce), 409, codeReplayedNonce)
	if h.offlineActivateCalls() != 1 {
		t.Fatalf("activate reached %d times", h.offlineActivateCalls())
	}
}

// Another customer's license, or a license nobody has, is 404 LICENSE_NOT_FOUND on the upload
// itself, before the nonce is spent or the use case reached.
func TestOfflineActivationWrongOwner(t *testing.T) {
	for _, tc := range []struct {
		name, token, key string
	}{
		{"another customer's session", offlineOtherToken, offlineKey},
		{"a key nobody owns", offlineOwnerToken, "VST-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOfflineHarness(t)
			b := map[string]string{}
			_ = json.Unmarshal(h.activateBody(), &b)
			b["license_key"] = tc.key
			file, _ := h.offlineFile(offlineJSON(b), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
			res := h.offlinePost(tc.token, file)
			h.problem(res, 404, license.CodeLicenseNotFound)
			if res.header.Get("Signature") != "" || res.header.Get("Content-Disposition") != "" {
				t.Fatal("the refusal is an answer file or signed")
			}
			h.noUseCase()
			if h.nonces.Len() != 0 {
				t.Fatal("the nonce was spent")
			}
			for _, c := range h.lic.calls {
				if strings.HasPrefix(c, "Resolve") {
					t.Fatalf("step 5 ran before the owner check: %v", h.lic.calls)
				}
			}
		})
	}
}

func TestOfflineActivationSession(t *testing.T) {
	h := newOfflineHarness(t)
	file, _ := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
	for _, token := range []string{"", "tok-unknown"} {
		h.problem(h.offlinePost(token, file), 401, codeSessionInvalid)
	}
	h.noUseCase()
	if len(h.ownerCalls) != 0 || h.nonces.Len() != 0 {
		t.Fatalf("reached the owner check %v or spent a nonce", h.ownerCalls)
	}
}

// Uploads that are not a request file of version 1 for /v1/activate are refused on the upload.
func TestOfflineActivationFileShape(t *testing.T) {
	h := newOfflineHarness(t)
	good, _ := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
	var f map[string]any
	_ = json.Unmarshal(good, &f)
	with := func(mut func(m map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range f {
			m[k] = v
		}
		hs := map[string]any{}
		for k, v := range f["headers"].(map[string]any) {
			hs[k] = v
		}
		m["headers"] = hs
		mut(m)
		return offlineJSON(m)
	}
	for _, tc := range []struct {
		name   string
		upload []byte
		status int
		code   string
	}{
		{"not JSON", []byte("samplero"), 400, codeOfflineFileInvalid},
		{"an array", []byte("[1]"), 400, codeOfflineFileInvalid},
		{"version 2", with(func(m map[string]any) { m["samplero_offline"] = 2 }), 400, codeOfflineFileInvalid},
		{"version as a string", with(func(m map[string]any) { m["samplero_offline"] = "1" }), 400, codeOfflineFileInvalid},
		{"no version", with(func(m map[string]any) { delete(m, "samplero_offline") }), 400, codeOfflineFileInvalid},
		{"another path", with(func(m map[string]any) { m["path"] = "/v1/validate" }), 400, codeOfflinePathNotAllowed},
		{"no path", with(func(m map[string]any) { delete(m, "path") }), 400, codeOfflineFileInvalid},
		{"body not base64", with(func(m map[string]any) { m["body"] = "{not base64}" }), 400, codeOfflineFileInvalid},
		{"body unpadded", with(func(m map[string]any) { m["body"] = base64.RawStdEncoding.EncodeToString([]byte("{}")) }), 400, codeOfflineFileInvalid},
		{"no headers", with(func(m map[string]any) { delete(m, "headers") }), 400, codeOfflineFileInvalid},
		{"another header", with(func(m map[string]any) { m["headers"].(map[string]any)["Content-Encoding"] = "gzip" }), 400, codeOfflineFileInvalid},
		{"a header twice", with(func(m map[string]any) { m["headers"].(map[string]any)["signature"] = "sig1=:AAAA:" }), 400, codeOfflineFileInvalid},
		{"a header not a string", with(func(m map[string]any) { m["headers"].(map[string]any)["Signature"] = 1 }), 400, codeOfflineFileInvalid},
		{"too large", bytes.Repeat([]byte(" "), offlineMaxFileBytes+1), 413, codeBodyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.problem(h.offlinePost(offlineOwnerToken, tc.upload), tc.status, tc.code)
		})
	}
	h.noUseCase()
	if len(h.ownerCalls) != 0 || h.nonces.Len() != 0 {
		t.Fatalf("a refused upload reached the owner check %v or spent a nonce", h.ownerCalls)
	}
}

// Failures of the section 2 checks and of the use case are the device's answer: signed, in the file.
func TestOfflineActivationInnerProblems(t *testing.T) {
	t.Run("no tag", func(t *testing.T) {
		h := newOfflineHarness(t)
		file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{}, nil)
		h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce), 400, codeMalformedSignature)
		h.noUseCase()
	})
	t.Run("a signature header missing", func(t *testing.T) {
		h := newOfflineHarness(t)
		file, _ := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
		var m map[string]any
		_ = json.Unmarshal(file, &m)
		delete(m["headers"].(map[string]any), "Signature")
		// The Signature-Input still parses on the answer side, so the answer echoes its nonce.
		nonce := httpsig.NonceOf(m["headers"].(map[string]any)["Signature-Input"].(string))
		h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, offlineJSON(m)), nonce), 401, codeSignatureRequired)
	})
	t.Run("body changed after signing", func(t *testing.T) {
		h := newOfflineHarness(t)
		file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
		var m map[string]any
		_ = json.Unmarshal(file, &m)
		m["body"] = base64.StdEncoding.EncodeToString(bytes.Replace(h.activateBody(), []byte("Studio Mac"), []byte("Other Mac!"), 1))
		h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, offlineJSON(m)), nonce), 400, codeDigestMismatch)
		h.noUseCase()
	})
	t.Run("signed by another key", func(t *testing.T) {
		h := newOfflineHarness(t)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag, KeyID: h.devID}, other)
		h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce), 401, codeInvalidSignature)
		h.noUseCase()
		if h.nonces.Len() != 0 {
			t.Fatal("a request that does not verify spent its nonce")
		}
	})
	t.Run("use case refusal", func(t *testing.T) {
		h := newOfflineHarness(t)
		h.lic.useErr = errs.E(errs.Conflict, license.CodeActivationLimitExceeded, "no free seat")
		file, nonce := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
		h.offlineInnerProblem(h.offlineAnswerOf(h.offlinePost(offlineOwnerToken, file), nonce), 409, license.CodeActivationLimitExceeded)
	})
	t.Run("server failure is answered on the upload", func(t *testing.T) {
		h := newOfflineHarness(t)
		h.lic.useErr = errs.Internalf("database exploded")
		file, _ := h.offlineFile(h.activateBody(), httpsig.RequestParams{Tag: httpsig.OfflineTag}, nil)
		res := h.offlinePost(offlineOwnerToken, file)
		h.problem(res, 500, errs.CodeInternal)
		if strings.Contains(string(res.body), "exploded") {
			t.Fatal("internal error text leaked")
		}
	})
}

// The online endpoints refuse a request carrying the offline tag at step 1, signed, with nothing
// spent or reached.
func TestOnlineRefusesOfflineTag(t *testing.T) {
	for _, tc := range []struct {
		path string
		mtls bool
	}{
		{"/v1/activate", false}, {"/v1/bootstrap", false}, {"/v1/status", false},
		{"/v1/validate", true}, {"/v1/heartbeat", true}, {"/v1/deactivate", true}, {"/v1/certificates/renew", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := newHarness(t)
			b := []byte(`{}`)
			if tc.path == "/v1/activate" {
				b = h.activateBody()
			}
			res := h.do(request{path: tc.path, body: b, mtls: tc.mtls, params: httpsig.RequestParams{Tag: httpsig.OfflineTag}})
			p := h.problem(res, 400, codeMalformedSignature)
			if !strings.Contains(p.Detail, "offline") {
				t.Fatalf("detail %q does not say why", p.Detail)
			}
			h.verify(res)
			h.nonceFresh(res)
			h.noUseCase()
		})
	}
}

// --- the SDK end to end through this adapter and the real licensing core ---

// offlineLeases signs leases as the server does (compact JWS, EdDSA), so that the SDK can verify them.
type offlineLeases struct{ keys *testKeys }

func (l offlineLeases) SignLease(_ context.Context, c ports.LeaseClaims) (string, error) {
	hdr := offlineJSON(map[string]string{"alg": "EdDSA", "typ": "samplero-lease+jwt", "kid": l.keys.kid})
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(offlineJSON(c))
	return signing + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(l.keys.priv, []byte(signing))), nil
}

// offlineCoreOwned answers OwnerLicense from the admin view of the real core (its own owner calls are
// another helper's and may not be there yet).
type offlineCoreOwned struct{ ports.Licensing }

func (l offlineCoreOwned) OwnerLicense(ctx context.Context, owner, ref string) (ports.OwnerLicenseView, error) {
	notFound := errs.E(errs.NotFound, license.CodeLicenseNotFound, "no such license")
	id, err := l.LicenseIDForKey(ctx, ref)
	if err != nil {
		return ports.OwnerLicenseView{}, notFound
	}
	v, err := l.GetLicense(ctx, id)
	if err != nil || v.OwnerEmail != owner {
		return ports.OwnerLicenseView{}, notFound
	}
	return ports.OwnerLicenseView{ID: v.ID, Status: v.Status}, nil
}

func TestOfflineActivationWithSDK(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(d *Deps) { d.Customers = offlineCustomers{} })
	store := portstest.NewMemStore(portstest.WithClock(h.clock))
	st := store.Stores()
	svc := licensing.New(licensing.Deps{
		Clock: h.clock, Tx: st.Tx, Products: st.Products, Licenses: st.Licenses, Activations: st.Activations,
		Certificates: st.Certificates, Claims: st.Claims, Issuer: h.deps.Issuer, Vault: testVault{}, Leases: offlineLeases{keys: h.keys},
		LeaseIssuer: h.keys.Issuer(), Processes: &testProcesses{}, Emails: portstest.NewEmailRenderer(),
		Config: licensing.Config{PublicURL: "http://127.0.0.1:8080", MTLSURL: "https://127.0.0.1:8443", VendorName: "Test"},
	})
	d := h.deps
	d.Licensing, d.Registry = offlineCoreOwned{svc}, nil
	app, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	licID, key := h.product(t, "synth", "instant", 2) // owned by owner@example.com

	devStore := samplero.NewMemoryStorage()
	client, err := samplero.New(samplero.Config{
		BaseURL:     "https://licenses.invalid", // never dialled: both calls work without network
		TrustedKeys: []samplero.TrustedKey{{KID: h.keys.kid, PublicKey: h.keys.public()}}, Issuer: h.keys.Issuer(),
		Storage: devStore, Fingerprint: "studio-machine-0001", Platform: "mac", PluginVersion: "2.0.0", Product: "synth",
		DeviceName: "Studio", Now: h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	file, err := client.OfflineActivationRequest(ctx, key)
	if err != nil {
		t.Fatal(err)
	}

	// Another customer cannot use the file; the owner uploads it five days later.
	h.problem(h.offlinePost(offlineOtherToken, file), 404, license.CodeLicenseNotFound)
	h.clock.Advance(5 * 24 * time.Hour)
	res := h.offlinePost(offlineOwnerToken, file)
	if res.status != 200 {
		t.Fatalf("upload: %d %s", res.status, res.body)
	}
	// The device applies the answer an hour later.
	h.clock.Advance(time.Hour)
	got, err := client.ApplyOfflineActivationAnswer(ctx, res.body)
	if err != nil {
		t.Fatalf("SDK refused the server's answer file: %v", err)
	}
	if got.HTTPStatus != 201 || got.ActivationID == "" || got.LeaseInfo == nil || got.LeaseInfo.LicenseID != licID {
		t.Fatalf("SDK result %+v", got)
	}
	if _, err := client.CheckOffline(""); err != nil {
		t.Fatalf("lease from the offline activation: %v", err)
	}
	view, err := svc.GetLicense(ctx, licID)
	if err != nil || view.SeatsUsed != 1 || len(view.Activations) != 1 || view.Activations[0].ID != got.ActivationID || view.Activations[0].DeviceFingerprint != "studio-machine-0001" {
		t.Fatalf("license after the offline activation: %+v %v", view, err)
	}
	// The same file uploaded again is refused as a replay (in the answer file), and the device,
	// with nothing pending any more, takes no second answer.
	var req samplero.OfflineFile
	if err := json.Unmarshal(file, &req); err != nil {
		t.Fatal(err)
	}
	again := h.offlinePost(offlineOwnerToken, file)
	h.offlineInnerProblem(h.offlineAnswerOf(again, httpsig.NonceOf(req.Headers["Signature-Input"])), 409, codeReplayedNonce)
	if _, err := client.ApplyOfflineActivationAnswer(ctx, again.body); err == nil {
		t.Fatal("a second answer to an applied request was accepted")
	}
}
