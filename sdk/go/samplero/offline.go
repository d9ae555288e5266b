package samplero

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// StoreOfflineRequest holds the nonce and created time of the air-gapped activation request
// written last, which its answer must echo.
const StoreOfflineRequest = "offline-request.json"

// offlineActivatePath is the only path accepted offline (PROTOCOL.md section 8).
const offlineActivatePath = "/v1/activate"

// offlineMaxAge is how old an offline request may be when the server processes it.
const offlineMaxAge = 7 * 24 * time.Hour

// OfflineFile is the JSON file carried between an air-gapped device and the customer portal, in
// both directions (PROTOCOL.md section 8). Path is set on requests, Status on answers.
type OfflineFile struct {
	Version int               `json:"samplero_offline"` // always 1
	Path    string            `json:"path,omitempty"`
	Status  int               `json:"status,omitempty"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"` // standard base64 of the body bytes
}

type offlinePending struct {
	Nonce   string `json:"nonce"`
	Created int64  `json:"created"`
}

// OfflineActivationRequest writes a signed activation request for a device without network
// (PROTOCOL.md section 8): the owner uploads the returned file in the customer portal (or to
// POST /v1/me/offline-activations) and brings the answer file back for
// ApplyOfflineActivationAnswer. The device key is generated and stored on first use, as Activate
// does; the request's nonce and created time are stored so that the answer can be bound to it.
// The request carries the offline tag and stays acceptable for 7 days. Writing a new request
// replaces the pending one: only the answer to the newest request is accepted. No network is used.
func (c *Client) OfflineActivationRequest(ctx context.Context, licenseKey string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.cfg.Fingerprint == "" {
		return nil, errors.New("samplero: Config.Fingerprint is required to activate")
	}
	key, err := c.ensureDeviceKey()
	if err != nil {
		return nil, err
	}
	body, err := c.activateBody(licenseKey, key)
	if err != nil {
		return nil, err
	}
	p := httpsig.RequestParams{Created: c.now().Unix(), Nonce: httpsig.NewNonce(), Tag: httpsig.OfflineTag}
	h, err := httpsig.SignRequest(http.MethodPost, offlineActivatePath, body, p, key)
	if err != nil {
		return nil, err
	}
	pending, _ := json.Marshal(offlinePending{Nonce: p.Nonce, Created: p.Created})
	if err := c.store.Save(StoreOfflineRequest, pending); err != nil {
		return nil, err
	}
	return json.Marshal(OfflineFile{
		Version: 1,
		Path:    offlineActivatePath,
		Headers: map[string]string{
			httpsig.HeaderContentDigest:  h.Get(httpsig.HeaderContentDigest),
			httpsig.HeaderSignatureInput: h.Get(httpsig.HeaderSignatureInput),
			httpsig.HeaderSignature:      h.Get(httpsig.HeaderSignature),
		},
		Body: base64.StdEncoding.EncodeToString(body),
	})
}

// ApplyOfflineActivationAnswer verifies the answer file to the last OfflineActivationRequest as an
// online answer would be verified (a trusted server key, the nonce the device wrote, the path
// /v1/activate), except that created may be as late as the upload: it must lie between the
// request's created and now, and within 7 days of the request (each with MaxSkew of slack). It
// then checks and stores the activation like Activate (certificate for this key and activation,
// verified lease; a 202 stores the claim id for Bootstrap). A verified problem answer is returned
// as a *ProblemError and leaves the request pending. It needs no network when Config.Issuer is set
// or a key list was fetched before.
func (c *Client) ApplyOfflineActivationAnswer(ctx context.Context, answer []byte) (*ActivateResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	raw, err := load(c.store, StoreOfflineRequest)
	if err != nil {
		return nil, err
	}
	var pending offlinePending
	if raw == nil || json.Unmarshal(raw, &pending) != nil || pending.Nonce == "" {
		return nil, errors.New("samplero: no offline activation request is pending")
	}
	var f OfflineFile
	if err := json.Unmarshal(answer, &f); err != nil || f.Version != 1 || f.Status < 100 || f.Status > 999 {
		return nil, errors.New("samplero: not an offline answer file")
	}
	body, err := base64.StdEncoding.DecodeString(f.Body)
	if err != nil {
		return nil, errors.New("samplero: offline answer body is not base64")
	}
	h := http.Header{}
	for k, v := range f.Headers {
		h.Set(k, v)
	}
	keys, err := c.trustedKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, ErrNoTrustedKeys
	}
	info, err := httpsig.VerifyResponse(f.Status, offlineActivatePath, body, h, pending.Nonce, func(kid string) ed25519.PublicKey { return keys[kid] })
	if err != nil {
		return nil, fmt.Errorf("%w: offline answer: %w", ErrUnverified, err)
	}
	created := time.Unix(info.Created, 0)
	if created.Before(time.Unix(pending.Created, 0).Add(-MaxSkew)) || created.After(c.now().Add(MaxSkew)) ||
		created.After(time.Unix(pending.Created, 0).Add(offlineMaxAge+MaxSkew)) {
		return nil, fmt.Errorf("%w: offline answer created outside the request's lifetime", ErrStaleResponse)
	}
	if err := c.recordSeen(created); err != nil {
		return nil, err
	}
	if f.Status < 200 || f.Status > 299 {
		return nil, problemOf(&Response{Status: f.Status, Body: body})
	}
	key, err := c.deviceKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, ErrNotActivated
	}
	res, err := c.finishActivation(ctx, f.Status, body, key)
	if err != nil {
		return nil, err
	}
	if err := c.store.Save(StoreOfflineRequest, nil); err != nil {
		return nil, err
	}
	return res, nil
}
