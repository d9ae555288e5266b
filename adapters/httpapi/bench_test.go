package httpapi

import (
	"net"
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// BenchmarkValidate runs signed validate requests (P-256 device key, no client certificate,
// require_mtls off) through the whole Fiber handler: the checks of section 2, the use case (the
// licensing double) and the signed answer. Requests are signed before the timer starts.
func BenchmarkValidate(b *testing.B) {
	h := newHarness(b, func(d *Deps) {
		d.Config.RequireMTLS = false
		d.Config.RateLimits.Enabled = false
	})
	handler := h.app.Handler()
	body := []byte(`{"product":"synth","plugin_version":"1.2.3"}`)
	reqs := make([]*fasthttp.Request, b.N)
	for i := range reqs {
		sh, err := httpsig.SignRequest(http.MethodPost, "/v1/validate", body, httpsig.RequestParams{Created: t0.Unix(), Nonce: httpsig.NewNonce()}, h.dev)
		if err != nil {
			b.Fatal(err)
		}
		r := new(fasthttp.Request)
		r.Header.SetMethod(http.MethodPost)
		r.SetRequestURI("/v1/validate")
		r.Header.SetContentType("application/json")
		for k, v := range sh {
			r.Header.Set(k, v[0])
		}
		r.SetBody(body)
		reqs[i] = r
	}
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ctx fasthttp.RequestCtx
		ctx.Init(reqs[i], addr, nil)
		handler(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK || len(ctx.Response.Header.Peek("Signature")) == 0 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// BenchmarkVerifyRequest is steps 1, 2 and 6 for a P-256 request: parse, digest, verify.
func BenchmarkVerifyRequest(b *testing.B) {
	dev := newDeviceKey(b)
	body := []byte(`{"product":"synth","plugin_version":"1.2.3"}`)
	sh, err := httpsig.SignRequest(http.MethodPost, "/v1/validate", body, httpsig.RequestParams{Created: t0.Unix(), Nonce: httpsig.NewNonce()}, dev)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := httpsig.ParseRequest(http.MethodPost, "/v1/validate", sh, false)
		if err != nil {
			b.Fatal(err)
		}
		if !p.DigestMatches(body) {
			b.Fatal("digest")
		}
		if err := p.Verify(dev.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignResponse signs a validate-sized answer with the Ed25519 server key.
func BenchmarkSignResponse(b *testing.B) {
	k := newTestKeys(b)
	body := []byte(`{"valid":true,"status":"active","activation_id":"act_01HZX","license":{"id":"lic_01HZX","product":"synth","expires_at":null,"entitlements":["synth"]},"trust_level":3,"heartbeat_due_at":"2026-11-30T12:00:00Z","grace_period_remaining_s":604800}`)
	nonce := httpsig.NewNonce()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := httpsig.SignResponse(200, "/v1/validate", body, t0.Unix(), nonce, k.kid, k.priv); err != nil {
			b.Fatal(err)
		}
	}
}
