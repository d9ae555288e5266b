package httpsig

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Reasons VerifyResponse fails; the returned error wraps one of them.
var (
	ErrResponseUnsigned  = errors.New("httpsig: response signature headers missing")
	ErrResponseMalformed = errors.New("httpsig: response signature headers malformed")
	ErrResponseDigest    = errors.New("httpsig: response Content-Digest does not match the body")
	ErrUnknownServerKey  = errors.New("httpsig: response signed by an untrusted key")
	ErrResponseSignature = errors.New("httpsig: response signature does not verify")
	ErrNonceMismatch     = errors.New("httpsig: response does not echo the request's nonce")
)

// ResponseInfo are the signature parameters of a verified response.
type ResponseInfo struct {
	Created int64
	Nonce   string
	KeyID   string
}

var responseComponents = []sfItem{
	{bare: sfStr("@status")},
	{bare: sfStr("content-digest")},
	{bare: sfStr("@path"), params: []sfParam{{key: "req", val: sfTrue()}}},
}

func responseSFParams(created int64, nonce, kid string) []sfParam {
	params := []sfParam{{key: "created", val: sfInt(created)}}
	if nonce != "" {
		params = append(params, sfParam{key: "nonce", val: sfStr(nonce)})
	}
	return append(params,
		sfParam{key: "keyid", val: sfStr(kid)},
		sfParam{key: "alg", val: sfStr(string(AlgEd25519))})
}

func responseBase(status int, requestPath, digest, sigParams string) (string, error) {
	return buildBase([]baseLine{
		{responseComponents[0], strconv.Itoa(status)},
		{responseComponents[1], digest},
		{responseComponents[2], pathOnly(requestPath)},
	}, sigParams)
}

// SignResponse signs an answer to a device request (PROTOCOL.md section 3) and returns its
// Content-Digest, Signature-Input and Signature headers. requestPath is the path of the request
// being answered (its query is dropped); nonce is the request's nonce, "" when it had none that
// parsed (the parameter is then left out).
func SignResponse(status int, requestPath string, body []byte, created int64, nonce, kid string, key ed25519.PrivateKey) (http.Header, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("httpsig: response key is not an Ed25519 private key")
	}
	if status < 100 || status > 999 {
		return nil, fmt.Errorf("httpsig: status %d is not a three-digit code", status)
	}
	digest := ContentDigest(body)
	sigParams, err := serializeInnerList(responseComponents, responseSFParams(created, nonce, kid))
	if err != nil {
		return nil, errors.New("httpsig: response signature parameters cannot be serialized")
	}
	base, err := responseBase(status, requestPath, digest, sigParams)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key, []byte(base))
	h := http.Header{}
	h.Set(HeaderContentDigest, digest)
	h.Set(HeaderSignatureInput, label+"="+sigParams)
	h.Set(HeaderSignature, label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return h, nil
}

// VerifyResponse verifies a signed answer: Content-Digest against body, the exact component list
// and parameter order of Signature-Input, the Ed25519 signature with the key keyFor(kid) returns
// (nil means untrusted), that the signature covers requestPath, and that the echoed nonce equals
// wantNonce ("" when the request sent none). It does not judge created against a clock; the caller
// does, with the returned ResponseInfo.
func VerifyResponse(status int, requestPath string, body []byte, h http.Header, wantNonce string, keyFor func(kid string) ed25519.PublicKey) (ResponseInfo, error) {
	cd := fieldValue(h, HeaderContentDigest)
	si := fieldValue(h, HeaderSignatureInput)
	sg := fieldValue(h, HeaderSignature)
	for _, f := range []struct{ name, v string }{{HeaderContentDigest, cd}, {HeaderSignatureInput, si}, {HeaderSignature, sg}} {
		if f.v == "" {
			return ResponseInfo{}, fmt.Errorf("%w: %s", ErrResponseUnsigned, f.name)
		}
	}
	digest, perr := parseDigest(cd)
	if perr != nil {
		return ResponseInfo{}, fmt.Errorf("%w: %s", ErrResponseMalformed, perr.Detail)
	}
	sum := sha256.Sum256(body)
	if len(digest) != len(sum) || subtle.ConstantTimeCompare(digest, sum[:]) != 1 {
		return ResponseInfo{}, ErrResponseDigest
	}
	m, perr := parseSigInput(si)
	if perr != nil {
		return ResponseInfo{}, fmt.Errorf("%w: %s", ErrResponseMalformed, perr.Detail)
	}
	if !componentsEqual(m.list, responseComponents) {
		return ResponseInfo{}, fmt.Errorf("%w: covered components", ErrResponseMalformed)
	}
	info, err := responseParamsOf(m.params)
	if err != nil {
		return ResponseInfo{}, err
	}
	sig, perr := parseSignature(sg)
	if perr != nil {
		return ResponseInfo{}, fmt.Errorf("%w: %s", ErrResponseMalformed, perr.Detail)
	}
	var pub ed25519.PublicKey
	if keyFor != nil {
		pub = keyFor(info.KeyID)
	}
	if len(pub) != ed25519.PublicKeySize {
		return ResponseInfo{}, fmt.Errorf("%w: %q", ErrUnknownServerKey, info.KeyID)
	}
	sigParams, err := serializeInnerList(m.list, m.params)
	if err != nil {
		return ResponseInfo{}, fmt.Errorf("%w: parameters", ErrResponseMalformed)
	}
	base, err := responseBase(status, requestPath, cd, sigParams)
	if err != nil {
		return ResponseInfo{}, fmt.Errorf("%w: %v", ErrResponseMalformed, err)
	}
	// The request path is not sent back, only signed: a response to another path fails here.
	if !ed25519.Verify(pub, []byte(base), sig) {
		return ResponseInfo{}, ErrResponseSignature
	}
	if info.Nonce != wantNonce {
		return ResponseInfo{}, ErrNonceMismatch
	}
	return info, nil
}

func responseParamsOf(params []sfParam) (ResponseInfo, error) {
	keys := paramKeys(params)
	if keys != "created;nonce;keyid;alg" && keys != "created;keyid;alg" {
		return ResponseInfo{}, fmt.Errorf("%w: parameters must be created, nonce, keyid, alg", ErrResponseMalformed)
	}
	if params[0].val.kind != sfInteger {
		return ResponseInfo{}, fmt.Errorf("%w: created is not an integer", ErrResponseMalformed)
	}
	for _, p := range params[1:] {
		if p.val.kind != sfString {
			return ResponseInfo{}, fmt.Errorf("%w: %s is not a string", ErrResponseMalformed, p.key)
		}
	}
	info := ResponseInfo{Created: params[0].val.i}
	rest := params[1:]
	if len(rest) == 3 {
		info.Nonce = rest[0].val.s
		rest = rest[1:]
	}
	info.KeyID = rest[0].val.s
	if rest[1].val.s != string(AlgEd25519) {
		return ResponseInfo{}, fmt.Errorf("%w: alg is not ed25519", ErrResponseMalformed)
	}
	return info, nil
}
