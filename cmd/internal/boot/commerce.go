package boot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/samplero/samplero/adapters/keyvault"
	"github.com/samplero/samplero/adapters/objectstore"
	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/stripepay"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/commerce"
	"github.com/samplero/samplero/ports"
)

// linksSecretFile is dev's links secret under DIR/secrets.
const linksSecretFile = "links"

// derive turns the one configured links secret into a key per use, so that an order access token
// can never be replayed as a download-link signature or the other way round.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("samplero/" + purpose))
	return m.Sum(nil)
}

// linksSecret returns SAMPLERO_LINKS_SECRET, or dev's DIR/secrets/links.
func linksSecret(cfg config.Config) ([]byte, error) {
	if cfg.Commerce.LinksSecret.Set() {
		return []byte(cfg.Commerce.LinksSecret.Reveal()), nil
	}
	if cfg.Command != "dev" {
		return nil, fmt.Errorf("SAMPLERO_LINKS_SECRET is required")
	}
	return keyvault.LoadOrCreateSecret(cfg.DataDir, linksSecretFile)
}

// commerceParts are the commerce adapters and core of one process.
type commerceParts struct {
	service *commerce.Service
	files   ports.FileServer // nil unless the object store serves its own links
	stripe  *stripepay.Stripe
	close   func()
}

// buildCommerce wires the object store, Stripe and the commerce core.
func buildCommerce(ctx context.Context, cfg config.Config, log *slog.Logger, store *pgstore.Store, lic ports.Licensing, procs ports.Processes, emails ports.EmailRenderer) (commerceParts, error) {
	parts := commerceParts{close: func() {}}
	secret, err := linksSecret(cfg)
	if err != nil {
		return parts, err
	}
	public := strings.TrimSuffix(cfg.PublicURL, "/")
	var objects ports.ObjectStore
	switch o := cfg.Commerce.Objects; o.Kind {
	case "s3":
		s3, err := objectstore.NewS3(ctx, objectstore.S3Options{
			Endpoint:        o.Endpoint,
			Region:          o.Region,
			Bucket:          o.Bucket,
			AccessKeyID:     o.AccessKeyID,
			SecretAccessKey: o.SecretAccessKey.Reveal(),
			PathStyle:       o.PathStyle,
			Clock:           systemClock{},
		})
		if err != nil {
			return parts, fmt.Errorf("S3 object store: %w", err)
		}
		objects = s3
	default:
		local, err := objectstore.NewLocal(objectstore.LocalOptions{
			Dir:     o.Dir,
			Secret:  derive(secret, "download-links"),
			BaseURL: public,
			Clock:   systemClock{},
		})
		if err != nil {
			return parts, fmt.Errorf("local object store in %s: %w", o.Dir, err)
		}
		objects, parts.files = local, local
		parts.close = func() { local.Close() }
	}
	if cfg.StripeSecretKey.Set() || cfg.StripeWebhookSecret.Set() {
		parts.stripe, err = stripepay.New(stripepay.Options{
			SecretKey:     cfg.StripeSecretKey.Reveal(),
			APIBase:       cfg.Commerce.StripeAPIBase,
			WebhookSecret: cfg.StripeWebhookSecret.Reveal(),
			Logger:        log.With("component", "stripe"),
			Clock:         systemClock{},
		})
		if err != nil {
			return parts, fmt.Errorf("stripe: %w", err)
		}
	}
	var payments ports.Payments
	if parts.stripe != nil && cfg.StripeSecretKey.Set() {
		payments = parts.stripe
	}
	success, cancel := cfg.Commerce.SuccessURL, cfg.Commerce.CancelURL
	if success == "" {
		success = public + "/checkout/success?order={ORDER_ID}"
	}
	if cancel == "" {
		cancel = public + "/checkout/cancel?order={ORDER_ID}"
	}
	parts.service = commerce.New(commerce.Deps{
		Clock:        systemClock{},
		Tx:           store.Tx(),
		Catalog:      store.Catalog(),
		Orders:       store.Orders(),
		Coupons:      store.Coupons(),
		Entitlements: store.Entitlements(),
		Events:       store.PaymentEvents(),
		Downloads:    store.Downloads(),
		Licensing:    lic,
		Objects:      objects,
		Payments:     payments,
		Processes:    procs,
		Emails:       emails,
		Config: commerce.Config{
			PublicURL:     public,
			VendorName:    cfg.Commerce.VendorName,
			OperatorEmail: cfg.Commerce.OperatorEmail,
			AccessSecret:  derive(secret, "order-access"),
			DownloadTTL:   cfg.Commerce.DownloadTTL,
			SuccessURL:    success,
			CancelURL:     cancel,
			Logger:        log.With("component", "commerce"),
		},
	})
	return parts, nil
}

// resumeEvery is how often a serving process looks for paid orders whose fulfilment never started
// (a crash between the payment's commit and the workflow start). Starting one that runs is a no-op.
const resumeEvery = 5 * time.Minute

// resumeFulfilment restarts unfinished fulfilments now and every resumeEvery until ctx ends.
func resumeFulfilment(ctx context.Context, c ports.Commerce, log *slog.Logger) {
	for {
		n, err := c.ResumeFulfilment(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("resuming unfinished fulfilments failed", "err", err)
		case n > 0:
			log.Info("resumed unfinished fulfilments", "orders", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(resumeEvery):
		}
	}
}
