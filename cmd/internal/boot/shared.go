package boot

import (
	"context"
	"errors"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/ratelimit"
	"github.com/samplero/samplero/adapters/redisstore"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/ports"
)

// shared are the replay store and the rate limiter, which must be shared by every serve process:
// Redis when SAMPLERO_REDIS_URL is set; otherwise the database's replay store (shared too, and kept
// across restarts, so that a request captured before a restart cannot be replayed after it) and a
// limiter that counts per process.
type shared struct {
	nonces  ports.NonceStore
	limiter ports.RateLimiter
	ping    func(context.Context) error // nil when there is nothing beyond the database to check
	close   func()
}

func sharedStores(ctx context.Context, cfg config.Config, store *pgstore.Store) (shared, error) {
	if cfg.RedisURL.Set() {
		client, err := redisstore.ParseURL(cfg.RedisURL.Reveal())
		if err != nil {
			// The URL may carry a password: do not echo it.
			return shared{}, errors.New("SAMPLERO_REDIS_URL does not parse")
		}
		rs := redisstore.New(client, "samplero:")
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := rs.Ping(pctx); err != nil {
			client.Close()
			return shared{}, errors.New("redis at SAMPLERO_REDIS_URL does not answer")
		}
		return shared{nonces: rs.Nonces(), limiter: rs.Limiter(), ping: rs.Ping, close: func() { client.Close() }}, nil
	}
	return shared{nonces: store.Nonces(), limiter: ratelimit.New(systemClock{}), close: func() {}}, nil
}
