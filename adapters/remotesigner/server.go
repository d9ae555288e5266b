package remotesigner

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
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
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// CA is the backend served: the local CA of the signer's PKI directory.
	CA ports.CAKeyStore
	// Token is the bearer token and HMACSecret the HMAC key; both at least MinSecretLen bytes.
	Token      string
	HMACSecret string
	Clock      ports.Clock
	// Window is how far a timestamp may be from now (default DefaultWindow).
	Window time.Duration
	// MaxNonces bounds the nonce cache (default 100,000: far above any honest rate over a minute).
	MaxNonces int
	// RequireClientCert refuses a request whose TLS connection did not present a client
	// certificate verified against the signer's client CA. The TLS layer (ServerTLSConfig) already
	// does so; this is a second check in case the handler is ever mounted on another listener.
	RequireClientCert bool
	Logger            *slog.Logger
}

// Server is the signer's HTTP handler.
type Server struct {
	ca         ports.CAKeyStore
	token      []byte
	secret     []byte
	clock      ports.Clock
	window     time.Duration
	nonces     *nonceCache
	requireTLS bool
	log        *slog.Logger
}

// NewServer checks the options and builds the server.
func NewServer(o ServerOptions) (*Server, error) {
	if o.CA == nil || o.Clock == nil {
		return nil, errors.New("remotesigner: a CA and a clock are required")
	}
	if len(o.Token) < MinSecretLen || len(o.HMACSecret) < MinSecretLen {
		return nil, fmt.Errorf("remotesigner: the token and the HMAC secret must be at least %d characters", MinSecretLen)
	}
	if o.Token == o.HMACSecret {
		return nil, errors.New("remotesigner: the token and the HMAC secret must differ")
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxNonces <= 0 {
		o.MaxNonces = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		ca:         o.CA,
		token:      []byte(o.Token),
		secret:     []byte(o.HMACSecret),
		clock:      o.Clock,
		window:     o.Window,
		nonces:     newNonceCache(o.MaxNonces),
		requireTLS: o.RequireClientCert,
		log:        o.Logger,
	}, nil
}

// ServerTLSConfig is the signer's TLS configuration: TLS 1.2 or later, and when clientCAs is not
// nil, a client certificate verified against it is required. clientCAs is the signer's own client
// CA, never the device CA: a device certificate must not open the signer's door.
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		cfg.ClientCAs = clientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// Handler routes the signer's calls.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(pathHealth, s.health)
	mux.HandleFunc(pathIntermediates, s.authenticated(http.MethodGet, s.intermediates))
	mux.HandleFunc(pathRoot, s.authenticated(http.MethodGet, s.root))
	mux.HandleFunc(pathSign, s.authenticated(http.MethodPost, s.sign))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, "not_found") })
	return mux
}

// health answers without authentication: it says whether the backend answers, nothing more.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, err := s.ca.Root(r.Context()); err != nil {
		s.log.Warn("signer health check: backend", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// authenticated wraps h with the method check and the request authentication.
func (s *Server) authenticated(method string, h func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large")
			return
		}
		status, reason := s.authenticate(r, body)
		if status != 0 {
			// The reason goes to the log only: telling a caller which check failed helps an attacker.
			s.log.Warn("signer request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
			if status == http.StatusServiceUnavailable {
				writeError(w, status, "busy")
				return
			}
			writeError(w, status, "unauthorized")
			return
		}
		h(w, r, body)
	}
}

// authenticate checks, in order: the client certificate when required, the bearer token, the
// presence of the three headers, the timestamp's window, the HMAC, and last the nonce (so that
// only authenticated requests can fill the nonce cache). It returns 0 when the request passes.
func (s *Server) authenticate(r *http.Request, body []byte) (int, string) {
	if s.requireTLS && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return http.StatusUnauthorized, "no verified client certificate"
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), s.token) != 1 {
		return http.StatusUnauthorized, "bad or missing bearer token"
	}
	ts, nonce, sig := r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)
	if ts == "" || nonce == "" || sig == "" {
		return http.StatusUnauthorized, "missing signature headers"
	}
	if !validNonce(nonce) {
		return http.StatusUnauthorized, "malformed nonce"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return http.StatusUnauthorized, "malformed timestamp"
	}
	at := time.Unix(sec, 0)
	now := s.clock.Now()
	if d := now.Sub(at); d > s.window || d < -s.window {
		return http.StatusUnauthorized, "timestamp outside the window"
	}
	got, err := hex.DecodeString(strings.ToLower(sig))
	if err != nil || !hmac.Equal(got, mac(s.secret, ts, nonce, body)) {
		return http.StatusUnauthorized, "bad HMAC"
	}
	// The nonce is kept until the timestamp it came with leaves the window: after that the
	// timestamp check refuses a replay on its own.
	expiry := at.Add(s.window)
	if now.After(at) {
		expiry = now.Add(s.window)
	}
	seen, full := s.nonces.reserve(nonce, now, expiry)
	switch {
	case seen:
		return http.StatusUnauthorized, "replayed nonce"
	case full:
		return http.StatusServiceUnavailable, "nonce cache full"
	}
	return 0, ""
}

// validNonce accepts 16 to 128 characters of [A-Za-z0-9_-] (a UUID, base64url or hex of random
// bytes): enough entropy to be unique, and nothing that needs escaping in a log.
func validNonce(n string) bool {
	if len(n) < 16 || len(n) > 128 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Server) intermediates(w http.ResponseWriter, r *http.Request, _ []byte) {
	ints, err := s.ca.Intermediates(r.Context())
	if err != nil {
		s.backendError(w, "intermediates", err)
		return
	}
	var shares map[string]int
	if sh, ok := s.ca.(ports.CAShares); ok {
		if shares, err = sh.Shares(r.Context()); err != nil {
			s.backendError(w, "shares", err)
			return
		}
	}
	out := intermediatesResponse{Intermediates: make([]intermediateDTO, 0, len(ints))}
	for _, in := range ints {
		out.Intermediates = append(out.Intermediates, intermediateDTO{
			ID: in.ID, State: in.State, Share: shares[in.ID], Certificate: certPEM(in.Cert),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) root(w http.ResponseWriter, r *http.Request, _ []byte) {
	root, err := s.ca.Root(r.Context())
	if err != nil {
		s.backendError(w, "root", err)
		return
	}
	writeJSON(w, http.StatusOK, rootResponse{Certificate: certPEM(root)})
}

// sign signs a digest with an intermediate's key. The signer cannot see what it signs (a digest of
// a TBSCertificate); every signature is logged with the intermediate and the digest for audit.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, body []byte) {
	var req signRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_json")
		return
	}
	h, ok := hashes[req.Hash]
	if !ok {
		writeError(w, http.StatusBadRequest, "unsupported_hash")
		return
	}
	digest, err := base64.StdEncoding.DecodeString(req.Digest)
	if err != nil || len(digest) != h.Size() {
		writeError(w, http.StatusBadRequest, "invalid_digest")
		return
	}
	ints, err := s.ca.Intermediates(r.Context())
	if err != nil {
		s.backendError(w, "intermediates", err)
		return
	}
	known := false
	for _, in := range ints {
		if in.ID == req.IntermediateID {
			// A retired intermediate is trusted by nobody: signing with it could only serve misuse.
			if authority.State(in.State) == authority.StateRetired {
				writeError(w, http.StatusConflict, "intermediate_retired")
				return
			}
			known = true
		}
	}
	if !known {
		writeError(w, http.StatusNotFound, "intermediate_not_found")
		return
	}
	key, err := s.ca.Signer(r.Context(), req.IntermediateID)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			writeError(w, http.StatusNotFound, "intermediate_not_found")
			return
		}
		s.backendError(w, "signer", err)
		return
	}
	sig, err := key.Sign(rand.Reader, digest, h)
	if err != nil {
		s.backendError(w, "sign", err)
		return
	}
	s.log.Info("signed", "intermediate", req.IntermediateID, "hash", req.Hash, "digest", hex.EncodeToString(digest), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, signResponse{Signature: base64.StdEncoding.EncodeToString(sig)})
}

// backendError logs the cause and answers 503 without it.
func (s *Server) backendError(w http.ResponseWriter, what string, err error) {
	s.log.Error("signer backend failed", "op", what, "err", err)
	writeError(w, http.StatusServiceUnavailable, "unavailable")
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, errorResponse{Error: code})
}
