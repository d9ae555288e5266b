// Package samplero is the Go client of the Samplero device protocol (PROTOCOL.md): it activates a
// device, keeps its key, certificate and lease in a Storage, talks to the license server over TLS
// (mutual TLS once it holds a certificate), signs every request, verifies every answer before
// reading it, and checks the lease offline.
//
// A Client is safe for concurrent use.
package samplero

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// MaxSkew is how far a server's created may be from this device's clock (PROTOCOL.md section 3
// uses the same 300 s for requests).
const MaxSkew = 300 * time.Second

// maxResponseBytes bounds what the client reads of an answer.
const maxResponseBytes = 1 << 20

// Errors of the client; returned errors wrap them.
var (
	ErrNotActivated     = errors.New("samplero: device is not activated")
	ErrUnverified       = errors.New("samplero: server answer failed verification")
	ErrStaleResponse    = errors.New("samplero: server answer created too far from this device's clock")
	ErrAnswerMismatch   = errors.New("samplero: server answer is for another activation or product")
	ErrNoTrustedKeys    = errors.New("samplero: no trusted server keys")
	ErrVerifySkipped    = errors.New("samplero: response verification skipped")
	ErrKeyListRollback  = errors.New("samplero: server key list is older than the stored one")
	ErrKeyListUntrusted = errors.New("samplero: server key list is not signed by a trusted key")
)

// TrustedKey is a server response-signing key the vendor ships with the client.
type TrustedKey struct {
	KID       string
	PublicKey ed25519.PublicKey
}

// Config configures a Client.
type Config struct {
	// BaseURL is the device base URL, such as https://127.0.0.1:8443. A path prefix is kept and
	// signed as part of every request path.
	BaseURL string
	// RootCAs pins the chain the server's TLS certificate must lead to. nil uses the system roots.
	RootCAs *x509.CertPool
	// TrustedKeys are the server keys shipped with the client. When empty, the client trusts the
	// first key list it fetches, and only when RootCAs pins the server (trust on first use).
	TrustedKeys []TrustedKey
	// EndorsementRoots are the offline root CA certificates (self-signed, ECDSA P-384; see
	// RootCertificates) whose endorsements let the client accept server keys it does not know
	// yet. Usually the root RootCAs pins. When set, a key of GET /v1/keys is trusted only when it
	// is in TrustedKeys or carries a valid endorsement by one of them, and an answer signed by
	// an unknown key makes the client fetch the key list once to look for it (a rotation).
	EndorsementRoots []*x509.Certificate
	// Issuer is the expected lease iss; when empty, the issuer of the verified key list is used.
	Issuer string
	// Storage keeps the device state; nil keeps it in memory only.
	Storage Storage
	// Fingerprint identifies this device (8 to 256 printable ASCII characters).
	Fingerprint string
	// Platform is mac, win or linux; empty derives it from runtime.GOOS.
	Platform      string
	PluginVersion string
	// Product is the slug of the product this client licenses; it is sent on activate and
	// validate, and every lease and answer must cover it. When empty, the license's own product
	// (the lease's prd) is used.
	Product    string
	DeviceName string
	// KeyType is the type of key generated on first activation; empty means KeyP256.
	KeyType KeyType
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient, when set, is used as given for every call: it must then verify the server and
	// present the client certificate itself (see ClientCertificate).
	HTTPClient *http.Client
	// AllowPlainHTTP permits an http:// BaseURL. Only `samplero dev` serves plain HTTP.
	AllowPlainHTTP bool
}

// Client talks to one license server for one device.
type Client struct {
	cfg     Config
	base    *url.URL
	store   Storage
	now     func() time.Time
	plain   *http.Client // no client certificate
	mtls    *http.Client // presents the stored certificate
	mtlsTr  *http.Transport
	endorse endorsementCache
	mu      sync.Mutex // guards key and cert caches and storage read-modify-write sequences
	key     crypto.Signer
	cert    *tls.Certificate
	certSet bool
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("samplero: BaseURL must be an absolute URL without query")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !cfg.AllowPlainHTTP {
			return nil, errors.New("samplero: BaseURL must use https (AllowPlainHTTP is for samplero dev only)")
		}
	default:
		return nil, errors.New("samplero: BaseURL must use https")
	}
	if cfg.Fingerprint != "" && !validFingerprint(cfg.Fingerprint) {
		return nil, errors.New("samplero: Fingerprint must be 8 to 256 printable ASCII characters")
	}
	for _, k := range cfg.TrustedKeys {
		if k.KID == "" || len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, errors.New("samplero: TrustedKeys need a kid and a 32-byte Ed25519 key")
		}
	}
	for _, r := range cfg.EndorsementRoots {
		if err := checkRoot(r); err != nil {
			return nil, err
		}
	}
	if cfg.Platform == "" {
		cfg.Platform = map[string]string{"darwin": "mac", "windows": "win", "linux": "linux"}[runtime.GOOS]
	}
	if cfg.KeyType == "" {
		cfg.KeyType = KeyP256
	}
	c := &Client{cfg: cfg, base: u, store: cfg.Storage, now: cfg.Now}
	if c.store == nil {
		c.store = NewMemoryStorage()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.HTTPClient != nil {
		c.plain, c.mtls = cfg.HTTPClient, cfg.HTTPClient
		return c, nil
	}
	// Two transports, because pooled connections keep the client certificate of their handshake:
	// one never presents a certificate, the other presents the current one.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	plainTr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		TLSClientConfig:   &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	c.mtlsTr = &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{
			RootCAs:              cfg.RootCAs,
			MinVersion:           tls.VersionTLS12,
			GetClientCertificate: c.getClientCertificate,
		},
		ForceAttemptHTTP2: true,
	}
	c.plain = &http.Client{Transport: plainTr, CheckRedirect: noRedirect, Timeout: 60 * time.Second}
	c.mtls = &http.Client{Transport: c.mtlsTr, CheckRedirect: noRedirect, Timeout: 60 * time.Second}
	return c, nil
}

func validFingerprint(s string) bool {
	if len(s) < 8 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ProblemError is a verified non-2xx answer (an RFC 9457 problem).
type ProblemError struct {
	Status int
	Code   string
	Title  string
	Detail string
	Type   string
}

func (e *ProblemError) Error() string {
	s := "samplero: server answered " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Title != "" {
		s += ": " + e.Title
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Request is a raw device request for Send, an escape hatch for conformance tests and tooling.
// Zero fields take the normal values.
type Request struct {
	Method          string // "" is POST; GET requests (GET /v1/keys) are not signed
	Path            string // below the base URL, query allowed: /v1/validate
	Body            []byte
	Created         time.Time     // zero: now
	Nonce           string        // "": a fresh one (for GET, the nonce the answer must echo, if any)
	KeyID           string        // "": thumbprint of the signing key
	Key             crypto.Signer // nil: the device key
	OmitHeaders     []string      // headers removed after signing
	OverrideHeaders http.Header   // headers set (replaced) after signing
	// BodyAfterSigning, when not nil, is sent instead of the signed Body.
	BodyAfterSigning []byte
	NoClientCert     bool // do not present the stored client certificate
	Offline          bool // add tag="samplero-offline" to the signature params
	SkipVerify       bool // do not verify the answer (Verified is then ErrVerifySkipped)
}

// Response is what Send got back.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Verified is nil when the answer's signature checked out with a trusted key, echoed the
	// nonce, covered the request path, and had a created within MaxSkew of this device's clock.
	Verified error
	Info     httpsig.ResponseInfo
}

// Send signs and sends one request and verifies the answer, without interpreting it. It fails
// only when the request could not be made; a failed verification is reported in Verified.
func (c *Client) Send(ctx context.Context, r Request) (*Response, error) {
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	u, err := url.Parse(c.base.String() + r.Path)
	if err != nil || !strings.HasPrefix(r.Path, "/") {
		return nil, fmt.Errorf("samplero: bad request path %q", r.Path)
	}
	path := u.EscapedPath()
	nonce := r.Nonce
	body := r.Body
	hdr := http.Header{}
	if method != http.MethodGet && method != http.MethodHead {
		key := r.Key
		if key == nil {
			if key, err = c.deviceKey(); err != nil {
				return nil, err
			}
			if key == nil {
				return nil, ErrNotActivated
			}
		}
		if nonce == "" {
			nonce = httpsig.NewNonce()
		}
		created := r.Created
		if created.IsZero() {
			created = c.now()
		}
		p := httpsig.RequestParams{Created: created.Unix(), Nonce: nonce, KeyID: r.KeyID}
		if r.Offline {
			p.Tag = httpsig.OfflineTag
		}
		if hdr, err = httpsig.SignRequest(method, path, body, p, key); err != nil {
			return nil, err
		}
		hdr.Set("Content-Type", "application/json")
	}
	if r.BodyAfterSigning != nil {
		body = r.BodyAfterSigning
	}
	for _, h := range r.OmitHeaders {
		hdr.Del(h)
	}
	for k, v := range r.OverrideHeaders {
		hdr[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if method == http.MethodGet || method == http.MethodHead {
		req.Body, req.ContentLength = nil, 0
	}
	req.Header = hdr
	hc := c.plain
	if !r.NoClientCert {
		if cert, err := c.clientCert(); err != nil {
			return nil, err
		} else if cert != nil {
			hc = c.mtls
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("samplero: %s %s: %w", method, r.Path, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("samplero: read answer: %w", err)
	}
	if len(respBody) > maxResponseBytes {
		return nil, errors.New("samplero: answer too large")
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: respBody}
	if r.SkipVerify {
		out.Verified = ErrVerifySkipped
		return out, nil
	}
	keys, err := c.trustedKeys()
	if err != nil {
		return nil, err
	}
	out.Info, out.Verified = c.verifyAnswer(resp.StatusCode, path, respBody, resp.Header, nonce, keys)
	if errors.Is(out.Verified, httpsig.ErrUnknownServerKey) && len(c.cfg.EndorsementRoots) > 0 {
		// The server may have switched to a key this client has not seen: the root-endorsed
		// key list says. The answer itself is checked again, unchanged, against the new keys.
		if _, ferr := c.FetchKeys(ctx); ferr == nil {
			if keys, err = c.trustedKeys(); err != nil {
				return nil, err
			}
			out.Info, out.Verified = c.verifyAnswer(resp.StatusCode, path, respBody, resp.Header, nonce, keys)
		}
	}
	return out, nil
}

func (c *Client) verifyAnswer(status int, path string, body []byte, h http.Header, nonce string, keys map[string]ed25519.PublicKey) (httpsig.ResponseInfo, error) {
	info, err := httpsig.VerifyResponse(status, path, body, h, nonce, func(kid string) ed25519.PublicKey { return keys[kid] })
	if err != nil {
		return info, err
	}
	created := time.Unix(info.Created, 0)
	if d := c.now().Sub(created); d > MaxSkew || d < -MaxSkew {
		return info, ErrStaleResponse
	}
	return info, nil
}

// call sends a signed JSON request, requires a verified answer, records its created time, and
// decodes a 2xx body into out. A verified non-2xx answer becomes a *ProblemError.
func (c *Client) call(ctx context.Context, path string, in any, key crypto.Signer, mtls bool, out any) (int, error) {
	if err := c.ensureTrust(ctx); err != nil {
		return 0, err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	resp, err := c.Send(ctx, Request{Path: path, Body: body, Key: key, NoClientCert: !mtls})
	if err != nil {
		return 0, err
	}
	if resp.Verified != nil {
		return resp.Status, fmt.Errorf("%w: %s: %w", ErrUnverified, path, resp.Verified)
	}
	if err := c.recordSeen(time.Unix(resp.Info.Created, 0)); err != nil {
		return resp.Status, err
	}
	if resp.Status < 200 || resp.Status > 299 {
		return resp.Status, problemOf(resp)
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return resp.Status, fmt.Errorf("samplero: %s: answer does not decode: %w", path, err)
	}
	return resp.Status, nil
}

func problemOf(resp *Response) error {
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(resp.Body, &p) // a body that does not decode still yields the status
	return &ProblemError{Status: resp.Status, Code: p.Code, Title: p.Title, Detail: p.Detail, Type: p.Type}
}

// deviceKey returns the stored device key, or nil when there is none.
func (c *Client) deviceKey() (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deviceKeyLocked()
}

func (c *Client) deviceKeyLocked() (crypto.Signer, error) {
	if c.key != nil {
		return c.key, nil
	}
	data, err := load(c.store, StoreDeviceKey)
	if err != nil || data == nil {
		return nil, err
	}
	k, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("samplero: stored device key: %w", err)
	}
	c.key = k
	return k, nil
}

// clientCert returns the TLS certificate built from the stored key and certificate, or nil.
func (c *Client) clientCert() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.certSet {
		return c.cert, nil
	}
	key, err := c.deviceKeyLocked()
	if err != nil {
		return nil, err
	}
	certPEM, err := load(c.store, StoreCertificate)
	if err != nil {
		return nil, err
	}
	c.certSet = true
	c.cert = nil
	if key == nil || certPEM == nil {
		return nil, nil
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("samplero: stored certificate is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("samplero: stored certificate: %w", err)
	}
	c.cert = &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf}
	return c.cert, nil
}

// ClientCertificate returns the device's TLS client certificate (nil before activation), for
// hosts that bring their own HTTPClient.
func (c *Client) ClientCertificate() (*tls.Certificate, error) { return c.clientCert() }

func (c *Client) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert, err := c.clientCert()
	if err != nil || cert == nil {
		// An empty certificate means "none"; the server then answers at trust level 3 or refuses.
		return &tls.Certificate{}, nil
	}
	return cert, nil
}

// credentialsChanged drops the caches after the key or certificate changed, and closes pooled
// connections that still present the old certificate.
func (c *Client) credentialsChangedLocked() {
	c.key, c.cert, c.certSet = nil, nil, false
	if c.mtlsTr != nil {
		c.mtlsTr.CloseIdleConnections()
	}
}

// newestSeen returns the newest time recorded by recordSeen.
func (c *Client) newestSeen() (time.Time, error) {
	data, err := load(c.store, StoreNewestSeen)
	if err != nil || data == nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("samplero: stored newest-seen time: %w", err)
	}
	return time.Unix(n, 0), nil
}

// recordSeen moves the newest seen time forward to t (never back).
func (c *Client) recordSeen(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recordSeenLocked(t)
}

func (c *Client) recordSeenLocked(t time.Time) error {
	old, err := c.newestSeen()
	if err != nil {
		return err
	}
	if !t.After(old) {
		return nil
	}
	return c.store.Save(StoreNewestSeen, []byte(strconv.FormatInt(t.Unix(), 10)))
}
