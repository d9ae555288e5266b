package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/samplero/samplero/adapters/sentryobs"
	"github.com/samplero/samplero/adapters/temporalclient"
	"github.com/samplero/samplero/cmd/internal/config"
)

// dialTemporalPatiently retries until the frontend answers or wait runs out: a process may start
// before Temporal does.
func dialTemporalPatiently(ctx context.Context, cfg config.Config, log *slog.Logger, wait time.Duration) (*temporalclient.Client, error) {
	deadline := time.Now().Add(wait)
	for {
		tc, err := DialTemporal(ctx, cfg, log)
		if err == nil {
			return tc, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("temporal at %s: %w", cfg.Temporal.Address, err)
		}
		log.Warn("temporal not reachable yet; retrying", "address", cfg.Temporal.Address)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// Serve is `samplero serve`: the HTTP and device listeners on PostgreSQL and an external Temporal.
// Several may run side by side (share SAMPLERO_REDIS_URL for replay protection and rate limits).
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("starting", "config", cfg.String())
	store, err := OpenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	tc, err := dialTemporalPatiently(ctx, cfg, log, time.Minute)
	if err != nil {
		return err
	}
	defer tc.Close()
	srv, err := Build(ctx, cfg, log, store, tc)
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := srv.Listen(ctx)
	if err != nil {
		return err
	}
	log.Info("serving", "http", cfg.HTTPAddr, "device", cfg.DeviceAddr)
	go resumeFulfilment(ctx, srv.Commerce, log.With("component", "commerce"))
	return srv.Serve(ctx, l)
}

// Worker is `samplero worker`. With SENTRY_DSN, what it logs at error level (failed activities,
// worker faults) is reported too, scrubbed.
func Worker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	reporter, err := sentryobs.New(sentryobs.Options{DSN: cfg.SentryDSN.Reveal(), Environment: cfg.Command})
	if err != nil {
		return err
	}
	defer reporter.Flush(2 * time.Second)
	log = slog.New(reporter.Handler(log.Handler()))
	log.Info("starting", "config", cfg.String())
	mailer, err := Mailer(cfg)
	if err != nil {
		return err
	}
	// The fulfilment activities run the commerce and licensing cores: the worker opens the database
	// and builds the same cores as serve (it serves no HTTP).
	store, err := OpenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	tc, err := dialTemporalPatiently(ctx, cfg, log, time.Minute)
	if err != nil {
		return err
	}
	defer tc.Close()
	srv, err := Build(ctx, cfg, log, store, tc)
	if err != nil {
		return err
	}
	defer srv.Close()
	ensureSchedules(ctx, tc, log)
	return RunWorker(ctx, tc, mailer, srv.Commerce, srv.Licenses, RolloutActivities(cfg, srv.Health, store), log)
}

// ensureSchedules creates the Temporal schedules (the daily expiry notices) when they do not exist;
// an existing schedule, maybe paused or changed by an operator, is left as it is. A failure is
// logged: the processes work without it, and the next start tries again.
func ensureSchedules(ctx context.Context, tc *temporalclient.Client, log *slog.Logger) {
	if err := tc.EnsureExpirySchedule(ctx); err != nil {
		log.Warn("could not create the expiry-notices schedule", "err", err)
	}
}

// ignoreCanceled treats the end of ctx as a clean stop.
func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
