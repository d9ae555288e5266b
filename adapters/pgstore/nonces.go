package pgstore

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// NonceStore is the database-backed ports.NonceStore, for deployments without Redis. It works on
// the pool, never in the transaction of ctx: a reservation must stand even if the request's use
// case later rolls back.
//
// Concurrent reservations are group-committed: while one statement is in flight, the callers that
// arrive queue up, and the next statement reserves all of them at once (one multi-row upsert, one
// commit). Each caller still gets its answer only after its row is durably in the shared table, so
// the contract (one winner per pair across every instance, fail closed) is the database's own;
// only the per-request statement and commit are amortised, which is what dominated the cost of a
// signed request on SQLite.
type NonceStore struct{ s *Store }

var _ ports.NonceStore = NonceStore{}

// reserveSQLHead and reserveSQLTail surround the VALUES of the upsert. A row is inserted, or
// re-claimed in place when the stored one has expired; RETURNING names exactly the pairs this
// statement took, on both dialects. Of two concurrent statements with the same pair, exactly one
// inserts or updates it.
const (
	reserveSQLHead = `INSERT INTO request_nonces (key_id, nonce, expires_at) VALUES `
	reserveSQLTail = ` ON CONFLICT (key_id, nonce) DO UPDATE SET expires_at = excluded.expires_at
WHERE request_nonces.expires_at <= ? RETURNING key_id, nonce`
)

// maxNonceBatch bounds the rows of one upsert (3 parameters each, far below PostgreSQL's limit).
const maxNonceBatch = 512

// reservation is one caller waiting in the batcher.
type reservation struct {
	keyID, nonce string
	expires      time.Time
	// done receives the outcome, or lead=true when this caller must run the next batch itself.
	done chan reserveOutcome
}

type reserveOutcome struct {
	fresh bool
	err   error
	lead  bool
}

// nonceBatcher queues reservations while a statement is in flight. There is no background
// goroutine: the caller that finds no statement in flight runs one (the leader); when it is done it
// hands the lead to the first caller that queued meanwhile.
type nonceBatcher struct {
	mu       sync.Mutex
	pending  []*reservation
	flushing bool
}

// Reserve records (keyID, nonce) until now+ttl on the store's clock. Any database failure is
// errs.Unavailable, so that callers fail closed.
func (n NonceStore) Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	// Key ids and nonces are base64url (PROTOCOL.md section 2); text columns cannot hold NUL.
	if strings.ContainsRune(keyID, 0) || strings.ContainsRune(nonce, 0) {
		return false, errs.Validation("key id or nonce contains NUL")
	}
	r := &reservation{keyID: keyID, nonce: nonce, expires: n.s.clock.Now().Add(ttl), done: make(chan reserveOutcome, 1)}
	b := &n.s.nonceBatch
	b.mu.Lock()
	b.pending = append(b.pending, r)
	lead := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	for {
		if lead {
			n.runBatch()
		}
		// The wait is not cut short by ctx: a queued caller may be handed the lead, and the
		// statement it is part of is bounded by the database's own timeouts.
		out := <-r.done
		if !out.lead {
			return out.fresh, out.err
		}
		lead = true
	}
}

// runBatch takes the queue, reserves it in one statement, answers every caller, and hands the
// lead on (or ends the flushing state when nobody queued meanwhile).
func (n NonceStore) runBatch() {
	b := &n.s.nonceBatch
	b.mu.Lock()
	batch := b.pending
	if len(batch) > maxNonceBatch {
		batch = batch[:maxNonceBatch]
	}
	b.pending = append([]*reservation(nil), b.pending[len(batch):]...)
	b.mu.Unlock()

	n.flush(batch)

	b.mu.Lock()
	if len(b.pending) > 0 {
		b.pending[0].done <- reserveOutcome{lead: true}
	} else {
		b.flushing = false
	}
	b.mu.Unlock()
}

// flush reserves batch in one upsert and answers each caller. A pair that appears twice in the
// batch is sent once (PostgreSQL refuses to upsert a row twice in one statement); its later
// duplicates are replays of the first.
func (n NonceStore) flush(batch []*reservation) {
	type pair struct{ k, n string }
	first := make(map[pair]*reservation, len(batch))
	var sb strings.Builder
	sb.WriteString(reserveSQLHead)
	args := make([]any, 0, 3*len(batch)+1)
	for _, r := range batch {
		p := pair{r.keyID, r.nonce}
		if _, dup := first[p]; dup {
			continue
		}
		first[p] = r
		if len(args) > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?)")
		args = append(args, r.keyID, r.nonce, dbTime(r.expires))
	}
	sb.WriteString(reserveSQLTail)
	now := n.s.clock.Now()
	args = append(args, dbTime(now))

	// The batch is shared by several requests: no single caller's cancellation may fail it.
	ctx, cancel := context.WithTimeout(context.Background(), sqliteBusyTimeout+5*time.Second)
	defer cancel()
	taken := make(map[pair]bool, len(first))
	rows, err := n.s.db.QueryContext(ctx, sb.String(), args...)
	if err == nil {
		for rows.Next() {
			var p pair
			if err = rows.Scan(&p.k, &p.n); err != nil {
				break
			}
			taken[p] = true
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = rows.Err()
		}
	}
	var fail error
	if err != nil {
		fail = errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", err)
	}
	// The purge runs before the answers, so that a caller sees the table it left behind.
	if prev := n.s.reserves.Add(uint64(len(batch))); fail == nil && prev/purgeEvery != (prev-uint64(len(batch)))/purgeEvery {
		n.purgeSome(ctx, now)
	}
	for _, r := range batch {
		p := pair{r.keyID, r.nonce}
		out := reserveOutcome{err: fail}
		if fail == nil && first[p] == r {
			out.fresh = taken[p]
		}
		r.done <- out
	}
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
