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
// SAMPLERO_PKI_DIR) or `remote` (a `samplero signer`).
type CABackend struct {
	Kind       string // local | remote
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
}

// SignerEnvironment documents the variables read here; the lead appends it to Environment.
var SignerEnvironment = []Env{
	{Name: "SAMPLERO_CA_BACKEND", Default: "local", Doc: "`local` (the CA files under SAMPLERO_PKI_DIR) or `remote` (a `samplero signer` at SAMPLERO_SIGNER_URL; serve then needs SAMPLERO_DEVICE_TLS_CERT; not for dev): see docs/remote-signer.md"},
	{Name: "SAMPLERO_SIGNER_URL", Doc: "the remote signer's base URL, `https://host:port` (`http://` only to a loopback address); required with `remote`"},
	{Name: "SAMPLERO_SIGNER_TOKEN", Secret: true, Doc: "bearer token of the remote signer, at least 32 characters; read by `samplero signer` and by the `remote` backend"},
	{Name: "SAMPLERO_SIGNER_HMAC_SECRET", Secret: true, Doc: "HMAC key of the remote signer's request signatures, at least 32 characters, not the token; read by both sides"},
	{Name: "SAMPLERO_SIGNER_CA", Doc: "PEM file of the CA the signer's TLS certificate chains to; unset = system roots"},
	{Name: "SAMPLERO_SIGNER_CLIENT_CERT", Doc: "client certificate (PEM) this server presents to the signer's mutual TLS; with `_KEY`"},
	{Name: "SAMPLERO_SIGNER_CLIENT_KEY", Doc: "its key (PEM)"},
	{Name: "SAMPLERO_DEVICE_TLS_CERT", Doc: "PEM certificate chain of the device listener (leaf first); required by serve with `remote`; unset with `local` = one issued by the local CA"},
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

// caBackend reads SAMPLERO_CA_BACKEND and, for `remote`, the signer's settings. The lead calls it
// from common() (serve, worker, dev).
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
	case "remote":
	default:
		return usagef("SAMPLERO_CA_BACKEND=%q is not local or remote", b.Kind)
	}
	// serve's device listener needs a certificate, and with a remote signer there is no CA key on
	// this host to make one. The worker listens to no device, so it does not need them.
	if p.cfg.Command == "serve" && b.DeviceTLSCert == "" {
		return usagef("SAMPLERO_CA_BACKEND=remote needs SAMPLERO_DEVICE_TLS_CERT and SAMPLERO_DEVICE_TLS_KEY (the device listener's certificate)")
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
