package sendgridmail

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

const testKey = "SG.test-key-0123456789"

// fakeSendGrid is a local v3 mail/send endpoint: it records each request and answers with the
// status, headers and body the test chose.
type fakeSendGrid struct {
	mu       sync.Mutex
	requests []recorded
	status   int
	body     string
	headers  map[string]string
	drop     bool // close the connection without answering
}

type recorded struct {
	method, path, auth, contentType string
	body                            []byte
}

func (f *fakeSendGrid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
	status, body, headers, drop := f.status, f.body, f.headers, f.drop
	f.mu.Unlock()
	if drop {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	for k, v := range headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeSendGrid) all() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func newTest(t *testing.T, status int, body string, headers map[string]string) (*Mailer, *fakeSendGrid) {
	t.Helper()
	f := &fakeSendGrid{status: status, body: body, headers: headers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	m, err := New(Options{APIKey: testKey, From: "Acme Audio <noreply@acme-audio.example>", Host: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return m, f
}

func testMessage() ports.EmailMessage {
	return ports.EmailMessage{
		ID:       "delivery-ord_123",
		To:       "Buyer <buyer@example.com>",
		Subject:  "Your licenses for order LS-000123",
		Text:     "Key: VST-AAAAA-BBBBB\n",
		HTML:     "<p>Key: <code>VST-AAAAA-BBBBB</code></p>",
		Template: ports.TemplateLicenseDelivery,
	}
}

// The request is a v3 mail/send POST with the bearer key and the message in SendGrid's shape.
func TestSendBuildsTheV3Request(t *testing.T) {
	m, f := newTest(t, http.StatusAccepted, "", map[string]string{"X-Message-Id": "sg-msg-1"})
	id, err := m.Send(context.Background(), testMessage())
	if err != nil || id != "sg-msg-1" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	reqs := f.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/v3/mail/send" || r.auth != "Bearer "+testKey || r.contentType != "application/json" {
		t.Fatalf("request %s %s auth %q type %q", r.method, r.path, r.auth, r.contentType)
	}
	var body struct {
		Personalizations []struct {
			To []struct{ Email, Name string } `json:"to"`
		} `json:"personalizations"`
		From    struct{ Email, Name string } `json:"from"`
		Subject string                       `json:"subject"`
		Content []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"content"`
		Headers          map[string]string `json:"headers"`
		CustomArgs       map[string]string `json:"custom_args"`
		Categories       []string          `json:"categories"`
		TrackingSettings struct {
			ClickTracking struct {
				Enable     *bool `json:"enable"`
				EnableText *bool `json:"enable_text"`
			} `json:"click_tracking"`
			OpenTracking struct {
				Enable *bool `json:"enable"`
			} `json:"open_tracking"`
		} `json:"tracking_settings"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if len(body.Personalizations) != 1 || len(body.Personalizations[0].To) != 1 ||
		body.Personalizations[0].To[0].Email != "buyer@example.com" || body.Personalizations[0].To[0].Name != "Buyer" {
		t.Fatalf("personalizations %s", r.body)
	}
	if body.From.Email != "noreply@acme-audio.example" || body.From.Name != "Acme Audio" || body.Subject != "Your licenses for order LS-000123" {
		t.Fatalf("from/subject %s", r.body)
	}
	if len(body.Content) != 2 || body.Content[0].Type != "text/plain" || body.Content[0].Value != "Key: VST-AAAAA-BBBBB\n" ||
		body.Content[1].Type != "text/html" || body.Content[1].Value != "<p>Key: <code>VST-AAAAA-BBBBB</code></p>" {
		t.Fatalf("content %s", r.body)
	}
	if body.CustomArgs["samplero_message_id"] != "delivery-ord_123" || body.Headers["X-Samplero-Message-ID"] != "delivery-ord_123" ||
		len(body.Categories) != 1 || body.Categories[0] != "license_delivery" {
		t.Fatalf("ids %s", r.body)
	}
	ts := body.TrackingSettings
	if ts.ClickTracking.Enable == nil || *ts.ClickTracking.Enable || ts.ClickTracking.EnableText == nil || *ts.ClickTracking.EnableText ||
		ts.OpenTracking.Enable == nil || *ts.OpenTracking.Enable {
		t.Fatalf("tracking not off: %s", r.body)
	}
}

// A text-only message sends one part; a subject with line breaks is sent on one line.
func TestSendTextOnlyAndOneLineSubject(t *testing.T) {
	m, f := newTest(t, http.StatusAccepted, "", nil)
	msg := testMessage()
	msg.HTML, msg.Subject = "", "Line one\r\nBcc: x@evil.example"
	if _, err := m.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Subject string                  `json:"subject"`
		Content []struct{ Type string } `json:"content"`
	}
	_ = json.Unmarshal(f.all()[0].body, &body)
	if body.Subject != "Line one Bcc: x@evil.example" || len(body.Content) != 1 || body.Content[0].Type != "text/plain" {
		t.Fatalf("%+v", body)
	}
}

// SendGrid's answers map to retryable (Unavailable) and permanent (Invalid MAIL_REJECTED) errors.
func TestSendMapsAnswers(t *testing.T) {
	for _, c := range []struct {
		name    string
		status  int
		body    string
		kind    errs.Kind
		code    string
		message string // in the error's safe message
	}{
		{"bad request", 400, `{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":null}]}`,
			errs.Invalid, CodeMailRejected, "from: The from address does not match a verified Sender Identity."},
		{"bad key", 401, `{"errors":[{"message":"The provided authorization grant is invalid, expired, or revoked","field":null,"help":null}]}`,
			errs.Invalid, CodeMailRejected, "(401): The provided authorization grant is invalid, expired, or revoked"},
		{"too large", 413, "Payload Too Large", errs.Invalid, CodeMailRejected, "(413): Payload Too Large"},
		{"two errors", 400, `{"errors":[{"message":"a","field":"x"},{"message":"b\nc"}]}`, errs.Invalid, CodeMailRejected, "x: a; b c"},
		{"rate limited", 429, `{"errors":[{"message":"too many requests"}]}`, errs.Unavailable, errs.CodeUnavailable, ""},
		{"server error", 500, "oops", errs.Unavailable, errs.CodeUnavailable, ""},
		{"bad gateway", 502, "", errs.Unavailable, errs.CodeUnavailable, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newTest(t, c.status, c.body, nil)
			id, err := m.Send(context.Background(), testMessage())
			if id != "" || errs.KindOf(err) != c.kind || errs.CodeOf(err) != c.code {
				t.Fatalf("Send = %q, %v (kind %s)", id, err, errs.KindOf(err))
			}
			e, _ := errs.As(err)
			if c.message != "" && !strings.Contains(e.Message, c.message) {
				t.Fatalf("message %q lacks %q", e.Message, c.message)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatal("the API key is in the error")
			}
		})
	}
}

// A connection dropped before an answer and a cancelled context are retryable: nothing says
// SendGrid has the message.
func TestSendNetworkFailures(t *testing.T) {
	m, f := newTest(t, http.StatusAccepted, "", nil)
	f.mu.Lock()
	f.drop = true
	f.mu.Unlock()
	if _, err := m.Send(context.Background(), testMessage()); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("dropped connection: %v", err)
	}
	if len(f.all()) == 0 {
		t.Fatal("the request never reached the server")
	}
	f.mu.Lock()
	f.drop = false
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Send(ctx, testMessage()); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("cancelled: %v", err)
	}
	// Nothing listens any more.
	srvless, err := New(Options{APIKey: testKey, From: "noreply@acme-audio.example", Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srvless.Send(context.Background(), testMessage()); errs.KindOf(err) != errs.Unavailable || strings.Contains(err.Error(), testKey) {
		t.Fatalf("refused connection: %v", err)
	}
}

// A message that cannot be sent at all is refused before any request.
func TestSendRefusesBadMessages(t *testing.T) {
	m, f := newTest(t, http.StatusAccepted, "", nil)
	for name, c := range map[string]struct {
		mod  func(*ports.EmailMessage)
		code string
	}{
		"no id":        {func(m *ports.EmailMessage) { m.ID = "" }, errs.CodeValidationFailed},
		"no recipient": {func(m *ports.EmailMessage) { m.To = "" }, CodeInvalidRecipient},
		"bad address":  {func(m *ports.EmailMessage) { m.To = "not an address" }, CodeInvalidRecipient},
		"no body":      {func(m *ports.EmailMessage) { m.Text, m.HTML = "", "" }, errs.CodeValidationFailed},
	} {
		msg := testMessage()
		c.mod(&msg)
		if _, err := m.Send(context.Background(), msg); errs.KindOf(err) != errs.Invalid || errs.CodeOf(err) != c.code {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(f.all()); n != 0 {
		t.Fatalf("%d requests for bad messages", n)
	}
}

func TestNew(t *testing.T) {
	for name, o := range map[string]Options{
		"no key":     {From: "a@example.com"},
		"no from":    {APIKey: testKey},
		"bad from":   {APIKey: testKey, From: "Acme <nope"},
		"bad host":   {APIKey: testKey, From: "a@example.com", Host: "ftp://api.sendgrid.com"},
		"empty host": {APIKey: testKey, From: "a@example.com", Host: "https://"},
	} {
		_, err := New(o)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), testKey) {
			t.Errorf("%s: the key is in %v", name, err)
		}
	}
	m, err := New(Options{APIKey: testKey, From: "noreply@acme-audio.example"})
	if err != nil || m.host != "https://api.sendgrid.com" || m.client.HTTPClient == nil || m.client.HTTPClient.Timeout == 0 {
		t.Fatalf("defaults: %+v %v", m, err)
	}
}
