package httpapi

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/samplero/samplero/ports"
)

var (
	fiberParamRE = regexp.MustCompile(`:([a-z_]+)(<[^>]*>)?`)
	opLineRE     = regexp.MustCompile(`^    (get|post|put|patch|delete):$`)
)

// documentedRoutes reads "method path" pairs from the paths section of docs/openapi.yaml.
func documentedRoutes(t *testing.T) map[string]bool {
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	inPaths, path := false, ""
	for _, line := range strings.Split(string(spec), "\n") {
		switch {
		case line == "paths:":
			inPaths = true
		case !inPaths:
		case strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case path != "" && opLineRE.MatchString(line):
			out[strings.TrimSuffix(strings.TrimSpace(line), ":")+" "+path] = true
		}
	}
	return out
}

// docs/openapi.yaml documents every route this adapter serves with every dependency present, and
// none it does not (the web pages, mounted by cmd, are the web package's to check). The boot
// package runs the same comparison on the assembled server.
func TestOpenAPIMatchesTheAdapter(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) {
		d.Files = &fakeFiles{}
		d.StripeWebhook = func([]byte, string) (ports.PaymentEventIn, error) { return ports.PaymentEventIn{}, nil }
	})
	served := map[string]bool{}
	for _, r := range h.app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "USE" || r.Path == "/" {
			continue
		}
		served[strings.ToLower(r.Method)+" "+fiberParamRE.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, extra []string
	for r := range served {
		if !documentedRoutes(t)[r] {
			missing = append(missing, r)
		}
	}
	for r := range documentedRoutes(t) {
		path := strings.SplitN(r, " ", 2)[1]
		isAdapter := strings.HasPrefix(path, "/v1/") || path == "/healthz" || path == "/readyz" || path == "/metrics"
		if isAdapter && !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("docs/openapi.yaml is out of date\nserved, not documented: %v\ndocumented, not served: %v", missing, extra)
	}
	// Every commerce operation names its problems.
	spec, _ := os.ReadFile("../../docs/openapi.yaml")
	for _, code := range []string{"PRODUCT_IN_USE", "WEBHOOK_SOURCE_FORBIDDEN", "WEBHOOK_HEADERS_MISSING", "WEBHOOK_SIGNATURE_INVALID",
		"WEBHOOK_TIMESTAMP_OUT_OF_WINDOW", "WEBHOOK_NOT_CONFIGURED", "STRIPE_NOT_CONFIGURED", "BODY_TOO_LARGE", "LENGTH_REQUIRED",
		"RANGE_NOT_SATISFIABLE", "DOWNLOAD_FORBIDDEN", "DOWNLOAD_LINK_EXPIRED", "ORDER_NOT_FOUND", "COUPON_IN_USE", "INVALID_URL"} {
		if !strings.Contains(string(spec), code) {
			t.Errorf("docs/openapi.yaml does not name %s", code)
		}
	}
}
