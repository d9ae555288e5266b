// Package stepca is a ports.CertificateIssuer backed by smallstep's step-ca: device certificates
// are signed by step-ca's intermediate through its sign API (POST /1.0/sign), authorised by a
// one-time token that this adapter signs with a JWK provisioner's private key.
//
// step-ca decides nothing about the certificate's content: a provisioner X.509 template
// (docs/stepca.md) produces the device profile of PROTOCOL.md section 7 from a claim of the token,
// and the adapter checks every certificate step-ca returns against that profile before handing it
// out, so a template changed on the CA side cannot slip a wrong certificate to a device.
//
// Canary rollouts of core/pki do not apply: step-ca issues from its one configured intermediate.
// RollingBack is therefore always false.
package stepca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// ActivationClaim is the token claim that carries the activation id; the provisioner's template
// reads it as {{ .Token.samplero_activation_id }} (docs/stepca.md).
const ActivationClaim = "samplero_activation_id"

// DeviceTemplate is the provisioner X.509 template that makes the device profile: put it in a file
// and name it as the JWK provisioner's options.x509.templateFile in ca.json (docs/stepca.md).
//
//go:embed device.tpl
var DeviceTemplate string

// CodeCertificateUntrusted is the code of a client certificate that fails VerifyClientCertificate
// (the same code core/pki uses).
const CodeCertificateUntrusted = "CERTIFICATE_UNTRUSTED"

const (
	// tokenLifetime is how long a one-time token is valid. step-ca accepts a minute of skew on
	// top; the token is used at once, so a short life limits what a leaked one is worth.
	tokenLifetime = 5 * time.Minute
	// trustTTL is how long the roots and intermediates read from step-ca are reused. CAChainPEM and
	// ClientCAPool are called per request or per handshake; a minute keeps step-ca out of that
	// path while a changed intermediate still shows within a minute.
	trustTTL = time.Minute
	// maxBody bounds what is read from step-ca.
	maxBody = 1 << 20
)

// Options configure the adapter.
type Options struct {
	// URL is step-ca's base URL, e.g. https://ca.internal:9000. Its host must be one of the CA's
	// dnsNames (ca.json), because the token's audience is URL + "/1.0/sign".
	URL string
	// RootCAs is the PEM of step-ca's root certificate(s): it authenticates step-ca's TLS listener
	// and is the trust anchor of every chain. Only the roots of step-ca's /roots that are also here
	// are trusted.
	RootCAs []byte
	// ProvisionerName is the JWK provisioner's name in ca.json (the token's issuer).
	ProvisionerName string
	// ProvisionerKey is the provisioner's private key, as a JWK (JSON) or PEM (PKCS#8, SEC 1 or
	// PKCS#1). The token's kid is the JWK's kid, else its RFC 7638 SHA-256 thumbprint, which is
	// what step-ca's tooling uses as the provisioner key id.
	ProvisionerKey []byte
	// HTTPClient talks to step-ca. Nil: a client with a 30 s timeout trusting RootCAs only. A
	// client given here must trust step-ca's TLS certificate itself.
	HTTPClient *http.Client
	// Clock dates the tokens and the checks; nil is the wall clock.
	Clock ports.Clock
}

// Issuer implements ports.CertificateIssuer against step-ca.
type Issuer struct {
	base      *url.URL
	pinned    []*x509.Certificate
	provName  string
	signer    jose.Signer
	http      *http.Client
	clock     ports.Clock
	mu        sync.Mutex
	cache     *trustSet
	fetchedAt time.Time
	// seen holds intermediates that signed certificates through this process, so a certificate
	// stays verifiable after step-ca moves to another intermediate (until this process restarts).
	seen []*x509.Certificate
}

// trustSet is step-ca's hierarchy as last read: intermediates (the issuing one first) and roots.
type trustSet struct {
	intermediates []*x509.Certificate
	roots         []*x509.Certificate
}

var _ ports.CertificateIssuer = (*Issuer)(nil)

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// New checks the options and builds the issuer. It does not contact step-ca.
func New(o Options) (*Issuer, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, errs.Validation("step-ca URL must be an https URL with a host")
	}
	pinned, err := parseCerts(o.RootCAs)
	if err != nil || len(pinned) == 0 {
		return nil, errs.Validation("step-ca root certificates must be PEM certificates")
	}
	if o.ProvisionerName == "" {
		return nil, errs.Validation("step-ca provisioner name is required")
	}
	signer, err := newTokenSigner(o.ProvisionerKey)
	if err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		pool := x509.NewCertPool()
		for _, c := range pinned {
			pool.AddCert(c)
		}
		hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}}
	}
	clock := o.Clock
	if clock == nil {
		clock = wallClock{}
	}
	return &Issuer{base: u, pinned: pinned, provName: o.ProvisionerName, signer: signer, http: hc, clock: clock}, nil
}

// newTokenSigner reads the provisioner key and picks the JWS algorithm its type implies.
func newTokenSigner(raw []byte) (jose.Signer, error) {
	bad := func(msg string) error { return errs.Validation("step-ca provisioner key: " + msg) }
	var key crypto.Signer
	kid := ""
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(t); err != nil {
			return nil, bad("not a JWK")
		}
		s, ok := jwk.Key.(crypto.Signer)
		if !ok || jwk.IsPublic() {
			return nil, bad("the JWK must hold a private key")
		}
		key, kid = s, jwk.KeyID
	} else {
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, bad("neither a JWK nor PEM")
		}
		if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			key, _ = k.(crypto.Signer)
		} else if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
			key = k
		} else if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			key = k
		}
		if key == nil {
			return nil, bad("PEM is not a private key")
		}
	}
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		case elliptic.P521():
			alg = jose.ES512
		default:
			return nil, bad("unsupported ECDSA curve")
		}
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, bad("RSA keys must have at least 2048 bits")
		}
		alg = jose.RS256
	default:
		return nil, bad("unsupported key type")
	}
	if kid == "" {
		tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, bad("cannot compute its thumbprint")
		}
		kid = base64.RawURLEncoding.EncodeToString(tp)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return nil, bad("cannot sign with it")
	}
	return s, nil
}

// tokenClaims are the one-time token's claims. sub and sans only satisfy step-ca's checks of the
// CSR's own names (a CSR's common name and SANs must be among them); the template ignores them
// and names the activation from ActivationClaim.
type tokenClaims struct {
	jwt.Claims
	SANs         []string `json:"sans,omitempty"`
	Confirmation struct {
		// Fingerprint binds the token to one CSR: step-ca refuses the token with any other.
		Fingerprint string `json:"x5rt#S256"`
	} `json:"cnf"`
	ActivationID string `json:"samplero_activation_id"`
}

// IssueDeviceCertificate has step-ca sign req.CSR and checks that the certificate it returns is
// the device profile of PROTOCOL.md section 7 for req.PublicKey and chains to a pinned root.
// Errors: errs.Invalid INVALID_CSR for a missing CSR, one whose key is not req.PublicKey or is not
// a device key; VALIDATION_FAILED for a bad activation id or validity; errs.Unavailable when
// step-ca cannot be reached or answers 5xx; internal when step-ca refuses the request (a
// configuration problem: provisioner, template or claims) or returns an unexpected certificate.
func (s *Issuer) IssueDeviceCertificate(ctx context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	if err := authority.CheckDeviceKey(req.PublicKey); err != nil {
		return ports.IssuedCertificate{}, err
	}
	if _, err := authority.ActivationURI(req.ActivationID); err != nil {
		return ports.IssuedCertificate{}, err
	}
	if req.Validity <= 0 {
		return ports.IssuedCertificate{}, errs.Validation("certificate validity must be positive")
	}
	csr, err := checkCSR(req)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	trust, err := s.trust(ctx)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	now := s.clock.Now()
	token, err := s.token(csr, req.ActivationID, now)
	if err != nil {
		return ports.IssuedCertificate{}, err
	}
	body := map[string]any{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})),
		"ott": token,
		// A duration: step-ca counts it from its own issuance time, so notAfter is issuance +
		// validity whatever the skew between this server's clock and the CA's.
		"notAfter": req.Validity.String(),
	}
	// A certificate cannot outlive the intermediate that vouches for it (core/pki does the same);
	// step-ca does not cut it short itself.
	if issuing := trust.intermediates[0]; now.Add(req.Validity).After(issuing.NotAfter) {
		body["notAfter"] = issuing.NotAfter.UTC().Format(time.RFC3339)
	}
	var resp struct {
		Crt       string   `json:"crt"`
		CA        string   `json:"ca"`
		CertChain []string `json:"certChain"`
	}
	if err := s.call(ctx, http.MethodPost, "/1.0/sign", body, &resp); err != nil {
		return ports.IssuedCertificate{}, err
	}
	leaf, chain, err := parseSignResponse(resp.Crt, resp.CertChain, resp.CA)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("stepca: sign answer: %w", err)
	}
	issuer, err := s.checkIssued(leaf, chain, req, trust, now)
	if err != nil {
		return ports.IssuedCertificate{}, errs.Internalf("stepca: issued certificate: %w", err)
	}
	s.remember(issuer)
	return ports.IssuedCertificate{
		Serial:    authority.CanonicalSerial(leaf.SerialNumber),
		DER:       leaf.Raw,
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		IssuerID:  authority.IntermediateID(issuer),
		NotBefore: leaf.NotBefore.UTC(),
		NotAfter:  leaf.NotAfter.UTC(),
	}, nil
}

// checkCSR parses req.CSR and makes sure it is the device's request for req.PublicKey: step-ca
// signs the CSR's key, so a CSR for another key would certify a key the caller never checked.
func checkCSR(req ports.DeviceCertificateRequest) (*x509.CertificateRequest, error) {
	invalid := func(msg string, cause error) error {
		return errs.Wrap(errs.Invalid, authority.CodeInvalidCSR, msg, cause)
	}
	if len(req.CSR) == 0 {
		return nil, invalid("the certificate request is missing", nil)
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, invalid("the certificate request does not parse", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalid("the certificate request's self-signature does not verify", err)
	}
	if !samePublicKey(csr.PublicKey, req.PublicKey) {
		return nil, invalid("the certificate request is not for the device key", nil)
	}
	return csr, nil
}

// token signs the one-time token that authorises step-ca to sign csr for activationID.
func (s *Issuer) token(csr *x509.CertificateRequest, activationID string, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, jti); err != nil {
		return "", errs.Internalf("stepca: token id: %w", err)
	}
	var c tokenClaims
	c.Issuer = s.provName
	c.Audience = jwt.Audience{s.base.String() + "/1.0/sign"}
	// step-ca wants a subject, and the CSR's common name (if any) among subject and sans.
	c.Subject = csr.Subject.CommonName
	if c.Subject == "" {
		c.Subject = authority.DeviceCommonName
	}
	c.SANs = csrSANs(csr)
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.Expiry = jwt.NewNumericDate(now.Add(tokenLifetime))
	c.ID = hex.EncodeToString(jti)
	sum := sha256.Sum256(csr.Raw)
	c.Confirmation.Fingerprint = base64.RawURLEncoding.EncodeToString(sum[:])
	c.ActivationID = activationID
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", errs.Internalf("stepca: sign token: %w", err)
	}
	return tok, nil
}

// csrSANs lists the names a CSR asks for: step-ca refuses a CSR whose SANs the token does not
// list exactly. The certificate carries none of them (the template ignores them).
func csrSANs(csr *x509.CertificateRequest) []string {
	var out []string
	out = append(out, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, csr.EmailAddresses...)
	for _, u := range csr.URIs {
		out = append(out, u.String())
	}
	return out
}

// parseSignResponse returns the leaf and the chain above it from step-ca's answer.
func parseSignResponse(crt string, chainPEM []string, ca string) (*x509.Certificate, []*x509.Certificate, error) {
	var certs []*x509.Certificate
	if len(chainPEM) > 0 {
		for _, p := range chainPEM {
			cs, err := parseCerts([]byte(p))
			if err != nil {
				return nil, nil, err
			}
			certs = append(certs, cs...)
		}
	} else {
		cs, err := parseCerts([]byte(crt + "\n" + ca))
		if err != nil {
			return nil, nil, err
		}
		certs = cs
	}
	if len(certs) < 2 {
		return nil, nil, errors.New("no certificate chain")
	}
	return certs[0], certs[1:], nil
}

// checkIssued verifies the device profile and the chain of leaf, and returns the intermediate
// that signed it.
func (s *Issuer) checkIssued(leaf *x509.Certificate, chain []*x509.Certificate, req ports.DeviceCertificateRequest, trust *trustSet, now time.Time) (*x509.Certificate, error) {
	if !samePublicKey(leaf.PublicKey, req.PublicKey) {
		return nil, errors.New("it is not for the device key")
	}
	if id, ok := authority.ActivationIDOf(leaf); !ok || id != req.ActivationID || len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("its URI SANs %v do not name exactly activation %s", leaf.URIs, req.ActivationID)
	}
	if leaf.Subject.CommonName != authority.DeviceCommonName || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		return nil, fmt.Errorf("its names (CN %q, other SANs) are not the device profile", leaf.Subject.CommonName)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature ||
		!slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		return nil, errors.New("its constraints or key usages are not the device profile (CA:false, digitalSignature, clientAuth)")
	}
	if leaf.NotBefore.Before(now.Add(-authority.Backdate-time.Minute)) || leaf.NotAfter.After(now.Add(req.Validity+time.Minute)) {
		return nil, fmt.Errorf("its validity %s..%s does not fit issuance at %s + %s", leaf.NotBefore, leaf.NotAfter, now, req.Validity)
	}
	roots := poolOf(trust.roots)
	inters := poolOf(chain)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("it does not chain to the pinned root: %w", err)
	}
	for _, ch := range chains {
		if len(ch) == 3 {
			return ch[1], nil
		}
	}
	return nil, errors.New("it is not signed by an intermediate directly under the root")
}

// remember keeps the intermediate that issued a certificate trusted for this process's life.
func (s *Issuer) remember(in *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.seen, in.Equal) {
		s.seen = append(s.seen, in)
	}
}

// trust returns step-ca's roots (only those pinned in Options.RootCAs) and its intermediates
// (those it publishes, then ones seen issuing earlier and still valid), each chaining to a root,
// reading them again after trustTTL.
func (s *Issuer) trust(ctx context.Context) (*trustSet, error) {
	now := s.clock.Now()
	s.mu.Lock()
	if s.cache != nil && now.Sub(s.fetchedAt) < trustTTL && !now.Before(s.fetchedAt) {
		t := s.cache
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()

	var rootsResp, intsResp struct {
		Crts []string `json:"crts"`
	}
	if err := s.call(ctx, http.MethodGet, "/roots", nil, &rootsResp); err != nil {
		return nil, err
	}
	if err := s.call(ctx, http.MethodGet, "/intermediates", nil, &intsResp); err != nil {
		return nil, err
	}
	var roots []*x509.Certificate
	for _, p := range rootsResp.Crts {
		cs, err := parseCerts([]byte(p))
		if err != nil {
			return nil, errs.Internalf("stepca: /roots: %w", err)
		}
		for _, c := range cs {
			if slices.ContainsFunc(s.pinned, c.Equal) {
				roots = append(roots, c)
			}
		}
	}
	if len(roots) == 0 {
		return nil, errs.Internalf("stepca: none of step-ca's roots is a configured root")
	}
	var published []*x509.Certificate
	for _, p := range intsResp.Crts {
		cs, err := parseCerts([]byte(p))
		if err != nil {
			return nil, errs.Internalf("stepca: /intermediates: %w", err)
		}
		published = append(published, cs...)
	}
	s.mu.Lock()
	candidates := append(published, s.seen...)
	s.mu.Unlock()
	rootPool := poolOf(roots)
	var ints []*x509.Certificate
	for _, c := range candidates {
		if slices.ContainsFunc(ints, c.Equal) || !c.IsCA || now.After(c.NotAfter) {
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: rootPool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		ints = append(ints, c)
	}
	if len(published) == 0 || len(ints) == 0 || !ints[0].Equal(published[0]) {
		return nil, errs.Internalf("stepca: step-ca's issuing intermediate does not chain to a configured root")
	}
	t := &trustSet{intermediates: ints, roots: roots}
	s.mu.Lock()
	s.cache, s.fetchedAt = t, now
	s.mu.Unlock()
	return t, nil
}

// CAChainPEM is every intermediate still trusted (step-ca's issuing one first), then the root(s).
func (s *Issuer) CAChainPEM(ctx context.Context) (string, error) {
	t, err := s.trust(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range append(slices.Clone(t.intermediates), t.roots...) {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String(), nil
}

// ClientCAPool holds the intermediates still trusted, not the root (see the port's doc).
func (s *Issuer) ClientCAPool(ctx context.Context) (*x509.CertPool, error) {
	t, err := s.trust(ctx)
	if err != nil {
		return nil, err
	}
	return poolOf(t.intermediates), nil
}

// RollingBack is always false: step-ca has no canary rollout of this server's.
func (s *Issuer) RollingBack(context.Context, string) (bool, error) { return false, nil }

// VerifyClientCertificate checks a forwarded client certificate as the TLS handshake would: it must
// chain through an intermediate still trusted (never one the sender supplies) to a pinned root, be
// valid at now, allow clientAuth, and not be a CA.
func (s *Issuer) VerifyClientCertificate(ctx context.Context, cert *x509.Certificate, now time.Time) error {
	if cert == nil {
		return errs.Validation("client certificate is missing")
	}
	t, err := s.trust(ctx)
	if err != nil {
		return err
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(t.roots), Intermediates: poolOf(t.intermediates),
		CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return errs.Wrap(errs.Unauthenticated, CodeCertificateUntrusted, "client certificate is not trusted", err)
	}
	if !cert.IsCA {
		for _, ch := range chains {
			if len(ch) == 3 && slices.ContainsFunc(t.intermediates, ch[1].Equal) {
				return nil
			}
		}
	}
	return errs.E(errs.Unauthenticated, CodeCertificateUntrusted, "client certificate is not trusted")
}

// call sends a JSON request to step-ca and decodes a 2xx answer into out. A transport failure, a
// 5xx or a 429 is errs.Unavailable (a retry may cure it); any other refusal is internal: the
// request was checked here first, so step-ca refusing it means its configuration and this
// adapter's disagree. step-ca's message goes into the wrapped cause, never to the client.
func (s *Issuer) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return errs.Internalf("stepca: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base.String()+path, body)
	if err != nil {
		return errs.Internalf("stepca: request %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return unavailable(fmt.Errorf("stepca: %s %s: %w", method, path, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return unavailable(fmt.Errorf("stepca: read %s: %w", path, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		cause := fmt.Errorf("stepca: %s %s: status %d: %s", method, path, resp.StatusCode, e.Message)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return unavailable(cause)
		}
		return errs.Internalf("%w", cause)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return errs.Internalf("stepca: decode %s: %w", path, err)
	}
	return nil
}

func unavailable(cause error) error {
	return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "certificate authority unavailable", cause)
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// samePublicKey compares two public keys by their SubjectPublicKeyInfo encoding.
func samePublicKey(a, b crypto.PublicKey) bool {
	da, errA := x509.MarshalPKIXPublicKey(a)
	db, errB := x509.MarshalPKIXPublicKey(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}
