package remotesigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// BaseURL is the signer, e.g. https://signer.internal:9443. Plain http:// is accepted only for
	// a loopback host (tests, a signer on the same machine).
	BaseURL    string
	Token      string
	HMACSecret string
	// TLS holds the CA that signs the signer's certificate (RootCAs) and, for mutual TLS, this
	// server's client certificate. Nil uses the system roots.
	TLS *tls.Config
	// HTTPClient replaces the client built from TLS and Timeout (tests).
	HTTPClient *http.Client
	Clock      ports.Clock
	// CacheTTL is how long the intermediates and the root are reused before they are asked for
	// again (default 5 s): a rollout step shows within that time.
	CacheTTL time.Duration
	// MaxStale is how long the last good intermediates and root keep serving while the signer
	// cannot be reached (default 5 min): the device listener's trust pool then survives a short
	// signer outage; issuing still needs the signer.
	MaxStale time.Duration
	// Timeout bounds each call (default 5 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Client is the `remote` ports.CAKeyStore: the hierarchy and the signatures come from a signer.
type Client struct {
	base     *url.URL
	token    string
	secret   []byte
	http     *http.Client
	clock    ports.Clock
	ttl      time.Duration
	maxStale time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	snap    *snapshot
	fetched time.Time // clock time of snap
}

// snapshot is one answer of the signer: the intermediates with their shares, and the root.
type snapshot struct {
	ints   []ports.CAIntermediate
	shares map[string]int
	root   *x509.Certificate
}

var (
	_ ports.CAKeyStore = (*Client)(nil)
	_ ports.CAShares   = (*Client)(nil)
)

// NewClient checks the options and builds the client. It does not call the signer.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("remotesigner: %q is not an http(s) base URL", o.BaseURL)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("remotesigner: %s: plain http is allowed only to a loopback address; use https", o.BaseURL)
	}
	if len(o.Token) < MinSecretLen || len(o.HMACSecret) < MinSecretLen {
		return nil, fmt.Errorf("remotesigner: the token and the HMAC secret must be at least %d characters", MinSecretLen)
	}
	if o.Clock == nil {
		return nil, errors.New("remotesigner: a clock is required")
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Second
	}
	if o.MaxStale <= 0 {
		o.MaxStale = 5 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // the signer is on the private network; never route its secrets via a proxy
		if o.TLS != nil {
			tr.TLSClientConfig = o.TLS.Clone()
		}
		hc = &http.Client{Transport: tr, Timeout: o.Timeout}
	}
	return &Client{
		base: u, token: o.Token, secret: []byte(o.HMACSecret), http: hc, clock: o.Clock,
		ttl: o.CacheTTL, maxStale: o.MaxStale, timeout: o.Timeout, log: o.Logger,
	}, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Intermediates lists the signer's intermediates (cached for CacheTTL).
func (c *Client) Intermediates(ctx context.Context) ([]ports.CAIntermediate, error) {
	s, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	return append([]ports.CAIntermediate(nil), s.ints...), nil
}

// Shares returns the canary shares the signer reports (ports.CAShares).
func (c *Client) Shares(ctx context.Context) (map[string]int, error) {
	s, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(s.shares))
	for k, v := range s.shares {
		out[k] = v
	}
	return out, nil
}

// Root returns the signer's root certificate (cached for CacheTTL).
func (c *Client) Root(ctx context.Context) (*x509.Certificate, error) {
	s, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	return s.root, nil
}

// Signer returns a crypto.Signer for intermediate id whose Sign calls POST /v1/sign; errs.NotFound
// when the signer does not list id. The signer carries ctx: use it within the call that asked for
// it (an issuance), not later.
func (c *Client) Signer(ctx context.Context, id string) (crypto.Signer, error) {
	s, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range s.ints {
		if in.ID == id {
			return &remoteKey{c: c, ctx: ctx, id: id, pub: in.Cert.PublicKey}, nil
		}
	}
	return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate CA")
}

// Refresh drops the cache: the next call asks the signer (after a rollout step, in tests).
func (c *Client) Refresh() {
	c.mu.Lock()
	c.snap = nil
	c.mu.Unlock()
}

// current returns the cached snapshot while fresh, else asks the signer; when the signer fails,
// a snapshot younger than MaxStale keeps serving.
func (c *Client) current(ctx context.Context) (*snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.snap != nil {
		if age := now.Sub(c.fetched); age >= 0 && age < c.ttl {
			return c.snap, nil
		}
	}
	s, err := c.fetch(ctx)
	if err != nil {
		if c.snap != nil {
			if age := now.Sub(c.fetched); age >= 0 && age < c.maxStale {
				c.log.Warn("remote signer unreachable; serving the last hierarchy", "age", age.String(), "err", err)
				return c.snap, nil
			}
		}
		return nil, err
	}
	c.snap, c.fetched = s, now
	return s, nil
}

// fetch asks for the intermediates and the root. Holding c.mu while asking means concurrent
// callers share one round trip instead of stampeding the signer.
func (c *Client) fetch(ctx context.Context) (*snapshot, error) {
	var ir intermediatesResponse
	if err := c.call(ctx, http.MethodGet, pathIntermediates, nil, &ir); err != nil {
		return nil, err
	}
	var rr rootResponse
	if err := c.call(ctx, http.MethodGet, pathRoot, nil, &rr); err != nil {
		return nil, err
	}
	root, err := parseCertPEM(rr.Certificate)
	if err != nil {
		return nil, unavailable(fmt.Errorf("remotesigner: root: %w", err))
	}
	s := &snapshot{root: root, shares: map[string]int{}}
	for _, in := range ir.Intermediates {
		cert, err := parseCertPEM(in.Certificate)
		if err != nil {
			return nil, unavailable(fmt.Errorf("remotesigner: intermediate %s: %w", in.ID, err))
		}
		// The signer is trusted to sign, not to define trust: an intermediate the root did not
		// sign is refused here rather than handed to the device listener's pool.
		if err := cert.CheckSignatureFrom(root); err != nil {
			return nil, unavailable(fmt.Errorf("remotesigner: intermediate %s is not signed by the root: %w", in.ID, err))
		}
		s.ints = append(s.ints, ports.CAIntermediate{ID: in.ID, Cert: cert, State: in.State})
		if in.Share > 0 {
			s.shares[in.ID] = in.Share
		}
	}
	return s, nil
}

// call sends one authenticated request and decodes a 200 answer into out. A 404 is errs.NotFound;
// anything else that is not 200 is errs.Unavailable.
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return unavailable(err)
	}
	n := hex.EncodeToString(nonce)
	ts := strconv.FormatInt(c.clock.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return unavailable(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderNonce, n)
	req.Header.Set(HeaderSignature, macHex(c.secret, ts, n, body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("remotesigner: %s %s: %w", method, path, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unavailable(fmt.Errorf("remotesigner: %s %s: %w", method, path, err))
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		_ = json.Unmarshal(data, &e)
		if resp.StatusCode == http.StatusNotFound && e.Error == "intermediate_not_found" {
			return errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate CA")
		}
		return unavailable(fmt.Errorf("remotesigner: %s %s: HTTP %d %q", method, path, resp.StatusCode, e.Error))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return unavailable(fmt.Errorf("remotesigner: %s %s: %w", method, path, err))
	}
	return nil
}

func unavailable(cause error) error {
	return errs.Wrap(errs.Unavailable, CodeSignerUnavailable, "the CA signer is unavailable", cause)
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// remoteKey is an intermediate's key on the signer.
type remoteKey struct {
	c   *Client
	ctx context.Context
	id  string
	pub crypto.PublicKey
}

func (k *remoteKey) Public() crypto.PublicKey { return k.pub }

// Sign asks the signer to sign digest, then verifies the signature against the intermediate's
// certificate: a signer that answers with another key's signature (or garbage) is caught here,
// not by the devices that would reject the certificate later. Only SHA-256 and SHA-384 digests are
// signed (RSA PSS and Ed25519 intermediates are not supported by the wire protocol).
func (k *remoteKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	name, ok := hashName(h)
	if !ok {
		return nil, errs.Internalf("remotesigner: hash %v is not signed remotely", h)
	}
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errs.Internalf("remotesigner: RSA-PSS is not signed remotely")
	}
	if len(digest) != h.Size() {
		return nil, errs.Internalf("remotesigner: digest of %d bytes for %s", len(digest), name)
	}
	body, err := json.Marshal(signRequest{IntermediateID: k.id, Digest: base64.StdEncoding.EncodeToString(digest), Hash: name})
	if err != nil {
		return nil, errs.Internalf("remotesigner: %w", err)
	}
	var resp signResponse
	if err := k.c.call(k.ctx, http.MethodPost, pathSign, body, &resp); err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(resp.Signature)
	if err != nil {
		return nil, unavailable(fmt.Errorf("remotesigner: signature is not base64: %w", err))
	}
	if !verify(k.pub, digest, sig, h) {
		return nil, unavailable(fmt.Errorf("remotesigner: the signature for %s does not verify with its certificate", k.id))
	}
	return sig, nil
}

func verify(pub crypto.PublicKey, digest, sig []byte, h crypto.Hash) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, h, digest, sig) == nil
	}
	return false
}
