// Package boot is the composition root: it builds the adapters from a config.Config, hands them to
// the cores, and runs the processes (dev, serve, worker) with graceful shutdown. Nothing below cmd
// reads configuration; everything it needs is passed in here.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/argon2"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/emailtmpl"
	"github.com/samplero/samplero/adapters/filemail"
	"github.com/samplero/samplero/adapters/httpapi"
	"github.com/samplero/samplero/adapters/keyvault"
	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/sendgridmail"
	"github.com/samplero/samplero/adapters/sentryobs"
	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/adapters/smtpmail"
	"github.com/samplero/samplero/adapters/stepca"
	"github.com/samplero/samplero/adapters/temporalclient"
	"github.com/samplero/samplero/adapters/web"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/commerce"
	"github.com/samplero/samplero/core/customers"
	"github.com/samplero/samplero/core/licensing"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
)

// systemClock is the production ports.Clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// NewLogger returns the process logger: JSON lines on out. Secrets never reach it: config values
// are Secret, and the adapters log ids, never keys.
func NewLogger(out io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// issuerName is the iss of leases and GET /v1/keys.
const issuerName = "samplero"

// Server is everything a serving process holds: the store, the Temporal client and the cores,
// and the HTTP app built on them.
type Server struct {
	Cfg      config.Config
	Log      *slog.Logger
	Store    *pgstore.Store
	Temporal *temporalclient.Client
	// CA is the local CA (SAMPLERO_CA_BACKEND=local); nil with a remote signer or step-ca.
	CA *casigner.LocalCA
	// CAStore is the issuer backend the PKI core signs with: the local CA or the remote signer;
	// nil with step-ca.
	CAStore ports.CAKeyStore
	// PKI and Health are the server's own PKI service and its rollout health figures
	// (pki_rollout.go); both nil with step-ca, which issues from its own intermediate.
	PKI    *pki.Service
	Health *pki.Health
	// StepCA is the step-ca issuer (SAMPLERO_CA_BACKEND=stepca, stepca.go); nil otherwise.
	StepCA *stepca.Issuer
	// Issuer is the device-certificate issuer of the licensing core and the HTTP adapter: Health
	// (the PKI service) with local and remote, the step-ca issuer with stepca.
	Issuer    ports.CertificateIssuer
	Keys      *serverkeys.Keys
	Licenses  *licensing.Service
	Commerce  *commerce.Service
	Customers *customers.Service
	Reporter  *sentryobs.Reporter
	App       *fiber.App
	// pingShared checks Redis when it holds the replay store.
	pingShared func(context.Context) error
	// closers run in reverse order at Close.
	closers []func()
}

// Close releases what Build opened, newest first.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// OpenStore opens the database and applies the migrations when migrate is true.
func OpenStore(ctx context.Context, cfg config.Config, migrate bool) (*pgstore.Store, error) {
	opts := []pgstore.Option{pgstore.WithClock(systemClock{})}
	if cfg.Command == "dev" && !strings.HasPrefix(cfg.DatabaseURL.Reveal(), "postgres") {
		// dev owns its SQLite file: it is the only writer, so reads may be cached in memory.
		opts = append(opts, pgstore.WithReadCache())
	}
	store, err := pgstore.Open(ctx, cfg.DatabaseURL.Reveal(), opts...)
	if err != nil {
		return nil, fmt.Errorf("opening the database %s: %w", cfg.SafeDatabaseURL(), err)
	}
	if migrate {
		if err := store.Migrator().Up(ctx); err != nil {
			store.Close()
			return nil, fmt.Errorf("migrating %s: %w", cfg.SafeDatabaseURL(), err)
		}
	}
	return store, nil
}

// Renderer is the e-mail renderer: every template in the vendor's name and colours.
func Renderer(cfg config.Config) (*emailtmpl.Renderer, error) {
	return emailtmpl.New(emailtmpl.Options{
		VendorName:   cfg.Commerce.VendorName,
		BrandColor:   cfg.Commerce.BrandColor,
		AccentColor:  cfg.Commerce.AccentColor,
		SupportEmail: cfg.Commerce.SupportEmail,
	})
}

// Mailer picks the mail adapter: SendGrid when SENDGRID_API_KEY is set, else SMTP when
// SAMPLERO_SMTP_URL is set, else the file outbox.
func Mailer(cfg config.Config) (ports.Mailer, error) {
	if cfg.SendGridAPIKey.Set() {
		return sendgridmail.New(sendgridmail.Options{APIKey: cfg.SendGridAPIKey.Reveal(), From: cfg.Commerce.MailFrom})
	}
	if cfg.SMTPURL.Set() {
		return smtpmail.New(cfg.SMTPURL.Reveal(), smtpmail.Options{})
	}
	dir := cfg.OutboxDir
	if dir == "" && cfg.DataDir != "" {
		dir = filepath.Join(cfg.DataDir, "outbox")
	}
	if dir == "" {
		return nil, errors.New("no mailer: set SAMPLERO_SMTP_URL or an outbox directory")
	}
	return filemail.New(dir, filemail.Options{Clock: systemClock{}})
}

// keySecrets returns the license-key secrets: from the environment, or (dev) from DIR/secrets.
func keySecrets(cfg config.Config) (lookup, enc []byte, err error) {
	if cfg.KeyLookupSecret.Set() && cfg.KeyEncryptionSecret.Set() {
		return []byte(cfg.KeyLookupSecret.Reveal()), []byte(cfg.KeyEncryptionSecret.Reveal()), nil
	}
	if cfg.Command != "dev" {
		return nil, nil, errors.New("SAMPLERO_KEY_LOOKUP_SECRET and SAMPLERO_KEY_ENCRYPTION_SECRET are required")
	}
	return keyvault.LoadOrCreateSecrets(cfg.DataDir)
}

// Build wires a serving process: store (already open), Temporal client, CA backend (local, remote
// signer or step-ca), server keys, key vault, the licensing and PKI cores, the replay store and limiter, and the HTTP app.
func Build(ctx context.Context, cfg config.Config, log *slog.Logger, store *pgstore.Store, tc *temporalclient.Client) (*Server, error) {
	s := &Server{Cfg: cfg, Log: log, Store: store, Temporal: tc}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	if s.Reporter, err = sentryobs.New(sentryobs.Options{DSN: cfg.SentryDSN.Reveal(), Environment: cfg.Command}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { s.Reporter.Flush(2 * time.Second) })

	if err := s.openCA(ctx, cfg, store, log); err != nil {
		return nil, err
	}
	lookup, enc, err := keySecrets(cfg)
	if err != nil {
		return nil, err
	}
	vault, err := keyvault.New(lookup, enc)
	if err != nil {
		return nil, err
	}
	deviceURL := mtlsURL(cfg)
	renderer, err := Renderer(cfg)
	if err != nil {
		return nil, err
	}
	s.Licenses = licensing.New(licensing.Deps{
		Clock:        systemClock{},
		Tx:           store.Tx(),
		Products:     store.Products(),
		Licenses:     store.Licenses(),
		Activations:  store.Activations(),
		Certificates: store.Certificates(),
		Claims:       store.Claims(),
		Issuer:       s.Issuer,
		Vault:        vault,
		Leases:       s.Keys,
		LeaseIssuer:  s.Keys.Issuer(),
		Processes:    tc,
		Emails:       renderer,
		Config: licensing.Config{
			PublicURL:  cfg.PublicURL,
			MTLSURL:    deviceURL,
			VendorName: "Samplero",
			Logger:     log.With("component", "licensing"),
		},
	})

	com, err := buildCommerce(ctx, cfg, log, store, s.Licenses, tc, renderer)
	if err != nil {
		return nil, err
	}
	s.Commerce = com.service
	s.closers = append(s.closers, com.close)

	sh, err := sharedStores(ctx, cfg, store)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, sh.close)
	s.pingShared = sh.ping

	s.Customers = customers.New(customers.Deps{
		Clock:     systemClock{},
		Tx:        store.Tx(),
		Accounts:  store.Accounts(),
		Links:     store.SignInLinks(),
		Sessions:  store.Sessions(),
		Limiter:   sh.limiter,
		Processes: tc,
		Emails:    renderer,
		Argon2:    argon2.IDKey,
		Config: customers.Config{
			PublicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
			Logger:    log.With("component", "customers"),
		},
	})

	hc := httpapi.DefaultConfig()
	hc.RequireMTLS = cfg.RequireMTLS
	hc.RateLimits.Enabled = cfg.RateLimits
	hc.TrustedProxies = cfg.TrustedProxies
	hc.ProxyToken = cfg.ProxyToken.Reveal()
	hc.MTLSURL = deviceURL
	hc.PublicURL = cfg.PublicURL
	hc.WebhookSecret = cfg.Commerce.WebhookSecret.Reveal()
	hc.WebhookAllowlist = cfg.Commerce.WebhookAllowlist
	var stripeWebhook func([]byte, string) (ports.PaymentEventIn, error)
	if com.stripe != nil && cfg.StripeWebhookSecret.Set() {
		stripeWebhook = com.stripe.ParseWebhook
	}
	app, err := httpapi.New(httpapi.Deps{
		Licensing:     s.Licenses,
		Commerce:      s.Commerce,
		Customers:     s.Customers,
		Files:         com.files,
		StripeWebhook: stripeWebhook,
		Keys:          s.Keys,
		Issuer:        s.Issuer,
		Nonces:        sh.nonces,
		Limiter:       sh.limiter,
		AdminTokens:   store.AdminTokens(),
		Clock:         systemClock{},
		Ready:         s.Ready,
		Logger:        log.With("component", "http"),
		Registry:      prometheus.NewRegistry(),
		OnServerError: func(ctx context.Context, err error) {
			s.Reporter.CaptureError(err, nil)
		},
		Config: hc,
	})
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Deps{Licensing: s.Licenses, Commerce: s.Commerce, Logger: log.With("component", "web")})
	if err != nil {
		return nil, err
	}
	pages.Register(app)
	acct, err := web.NewAccount(web.AccountDeps{Customers: s.Customers, Licensing: s.Licenses, Commerce: s.Commerce,
		Clock: systemClock{}, PublicURL: cfg.PublicURL, TrustedProxies: cfg.TrustedProxies, Logger: log.With("component", "portal")})
	if err != nil {
		return nil, err
	}
	acct.Register(app)
	s.App = app
	ok = true
	return s, nil
}

// openCA opens the issuer backend of cfg.CABackend, the PKI core and its health figures on it,
// and the server signing keys checked against its root.
//
// With `remote` nothing here touches a local CA: no hierarchy is created in SAMPLERO_PKI_DIR (the
// intermediate keys live on the signer's host only), the device listener's certificate comes from
// SAMPLERO_DEVICE_TLS_CERT (Listen), and the signing keys are not endorsed at start (that is a dev
// convenience with the dev root's key; in production the offline root endorses them, see
// docs/pki-runbook.md). With `stepca` see openStepCA (stepca.go).
func (s *Server) openCA(ctx context.Context, cfg config.Config, store *pgstore.Store, log *slog.Logger) error {
	var err error
	switch cfg.CABackend.Kind {
	case "stepca":
		return s.openStepCA(ctx, cfg, store, log)
	case "remote":
		if cfg.Command == "dev" {
			// dev makes and endorses with its own local hierarchy, and prints its chain's path.
			return errors.New("samplero dev keeps its own local CA: SAMPLERO_CA_BACKEND=remote is for serve and worker")
		}
		if s.CAStore, err = caKeyStore(ctx, cfg); err != nil {
			return err
		}
	default:
		if s.CA, err = casigner.EnsureLocalCA(cfg.PKIDir, systemClock{}); err != nil {
			return fmt.Errorf("local CA in %s: %w", cfg.PKIDir, err)
		}
		s.CAStore = s.CA
	}
	s.PKI = pki.New(pki.Deps{CA: s.CAStore, Clock: systemClock{}, Revocations: store.Certificates(), CRLBaseURL: strings.TrimSuffix(cfg.PublicURL, "/")})
	s.Health = pki.NewHealth(s.PKI, store.RolloutEvents())
	s.Issuer = s.Health
	if s.CA != nil {
		s.Keys, err = openServerKeys(ctx, cfg, s.CA, store.Products(), log)
		return err
	}
	root, err := s.CAStore.Root(ctx)
	if err != nil {
		return fmt.Errorf("the remote signer's root: %w", err)
	}
	// As openServerKeys, without the dev endorsement: endorsements are checked against the
	// signer's root.
	if s.Keys, err = serverkeys.Open(cfg.SigningKeysDir, issuerName, systemClock{}, serverkeys.WithRoot(root),
		serverkeys.WithLogger(log.With("component", "serverkeys")), serverkeys.WithLeaseHorizon(leaseHorizon(store.Products()))); err != nil {
		return fmt.Errorf("server keys in %s: %w", cfg.SigningKeysDir, err)
	}
	return nil
}

// mtlsURL is the device base URL with mutual TLS that devices are told (mtls_url): the public URL
// when it is https (a TLS proxy in front forwards client certificates), else the device listener.
func mtlsURL(cfg config.Config) string {
	if strings.HasPrefix(cfg.PublicURL, "https://") {
		return strings.TrimSuffix(cfg.PublicURL, "/")
	}
	return "https://" + cfg.DeviceAddr
}

// Ready is the /readyz check: the database, Temporal's health check and (when used) Redis answer.
func (s *Server) Ready(ctx context.Context) error {
	if err := s.Store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := s.Temporal.Healthy(ctx); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	if s.pingShared != nil {
		if err := s.pingShared(ctx); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	return nil
}

// DialTemporal connects to the configured frontend.
func DialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger) (*temporalclient.Client, error) {
	tlsCfg, err := cfg.Temporal.TLSConfig()
	if err != nil {
		return nil, err
	}
	return temporalclient.Dial(ctx, temporalclient.Options{
		Address:   cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		TLS:       tlsCfg,
		Logger:    log,
	})
}
