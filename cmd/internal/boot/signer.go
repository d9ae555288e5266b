package boot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/remotesigner"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/ports"
)

// Signer is `samplero signer`: the CA backend of the PKI directory served to `remote` backends.
func Signer(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	return runSigner(ctx, cfg.Signer, log, func(addr string) {
		log.Info("signer serving", "addr", addr, "tls", cfg.Signer.TLSCert != "", "mtls", cfg.Signer.ClientCA != "")
	})
}

// runSigner serves until ctx ends; ready is told the bound address (tests listen on port 0).
func runSigner(ctx context.Context, c config.Signer, log *slog.Logger, ready func(addr string)) error {
	// The signer serves a hierarchy that `samplero pki` installed; it never makes one. (EnsureLocalCA
	// would create a dev hierarchy, root key included, in an empty directory.)
	if _, err := os.Stat(filepath.Join(c.PKIDir, "root.pem")); err != nil {
		return fmt.Errorf("no CA hierarchy in %s (root.pem: %w); install an intermediate there with `samplero pki bundle install` first", c.PKIDir, err)
	}
	ca, err := casigner.EnsureLocalCA(c.PKIDir, systemClock{})
	if err != nil {
		return fmt.Errorf("CA in %s: %w", c.PKIDir, err)
	}
	srv, err := remotesigner.NewServer(remotesigner.ServerOptions{
		CA: ca, Token: c.Token.Reveal(), HMACSecret: c.HMACSecret.Reveal(), Clock: systemClock{},
		RequireClientCert: c.ClientCA != "", Logger: log.With("component", "signer"),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	if c.TLSCert != "" {
		tcfg, err := signerServerTLS(c)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tcfg)
	} else {
		log.Warn("signer speaks plain HTTP: for tests and a same-host serve only", "addr", ln.Addr().String())
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	ready(ln.Addr().String())
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// signerServerTLS loads the signer's certificate and, with --client-ca, the pool its clients'
// certificates must chain to.
func signerServerTLS(c config.Signer) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	var pool *x509.CertPool
	if c.ClientCA != "" {
		if pool, err = certPool(c.ClientCA); err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
	}
	return remotesigner.ServerTLSConfig(cert, pool), nil
}

func certPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// caKeyStore picks the issuer backend of serve, worker and dev by SAMPLERO_CA_BACKEND: the local
// CA files under SAMPLERO_PKI_DIR, or a remote signer. The remote one is asked for its hierarchy
// once here, so a wrong URL, token or certificate stops the start instead of the first issuance.
func caKeyStore(ctx context.Context, cfg config.Config) (ports.CAKeyStore, error) {
	b := cfg.CABackend
	switch b.Kind {
	case "", "local":
		ca, err := casigner.EnsureLocalCA(cfg.PKIDir, systemClock{})
		if err != nil {
			return nil, fmt.Errorf("local CA in %s: %w", cfg.PKIDir, err)
		}
		return ca, nil
	case "remote":
	default:
		return nil, fmt.Errorf("unknown CA backend %q", b.Kind)
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pool, err := certPool(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("SAMPLERO_SIGNER_CA: %w", err)
		}
		tcfg.RootCAs = pool
	}
	if b.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(b.ClientCert, b.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("SAMPLERO_SIGNER_CLIENT_CERT/KEY: %w", err)
		}
		tcfg.Certificates = []tls.Certificate{cert}
	}
	c, err := remotesigner.NewClient(remotesigner.ClientOptions{
		BaseURL: b.URL, Token: b.Token.Reveal(), HMACSecret: b.HMACSecret.Reveal(), TLS: tcfg, Clock: systemClock{},
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Intermediates(ctx); err != nil {
		return nil, fmt.Errorf("remote signer at %s: %w", b.URL, err)
	}
	return c, nil
}
