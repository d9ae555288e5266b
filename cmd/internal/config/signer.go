package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// Signer holds the flags of `samplero signer`, the remote CA signer (docs/remote-signer.md).
type Signer struct {
	Listen string
	PKIDir string
	// TLSCert and TLSKey are the signer's server certificate; without them the signer speaks plain
	// HTTP, which is allowed on a loopback address only.
	TLSCert string
	TLSKey  string
	// ClientCA, when set, requires every client to present a certificate it signed (mutual TLS).
	// It is the signer's own client CA, never the device CA.
	ClientCA   string
	Token      Secret
	HMACSecret Secret
}

// CABackend says where serve, worker and dev find the CA hierarchy: `local` (the files under
// SAMPLERO_PKI_DIR), `remote` (a `samplero signer`) or `stepca` (smallstep's step-ca signs device
// certificates, docs/stepca.md).
type CABackend struct {
	Kind       string // local | remote | stepca
	URL        string
	Token      Secret
	HMACSecret Secret
	// CAFile is the PEM the signer's TLS certificate chains to; empty uses the system roots.
	CAFile string
	// ClientCert and ClientKey are this server's certificate for the signer's mutual TLS.
	ClientCert string
	ClientKey  string
	// DeviceTLSCert and DeviceTLSKey are the device listener's own TLS certificate chain and key
	// (PEM files). With `remote` serve has no CA key to make one, so they are required there; with
	// `local` they replace the certificate the local CA would issue.
	DeviceTLSCert string
	DeviceTLSKey  string
	// StepCA is the step-ca backend's settings (Kind `stepca` only).
	StepCA StepCA
}

// StepCA holds the settings of the `stepca` backend (adapters/stepca).
type StepCA struct {
	// URL is step-ca's base URL, https; its host must be one of step-ca's dnsNames.
	URL string
	// RootFile is the PEM file of step-ca's root: it authenticates step-ca's TLS and anchors
	// every device certificate's chain.
	RootFile string
	// Provisioner is the JWK provisioner's name in step-ca's ca.json.
	Provisioner string
	// ProvisionerKey is the provisioner's private key: a file path, or the key itself (a JWK in
	// JSON or PEM). Boot tells them apart (ProvisionerKeyInline).
	ProvisionerKey Secret
}

// ProvisionerKeyInline reports whether ProvisionerKey holds the key itself (JWK JSON or PEM)
// rather than the path of a file holding it.
func (s StepCA) ProvisionerKeyInline() bool {
	v := strings.TrimSpace(s.ProvisionerKey.Reveal())
	return strings.HasPrefix(v, "{") || strings.HasPrefix(v, "-----BEGIN")
}

// SignerEnvironment documents the variables read here; the lead appends it to Environment.
var SignerEnvironment = []Env{
	{Name: "SAMPLERO_CA_BACKEND", Default: "local", Doc: "`local` (the CA files under SAMPLERO_PKI_DIR), `remote` (a `samplero signer` at SAMPLERO_SIGNER_URL: docs/remote-signer.md) or `stepca` (smallstep's step-ca at SAMPLERO_STEPCA_URL: docs/stepca.md); serve with `remote` or `stepca` needs SAMPLERO_DEVICE_TLS_CERT; neither is for dev"},
	{Name: "SAMPLERO_SIGNER_URL", Doc: "the remote signer's base URL, `https://host:port` (`http://` only to a loopback address); required with `remote`"},
	{Name: "SAMPLERO_SIGNER_TOKEN", Secret: true, Doc: "bearer token of the remote signer, at least 32 characters; read by `samplero signer` and by the `remote` backend"},
	{Name: "SAMPLERO_SIGNER_HMAC_SECRET", Secret: true, Doc: "HMAC key of the remote signer's request signatures, at least 32 characters, not the token; read by both sides"},
	{Name: "SAMPLERO_SIGNER_CA", Doc: "PEM file of the CA the signer's TLS certificate chains to; unset = system roots"},
	{Name: "SAMPLERO_SIGNER_CLIENT_CERT", Doc: "client certificate (PEM) this server presents to the signer's mutual TLS; with `_KEY`"},
	{Name: "SAMPLERO_SIGNER_CLIENT_KEY", Doc: "its key (PEM)"},
	{Name: "SAMPLERO_STEPCA_URL", Doc: "step-ca's base URL, `https://host:port` (the host one of step-ca's dnsNames); required with `stepca`"},
	{Name: "SAMPLERO_STEPCA_ROOT", Doc: "PEM file of step-ca's root certificate (trusts step-ca's TLS, anchors the device chains); required with `stepca`"},
	{Name: "SAMPLERO_STEPCA_PROVISIONER", Doc: "name of step-ca's JWK provisioner for device certificates; required with `stepca`"},
	{Name: "SAMPLERO_STEPCA_PROVISIONER_KEY", Secret: true, Doc: "that provisioner's private key: a file path, or the key itself (JWK JSON or PEM); required with `stepca`"},
	{Name: "SAMPLERO_DEVICE_TLS_CERT", Doc: "PEM certificate chain of the device listener (leaf first); required by serve with `remote` or `stepca`; unset with `local` = one issued by the local CA"},
	{Name: "SAMPLERO_DEVICE_TLS_KEY", Doc: "its key (PEM); with `_CERT`"},
	{Name: "SAMPLERO_SIGNER_LISTEN", Default: "127.0.0.1:9443", Doc: "`samplero signer`'s listen address"},
}

// minSignerSecret matches remotesigner.MinSecretLen (config does not import adapters).
const minSignerSecret = 32

// signerSecrets reads the token and HMAC secret both sides share.
func (p *parser) signerSecrets() (token, secret Secret, err error) {
	token = Secret(p.env("SAMPLERO_SIGNER_TOKEN", ""))
	secret = Secret(p.env("SAMPLERO_SIGNER_HMAC_SECRET", ""))
	if !token.Set() || !secret.Set() {
		return "", "", usagef("the remote signer needs SAMPLERO_SIGNER_TOKEN and SAMPLERO_SIGNER_HMAC_SECRET")
	}
	if len(token) < minSignerSecret || len(secret) < minSignerSecret {
		return "", "", usagef("SAMPLERO_SIGNER_TOKEN and SAMPLERO_SIGNER_HMAC_SECRET must be at least %d characters", minSignerSecret)
	}
	if token == secret {
		return "", "", usagef("SAMPLERO_SIGNER_TOKEN and SAMPLERO_SIGNER_HMAC_SECRET must differ")
	}
	return token, secret, nil
}

// caBackend reads SAMPLERO_CA_BACKEND and, for `remote`, the signer's settings, for `stepca`,
// step-ca's. The lead calls it from common() (serve, worker, dev).
func (p *parser) caBackend() error {
	b := &p.cfg.CABackend
	b.Kind = strings.ToLower(p.env("SAMPLERO_CA_BACKEND", "local"))
	b.DeviceTLSCert = p.env("SAMPLERO_DEVICE_TLS_CERT", "")
	b.DeviceTLSKey = p.env("SAMPLERO_DEVICE_TLS_KEY", "")
	if (b.DeviceTLSCert == "") != (b.DeviceTLSKey == "") {
		return usagef("SAMPLERO_DEVICE_TLS_CERT and SAMPLERO_DEVICE_TLS_KEY go together")
	}
	switch b.Kind {
	case "local":
		return nil
	case "remote", "stepca":
	default:
		return usagef("SAMPLERO_CA_BACKEND=%q is not local, remote or stepca", b.Kind)
	}
	// serve's device listener needs a certificate, and with a remote signer or step-ca there is no
	// CA key on this host to make one. The worker listens to no device, so it does not need them.
	if p.cfg.Command == "serve" && b.DeviceTLSCert == "" {
		return usagef("SAMPLERO_CA_BACKEND=%s needs SAMPLERO_DEVICE_TLS_CERT and SAMPLERO_DEVICE_TLS_KEY (the device listener's certificate)", b.Kind)
	}
	if b.Kind == "stepca" {
		return p.stepCA()
	}
	b.URL = strings.TrimRight(p.env("SAMPLERO_SIGNER_URL", ""), "/")
	if b.URL == "" {
		return usagef("SAMPLERO_CA_BACKEND=remote needs SAMPLERO_SIGNER_URL")
	}
	u, err := url.Parse(b.URL)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return usagef("SAMPLERO_SIGNER_URL=%q is not an https URL", b.URL)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return usagef("SAMPLERO_SIGNER_URL=%q: plain http is allowed only to a loopback address", b.URL)
	}
	if b.Token, b.HMACSecret, err = p.signerSecrets(); err != nil {
		return err
	}
	b.CAFile = p.env("SAMPLERO_SIGNER_CA", "")
	b.ClientCert = p.env("SAMPLERO_SIGNER_CLIENT_CERT", "")
	b.ClientKey = p.env("SAMPLERO_SIGNER_CLIENT_KEY", "")
	if (b.ClientCert == "") != (b.ClientKey == "") {
		return usagef("SAMPLERO_SIGNER_CLIENT_CERT and SAMPLERO_SIGNER_CLIENT_KEY go together")
	}
	if u.Scheme == "http" && (b.CAFile != "" || b.ClientCert != "") {
		return usagef("SAMPLERO_SIGNER_CA and _CLIENT_CERT need an https SAMPLERO_SIGNER_URL")
	}
	return nil
}

// stepCA reads the `stepca` backend's settings. The adapter checks the root and the key's
// contents when boot builds it; here only their presence and the URL's form.
func (p *parser) stepCA() error {
	s := &p.cfg.CABackend.StepCA
	s.URL = strings.TrimRight(p.env("SAMPLERO_STEPCA_URL", ""), "/")
	s.RootFile = p.env("SAMPLERO_STEPCA_ROOT", "")
	s.Provisioner = p.env("SAMPLERO_STEPCA_PROVISIONER", "")
	s.ProvisionerKey = Secret(p.env("SAMPLERO_STEPCA_PROVISIONER_KEY", ""))
	var missing []string
	for _, v := range []struct{ name, val string }{
		{"SAMPLERO_STEPCA_URL", s.URL}, {"SAMPLERO_STEPCA_ROOT", s.RootFile},
		{"SAMPLERO_STEPCA_PROVISIONER", s.Provisioner}, {"SAMPLERO_STEPCA_PROVISIONER_KEY", s.ProvisionerKey.Reveal()},
	} {
		if strings.TrimSpace(v.val) == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return usagef("SAMPLERO_CA_BACKEND=stepca needs %s", strings.Join(missing, ", "))
	}
	// step-ca speaks TLS only, and the token's audience is this URL: no plain http, no path.
	u, err := url.Parse(s.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return usagef("SAMPLERO_STEPCA_URL=%q is not an https URL of the form https://host:port", s.URL)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const signerSynopsis = `[flags]

Runs the CA backend (the local CA under --pki-dir) as its own service for serve processes started
with SAMPLERO_CA_BACKEND=remote: GET /healthz, GET /v1/intermediates, GET /v1/root and
POST /v1/sign. Every call but /healthz needs the bearer token SAMPLERO_SIGNER_TOKEN and an
HMAC-SHA-256 with SAMPLERO_SIGNER_HMAC_SECRET (never given as flags). With --client-ca, clients must
also present a certificate from that CA (mutual TLS). Without --tls-cert the signer speaks plain HTTP,
allowed on a loopback address only. See docs/remote-signer.md.`

// signer parses `samplero signer [flags]`.
func (p *parser) signer(args []string) error {
	s := &p.cfg.Signer
	fs := p.flags("signer", signerSynopsis)
	fs.StringVar(&s.Listen, "listen", p.env("SAMPLERO_SIGNER_LISTEN", "127.0.0.1:9443"), "listen address (SAMPLERO_SIGNER_LISTEN)")
	fs.StringVar(&s.PKIDir, "pki-dir", p.env("SAMPLERO_PKI_DIR", ""), "the PKI directory holding the intermediates and their keys (SAMPLERO_PKI_DIR)")
	fs.StringVar(&s.TLSCert, "tls-cert", "", "the signer's TLS certificate chain (PEM)")
	fs.StringVar(&s.TLSKey, "tls-key", "", "its key (PEM)")
	fs.StringVar(&s.ClientCA, "client-ca", "", "require client certificates signed by this CA (PEM): the signer's own client CA, not the device CA")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("samplero signer takes no arguments (got %q)", fs.Arg(0))
	}
	if err := checkAddr("listen", s.Listen); err != nil {
		return err
	}
	if s.PKIDir == "" {
		return usagef("samplero signer needs --pki-dir or SAMPLERO_PKI_DIR")
	}
	abs, err := filepath.Abs(s.PKIDir)
	if err != nil {
		return err
	}
	s.PKIDir = abs
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if s.TLSCert == "" {
		host, _, _ := net.SplitHostPort(s.Listen)
		if !loopback(host) {
			return usagef("samplero signer without --tls-cert may listen on a loopback address only (got %s)", s.Listen)
		}
		if s.ClientCA != "" {
			return usagef("--client-ca needs --tls-cert and --tls-key")
		}
	}
	s.Token, s.HMACSecret, err = p.signerSecrets()
	return err
}
