// Package config is the only place that reads flags and the environment. It turns the command
// line and the SAMPLERO_* variables into one Config per subcommand; everything else is handed the
// values it needs. Secrets are held as Secret, which never prints its value.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Secret is a credential. Every way of printing it (fmt verbs, JSON, slog) shows "[redacted]";
// only Reveal gives the value.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoding/json and friends from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one call that needs it.
func (s Secret) Reveal() string { return string(s) }

// Set says whether the secret was configured.
func (s Secret) Set() bool { return s != "" }

// Env describes one environment variable; the README's table is generated from the same list.
type Env struct {
	Name    string
	Secret  bool
	Default string
	Doc     string
}

// Environment lists every variable the binary reads.
var Environment = append([]Env{
	{Name: "SAMPLERO_DATABASE_URL", Secret: true, Doc: "`postgres://user:pass@host:5432/db?sslmode=…` or `sqlite:PATH`; required by serve, migrate and admin (dev uses `sqlite:DIR/samplero.db`)"},
	{Name: "SAMPLERO_TEMPORAL_ADDRESS", Default: "127.0.0.1:7233", Doc: "Temporal frontend host:port (serve, worker; dev runs its own)"},
	{Name: "SAMPLERO_TEMPORAL_NAMESPACE", Default: "default", Doc: "Temporal namespace"},
	{Name: "SAMPLERO_TEMPORAL_TLS_CERT", Doc: "client certificate file (PEM) for Temporal mTLS; with `_KEY`"},
	{Name: "SAMPLERO_TEMPORAL_TLS_KEY", Doc: "client key file (PEM) for Temporal mTLS"},
	{Name: "SAMPLERO_TEMPORAL_TLS_CA", Doc: "CA file (PEM) that signs the Temporal frontend's certificate; any `_TLS_` variable turns TLS on"},
	{Name: "SAMPLERO_REDIS_URL", Secret: true, Doc: "`redis://…`: shared replay store and rate limiter for several serve processes; unset = the database's replay store and per-process limits"},
	{Name: "SAMPLERO_SMTP_URL", Secret: true, Doc: "`smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://…`; unset = the file outbox (dev, or worker `--outbox`)"},
	{Name: "SAMPLERO_RATE_LIMITS", Default: "on", Doc: "`off` disables rate limits; accepted only by `dev`"},
	{Name: "SAMPLERO_REQUIRE_MTLS", Default: "true", Doc: "refuse validate/heartbeat/deactivate/renew without a client certificate"},
	{Name: "SAMPLERO_TRUSTED_PROXIES", Doc: "comma-separated addresses or CIDRs of TLS proxies whose X-Forwarded-For / X-Client-Cert are believed"},
	{Name: "SAMPLERO_PROXY_TOKEN", Secret: true, Doc: "token a trusted proxy sends with X-Client-Cert"},
	{Name: "SAMPLERO_PUBLIC_URL", Doc: "public base URL, for links in e-mails; when `https://`, also the `mtls_url` devices are given (a TLS proxy in front); default: the HTTP address"},
	{Name: "SAMPLERO_KEY_LOOKUP_SECRET", Secret: true, Doc: "HMAC secret for license-key lookups, at least 32 characters; required by serve (dev keeps one in DIR/secrets)"},
	{Name: "SAMPLERO_KEY_ENCRYPTION_SECRET", Secret: true, Doc: "base64 of at least 32 random bytes: encrypts stored license keys; required by serve"},
	{Name: "SAMPLERO_SIGNING_KEYS_DIR", Doc: "directory of the Ed25519 response/lease keys (created on first start); required by serve (dev: DIR/keys)"},
	{Name: "SAMPLERO_PKI_DIR", Doc: "directory of the local CA hierarchy (created on first start); required by serve (dev: DIR/pki)"},
	{Name: "SAMPLERO_HTTP_ADDR", Default: "127.0.0.1:8080", Doc: "plain HTTP listener: web pages, admin and webhook APIs, device API without mTLS"},
	{Name: "SAMPLERO_DEVICE_ADDR", Default: "127.0.0.1:8443", Doc: "TLS device listener (client certificates verified if given)"},
	{Name: "SENTRY_DSN", Secret: true, Doc: "report panics and 5xx to Sentry (scrubbed); unset = off"},
	{Name: "SENDGRID_API_KEY", Secret: true, Doc: "send e-mail through SendGrid's v3 API (wins over SAMPLERO_SMTP_URL and the file outbox)"},
	{Name: "SAMPLERO_MAIL_FROM", Doc: "the From of every e-mail, e.g. `Vendor <noreply@vendor.example>`; default `<vendor name> <noreply@samplero.localhost>`"},
	{Name: "SAMPLERO_SUPPORT_EMAIL", Doc: "the support address e-mails show customers; unset = none shown"},
	{Name: "SAMPLERO_BRAND_COLOR", Default: "#0f766e", Doc: "the e-mails' header colour (`#rrggbb`)"},
	{Name: "SAMPLERO_ACCENT_COLOR", Default: "#b45309", Doc: "the e-mails' link and button colour (`#rrggbb`)"},
	{Name: "STRIPE_WEBHOOK_SECRET", Secret: true, Doc: "endpoint secret verifying `Stripe-Signature` on `POST /v1/webhooks/stripe` (also under dev); unset = that webhook answers 503"},
	{Name: "STRIPE_SECRET_KEY", Secret: true, Doc: "Stripe API key for Checkout Sessions and refunds; unset = `POST /v1/checkout` answers 503 `PAYMENTS_UNAVAILABLE` (coupons, admin orders and webhooks still work)"},
	{Name: "STRIPE_API_BASE", Doc: "Stripe API base URL; unset = Stripe itself (tests point it at stripe-mock)"},
	{Name: "SAMPLERO_WEBHOOK_SECRET", Secret: true, Doc: "HMAC secret of the generic payment webhook `POST /v1/webhooks/payment`; unset = that webhook answers 503"},
	{Name: "SAMPLERO_WEBHOOK_ALLOWED_IPS", Doc: "comma-separated addresses or CIDRs allowed to call the generic payment webhook (the client address is read through SAMPLERO_TRUSTED_PROXIES only); unset = any"},
	{Name: "SAMPLERO_OPERATOR_EMAIL", Doc: "address that receives support alerts (orders held for review, failed fulfilment); unset = none, the orders are still flagged"},
	{Name: "SAMPLERO_VENDOR_NAME", Default: "Samplero", Doc: "the vendor's name in e-mails"},
	{Name: "SAMPLERO_LINKS_SECRET", Secret: true, Doc: "at least 32 characters: signs order access tokens and local download links; required by serve and worker (dev keeps one in DIR/secrets)"},
	{Name: "SAMPLERO_DOWNLOAD_TTL", Default: "1h", Doc: "how long a download link works (Go duration)"},
	{Name: "SAMPLERO_CHECKOUT_SUCCESS_URL", Doc: "default Checkout success page; `{ORDER_ID}` is replaced (default PUBLIC_URL/checkout/success?order={ORDER_ID})"},
	{Name: "SAMPLERO_CHECKOUT_CANCEL_URL", Doc: "default Checkout cancel page; `{ORDER_ID}` is replaced (default PUBLIC_URL/checkout/cancel?order={ORDER_ID})"},
	{Name: "SAMPLERO_OBJECT_STORE", Default: "local", Doc: "`local` (files under SAMPLERO_ASSETS_DIR, links served by this server) or `s3`"},
	{Name: "SAMPLERO_ASSETS_DIR", Doc: "directory of the local object store; required by serve and worker with `local` (dev: DIR/assets)"},
	{Name: "SAMPLERO_S3_ENDPOINT", Doc: "S3-compatible endpoint URL; unset = AWS"},
	{Name: "SAMPLERO_S3_REGION", Default: "us-east-1", Doc: "S3 region"},
	{Name: "SAMPLERO_S3_BUCKET", Doc: "S3 bucket of product assets; required with `s3`"},
	{Name: "SAMPLERO_S3_ACCESS_KEY_ID", Doc: "S3 access key id"},
	{Name: "SAMPLERO_S3_SECRET_ACCESS_KEY", Secret: true, Doc: "S3 secret access key"},
	{Name: "SAMPLERO_S3_PATH_STYLE", Default: "false", Doc: "`true` for path-style S3 URLs (most self-hosted S3-compatible servers)"},
}, SignerEnvironment...)

// ObjectStore says where product assets live.
type ObjectStore struct {
	Kind            string // local | s3
	Dir             string // local
	Endpoint        string
	Region          string
	Bucket          string
	AccessKeyID     string
	SecretAccessKey Secret
	PathStyle       bool
}

// Commerce holds the settings of the commerce context and its adapters.
type Commerce struct {
	StripeAPIBase    string
	WebhookSecret    Secret
	WebhookAllowlist []netip.Prefix
	OperatorEmail    string
	VendorName       string
	MailFrom         string
	SupportEmail     string
	BrandColor       string
	AccentColor      string
	LinksSecret      Secret
	DownloadTTL      time.Duration
	SuccessURL       string
	CancelURL        string
	Objects          ObjectStore
}

// Temporal says how to reach Temporal.
type Temporal struct {
	Address   string
	Namespace string
	TLSCert   string
	TLSKey    string
	TLSCA     string
	// Port and UIPort are the dev server's ports (dev only).
	Port   int
	UIPort int
}

// TLSConfig loads the client TLS settings; nil when none is configured (plain connection).
func (t Temporal) TLSConfig() (*tls.Config, error) {
	if t.TLSCert == "" && t.TLSKey == "" && t.TLSCA == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		host = t.Address
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.TLSCert != "" || t.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("SAMPLERO_TEMPORAL_TLS_CERT/KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("SAMPLERO_TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("SAMPLERO_TEMPORAL_TLS_CA holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Device holds the flags of `samplero device …`, the reference client.
type Device struct {
	Action        string
	Server        string
	CAFile        string
	StateDir      string
	KeyType       string
	Fingerprint   string
	LicenseKey    Secret
	Product       string
	Platform      string
	PluginVersion string
	DeviceName    string
	Timeout       time.Duration
}

// Loadtest holds the flags of `samplero loadtest …`.
type Loadtest struct {
	Action         string
	Server         string
	CAFile         string
	AdminURL       string
	AdminTokenFile string
	Duration       time.Duration
	Concurrency    int
	Devices        int
	// CPU pins the load generator to this CPU (-1: no pinning).
	CPU int
	// ServerCPU is the server's CPU: the crypto ceiling is measured there (-1: not measured).
	ServerCPU int
	// ServerPID, when set, is the server process whose peak RSS (VmHWM) is reported.
	ServerPID int
	// VerifyEvery verifies one answer in this many in full (1: every answer).
	VerifyEvery int
	// Warmup is the number of validate requests sent before the measured run (to grow the
	// replay store).
	Warmup int
	// SeatsUsed is the number of activations made on the license before activate is measured.
	SeatsUsed int
}

// Config is everything one run of the binary needs.
type Config struct {
	Command string

	DataDir     string // dev: everything lives here
	HTTPAddr    string
	DeviceAddr  string
	DatabaseURL Secret
	Temporal    Temporal
	RedisURL    Secret
	SMTPURL     Secret
	OutboxDir   string // worker: file outbox when no SMTP URL
	RateLimits  bool
	RequireMTLS bool

	TrustedProxies []netip.Prefix
	ProxyToken     Secret
	PublicURL      string

	KeyLookupSecret     Secret
	KeyEncryptionSecret Secret // decoded bytes
	SigningKeysDir      string
	PKIDir              string

	SentryDSN           Secret
	SendGridAPIKey      Secret
	StripeWebhookSecret Secret
	StripeSecretKey     Secret
	Commerce            Commerce

	// MigrateAction is up, down or status.
	MigrateAction string
	// AdminTokenName names the token `admin token create` makes.
	AdminTokenName string

	Device   Device
	Loadtest Loadtest
	PKI      PKI

	Signer    Signer
	CABackend CABackend
}

// String lists the configuration, secrets redacted, for the startup log.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "command=%s", c.Command)
	add := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "0" && s != "[]" {
			fmt.Fprintf(&b, " %s=%s", k, s)
		}
	}
	add("data", c.DataDir)
	add("http", c.HTTPAddr)
	add("device", c.DeviceAddr)
	add("database", redactURL(c.DatabaseURL))
	add("temporal", c.Temporal.Address)
	add("namespace", c.Temporal.Namespace)
	add("redis", redactURL(c.RedisURL))
	add("smtp", redactURL(c.SMTPURL))
	add("rate_limits", c.RateLimits)
	add("require_mtls", c.RequireMTLS)
	add("trusted_proxies", c.TrustedProxies)
	add("public_url", c.PublicURL)
	add("signing_keys", c.SigningKeysDir)
	add("pki", c.PKIDir)
	add("sentry", c.SentryDSN.Set())
	return b.String()
}

// redactURL keeps the scheme, host and path of a URL secret and drops its credentials and query.
func redactURL(s Secret) string {
	if !s.Set() {
		return ""
	}
	u, err := url.Parse(s.Reveal())
	if err != nil {
		return redacted
	}
	if u.Opaque != "" { // sqlite:PATH
		return u.Scheme + ":" + u.Opaque
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}

// SafeDatabaseURL is the database URL without credentials, for messages.
func (c Config) SafeDatabaseURL() string { return redactURL(c.DatabaseURL) }

// ErrHelp is returned after --help printed the usage: exit 0.
var ErrHelp = flag.ErrHelp

// UsageError is a command line that does not parse or a configuration that is not allowed: exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// Usage is the top-level help.
const Usage = `samplero: the Samplero license server

Usage:
  samplero dev       [flags]          everything on one machine (SQLite, Temporal dev server, local CA)
  samplero serve     [flags]          HTTP and device listeners (PostgreSQL, external Temporal)
  samplero worker    [flags]          Temporal worker (workflows and activities)
  samplero migrate   up|down|status   apply or roll back the schema
  samplero admin     token create --name N
  samplero device    activate|validate|heartbeat|deactivate|renew|status   the reference client
  samplero loadtest  validate|heartbeat|activate|ceiling
  samplero signer    [flags]          the CA backend as its own service (remote signer)
  samplero pki       init-root|new-intermediate|sign-intermediate|bundle|audit|status|…   the CA hierarchy

Run "samplero <command> --help" for the flags of a command. Configuration comes from flags and the
SAMPLERO_* environment variables (see README.md); flags win.
`

// Parse reads args (without the program name) and the environment through getenv. Help and
// errors are written to out.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(out, Usage)
		if len(args) == 0 {
			return Config{}, usagef("no command given")
		}
		return Config{}, ErrHelp
	}
	p := &parser{getenv: getenv, out: out, cfg: Config{Command: args[0]}}
	var err error
	switch args[0] {
	case "dev":
		err = p.dev(args[1:])
	case "serve":
		err = p.serve(args[1:])
	case "worker":
		err = p.worker(args[1:])
	case "migrate":
		err = p.migrate(args[1:])
	case "admin":
		err = p.admin(args[1:])
	case "device":
		err = p.device(args[1:])
	case "loadtest":
		err = p.loadtest(args[1:])
	case "pki":
		err = p.pki(args[1:])
	case "signer":
		err = p.signer(args[1:])
	default:
		fmt.Fprint(out, Usage)
		return Config{}, usagef("unknown command %q", args[0])
	}
	if err != nil {
		return Config{}, err
	}
	return p.cfg, nil
}

type parser struct {
	getenv func(string) string
	out    io.Writer
	cfg    Config
}

func (p *parser) env(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("samplero "+name, flag.ContinueOnError)
	fs.SetOutput(p.out)
	fs.Usage = func() {
		fmt.Fprintf(p.out, "Usage: samplero %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func (p *parser) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return &UsageError{Msg: err.Error()}
	}
	return nil
}

func (p *parser) boolEnv(name string, def bool) (bool, error) {
	v := p.env(name, "")
	if v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "1", "true", "on", "yes":
		return true, nil
	case "0", "false", "off", "no":
		return false, nil
	}
	return false, usagef("%s=%q is not on/off", name, v)
}

// common reads the environment every server mode shares.
func (p *parser) common() error {
	c := &p.cfg
	c.DatabaseURL = Secret(p.env("SAMPLERO_DATABASE_URL", ""))
	c.Temporal = Temporal{
		Address:   p.env("SAMPLERO_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		Namespace: p.env("SAMPLERO_TEMPORAL_NAMESPACE", "default"),
		TLSCert:   p.env("SAMPLERO_TEMPORAL_TLS_CERT", ""),
		TLSKey:    p.env("SAMPLERO_TEMPORAL_TLS_KEY", ""),
		TLSCA:     p.env("SAMPLERO_TEMPORAL_TLS_CA", ""),
	}
	if (c.Temporal.TLSCert == "") != (c.Temporal.TLSKey == "") {
		return usagef("SAMPLERO_TEMPORAL_TLS_CERT and SAMPLERO_TEMPORAL_TLS_KEY go together")
	}
	c.RedisURL = Secret(p.env("SAMPLERO_REDIS_URL", ""))
	c.SMTPURL = Secret(p.env("SAMPLERO_SMTP_URL", ""))
	limits := p.env("SAMPLERO_RATE_LIMITS", "on")
	switch strings.ToLower(limits) {
	case "on", "true", "1":
		c.RateLimits = true
	case "off", "false", "0":
		if c.Command != "dev" {
			return usagef("SAMPLERO_RATE_LIMITS=off is accepted only by samplero dev")
		}
	default:
		return usagef("SAMPLERO_RATE_LIMITS=%q is not on/off", limits)
	}
	var err error
	if c.RequireMTLS, err = p.boolEnv("SAMPLERO_REQUIRE_MTLS", true); err != nil {
		return err
	}
	if c.TrustedProxies, err = parsePrefixes("SAMPLERO_TRUSTED_PROXIES", p.env("SAMPLERO_TRUSTED_PROXIES", "")); err != nil {
		return err
	}
	c.ProxyToken = Secret(p.env("SAMPLERO_PROXY_TOKEN", ""))
	c.PublicURL = p.env("SAMPLERO_PUBLIC_URL", "")
	c.KeyLookupSecret = Secret(p.env("SAMPLERO_KEY_LOOKUP_SECRET", ""))
	if enc := p.env("SAMPLERO_KEY_ENCRYPTION_SECRET", ""); enc != "" {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return usagef("SAMPLERO_KEY_ENCRYPTION_SECRET is not standard base64")
		}
		c.KeyEncryptionSecret = Secret(raw)
	}
	c.SigningKeysDir = p.env("SAMPLERO_SIGNING_KEYS_DIR", "")
	c.PKIDir = p.env("SAMPLERO_PKI_DIR", "")
	c.SentryDSN = Secret(p.env("SENTRY_DSN", ""))
	c.SendGridAPIKey = Secret(p.env("SENDGRID_API_KEY", ""))
	c.StripeWebhookSecret = Secret(p.env("STRIPE_WEBHOOK_SECRET", ""))
	c.StripeSecretKey = Secret(p.env("STRIPE_SECRET_KEY", ""))
	if err := p.caBackend(); err != nil {
		return err
	}
	return p.commerce()
}

// commerce reads the commerce settings.
func (p *parser) commerce() error {
	m := &p.cfg.Commerce
	m.StripeAPIBase = p.env("STRIPE_API_BASE", "")
	if m.StripeAPIBase != "" {
		if u, err := url.Parse(m.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("STRIPE_API_BASE=%q is not an http(s) URL", m.StripeAPIBase)
		}
	}
	m.WebhookSecret = Secret(p.env("SAMPLERO_WEBHOOK_SECRET", ""))
	var err error
	if m.WebhookAllowlist, err = parsePrefixes("SAMPLERO_WEBHOOK_ALLOWED_IPS", p.env("SAMPLERO_WEBHOOK_ALLOWED_IPS", "")); err != nil {
		return err
	}
	m.OperatorEmail = p.env("SAMPLERO_OPERATOR_EMAIL", "")
	if m.OperatorEmail != "" && !strings.Contains(m.OperatorEmail, "@") {
		return usagef("SAMPLERO_OPERATOR_EMAIL=%q is not an e-mail address", m.OperatorEmail)
	}
	m.VendorName = p.env("SAMPLERO_VENDOR_NAME", "Samplero")
	m.MailFrom = p.env("SAMPLERO_MAIL_FROM", m.VendorName+" <noreply@samplero.localhost>")
	m.SupportEmail = p.env("SAMPLERO_SUPPORT_EMAIL", "")
	m.BrandColor = p.env("SAMPLERO_BRAND_COLOR", "#0f766e")
	m.AccentColor = p.env("SAMPLERO_ACCENT_COLOR", "#b45309")
	for name, v := range map[string]string{"SAMPLERO_BRAND_COLOR": m.BrandColor, "SAMPLERO_ACCENT_COLOR": m.AccentColor} {
		if !isHexColor(v) {
			return usagef("%s=%q is not a #rrggbb colour", name, v)
		}
	}
	if _, err := mail.ParseAddress(m.MailFrom); err != nil {
		return usagef("SAMPLERO_MAIL_FROM=%q is not an address", m.MailFrom)
	}
	m.LinksSecret = Secret(p.env("SAMPLERO_LINKS_SECRET", ""))
	if m.LinksSecret.Set() && len(m.LinksSecret) < 32 {
		return usagef("SAMPLERO_LINKS_SECRET must be at least 32 characters")
	}
	ttl := p.env("SAMPLERO_DOWNLOAD_TTL", "1h")
	if m.DownloadTTL, err = time.ParseDuration(ttl); err != nil || m.DownloadTTL < time.Minute || m.DownloadTTL > 7*24*time.Hour {
		return usagef("SAMPLERO_DOWNLOAD_TTL=%q must be a duration from 1m to 168h", ttl)
	}
	m.SuccessURL = p.env("SAMPLERO_CHECKOUT_SUCCESS_URL", "")
	m.CancelURL = p.env("SAMPLERO_CHECKOUT_CANCEL_URL", "")
	o := &m.Objects
	o.Kind = strings.ToLower(p.env("SAMPLERO_OBJECT_STORE", "local"))
	o.Dir = p.env("SAMPLERO_ASSETS_DIR", "")
	o.Endpoint = p.env("SAMPLERO_S3_ENDPOINT", "")
	o.Region = p.env("SAMPLERO_S3_REGION", "us-east-1")
	o.Bucket = p.env("SAMPLERO_S3_BUCKET", "")
	o.AccessKeyID = p.env("SAMPLERO_S3_ACCESS_KEY_ID", "")
	o.SecretAccessKey = Secret(p.env("SAMPLERO_S3_SECRET_ACCESS_KEY", ""))
	if o.PathStyle, err = p.boolEnv("SAMPLERO_S3_PATH_STYLE", false); err != nil {
		return err
	}
	switch o.Kind {
	case "local":
	case "s3":
		if o.Bucket == "" || o.AccessKeyID == "" || !o.SecretAccessKey.Set() {
			return usagef("SAMPLERO_OBJECT_STORE=s3 needs SAMPLERO_S3_BUCKET, SAMPLERO_S3_ACCESS_KEY_ID and SAMPLERO_S3_SECRET_ACCESS_KEY")
		}
	default:
		return usagef("SAMPLERO_OBJECT_STORE=%q is not local or s3", o.Kind)
	}
	return nil
}

// isHexColor accepts #rrggbb only: the value is written into e-mail CSS.
func isHexColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for _, c := range s[1:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// parsePrefixes reads a comma-separated list of addresses and CIDRs (the variable name is for errors).
func parsePrefixes(name, s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "/") {
			pfx, err := netip.ParsePrefix(part)
			if err != nil {
				return nil, usagef("%s: %q is not an address or CIDR", name, part)
			}
			out = append(out, pfx.Masked())
			continue
		}
		addr, err := netip.ParseAddr(part)
		if err != nil {
			return nil, usagef("%s: %q is not an address or CIDR", name, part)
		}
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out, nil
}

func (p *parser) listenFlags(fs *flag.FlagSet) {
	fs.StringVar(&p.cfg.HTTPAddr, "http", p.env("SAMPLERO_HTTP_ADDR", "127.0.0.1:8080"), "plain HTTP listener address (SAMPLERO_HTTP_ADDR)")
	fs.StringVar(&p.cfg.DeviceAddr, "device", p.env("SAMPLERO_DEVICE_ADDR", "127.0.0.1:8443"), "TLS device listener address (SAMPLERO_DEVICE_ADDR)")
}

func checkAddr(flagName, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--%s %q is not host:port", flagName, addr)
	}
	return nil
}

func (p *parser) dev(args []string) error {
	if err := p.common(); err != nil {
		return err
	}
	c := &p.cfg
	fs := p.flags("dev", "[flags]")
	fs.StringVar(&c.DataDir, "data", "./.samplero", "data directory: SQLite database, CA, keys, secrets, outbox, Temporal's database")
	p.listenFlags(fs)
	fs.IntVar(&c.Temporal.Port, "temporal-port", 7233, "port of the Temporal dev server's frontend")
	fs.IntVar(&c.Temporal.UIPort, "temporal-ui-port", 8233, "port of the Temporal Web UI")
	fs.BoolVar(&c.RequireMTLS, "require-mtls", c.RequireMTLS, "refuse certificate-bound device calls without a client certificate (SAMPLERO_REQUIRE_MTLS)")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("samplero dev takes no arguments")
	}
	for name, addr := range map[string]string{"http": c.HTTPAddr, "device": c.DeviceAddr} {
		if err := checkAddr(name, addr); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = dir
	if !c.DatabaseURL.Set() {
		c.DatabaseURL = Secret("sqlite:" + filepath.Join(dir, "samplero.db"))
	}
	c.Temporal.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Temporal.Port))
	c.Temporal.TLSCert, c.Temporal.TLSKey, c.Temporal.TLSCA = "", "", ""
	if c.SigningKeysDir == "" {
		c.SigningKeysDir = filepath.Join(dir, "keys")
	}
	if c.PKIDir == "" {
		c.PKIDir = filepath.Join(dir, "pki")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	if c.Commerce.Objects.Kind == "local" && c.Commerce.Objects.Dir == "" {
		c.Commerce.Objects.Dir = filepath.Join(dir, "assets")
	}
	return nil
}

// requireServerSecrets checks what a production process cannot start without.
func (p *parser) requireServerSecrets() error {
	c := &p.cfg
	var missing []string
	if !c.DatabaseURL.Set() {
		missing = append(missing, "SAMPLERO_DATABASE_URL")
	}
	if !c.KeyLookupSecret.Set() {
		missing = append(missing, "SAMPLERO_KEY_LOOKUP_SECRET")
	}
	if !c.KeyEncryptionSecret.Set() {
		missing = append(missing, "SAMPLERO_KEY_ENCRYPTION_SECRET")
	}
	if c.SigningKeysDir == "" {
		missing = append(missing, "SAMPLERO_SIGNING_KEYS_DIR")
	}
	if c.PKIDir == "" {
		missing = append(missing, "SAMPLERO_PKI_DIR")
	}
	if !c.Commerce.LinksSecret.Set() {
		missing = append(missing, "SAMPLERO_LINKS_SECRET")
	}
	if c.Commerce.Objects.Kind == "local" && c.Commerce.Objects.Dir == "" {
		missing = append(missing, "SAMPLERO_ASSETS_DIR")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return usagef("samplero %s needs %s", c.Command, strings.Join(missing, ", "))
	}
	if len(c.KeyLookupSecret) < 32 {
		return usagef("SAMPLERO_KEY_LOOKUP_SECRET must be at least 32 characters")
	}
	if len(c.KeyEncryptionSecret) < 32 {
		return usagef("SAMPLERO_KEY_ENCRYPTION_SECRET must decode to at least 32 bytes")
	}
	return nil
}

func (p *parser) serve(args []string) error {
	if err := p.common(); err != nil {
		return err
	}
	c := &p.cfg
	fs := p.flags("serve", "[flags]")
	p.listenFlags(fs)
	fs.BoolVar(&c.RequireMTLS, "require-mtls", c.RequireMTLS, "refuse certificate-bound device calls without a client certificate (SAMPLERO_REQUIRE_MTLS)")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("samplero serve takes no arguments")
	}
	for name, addr := range map[string]string{"http": c.HTTPAddr, "device": c.DeviceAddr} {
		if err := checkAddr(name, addr); err != nil {
			return err
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	return p.requireServerSecrets()
}

func (p *parser) worker(args []string) error {
	if err := p.common(); err != nil {
		return err
	}
	c := &p.cfg
	fs := p.flags("worker", "[flags]")
	fs.StringVar(&c.OutboxDir, "outbox", "", "write e-mail as files into this directory when SAMPLERO_SMTP_URL is unset")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("samplero worker takes no arguments")
	}
	if !c.SendGridAPIKey.Set() && !c.SMTPURL.Set() && c.OutboxDir == "" {
		return usagef("samplero worker needs SENDGRID_API_KEY, SAMPLERO_SMTP_URL or --outbox DIR to deliver e-mail")
	}
	if c.PublicURL == "" {
		return usagef("samplero worker needs SAMPLERO_PUBLIC_URL: the links of the delivery e-mails point there")
	}
	// The fulfilment activities issue licenses and render delivery e-mails: the worker needs the
	// database and the same secrets as serve.
	return p.requireServerSecrets()
}

// databaseFlags lets migrate and admin name the database by flag, by environment, or by the data
// directory of dev.
func (p *parser) databaseFlags(fs *flag.FlagSet) (dsn, data *string) {
	dsn = fs.String("database", "", "database URL (default SAMPLERO_DATABASE_URL)")
	data = fs.String("data", "", "use the SQLite database of `samplero dev --data DIR`")
	return dsn, data
}

func (p *parser) resolveDatabase(dsn, data string) error {
	c := &p.cfg
	switch {
	case dsn != "":
		c.DatabaseURL = Secret(dsn)
	case c.DatabaseURL.Set():
	case data != "":
		abs, err := filepath.Abs(data)
		if err != nil {
			return err
		}
		c.DataDir = abs
		c.DatabaseURL = Secret("sqlite:" + filepath.Join(abs, "samplero.db"))
	default:
		return usagef("samplero %s needs --database, --data or SAMPLERO_DATABASE_URL", c.Command)
	}
	return nil
}

func (p *parser) migrate(args []string) error {
	if err := p.common(); err != nil {
		return err
	}
	fs := p.flags("migrate", "up|down|status [flags]")
	dsn, data := p.databaseFlags(fs)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		p.cfg.MigrateAction, args = args[0], args[1:]
	}
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if p.cfg.MigrateAction == "" && fs.NArg() > 0 {
		p.cfg.MigrateAction = fs.Arg(0)
	}
	switch p.cfg.MigrateAction {
	case "up", "down", "status":
	default:
		fs.Usage()
		return usagef("samplero migrate needs up, down or status")
	}
	return p.resolveDatabase(*dsn, *data)
}

func (p *parser) admin(args []string) error {
	if err := p.common(); err != nil {
		return err
	}
	fs := p.flags("admin", "token create --name N [flags]")
	dsn, data := p.databaseFlags(fs)
	fs.StringVar(&p.cfg.AdminTokenName, "name", "", "name of the new admin token")
	var words []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		words, args = append(words, args[0]), args[1:]
	}
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if strings.Join(words, " ") != "token create" {
		fs.Usage()
		return usagef("samplero admin knows only: token create --name N")
	}
	if p.cfg.AdminTokenName == "" {
		return usagef("samplero admin token create needs --name")
	}
	return p.resolveDatabase(*dsn, *data)
}

func (p *parser) device(args []string) error {
	d := &p.cfg.Device
	fs := p.flags("device", "activate|validate|heartbeat|deactivate|renew|status [flags]")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		d.Action, args = args[0], args[1:]
	}
	var licenseKey string
	fs.StringVar(&d.Server, "server", "https://127.0.0.1:8443", "device base URL")
	fs.StringVar(&d.CAFile, "ca", "./.samplero/pki/ca-chain.pem", "PEM file of the CA chain the server's TLS certificate chains to")
	fs.StringVar(&d.StateDir, "state", "./.samplero-device", "directory holding this device's key, certificate and lease")
	fs.StringVar(&d.KeyType, "key-type", "p256", "device key type: p256, ed25519 or rsa")
	fs.StringVar(&d.Fingerprint, "fingerprint", "", "device fingerprint (default: derived from the host name)")
	fs.StringVar(&licenseKey, "license-key", "", "license key (activate, status)")
	fs.StringVar(&d.Product, "product", "", "product slug")
	fs.StringVar(&d.Platform, "platform", defaultPlatform(), "mac, win or linux")
	fs.StringVar(&d.PluginVersion, "plugin-version", "1.0.0", "version reported by the device")
	fs.StringVar(&d.DeviceName, "device-name", "", "optional device name")
	fs.DurationVar(&d.Timeout, "timeout", 30*time.Second, "per-request timeout")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	d.LicenseKey = Secret(licenseKey)
	switch d.Action {
	case "activate", "validate", "heartbeat", "deactivate", "renew", "status":
	default:
		fs.Usage()
		return usagef("samplero device needs activate, validate, heartbeat, deactivate, renew or status")
	}
	switch d.KeyType {
	case "p256", "ed25519", "rsa":
	default:
		return usagef("--key-type %q is not p256, ed25519 or rsa", d.KeyType)
	}
	if (d.Action == "activate" || d.Action == "status") && !d.LicenseKey.Set() {
		return usagef("samplero device %s needs --license-key", d.Action)
	}
	return nil
}

func defaultPlatform() string {
	switch runtime.GOOS {
	case "darwin":
		return "mac"
	case "windows":
		return "win"
	default:
		return "linux"
	}
}

func (p *parser) loadtest(args []string) error {
	l := &p.cfg.Loadtest
	fs := p.flags("loadtest", "validate|heartbeat|activate|ceiling [flags]")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		l.Action, args = args[0], args[1:]
	}
	fs.StringVar(&l.Server, "server", "https://127.0.0.1:8443", "device base URL")
	fs.StringVar(&l.CAFile, "ca", "./.samplero/pki/ca-chain.pem", "PEM file of the server's CA chain")
	fs.StringVar(&l.AdminURL, "admin", "http://127.0.0.1:8080", "admin API base URL (creates the product and licenses)")
	fs.StringVar(&l.AdminTokenFile, "admin-token-file", "./.samplero/admin-token", "file holding an admin token")
	fs.DurationVar(&l.Duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&l.Concurrency, "concurrency", 8, "parallel clients")
	fs.IntVar(&l.Devices, "devices", 8, "activated devices to spread validate/heartbeat over")
	fs.IntVar(&l.CPU, "cpu", -1, "pin the load generator to this CPU (-1: no pinning)")
	fs.IntVar(&l.ServerCPU, "server-cpu", -1, "the server's CPU: measure the crypto ceiling there first (-1: skip)")
	fs.IntVar(&l.ServerPID, "server-pid", 0, "the server's process id: report its peak RSS (VmHWM)")
	fs.IntVar(&l.VerifyEvery, "verify-every", 16, "verify one answer in this many in full (1: all)")
	fs.IntVar(&l.Warmup, "warmup", 0, "validate: requests sent before the measured run (grows the replay store)")
	fs.IntVar(&l.SeatsUsed, "seats-used", 0, "activate: activations made on the license before the measured run")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	switch l.Action {
	case "validate", "heartbeat", "activate", "ceiling":
	default:
		fs.Usage()
		return usagef("samplero loadtest needs validate, heartbeat, activate or ceiling")
	}
	if l.Concurrency < 1 || l.Devices < 1 || l.Duration <= 0 || l.VerifyEvery < 1 {
		return usagef("--concurrency, --devices, --duration and --verify-every must be positive")
	}
	if l.Warmup < 0 || l.SeatsUsed < 0 {
		return usagef("--warmup and --seats-used must not be negative")
	}
	return nil
}
