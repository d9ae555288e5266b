package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"
)

const exNonce = "q2H4mN8rT5vW1xY3aB7cD9"

var exBody = []byte(`{"hello": "world"}`)

func newP256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEd(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rsaKey is generated once: RSA generation is slow on a 2-core machine.
var rsaKey *rsa.PrivateKey

func newRSA(t testing.TB) *rsa.PrivateKey {
	if rsaKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaKey = k
	}
	return rsaKey
}

// TestProtocolExampleBase checks byte for byte the base format of PROTOCOL.md section 2.
func TestProtocolExampleBase(t *testing.T) {
	key := newP256(t)
	p := RequestParams{Created: 1764417600, Nonce: exNonce, KeyID: "0u9Tx-example", Alg: AlgECDSAP256}
	h, err := SignRequest("POST", "/v1/heartbeat", exBody, p, key)
	if err != nil {
		t.Fatal(err)
	}
	want := `"@method": POST` + "\n" +
		`"@path": /v1/heartbeat` + "\n" +
		`"content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:` + "\n" +
		`"@signature-params": ("@method" "@path" "content-digest");created=1764417600;nonce="q2H4mN8rT5vW1xY3aB7cD9";keyid="0u9Tx-example";alg="ecdsa-p256-sha256"`
	if got := h.Get("Signature-Input"); got != `sig1=("@method" "@path" "content-digest");created=1764417600;nonce="q2H4mN8rT5vW1xY3aB7cD9";keyid="0u9Tx-example";alg="ecdsa-p256-sha256"` {
		t.Fatalf("Signature-Input = %s", got)
	}
	if got := h.Get("Content-Digest"); got != "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:" {
		t.Fatalf("Content-Digest = %s", got)
	}
	pr, err := ParseRequest("POST", "/v1/heartbeat?x=1", h, false)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Base != want {
		t.Fatalf("base:\n%s\nwant:\n%s", pr.Base, want)
	}
	if len(pr.Signature) != 64 {
		t.Fatalf("ECDSA signature is %d bytes, want 64 (r||s)", len(pr.Signature))
	}
	if err := pr.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
}

func TestResponseExampleBase(t *testing.T) {
	key := newEd(t)
	h, err := SignResponse(200, "/v1/validate", exBody, 1764417600, exNonce, "srv-1", key)
	if err != nil {
		t.Fatal(err)
	}
	wantSI := `sig1=("@status" "content-digest" "@path";req);created=1764417600;nonce="q2H4mN8rT5vW1xY3aB7cD9";keyid="srv-1";alg="ed25519"`
	if got := h.Get("Signature-Input"); got != wantSI {
		t.Fatalf("Signature-Input = %s", got)
	}
	base := `"@status": 200` + "\n" +
		`"content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:` + "\n" +
		`"@path";req: /v1/validate` + "\n" +
		`"@signature-params": ` + strings.TrimPrefix(wantSI, "sig1=")
	sig := rfcSig(t, h.Get("Signature"), "sig1")
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), []byte(base), sig) {
		t.Fatal("response signature is not over the documented base")
	}
	// Without a nonce the parameter is left out.
	h, err = SignResponse(400, "/v1/validate", nil, 1764417600, "", "srv-1", key)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("Signature-Input"); got != `sig1=("@status" "content-digest" "@path";req);created=1764417600;keyid="srv-1";alg="ed25519"` {
		t.Fatalf("Signature-Input without nonce = %s", got)
	}
}

func TestRoundTripAllAlgs(t *testing.T) {
	keys := map[Alg]crypto.Signer{AlgECDSAP256: newP256(t), AlgEd25519: newEd(t), AlgRSA: newRSA(t)}
	for alg, key := range keys {
		for _, offline := range []bool{false, true} {
			t.Run(string(alg), func(t *testing.T) {
				p := RequestParams{Created: 1764417600, Nonce: NewNonce()}
				if offline {
					p.Tag = OfflineTag
				}
				h, err := SignRequest("POST", "/v1/activate", exBody, p, key)
				if err != nil {
					t.Fatal(err)
				}
				pr, err := ParseRequest("POST", "/v1/activate", h, offline)
				if err != nil {
					t.Fatal(err)
				}
				tp, _ := Thumbprint(key.Public())
				if pr.Params.Alg != alg || pr.Params.KeyID != tp || pr.Params.Nonce != p.Nonce || pr.Params.Created != p.Created || pr.Params.Tag != p.Tag {
					t.Fatalf("params %+v", pr.Params)
				}
				if !pr.DigestMatches(exBody) || pr.DigestMatches([]byte(`{}`)) {
					t.Fatal("DigestMatches")
				}
				if err := pr.Verify(key.Public()); err != nil {
					t.Fatalf("verify: %v", err)
				}
				// The same headers on another path or method no longer verify.
				other, err := ParseRequest("POST", "/v1/heartbeat", h, offline)
				if err != nil {
					t.Fatal(err)
				}
				if other.Verify(key.Public()) == nil {
					t.Fatal("signature verified for another path")
				}
				// The other profile refuses the request.
				if _, err := ParseRequest("POST", "/v1/activate", h, !offline); codeOf(err) != CodeMalformedSignature {
					t.Fatalf("other profile: %v", err)
				}
				// Another key of another type fails (alg does not fit), as does another key of the same type.
				for a2, k2 := range keys {
					if a2 != alg && pr.Verify(k2.Public()) == nil {
						t.Fatalf("verified with a %s key", a2)
					}
				}
				var same crypto.Signer
				switch alg {
				case AlgECDSAP256:
					same = newP256(t)
				case AlgEd25519:
					same = newEd(t)
				default:
					return // a second RSA key costs too much time for what it shows
				}
				if pr.Verify(same.Public()) == nil {
					t.Fatal("verified with another key")
				}
			})
		}
	}
}

func TestAlgLabelMismatchFailsAtVerify(t *testing.T) {
	key := newEd(t)
	h, err := SignRequest("POST", "/v1/validate", exBody, RequestParams{Created: 1, Nonce: exNonce, Alg: AlgECDSAP256}, key)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ParseRequest("POST", "/v1/validate", h, false)
	if err != nil {
		t.Fatalf("a known alg must pass step 1: %v", err)
	}
	if pr.Verify(key.Public()) == nil {
		t.Fatal("an alg that does not fit the key verified")
	}
}

func TestAlgForAndThumbprint(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := AlgFor(p384.Public()); err == nil {
		t.Fatal("P-384 accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := AlgFor(small.Public()); err == nil {
		t.Fatal("RSA-1024 accepted")
	}
	odd := *newRSA(t)
	odd.PublicKey.E = 3
	if _, err := AlgFor(&odd.PublicKey); err == nil {
		t.Fatal("e=3 accepted")
	}
	if _, err := AlgFor(ed25519.PublicKey(make([]byte, 31))); err == nil {
		t.Fatal("short Ed25519 key accepted")
	}
	if _, err := AlgFor("nope"); err == nil {
		t.Fatal("string accepted")
	}
	// The thumbprint is 43 base64url characters of SHA-256 over the SPKI.
	pub := rfcPublic(t, rfcEd25519Public)
	tp, err := Thumbprint(pub)
	if err != nil || len(tp) != 43 || strings.ContainsAny(tp, "+/=") {
		t.Fatalf("thumbprint %q %v", tp, err)
	}
}

func TestNonce(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		n := NewNonce()
		if len(n) != 32 || !ValidNonce(n) || seen[n] {
			t.Fatalf("bad nonce %q", n)
		}
		seen[n] = true
	}
	for s, ok := range map[string]bool{
		strings.Repeat("a", 21): false, strings.Repeat("a", 22): true, strings.Repeat("Z", 64): true,
		strings.Repeat("a", 65): false, strings.Repeat("a", 21) + "=": false, strings.Repeat("-_", 11): true,
		strings.Repeat("a", 21) + "+": false, strings.Repeat("a", 21) + "é": false, "": false,
	} {
		if ValidNonce(s) != ok {
			t.Errorf("ValidNonce(%q) != %v", s, ok)
		}
	}
}

func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestParseRequestMalformed(t *testing.T) {
	key := newP256(t)
	good, err := SignRequest("POST", "/v1/validate", exBody, RequestParams{Created: 1764417600, Nonce: exNonce}, key)
	if err != nil {
		t.Fatal(err)
	}
	si := good.Get("Signature-Input")
	sig := good.Get("Signature")
	cd := good.Get("Content-Digest")
	params := strings.TrimPrefix(si, `sig1=("@method" "@path" "content-digest")`)
	tp, _ := Thumbprint(key.Public())
	comps := `("@method" "@path" "content-digest")`
	p := func(rest string) string { return "sig1=" + comps + rest }

	cases := []struct {
		name    string
		mod     func(h http.Header)
		offline bool
		code    string
	}{
		{"no Content-Digest", func(h http.Header) { h.Del("Content-Digest") }, false, CodeSignatureRequired},
		{"no Signature-Input", func(h http.Header) { h.Del("Signature-Input") }, false, CodeSignatureRequired},
		{"no Signature", func(h http.Header) { h.Del("Signature") }, false, CodeSignatureRequired},
		{"empty Signature", func(h http.Header) { h.Set("Signature", "  ") }, false, CodeSignatureRequired},
		{"missing beats Content-Encoding", func(h http.Header) { h.Del("Signature"); h.Set("Content-Encoding", "gzip") }, false, CodeSignatureRequired},
		{"Content-Encoding", func(h http.Header) { h.Set("Content-Encoding", "gzip") }, false, CodeMalformedSignature},
		{"Content-Encoding identity", func(h http.Header) { h.Set("Content-Encoding", "identity") }, false, CodeMalformedSignature},
		{"digest unparsable", func(h http.Header) { h.Set("Content-Digest", "sha-256=X48E") }, false, CodeMalformedSignature},
		{"digest bad base64", func(h http.Header) { h.Set("Content-Digest", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:") }, false, CodeMalformedSignature},
		{"digest no sha-256", func(h http.Header) { h.Set("Content-Digest", "sha-512=:AAAA:") }, false, CodeMalformedSignature},
		{"digest sha-256 twice", func(h http.Header) { h.Set("Content-Digest", cd+", "+cd) }, false, CodeMalformedSignature},
		{"digest sha-256 not bytes", func(h http.Header) { h.Set("Content-Digest", `sha-256="abc"`) }, false, CodeMalformedSignature},
		{"input unparsable", func(h http.Header) { h.Set("Signature-Input", "sig1=(") }, false, CodeMalformedSignature},
		{"input trailing comma", func(h http.Header) { h.Set("Signature-Input", si+",") }, false, CodeMalformedSignature},
		{"input other label", func(h http.Header) { h.Set("Signature-Input", "sig2="+strings.TrimPrefix(si, "sig1=")) }, false, CodeMalformedSignature},
		{"input second label", func(h http.Header) { h.Set("Signature-Input", si+", sig2="+strings.TrimPrefix(si, "sig1=")) }, false, CodeMalformedSignature},
		{"input sig1 twice", func(h http.Header) { h.Add("Signature-Input", si) }, false, CodeMalformedSignature},
		{"input not inner list", func(h http.Header) { h.Set("Signature-Input", `sig1="@method"`) }, false, CodeMalformedSignature},
		{"components reordered", func(h http.Header) { h.Set("Signature-Input", `sig1=("@path" "@method" "content-digest")`+params) }, false, CodeMalformedSignature},
		{"component missing", func(h http.Header) { h.Set("Signature-Input", `sig1=("@method" "@path")`+params) }, false, CodeMalformedSignature},
		{"component extra", func(h http.Header) {
			h.Set("Signature-Input", `sig1=("@method" "@path" "content-digest" "content-type")`+params)
		}, false, CodeMalformedSignature},
		{"component with param", func(h http.Header) { h.Set("Signature-Input", `sig1=("@method" "@path";req "content-digest")`+params) }, false, CodeMalformedSignature},
		{"component as token", func(h http.Header) { h.Set("Signature-Input", `sig1=("@method" "@path" content-digest)`+params) }, false, CodeMalformedSignature},
		{"param missing", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600;nonce="`+exNonce+`";keyid="`+tp+`"`))
		}, false, CodeMalformedSignature},
		{"param extra", func(h http.Header) { h.Set("Signature-Input", si+`;expires=1764417900`) }, false, CodeMalformedSignature},
		{"param repeated", func(h http.Header) { h.Set("Signature-Input", si+`;alg="ecdsa-p256-sha256"`) }, false, CodeMalformedSignature},
		{"params reordered", func(h http.Header) {
			h.Set("Signature-Input", p(`;nonce="`+exNonce+`";created=1764417600;keyid="`+tp+`";alg="ecdsa-p256-sha256"`))
		}, false, CodeMalformedSignature},
		{"created not integer", func(h http.Header) {
			h.Set("Signature-Input", p(`;created="1764417600";nonce="`+exNonce+`";keyid="`+tp+`";alg="ecdsa-p256-sha256"`))
		}, false, CodeMalformedSignature},
		{"created decimal", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600.5;nonce="`+exNonce+`";keyid="`+tp+`";alg="ecdsa-p256-sha256"`))
		}, false, CodeMalformedSignature},
		{"alg as token", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600;nonce="`+exNonce+`";keyid="`+tp+`";alg=ed25519`))
		}, false, CodeMalformedSignature},
		{"unknown alg", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600;nonce="`+exNonce+`";keyid="`+tp+`";alg="hmac-sha256"`))
		}, false, CodeMalformedSignature},
		{"nonce too short", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600;nonce="abc";keyid="`+tp+`";alg="ecdsa-p256-sha256"`))
		}, false, CodeMalformedSignature},
		{"nonce bad chars", func(h http.Header) {
			h.Set("Signature-Input", p(`;created=1764417600;nonce="`+exNonce+`+/=";keyid="`+tp+`";alg="ecdsa-p256-sha256"`))
		}, false, CodeMalformedSignature},
		{"tag on online request", func(h http.Header) { h.Set("Signature-Input", si+`;tag="samplero-offline"`) }, false, CodeMalformedSignature},
		{"offline without tag", func(h http.Header) {}, true, CodeMalformedSignature},
		{"offline wrong tag", func(h http.Header) { h.Set("Signature-Input", si+`;tag="other"`) }, true, CodeMalformedSignature},
		{"signature unparsable", func(h http.Header) { h.Set("Signature", "sig1=:abc") }, false, CodeMalformedSignature},
		{"signature other label", func(h http.Header) { h.Set("Signature", "sig2="+strings.TrimPrefix(sig, "sig1=")) }, false, CodeMalformedSignature},
		{"signature second label", func(h http.Header) { h.Set("Signature", sig+", sig2=:AAAA:") }, false, CodeMalformedSignature},
		{"signature not bytes", func(h http.Header) { h.Set("Signature", `sig1="abc"`) }, false, CodeMalformedSignature},
		{"signature with param", func(h http.Header) { h.Set("Signature", sig+";x=1") }, false, CodeMalformedSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := good.Clone()
			c.mod(h)
			pr, err := ParseRequest("POST", "/v1/validate", h, c.offline)
			if pr != nil || codeOf(err) != c.code {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
	// Sanity: the unmodified headers parse, with OWS and multiple header lines tolerated.
	h := good.Clone()
	h.Set("Signature-Input", "  "+si+" ")
	if _, err := ParseRequest("POST", "/v1/validate", h, false); err != nil {
		t.Fatal(err)
	}
	h = good.Clone()
	h.Set("Content-Digest", "sha-512=:AAAA:")
	h.Add("Content-Digest", cd)
	pr, err := ParseRequest("POST", "/v1/validate", h, false)
	if err != nil || !pr.DigestMatches(exBody) {
		t.Fatalf("multi-line Content-Digest: %v", err)
	}
	// The base carries the combined field value, so the signature (over a single-member value)
	// no longer verifies: the digest field is covered as sent.
	if pr.Verify(key.Public()) == nil {
		t.Fatal("a changed Content-Digest field verified")
	}
}

func TestNonceOf(t *testing.T) {
	tp := "kid"
	ok := `sig1=("@method" "@path" "content-digest");created=1;nonce="` + exNonce + `";keyid="` + tp + `";alg="ed25519"`
	cases := map[string]string{
		ok: exNonce,
		`sig1=("@method");nonce="` + exNonce + `"`:                         exNonce, // other checks may fail, the nonce still echoes
		`sig1=();created=1;nonce="short"`:                                  "",
		`sig1=();nonce="` + exNonce + `";nonce="` + exNonce + `"`:          "",
		`sig2=();nonce="` + exNonce + `"`:                                  "",
		`sig1=();nonce="` + exNonce + `", sig2=();nonce="` + exNonce + `"`: "",
		`sig1=();nonce=abcdefghijklmnopqrstuvwxyz`:                         "",
		`sig1=(;nonce="` + exNonce + `"`:                                   "",
		`sig1="x";nonce="` + exNonce + `"`:                                 "",
		"":                                                                 "",
	}
	for in, want := range cases {
		if got := NonceOf(in); got != want {
			t.Errorf("NonceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerifyResponse(t *testing.T) {
	key := newEd(t)
	pub := key.Public().(ed25519.PublicKey)
	keys := func(kid string) ed25519.PublicKey {
		if kid == "srv-1" {
			return pub
		}
		return nil
	}
	body := []byte(`{"valid":true}`)
	good, err := SignResponse(200, "/v1/validate", body, 1764417600, exNonce, "srv-1", key)
	if err != nil {
		t.Fatal(err)
	}
	info, err := VerifyResponse(200, "/v1/validate", body, good, exNonce, keys)
	if err != nil || info != (ResponseInfo{Created: 1764417600, Nonce: exNonce, KeyID: "srv-1"}) {
		t.Fatalf("%+v %v", info, err)
	}
	other := newEd(t)
	otherSigned, _ := SignResponse(200, "/v1/validate", body, 1764417600, exNonce, "srv-1", other)
	noNonce, _ := SignResponse(200, "/v1/validate", body, 1764417600, "", "srv-1", key)
	si := good.Get("Signature-Input")
	cases := []struct {
		name   string
		status int
		path   string
		body   []byte
		h      http.Header
		nonce  string
		want   error
	}{
		{"wrong nonce", 200, "/v1/validate", body, good, NewNonce(), ErrNonceMismatch},
		{"nonce absent", 200, "/v1/validate", body, noNonce, exNonce, ErrNonceMismatch},
		{"wrong path", 200, "/v1/heartbeat", body, good, exNonce, ErrResponseSignature},
		{"wrong status", 201, "/v1/validate", body, good, exNonce, ErrResponseSignature},
		{"other body", 200, "/v1/validate", []byte(`{"valid":false}`), good, exNonce, ErrResponseDigest},
		{"bad signature", 200, "/v1/validate", body, otherSigned, exNonce, ErrResponseSignature},
		{"unknown kid", 200, "/v1/validate", body, with(good, "Signature-Input", strings.Replace(si, "srv-1", "srv-2", 1)), exNonce, ErrUnknownServerKey},
		{"no digest", 200, "/v1/validate", body, without(good, "Content-Digest"), exNonce, ErrResponseUnsigned},
		{"no input", 200, "/v1/validate", body, without(good, "Signature-Input"), exNonce, ErrResponseUnsigned},
		{"no signature", 200, "/v1/validate", body, without(good, "Signature"), exNonce, ErrResponseUnsigned},
		{"components without req", 200, "/v1/validate", body, with(good, "Signature-Input", strings.Replace(si, `"@path";req`, `"@path"`, 1)), exNonce, ErrResponseMalformed},
		{"params reordered", 200, "/v1/validate", body, with(good, "Signature-Input", `sig1=("@status" "content-digest" "@path";req);nonce="`+exNonce+`";created=1764417600;keyid="srv-1";alg="ed25519"`), exNonce, ErrResponseMalformed},
		{"alg not ed25519", 200, "/v1/validate", body, with(good, "Signature-Input", strings.Replace(si, `alg="ed25519"`, `alg="ecdsa-p256-sha256"`, 1)), exNonce, ErrResponseMalformed},
		{"extra param", 200, "/v1/validate", body, with(good, "Signature-Input", si+";tag=\"x\""), exNonce, ErrResponseMalformed},
		{"second label", 200, "/v1/validate", body, with(good, "Signature", good.Get("Signature")+", sig2=:AAAA:"), exNonce, ErrResponseMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyResponse(c.status, c.path, c.body, c.h, c.nonce, keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	if _, err := VerifyResponse(200, "/v1/validate", body, good, exNonce, nil); !errors.Is(err, ErrUnknownServerKey) {
		t.Fatalf("nil keyFor: %v", err)
	}
	// A response with no nonce verifies when none was sent (GET /v1/keys without nonce).
	if _, err := VerifyResponse(200, "/v1/validate?x", body, noNonce, "", keys); err != nil {
		t.Fatal(err)
	}
}

func with(h http.Header, k, v string) http.Header {
	c := h.Clone()
	c.Set(k, v)
	return c
}

func without(h http.Header, k string) http.Header {
	c := h.Clone()
	c.Del(k)
	return c
}

func TestStructuredFieldParser(t *testing.T) {
	valid := []string{
		`a=1, b=2;x=?0, c`,
		`a=("x" "y");p=1.5, b=:AAAA:`,
		`a=( "x"  "y" ), b=tok/en:x`,
		`a=-12;q="s\"t\\r"`,
		`a=123456789012345`,
		`a=123456789012.123`,
		``,
	}
	for _, s := range valid {
		if _, err := parseDictionary(s); err != nil {
			t.Errorf("%q did not parse: %v", s, err)
		}
	}
	invalid := []string{
		`A=1`, `a=1,`, `a=1 b=2`, `a=1234567890123456`, `a=1234567890123.1`, `a=1.1234`, `a=1.`,
		`a="\x"`, "a=\"\x01\"", `a="unterminated`, `a=:AA=A:`, `a=:AAA:`, `a=?2`, `a=("x"`, `a=("x""y")`,
		`a=(1);`, `a=@1`, `a=1;;b`, "a=\"é\"",
	}
	for _, s := range invalid {
		if _, err := parseDictionary(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	// Serialization round-trips what it parses.
	d, err := parseDictionary(`sig1=("@status" "content-digest" "@path";req);created=1;nonce="a\"b";keyid="k"`)
	if err != nil {
		t.Fatal(err)
	}
	s, err := serializeInnerList(d[0].list, d[0].params)
	if err != nil || s != `("@status" "content-digest" "@path";req);created=1;nonce="a\"b";keyid="k"` {
		t.Fatalf("%s %v", s, err)
	}
	if _, err := serializeInnerList([]sfItem{{bare: sfStr("a\nb")}}, nil); err == nil {
		t.Fatal("serialized a control character")
	}
}

func TestSignRequestRefusesUnserializable(t *testing.T) {
	if _, err := SignRequest("POST", "/v1/x", nil, RequestParams{Nonce: "a\"\n"}, newEd(t)); err == nil {
		t.Fatal("nonce with a line break serialized")
	}
	if _, err := SignRequest("POST", "/v1/x\n", nil, RequestParams{Nonce: exNonce}, newEd(t)); err == nil {
		t.Fatal("path with a line break signed")
	}
	if _, err := SignRequest("POST", "/v1/x", nil, RequestParams{Nonce: exNonce}, nil); err == nil {
		t.Fatal("nil key")
	}
}

func FuzzParseRequest(f *testing.F) {
	key := newEd(f)
	h, err := SignRequest("POST", "/v1/activate", exBody, RequestParams{Created: 1764417600, Nonce: exNonce}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Get("Content-Digest"), h.Get("Signature-Input"), h.Get("Signature"), false)
	f.Add("sha-256=:AAAA:, x", `sig1=("@method");created=1;nonce=""`, "sig1=::", true)
	f.Add("a=(((", `sig1=("@method" "@path" "content-digest");created=-999999999999999;nonce="`+exNonce+`";keyid="\\";alg="ed25519";tag="samplero-offline"`, ":", true)
	f.Fuzz(func(t *testing.T, cd, si, sg string, offline bool) {
		hh := http.Header{}
		hh.Set("Content-Digest", cd)
		hh.Set("Signature-Input", si)
		hh.Set("Signature", sg)
		pr, err := ParseRequest("POST", "/v1/activate", hh, offline)
		if err == nil {
			_ = pr.DigestMatches(exBody)
			_ = pr.Verify(key.Public())
		} else if codeOf(err) == "" {
			t.Fatalf("unclassified error %v", err)
		}
		_ = NonceOf(si)
		_, _ = VerifyResponse(200, "/v1/activate", exBody, hh, exNonce, func(string) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) })
	})
}
