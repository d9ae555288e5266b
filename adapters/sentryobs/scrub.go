package sentryobs

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/getsentry/sentry-go"
)

const redacted = "[scrubbed]"

// sensitiveKeys are header, query, extra and breadcrumb keys whose values never leave the process.
var sensitiveKeys = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "set-cookie": true,
	"signature": true, "signature-input": true, "x-client-cert": true, "x-samplero-proxy-token": true,
	"stripe-signature": true, "x-api-key": true,
	"license_key": true, "licensekey": true, "key": true, "token": true, "password": true,
	"secret": true, "csr": true, "lease": true, "certificate": true, "dsn": true,
}

func isSensitive(key string) bool {
	k := strings.ToLower(key)
	if sensitiveKeys[k] {
		return true
	}
	for _, part := range []string{"secret", "token", "password", "license_key", "authorization", "cookie"} {
		if strings.Contains(k, part) {
			return true
		}
	}
	return false
}

var textPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	// License keys, with or without dashes, any case (PROTOCOL.md section 1).
	{regexp.MustCompile(`(?i)\b(VST|DIG|LIC)-?[A-Z2-9]{5}-?[A-Z2-9]{5}-?[A-Z2-9]{5}-?[A-Z2-9]{5}\b`), "[license-key]"},
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`), "$1 " + redacted},
	// Signature and digest byte sequences, Signature-Input parameter lists.
	{regexp.MustCompile(`sig1=:[A-Za-z0-9+/=]*:`), "sig1=:" + redacted + ":"},
	{regexp.MustCompile(`sig1=\([^)]*\)[^\s,]*`), "sig1=" + redacted},
	// PEM blocks (certificates, CSRs, keys) and compact JWS (leases).
	{regexp.MustCompile(`-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----`), "[pem]"},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`), "[jws]"},
}

// ScrubText removes secrets from free text.
func ScrubText(s string) string {
	for _, p := range textPatterns {
		s = p.re.ReplaceAllString(s, p.with)
	}
	return s
}

func scrubValue(key string, v any) any {
	if isSensitive(key) {
		return redacted
	}
	switch x := v.(type) {
	case string:
		return ScrubText(x)
	case map[string]any:
		return scrubMap(x)
	case []any:
		for i := range x {
			x[i] = scrubValue("", x[i])
		}
		return x
	}
	return v
}

func scrubMap(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = scrubValue(k, v)
	}
	return m
}

func scrubQuery(q string) string {
	vals, err := url.ParseQuery(q)
	if err != nil {
		return redacted
	}
	for k, vs := range vals {
		for i := range vs {
			if isSensitive(k) || k == "nonce" {
				vs[i] = redacted
			} else {
				vs[i] = ScrubText(vs[i])
			}
		}
	}
	return vals.Encode()
}

// Scrub is the BeforeSend hook: it removes every secret the server handles from e and returns it.
// Request bodies are dropped whole (device bodies carry license keys and CSRs).
func Scrub(e *sentry.Event) *sentry.Event {
	if e == nil {
		return nil
	}
	e.Message = ScrubText(e.Message)
	e.Transaction = ScrubText(e.Transaction)
	for i := range e.Exception {
		e.Exception[i].Value = ScrubText(e.Exception[i].Value)
	}
	for _, b := range e.Breadcrumbs {
		if b == nil {
			continue
		}
		b.Message = ScrubText(b.Message)
		scrubMap(b.Data)
	}
	for k, v := range e.Tags {
		if isSensitive(k) {
			e.Tags[k] = redacted
		} else {
			e.Tags[k] = ScrubText(v)
		}
	}
	for _, c := range e.Contexts {
		scrubMap(c)
	}
	e.User = sentry.User{ID: e.User.ID}
	if r := e.Request; r != nil {
		r.URL = ScrubText(r.URL)
		if i := strings.IndexByte(r.URL, '?'); i >= 0 {
			r.URL = r.URL[:i+1] + scrubQuery(r.URL[i+1:])
		}
		r.QueryString = scrubQuery(r.QueryString)
		r.Cookies = ""
		if r.Data != "" {
			r.Data = redacted
		}
		for k, v := range r.Headers {
			if isSensitive(k) {
				r.Headers[k] = redacted
			} else {
				r.Headers[k] = ScrubText(v)
			}
		}
		r.Env = nil
	}
	return e
}
