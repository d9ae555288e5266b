package httpapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

// Codes of PROTOCOL.md section 2 that the adapter itself answers. The key-resolution codes of step 5
// come from ports.Licensing (license.Code*).
const (
	codeSignatureRequired  = "SIGNATURE_REQUIRED"
	codeMalformedSignature = "MALFORMED_SIGNATURE"
	codeDigestMismatch     = "DIGEST_MISMATCH"
	codeStaleRequest       = "STALE_REQUEST"
	codeInvalidSignature   = "INVALID_SIGNATURE"
	codeReplayedNonce      = "REPLAYED_NONCE"
	codeMTLSRequired       = "MTLS_REQUIRED"
	codeBodyTooLarge       = "BODY_TOO_LARGE"
)

const (
	// maxClockSkew is how far a request's created may be from our clock (step 3).
	maxClockSkew     = 300
	headerClientCert = "X-Client-Cert"

	// Rate-limit keys: the limiter's backend may be shared with other limits, hence the prefix.
	limitKeyAddr       = "device:addr:"
	limitKeyLicense    = "device:license:"
	limitKeyActivation = "device:activation:"
	headerProxyToken   = "X-Proxy-Token"
)

// deviceRequest is a device request that passed the checks of section 2.
type deviceRequest struct {
	op    ports.DeviceOp
	addr  string
	keyID string
	nonce string
	// fields is the body as a JSON object ({} for an empty body).
	fields map[string]json.RawMessage
	id     ports.DeviceIdentity
	// mtls is true when a client certificate proved the key on this request.
	mtls bool
}

// trustLevel is the trust_level of PROTOCOL.md section 5 for this request's 2xx answer.
func (r *deviceRequest) trustLevel() int {
	switch r.op {
	case ports.OpValidate, ports.OpHeartbeat, ports.OpDeactivate, ports.OpRenew:
		if r.mtls {
			return 4
		}
	}
	return 3
}

// str returns the optional string field name; absent and null read as "". Another type is a
// VALIDATION_FAILED naming the field.
func (r *deviceRequest) str(name string) (string, error) {
	raw, ok := r.fields[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", errs.Validation(fmt.Sprintf("%s must be a string", name))
	}
	return s, nil
}

// requiredFields are the body fields step 4 demands as JSON strings, per endpoint: those needed to
// find the key. The other endpoints' bodies are checked after step 7.
var requiredFields = map[ports.DeviceOp][]string{
	ports.OpActivate:  {"license_key", "device_fingerprint", "platform", "plugin_version", "csr"},
	ports.OpBootstrap: {"claim_id"},
	ports.OpStatus:    {"license_key"},
}

// device wraps a device endpoint: the checks of PROTOCOL.md section 2 in their order, then h, then
// the response signature.
func (a *api) device(op ports.DeviceOp, h func(c *fiber.Ctx, r *deviceRequest) error) fiber.Handler {
	return a.signed(func(c *fiber.Ctx) error {
		r, err := a.checkDevice(c, op)
		if err != nil {
			a.metrics.deviceRefused.WithLabelValues(errs.CodeOf(err)).Inc()
			return err
		}
		return h(c, r)
	})
}

// signed signs a successful answer; errors are rendered and signed by errorHandler.
func (a *api) signed(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := h(c); err != nil {
			return err
		}
		a.signResponse(c)
		return nil
	}
}

// signedInput is what the checks of section 2 read: the raw body, the signature headers and the
// path the device signed. An online request takes them from the HTTP request; an air-gapped one
// (section 8, offline.go) from the uploaded request file.
type signedInput struct {
	body   []byte
	header http.Header
	path   string
	// offline selects the air-gapped profile: the tag parameter is required (online it is refused
	// at step 1), created may be up to offlineMaxAge old, and the nonce is kept offlineReplayTTL.
	offline bool
	// beforeKey, when set, runs after step 4 and before step 5, that is before the replay store or
	// anything else changes: the offline upload checks there that the license is the uploader's.
	beforeKey func(r *deviceRequest) error
}

// checkDevice runs the checks of section 2 in the protocol's order. It changes nothing but the
// replay store (step 7, once the signature verified) and the rate-limit counters.
func (a *api) checkDevice(c *fiber.Ctx, op ports.DeviceOp) (*deviceRequest, error) {
	// Raw bytes: Fiber's c.Body() would decode a Content-Encoding.
	in := signedInput{body: c.Request().Body(), header: make(http.Header, 4), path: a.sigPath(c)}
	for _, name := range []string{httpsig.HeaderContentDigest, httpsig.HeaderSignatureInput, httpsig.HeaderSignature, fiber.HeaderContentEncoding} {
		for _, v := range c.Request().Header.PeekAll(name) {
			in.header.Add(name, string(v))
		}
	}
	return a.checkSigned(c, op, in)
}

// checkSigned is checkDevice on an input that need not come from c's own request (c still gives
// the context, the client address and, for the certificate-bound endpoints, the TLS state).
func (a *api) checkSigned(c *fiber.Ctx, op ports.DeviceOp, in signedInput) (*deviceRequest, error) {
	ctx := c.UserContext()
	r := &deviceRequest{op: op, addr: a.clientAddr(c)}

	// Rate limit per client address, before anything else.
	if err := a.limit(ctx, limitKeyAddr+r.addr, a.cfg.RateLimits.PerAddress); err != nil {
		return nil, err
	}
	body := in.body
	if len(body) > httpsig.MaxBodyBytes {
		return nil, errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", httpsig.MaxBodyBytes))
	}

	// Step 1: the signature headers parse (the offline tag only on the offline path).
	h := in.header
	parsed, err := httpsig.ParseRequest(fiber.MethodPost, in.path, h, in.offline)
	if err != nil {
		return nil, sigError(err)
	}
	if len(h.Values(fiber.HeaderContentEncoding)) > 0 { // ParseRequest refuses it too; kept as a guard
		return nil, errs.E(errs.Invalid, codeMalformedSignature, "Content-Encoding is not allowed on device requests")
	}
	r.keyID, r.nonce = parsed.Params.KeyID, parsed.Params.Nonce

	// Step 2: the digest covers the exact body bytes.
	if !parsed.DigestMatches(body) {
		return nil, errs.E(errs.Invalid, codeDigestMismatch, "Content-Digest does not match the body")
	}

	// Step 3: created within 300 s of our clock, either way; an offline request may be up to
	// 7 days old (it travels by hand), never more than 300 s ahead.
	maxAge, replayTTL := int64(maxClockSkew), a.cfg.ReplayTTL
	if in.offline {
		maxAge, replayTTL = offlineMaxAge, offlineReplayTTL
	}
	if age := a.deps.Clock.Now().Unix() - parsed.Params.Created; age > maxAge || age < -maxClockSkew {
		if in.offline {
			return nil, errs.E(errs.Unauthenticated, codeStaleRequest, "an offline request's created must lie within the last 7 days (and at most 300 s ahead of the server's clock)")
		}
		return nil, errs.E(errs.Unauthenticated, codeStaleRequest, "created is more than 300 s from the server's clock")
	}

	// Step 4, for the endpoints that need the body to find the key: a JSON object with those
	// fields as strings. The other endpoints' bodies are read after step 7.
	required, early := requiredFields[op]
	if early {
		if r.fields, err = decodeObject(body); err != nil {
			return nil, err
		}
		for _, name := range required {
			raw, ok := r.fields[name]
			var s string
			if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
				return nil, errs.Validation(fmt.Sprintf("%s is required and must be a string", name))
			}
		}
	}

	if in.beforeKey != nil {
		if err := in.beforeKey(r); err != nil {
			return nil, err
		}
	}

	// Step 5: find the key.
	verify := true
	switch op {
	case ports.OpActivate:
		csr, _ := r.str("csr")
		r.id, err = a.deps.Licensing.ResolveCSR(ctx, csr, r.keyID)
	case ports.OpBootstrap:
		claimID, _ := r.str("claim_id")
		r.id, err = a.deps.Licensing.ResolveClaim(ctx, claimID, r.keyID)
	case ports.OpStatus:
		r.id, verify, err = a.deps.Licensing.ResolveStatusKey(ctx, r.keyID)
	default:
		err = a.resolveCertificateBound(c, r)
	}
	if err != nil {
		return nil, err
	}

	if verify {
		// Step 6: the signature verifies with the key found.
		if r.id.PublicKey == nil {
			return nil, errs.Internalf("httpapi: key resolution for %s returned no public key", op)
		}
		if err := parsed.Verify(r.id.PublicKey); err != nil {
			return nil, errs.E(errs.Unauthenticated, codeInvalidSignature, "the request signature does not verify")
		}
		// Step 7: the nonce is fresh; a store we cannot read fails closed.
		fresh, err := a.deps.Nonces.Reserve(ctx, r.keyID, r.nonce, replayTTL)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the replay store is unavailable", err)
		}
		if !fresh {
			return nil, errs.E(errs.Conflict, codeReplayedNonce, "this nonce was already used with this key")
		}
	}

	// The endpoint's own rules: its body is a JSON object.
	if !early {
		if r.fields, err = decodeObject(body); err != nil {
			return nil, err
		}
	}

	// The endpoint's own rate limits.
	if err := a.subjectLimits(c, r); err != nil {
		return nil, err
	}
	return r, nil
}

// resolveCertificateBound is step 5 for validate, heartbeat, deactivate and renew.
func (a *api) resolveCertificateBound(c *fiber.Ctx, r *deviceRequest) error {
	ctx := c.UserContext()
	cert, err := a.clientCertificate(c)
	if err != nil {
		return err
	}
	if cert != nil {
		serial := authority.CanonicalSerial(cert.SerialNumber)
		id, err := a.deps.Licensing.ResolveCertificate(ctx, serial, r.keyID, r.op)
		if err != nil {
			return err
		}
		id.MTLS, id.CertificateSerial = true, serial
		r.id, r.mtls = id, true
		return nil
	}
	if a.cfg.RequireMTLS {
		return errs.E(errs.Forbidden, codeMTLSRequired, "this endpoint requires a client certificate")
	}
	id, err := a.deps.Licensing.ResolveKey(ctx, r.keyID, r.op)
	if err != nil {
		return err
	}
	id.MTLS = false
	r.id = id
	return nil
}

// subjectLimits applies the per-license and per-activation limits, after every check passed. A
// license key that is not found is not limited here (the use case answers LICENSE_NOT_FOUND; guessing
// keys is limited per address).
func (a *api) subjectLimits(c *fiber.Ctx, r *deviceRequest) error {
	if !a.cfg.RateLimits.Enabled {
		return nil
	}
	ctx := c.UserContext()
	licenseID := r.id.LicenseID
	if licenseID == "" && (r.op == ports.OpActivate || r.op == ports.OpStatus) {
		key, _ := r.str("license_key")
		id, err := a.deps.Licensing.LicenseIDForKey(ctx, key)
		switch {
		case err == nil:
			licenseID = id
		case errs.KindOf(err) == errs.NotFound:
		default:
			return err
		}
	}
	if licenseID != "" {
		if err := a.limit(ctx, limitKeyLicense+licenseID, a.cfg.RateLimits.PerLicense); err != nil {
			return err
		}
	}
	subject := r.id.ActivationID
	if subject == "" {
		subject = r.id.ClaimID
	}
	if subject != "" {
		if err := a.limit(ctx, limitKeyActivation+subject, a.cfg.RateLimits.PerActivation); err != nil {
			return err
		}
	}
	return nil
}

// limit counts one event for key. A failing limiter lets the request through (and is logged): the
// rate limits protect capacity, while the checks that protect security (replay) fail closed.
func (a *api) limit(ctx context.Context, key string, l ports.Limit) error {
	if !a.cfg.RateLimits.Enabled || l.Max <= 0 {
		return nil
	}
	ok, retryAfter, err := a.deps.Limiter.Allow(ctx, key, l)
	if err != nil {
		a.log.LogAttrs(ctx, slog.LevelWarn, "rate limiter failed; allowing", slog.String("error", err.Error()))
		return nil
	}
	if !ok {
		return &errs.Error{Kind: errs.RateLimited, Code: errs.CodeRateLimited, Message: "too many requests", RetryAfter: retryAfter}
	}
	return nil
}

// sigError maps a step-1 parse failure to its protocol code.
func sigError(err error) error {
	var se *httpsig.Error
	if errors.As(err, &se) {
		if se.Code == httpsig.CodeSignatureRequired {
			return errs.E(errs.Unauthenticated, codeSignatureRequired, se.Detail)
		}
		return errs.E(errs.Invalid, codeMalformedSignature, se.Detail)
	}
	return errs.E(errs.Invalid, codeMalformedSignature, "the signature headers do not parse")
}

// decodeObject reads a JSON object; an empty body reads as {}; anything else is VALIDATION_FAILED.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if trimmed[0] != '{' {
		return nil, errs.Validation("the body must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, errs.Validation("the body must be a JSON object")
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return m, nil
}

// sigPath is the @path the device signed: the public prefix a proxy stripped, then the path as sent.
func (a *api) sigPath(c *fiber.Ctx) string {
	return strings.TrimSuffix(a.cfg.PublicPathPrefix, "/") + string(c.Request().URI().PathOriginal())
}

// clientCertificate returns the client certificate of this request, or nil when there is none.
// On the TLS listener it is the peer certificate, already verified by the handshake against the
// client CA pool. Behind a proxy, X-Client-Cert counts only from a trusted proxy address with the
// proxy token, and is verified here (chain, dates, client-auth usage): invalid → CERTIFICATE_UNKNOWN.
func (a *api) clientCertificate(c *fiber.Ctx) (*x509.Certificate, error) {
	if st := c.Context().TLSConnectionState(); st != nil && len(st.PeerCertificates) > 0 {
		return st.PeerCertificates[0], nil
	}
	if a.cfg.ProxyToken == "" {
		return nil, nil
	}
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	if !a.trustedProxy(peer.Unmap()) {
		return nil, nil
	}
	token := c.Request().Header.Peek(headerProxyToken)
	if subtle.ConstantTimeCompare(token, []byte(a.cfg.ProxyToken)) != 1 {
		return nil, nil
	}
	raw := string(c.Request().Header.Peek(headerClientCert))
	if raw == "" {
		return nil, nil
	}
	unknown := errs.E(errs.Forbidden, license.CodeCertificateUnknown, "the client certificate is not valid")
	block := decodeCertHeader(raw)
	if block == nil {
		return nil, unknown
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, unknown
	}
	if err := a.verifyClientCertificate(c.UserContext(), cert); err != nil {
		if errs.KindOf(err) == errs.Unavailable {
			return nil, err
		}
		return nil, unknown
	}
	return cert, nil
}

// decodeCertHeader reads the URL-encoded PEM of X-Client-Cert. nginx writes spaces as %20 and leaves
// '+' alone (path escaping); other proxies use query escaping ('+' for a space, %2B for '+'). Path
// unescaping is tried first; the PEM type line fails to parse if the proxy used query escaping.
func decodeCertHeader(raw string) *pem.Block {
	for _, unescape := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
		decoded, err := unescape(raw)
		if err != nil {
			continue
		}
		if block, _ := pem.Decode([]byte(decoded)); block != nil && block.Type == "CERTIFICATE" {
			return block
		}
	}
	return nil
}

func (a *api) verifyClientCertificate(ctx context.Context, cert *x509.Certificate) error {
	return a.deps.Issuer.VerifyClientCertificate(ctx, cert, a.deps.Clock.Now())
}

// isDevicePath reports whether answers to path are signed: every path under /v1/ but the admin,
// customer and webhook APIs, so that a device gets a signed 404 or 405 too.
func isDevicePath(path string) bool {
	if !strings.HasPrefix(path, "/v1/") {
		return false
	}
	for _, p := range []string{"/v1/admin/", "/v1/me/", "/v1/webhooks/"} {
		if strings.HasPrefix(path, p) || path == strings.TrimSuffix(p, "/") {
			return false
		}
	}
	return true
}

// signResponse signs the answer in c as PROTOCOL.md section 3 says, binding it to the request's
// nonce (when it had a valid one) and path. It replaces any signature headers already set.
func (a *api) signResponse(c *fiber.Ctx) {
	kid, signer := a.deps.Keys.Active()
	priv, ok := signer.(ed25519.PrivateKey)
	if !ok {
		err := fmt.Errorf("httpapi: active server key %q is a %T, not Ed25519", kid, signer)
		a.reportServerError(c, err)
		return
	}
	h, err := httpsig.SignResponse(c.Response().StatusCode(), a.sigPath(c), c.Response().Body(),
		a.deps.Clock.Now().Unix(), responseNonce(c), kid, priv)
	if err != nil {
		a.reportServerError(c, fmt.Errorf("httpapi: signing the response: %w", err))
		return
	}
	for name, values := range h {
		c.Response().Header.Del(name)
		for _, v := range values {
			c.Response().Header.Add(name, v)
		}
	}
}

// responseNonce is the nonce the answer echoes: the query nonce of GET /v1/keys, else the nonce of
// the request's Signature-Input; "" when there is no valid one.
func responseNonce(c *fiber.Ctx) string {
	var n string
	if c.Method() == fiber.MethodGet {
		n = c.Query("nonce")
	} else {
		n = httpsig.NonceOf(c.Get(httpsig.HeaderSignatureInput))
	}
	if !httpsig.ValidNonce(n) {
		return ""
	}
	return n
}

// reportServerError logs err and hands it to OnServerError, without changing the answer.
func (a *api) reportServerError(c *fiber.Ctx, err error) {
	a.log.LogAttrs(c.UserContext(), slog.LevelError, "server error",
		slog.String("request_id", requestID(c)), slog.String("error", err.Error()))
	if a.deps.OnServerError != nil {
		a.deps.OnServerError(c.UserContext(), err)
	}
}
