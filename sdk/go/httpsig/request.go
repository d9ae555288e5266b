package httpsig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// RequestParams are the signature parameters of a device request, in the order they are sent:
// created, nonce, keyid, alg, and tag for an offline request.
type RequestParams struct {
	Created int64
	Nonce   string
	KeyID   string
	Alg     Alg
	Tag     string // "" online, OfflineTag offline
}

// ParsedRequest is a device request whose signature headers passed step 1 of PROTOCOL.md
// section 2. Nothing about it is trusted until DigestMatches and Verify have succeeded.
type ParsedRequest struct {
	Params    RequestParams
	Digest    []byte // the decoded sha-256 member of Content-Digest
	Signature []byte
	Base      string // the signature base the signature must cover
}

// requestComponents are the covered components of every request, in their fixed order.
var requestComponents = []sfItem{
	{bare: sfStr("@method")},
	{bare: sfStr("@path")},
	{bare: sfStr("content-digest")},
}

// fieldValue combines the lines of a header field as RFC 9421 section 2.1 does for a component
// value: each line trimmed, then joined with ", ". "" means absent (or only empty lines, which
// fasthttp-based servers cannot tell apart from absent, so both sides treat them alike).
func fieldValue(h http.Header, name string) string {
	vals := h.Values(name)
	parts := make([]string, 0, len(vals))
	for _, v := range vals {
		if v = strings.Trim(v, " \t"); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, ", ")
}

// pathOnly drops the query and supplies "/" for an empty path, as RFC 9421 @path does.
func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	return p
}

type baseLine struct {
	id    sfItem
	value string
}

// buildBase builds an RFC 9421 signature base: one line per covered component, then the
// @signature-params line, joined by "\n" without a trailing newline. Values containing a line
// break would make the base ambiguous, so they are refused.
func buildBase(lines []baseLine, sigParams string) (string, error) {
	var b strings.Builder
	for _, l := range lines {
		if strings.ContainsAny(l.value, "\r\n") {
			return "", errors.New("httpsig: component value contains a line break")
		}
		if err := serializeItem(&b, l.id); err != nil {
			return "", err
		}
		b.WriteString(": ")
		b.WriteString(l.value)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(sigParams)
	return b.String(), nil
}

func requestSFParams(p RequestParams) []sfParam {
	params := []sfParam{
		{key: "created", val: sfInt(p.Created)},
		{key: "nonce", val: sfStr(p.Nonce)},
		{key: "keyid", val: sfStr(p.KeyID)},
		{key: "alg", val: sfStr(string(p.Alg))},
	}
	if p.Tag != "" {
		params = append(params, sfParam{key: "tag", val: sfStr(p.Tag)})
	}
	return params
}

// SignRequest signs a device request and returns its three headers: Content-Digest,
// Signature-Input and Signature. The body is hashed exactly as given.
//
// An empty p.KeyID defaults to the thumbprint of key and an empty p.Alg to the algorithm that fits
// key. The other parameters are written as given and not checked (a nonce of the wrong shape, a tag
// on an online request, an alg label that does not fit the key), so that conformance tests can
// produce requests the server must refuse; the signature itself is always made with the key's own
// algorithm.
func SignRequest(method, path string, body []byte, p RequestParams, key crypto.Signer) (http.Header, error) {
	if key == nil {
		return nil, errors.New("httpsig: no signing key")
	}
	pub := key.Public()
	keyAlg, err := AlgFor(pub)
	if err != nil {
		return nil, err
	}
	if p.Alg == "" {
		p.Alg = keyAlg
	}
	if p.KeyID == "" {
		if p.KeyID, err = Thumbprint(pub); err != nil {
			return nil, err
		}
	}
	digest := ContentDigest(body)
	sigParams, err := serializeInnerList(requestComponents, requestSFParams(p))
	if err != nil {
		return nil, errors.New("httpsig: signature parameters cannot be serialized")
	}
	base, err := buildBase([]baseLine{
		{requestComponents[0], method},
		{requestComponents[1], pathOnly(path)},
		{requestComponents[2], digest},
	}, sigParams)
	if err != nil {
		return nil, err
	}
	sig, err := signBase(key, keyAlg, []byte(base))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(HeaderContentDigest, digest)
	h.Set(HeaderSignatureInput, label+"="+sigParams)
	h.Set(HeaderSignature, label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return h, nil
}

type ecdsaSig struct{ R, S *big.Int }

func signBase(key crypto.Signer, alg Alg, base []byte) ([]byte, error) {
	switch alg {
	case AlgEd25519:
		return key.Sign(rand.Reader, base, crypto.Hash(0))
	case AlgRSA:
		sum := sha256.Sum256(base)
		return key.Sign(rand.Reader, sum[:], crypto.SHA256)
	case AlgECDSAP256:
		sum := sha256.Sum256(base)
		der, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		// crypto.Signer returns ASN.1 DER; the protocol wants r||s, 32 bytes each.
		var rs ecdsaSig
		rest, err := asn1.Unmarshal(der, &rs)
		if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
			rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
			return nil, errors.New("httpsig: ECDSA signer returned an unexpected signature")
		}
		out := make([]byte, 64)
		rs.R.FillBytes(out[:32])
		rs.S.FillBytes(out[32:])
		return out, nil
	}
	return nil, fmt.Errorf("httpsig: unknown alg %q", alg)
}

// verifyBase checks sig over base with pub under alg.
func verifyBase(pub crypto.PublicKey, alg Alg, base []byte, sig []byte) error {
	bad := errors.New("httpsig: signature does not verify")
	switch alg {
	case AlgEd25519:
		k, ok := pub.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize || !ed25519.Verify(k, base, sig) {
			return bad
		}
		return nil
	case AlgRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return bad
		}
		sum := sha256.Sum256(base)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) != nil {
			return bad
		}
		return nil
	case AlgECDSAP256:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || len(sig) != 64 {
			return bad
		}
		der, err := asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(sig[:32]), S: new(big.Int).SetBytes(sig[32:])})
		if err != nil {
			return bad
		}
		sum := sha256.Sum256(base)
		if !ecdsa.VerifyASN1(k, sum[:], der) {
			return bad
		}
		return nil
	}
	return bad
}

// parseDigest finds the single sha-256 member of a Content-Digest value. Other algorithms may be
// present and are ignored; a second sha-256 member is refused rather than guessed at.
func parseDigest(v string) ([]byte, *Error) {
	dict, err := parseDictionary(v)
	if err != nil {
		return nil, malformed("Content-Digest does not parse")
	}
	var found []byte
	n := 0
	for _, m := range dict {
		if m.key != "sha-256" {
			continue
		}
		n++
		if m.inner || m.item.bare.kind != sfBytes {
			return nil, malformed("Content-Digest sha-256 member is not a byte sequence")
		}
		found = m.item.bare.b
	}
	switch n {
	case 0:
		return nil, malformed("Content-Digest has no sha-256 member")
	case 1:
		return found, nil
	}
	return nil, malformed("Content-Digest has more than one sha-256 member")
}

// parseSignature extracts the sig1 byte sequence of a Signature value.
func parseSignature(v string) ([]byte, *Error) {
	dict, err := parseDictionary(v)
	if err != nil {
		return nil, malformed("Signature does not parse")
	}
	if len(dict) != 1 || dict[0].key != label {
		return nil, malformed("Signature must have exactly one label, sig1")
	}
	m := dict[0]
	if m.inner || m.item.bare.kind != sfBytes || len(m.item.params) != 0 {
		return nil, malformed("Signature sig1 is not a byte sequence")
	}
	return m.item.bare.b, nil
}

// parseSigInput returns the single sig1 member of a Signature-Input value.
func parseSigInput(v string) (sfMember, *Error) {
	dict, err := parseDictionary(v)
	if err != nil {
		return sfMember{}, malformed("Signature-Input does not parse")
	}
	if len(dict) != 1 || dict[0].key != label {
		return sfMember{}, malformed("Signature-Input must have exactly one label, sig1")
	}
	if !dict[0].inner {
		return sfMember{}, malformed("Signature-Input sig1 is not an inner list")
	}
	return dict[0], nil
}

func componentsEqual(got, want []sfItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !sfItemEq(got[i], want[i]) {
			return false
		}
	}
	return true
}

func paramKeys(params []sfParam) string {
	keys := make([]string, len(params))
	for i, p := range params {
		keys[i] = p.key
	}
	return strings.Join(keys, ";")
}

// requestParamsOf checks the parameter list of a request's sig1 against the profile.
func requestParamsOf(params []sfParam, offline bool) (RequestParams, *Error) {
	want := "created;nonce;keyid;alg"
	if offline {
		want += ";tag"
	}
	if got := paramKeys(params); got != want {
		switch {
		case !offline && got == want+";tag":
			return RequestParams{}, malformed("the offline tag is not accepted on an online request")
		case offline && got+";tag" == want:
			return RequestParams{}, malformed("an offline request needs the tag parameter")
		}
		return RequestParams{}, malformed("signature parameters must be exactly %s, in this order", strings.ReplaceAll(want, ";", ", "))
	}
	if params[0].val.kind != sfInteger {
		return RequestParams{}, malformed("created is not an integer")
	}
	for _, p := range params[1:] {
		if p.val.kind != sfString {
			return RequestParams{}, malformed("%s is not a string", p.key)
		}
	}
	rp := RequestParams{
		Created: params[0].val.i,
		Nonce:   params[1].val.s,
		KeyID:   params[2].val.s,
		Alg:     Alg(params[3].val.s),
	}
	if !knownAlg(rp.Alg) {
		return RequestParams{}, malformed("unknown alg")
	}
	if !ValidNonce(rp.Nonce) {
		return RequestParams{}, malformed("nonce must be 22 to 64 characters of A-Z, a-z, 0-9, _ and -")
	}
	if offline {
		if rp.Tag = params[4].val.s; rp.Tag != OfflineTag {
			return RequestParams{}, malformed("tag must be %q", OfflineTag)
		}
	}
	return rp, nil
}

// ParseRequest runs step 1 of PROTOCOL.md section 2 on a device request's headers: a missing
// Content-Digest, Signature-Input or Signature is SIGNATURE_REQUIRED; anything else that does not
// fit the profile is MALFORMED_SIGNATURE. The error is always an *Error. path is the path the
// device sent (a query, if any, is dropped). offline selects the air-gapped profile (section 8),
// which requires the tag parameter that online requests must not carry.
//
// On success the returned request holds the signature base; the caller goes on with DigestMatches
// (step 2), its own checks, and Verify (step 6).
func ParseRequest(method, path string, h http.Header, offline bool) (*ParsedRequest, error) {
	cd := fieldValue(h, HeaderContentDigest)
	si := fieldValue(h, HeaderSignatureInput)
	sg := fieldValue(h, HeaderSignature)
	for _, f := range []struct{ name, v string }{{HeaderContentDigest, cd}, {HeaderSignatureInput, si}, {HeaderSignature, sg}} {
		if f.v == "" {
			return nil, &Error{Code: CodeSignatureRequired, Detail: f.name + " header is missing"}
		}
	}
	if len(h.Values("Content-Encoding")) > 0 {
		return nil, malformed("Content-Encoding is not allowed on device requests")
	}
	digest, perr := parseDigest(cd)
	if perr != nil {
		return nil, perr
	}
	m, perr := parseSigInput(si)
	if perr != nil {
		return nil, perr
	}
	if !componentsEqual(m.list, requestComponents) {
		return nil, malformed(`covered components must be exactly ("@method" "@path" "content-digest")`)
	}
	params, perr := requestParamsOf(m.params, offline)
	if perr != nil {
		return nil, perr
	}
	sig, perr := parseSignature(sg)
	if perr != nil {
		return nil, perr
	}
	// The params line is the canonical serialization of what was parsed, which is what the
	// signer serialized (RFC 9421 section 2.3).
	sigParams, err := serializeInnerList(m.list, m.params)
	if err != nil {
		return nil, malformed("signature parameters cannot be serialized")
	}
	base, err := buildBase([]baseLine{
		{requestComponents[0], method},
		{requestComponents[1], pathOnly(path)},
		{requestComponents[2], cd},
	}, sigParams)
	if err != nil {
		return nil, malformed("request path cannot be signed")
	}
	return &ParsedRequest{Params: params, Digest: digest, Signature: sig, Base: base}, nil
}

// NonceOf returns the nonce of a Signature-Input value when it parses as a single sig1 inner list
// with exactly one nonce parameter of valid syntax, and "" otherwise. The server uses it to echo
// the nonce in a response even when later checks of the request failed.
func NonceOf(signatureInput string) string {
	dict, err := parseDictionary(signatureInput)
	if err != nil || len(dict) != 1 || dict[0].key != label || !dict[0].inner {
		return ""
	}
	nonce := ""
	n := 0
	for _, p := range dict[0].params {
		if p.key == "nonce" {
			n++
			if p.val.kind == sfString {
				nonce = p.val.s
			}
		}
	}
	if n != 1 || !ValidNonce(nonce) {
		return ""
	}
	return nonce
}

// DigestMatches reports whether the Content-Digest of the request matches body (step 2).
func (p *ParsedRequest) DigestMatches(body []byte) bool {
	sum := sha256.Sum256(body)
	return len(p.Digest) == len(sum) && subtle.ConstantTimeCompare(p.Digest, sum[:]) == 1
}

// Verify checks the signature against pub (step 6). It fails when the request's alg does not fit
// pub (a known alg on the wrong key) or the signature does not verify. ECDSA signatures are the
// 64-byte r||s form.
func (p *ParsedRequest) Verify(pub crypto.PublicKey) error {
	alg, err := AlgFor(pub)
	if err != nil {
		return err
	}
	if alg != p.Params.Alg {
		return fmt.Errorf("httpsig: alg %q does not fit a key of alg %q", p.Params.Alg, alg)
	}
	return verifyBase(pub, alg, []byte(p.Base), p.Signature)
}
