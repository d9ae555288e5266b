package httpapi

// Air-gapped activation (PROTOCOL.md section 8): a device without network writes its signed
// activate request to a file, the owner uploads it here, and takes the signed answer file back to
// the device.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
)

const (
	// offlineMaxAge is how old (seconds) an offline request's created may be when it is uploaded.
	offlineMaxAge = 7 * 24 * 60 * 60
	// offlineReplayTTL is how long an offline request's nonce is remembered: its whole window of
	// acceptance (7 days back, 300 s ahead), as the online 600 s cover ±300 s.
	offlineReplayTTL = offlineMaxAge*time.Second + maxClockSkew*time.Second
	// offlineVersion is the samplero_offline value of both files.
	offlineVersion = 1
	// offlineActivatePath is the only request path accepted offline, signed as the device wrote
	// it (no public prefix: the file does not travel through a proxy).
	offlineActivatePath = "/v1/activate"
	// offlineAnswerName is the file name the answer is served under.
	offlineAnswerName = "samplero-activation-answer.json"
	// offlineMaxFileBytes bounds the uploaded file: a 64 KiB body in base64, its headers and the
	// JSON around them fit with room to spare.
	offlineMaxFileBytes = 128 << 10
)

// Codes of the offline upload. They answer the upload itself (not the device) and are not signed.
const (
	// codeOfflineFileInvalid: the upload is not a request file of version 1 (not a JSON object,
	// another samplero_offline, a field missing or of the wrong type, a body that is not standard
	// base64, a header other than the three signature headers).
	codeOfflineFileInvalid = "OFFLINE_FILE_INVALID"
	// codeOfflinePathNotAllowed: the file's path is not /v1/activate.
	codeOfflinePathNotAllowed = "OFFLINE_PATH_NOT_ALLOWED"
)

// offlineRequestFile is the request file written by the device. Its fields are raw so that a
// wrong type is reported as such instead of being zeroed.
type offlineRequestFile struct {
	Version json.RawMessage `json:"samplero_offline"`
	Path    json.RawMessage `json:"path"`
	Headers json.RawMessage `json:"headers"`
	Body    json.RawMessage `json:"body"`
}

// offlineAnswerFile is the answer file: the status, signature headers and body the online answer
// to the same request would have carried.
type offlineAnswerFile struct {
	Version int               `json:"samplero_offline"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// offlineHeaders are the only headers a request file may carry, in canonical form.
var offlineHeaders = map[string]bool{
	httpsig.HeaderContentDigest:  true,
	httpsig.HeaderSignatureInput: true,
	httpsig.HeaderSignature:      true,
}

// parseOfflineRequest reads the upload into the input of the section 2 checks. A missing signature
// header is left to step 1 (SIGNATURE_REQUIRED in the answer file), as online.
func parseOfflineRequest(upload []byte) (signedInput, error) {
	invalid := func(detail string) (signedInput, error) {
		return signedInput{}, errs.E(errs.Invalid, codeOfflineFileInvalid, detail)
	}
	if len(upload) > offlineMaxFileBytes {
		return signedInput{}, errs.E(errs.TooLarge, codeBodyTooLarge, fmt.Sprintf("a request file has at most %d bytes", offlineMaxFileBytes))
	}
	trimmed := bytes.TrimSpace(upload)
	var f offlineRequestFile
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &f) != nil {
		return invalid("the upload is not a Samplero offline request file (a JSON object)")
	}
	if !bytes.Equal(f.Version, []byte("1")) { // exactly the number 1: not "1", 1.0 or true
		return invalid("samplero_offline must be 1")
	}
	var path string
	if f.Path == nil || json.Unmarshal(f.Path, &path) != nil {
		return invalid("path is required and must be a string")
	}
	if path != offlineActivatePath {
		return signedInput{}, errs.E(errs.Invalid, codeOfflinePathNotAllowed, "only /v1/activate is accepted as an offline request")
	}
	var headers map[string]json.RawMessage
	if f.Headers == nil || json.Unmarshal(f.Headers, &headers) != nil || headers == nil {
		return invalid("headers is required and must be an object")
	}
	h := make(http.Header, len(headers))
	for name, raw := range headers {
		canonical := http.CanonicalHeaderKey(name)
		var v string
		if !offlineHeaders[canonical] || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
			return invalid("headers may hold only Content-Digest, Signature-Input and Signature, as strings")
		}
		if _, dup := h[canonical]; dup { // the same header twice under two spellings
			return invalid("headers names " + canonical + " twice")
		}
		h.Set(canonical, v)
	}
	var encoded string
	if f.Body == nil || json.Unmarshal(f.Body, &encoded) != nil {
		return invalid("body is required and must be a string")
	}
	body, err := base64.StdEncoding.Strict().DecodeString(encoded)
	if err != nil {
		return invalid("body must be standard base64 with padding")
	}
	return signedInput{body: body, header: h, path: offlineActivatePath, offline: true}, nil
}

// offlineUpload returns the uploaded request file: the body itself, or, for a multipart/form-data
// upload (a plain HTML form in the portal, which then gets the answer file as a download), its
// part named "file".
func offlineUpload(c *fiber.Ctx) ([]byte, error) {
	mediaType, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mediaType != fiber.MIMEMultipartForm {
		return c.Body(), nil
	}
	invalid := errs.E(errs.Invalid, codeOfflineFileInvalid, "the form must carry the request file as its part named file")
	mr := multipart.NewReader(bytes.NewReader(c.Body()), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil { // io.EOF included: no such part
			return nil, invalid
		}
		if part.FormName() != "file" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(part, offlineMaxFileBytes+1))
		if err != nil {
			return nil, invalid
		}
		return b, nil
	}
}

// offlineActivation: POST /v1/me/offline-activations. The signed-in customer uploads a request file
// (the JSON body, or the file part of a form) and gets the answer file back.
//
// Answered directly (not in a file, not signed): a missing session, an upload that is no request
// file or names another path, a license that is not the customer's (404 LICENSE_NOT_FOUND, the same
// for a missing one), rate limits and server failures (retrying the upload is the remedy for
// those). Everything else, the checks of section 2 and the activate use case alike, is the device's
// answer: 200 with the answer file carrying the signed status, headers and body, problems
// included.
func (a *api) offlineActivation(c *fiber.Ctx) error {
	owner, err := a.offlineOwner(c)
	if err != nil {
		return err
	}
	upload, err := offlineUpload(c)
	if err != nil {
		return err
	}
	in, err := parseOfflineRequest(upload)
	if err != nil {
		return err
	}
	var ownerErr error
	in.beforeKey = func(r *deviceRequest) error {
		// Step 4 passed, so license_key is a string. Another owner's license answers as a missing
		// one, so that keys cannot be probed through uploads.
		key, _ := r.str("license_key")
		if _, err := a.deps.Licensing.OwnerLicense(c.UserContext(), owner, key); err != nil {
			ownerErr = err
			return err
		}
		return nil
	}
	r, err := a.checkSigned(c, ports.OpActivate, in)
	if err != nil {
		a.metrics.deviceRefused.WithLabelValues(errs.CodeOf(err)).Inc()
	} else {
		err = a.activate(c, r) // renders the grant or pending claim into c, as online
	}
	if err != nil {
		if ownerErr != nil || offlineDirect(err) {
			return err
		}
		writeProblem(c, err)
	}
	return a.offlineAnswer(c, httpsig.NonceOf(in.header.Get(httpsig.HeaderSignatureInput)))
}

// offlineDirect reports whether err answers the upload rather than the device: a rate limit (the
// uploader retries later) or a failure of ours (the uploader retries; the file would tell the
// device nothing it can act on).
func offlineDirect(err error) bool {
	switch errs.KindOf(err) {
	case errs.RateLimited, errs.Unavailable, errs.Internal:
		return true
	}
	return false
}

// offlineAnswer replaces the device answer rendered in c by the answer file. The inner answer is
// signed exactly as the online one would be (section 3): over its status, its body and the path
// /v1/activate, echoing the request's nonce when it had a valid one.
func (a *api) offlineAnswer(c *fiber.Ctx, nonce string) error {
	if !httpsig.ValidNonce(nonce) {
		nonce = ""
	}
	status := c.Response().StatusCode()
	body := bytes.Clone(c.Response().Body())
	kid, signer := a.deps.Keys.Active()
	priv, ok := signer.(ed25519.PrivateKey)
	if !ok {
		return errs.Internalf("httpapi: active server key %q is a %T, not Ed25519", kid, signer)
	}
	h, err := httpsig.SignResponse(status, offlineActivatePath, body, a.deps.Clock.Now().Unix(), nonce, kid, priv)
	if err != nil {
		return errs.Internalf("httpapi: signing the offline answer: %w", err)
	}
	file := offlineAnswerFile{Version: offlineVersion, Status: status, Headers: map[string]string{}, Body: base64.StdEncoding.EncodeToString(body)}
	for name := range h {
		file.Headers[name] = h.Get(name)
	}
	c.Response().Header.Del(fiber.HeaderRetryAfter)
	if err := render(c, fiber.StatusOK, file); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+offlineAnswerName+`"`)
	// The answer holds a lease and a certificate for one device: no cache keeps a copy.
	c.Set(fiber.HeaderCacheControl, "no-store")
	return nil
}

// offlineOwner is the verified e-mail of the signed-in customer (put into Locals by the /v1/me
// middleware, auth.go): the owner licenses are scoped by.
func (a *api) offlineOwner(c *fiber.Ctx) (string, error) {
	email := session(c).ident.Email
	if email == "" { // the route is only served behind that middleware; kept as a guard
		return "", errs.E(errs.Unauthenticated, codeSessionInvalid, "sign in to upload an offline activation request")
	}
	return email, nil
}
