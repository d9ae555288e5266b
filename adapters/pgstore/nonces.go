package pgstore

import (
	"context"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// NonceStore is the database-backed ports.NonceStore, for deployments without Redis. It works on
// the pool, never in the transaction of ctx: a reservation must stand even if the request's use
// case later rolls back.
type NonceStore struct{ s *Store }

var _ ports.NonceStore = NonceStore{}

// reserveSQL inserts the pair, or re-claims it in place when the stored row has expired. The
// upsert is one atomic statement on both dialects: of two concurrent calls exactly one inserts or
// updates a row, and the other affects none.
const reserveSQL = `INSERT INTO request_nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
WHERE request_nonces.expires_at <= ?`

// Reserve records (keyID, nonce) until now+ttl on the store's clock. Any database failure is
// errs.Unavailable, so that callers fail closed.
func (n NonceStore) Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	// Key ids and nonces are base64url (PROTOCOL.md section 2); text columns cannot hold NUL.
	if strings.ContainsRune(keyID, 0) || strings.ContainsRune(nonce, 0) {
		return false, errs.Validation("key id or nonce contains NUL")
	}
	now := n.s.clock.Now()
	res, err := n.s.db.ExecContext(ctx, reserveSQL, keyID, nonce, dbTime(now.Add(ttl)), dbTime(now))
	if err != nil {
		return false, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", err)
	}
	affected, err := res.RowsAffected()
	if err != nil {
		return false, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", err)
	}
	if n.s.reserves.Add(1)%purgeEvery == 0 {
		n.purgeSome(ctx, now)
	}
	return affected == 1, nil
}

// Every purgeEvery reservations, the reserving call also deletes up to purgeBatch expired rows, so
// that the table stays near (request rate × ttl) rows without a periodic job: each purge clears
// more rows than were added since the last one. The cost is one indexed, bounded DELETE.
const (
	purgeEvery = 256
	purgeBatch = 1024
)

// purgeSome deletes a bounded batch of expired rows. It never fails the reservation: an error
// here only delays the cleanup to the next batch.
func (n NonceStore) purgeSome(ctx context.Context, now time.Time) {
	// ctid (PostgreSQL) and rowid (SQLite) address rows physically, so the LIMIT can apply.
	rowRef := "ctid"
	if n.s.dialect == DialectSQLite {
		rowRef = "rowid"
	}
	_, _ = n.s.db.ExecContext(ctx,
		"DELETE FROM request_nonces WHERE ? IN (SELECT ? FROM request_nonces WHERE expires_at <= ? LIMIT ?)",
		bun.Safe(rowRef), bun.Safe(rowRef), dbTime(now), purgeBatch)
}

// PurgeExpired deletes the pairs that expired at or before now, through the expires_at index, and
// reports how many. Expired rows are already treated as absent; purging only reclaims space, so
// a periodic job may call it as rarely as it likes.
func (n NonceStore) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := n.s.db.NewDelete().Model((*nonceRow)(nil)).Where("expires_at <= ?", dbTime(now)).Exec(ctx)
	if err != nil {
		return 0, n.s.mapErr(err, "nonce")
	}
	affected, err := res.RowsAffected()
	if err != nil {
		return 0, n.s.mapErr(err, "nonce")
	}
	return affected, nil
}
