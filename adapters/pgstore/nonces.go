package pgstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
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

// The table is compact: a row is the 32-byte pairDigest of (key id, nonce) as its primary key and
// the expiry in unix milliseconds (a clustered WITHOUT ROWID table on SQLite), so that its index
// stays small and cheap to search as it grows.
//
// reserveSQLHead and reserveSQLTail surround the VALUES of the upsert. A row is inserted, or
// re-claimed in place when the stored one has expired; RETURNING names exactly the pairs this
// statement took, on both dialects. Of two concurrent statements with the same pair, exactly one
// inserts or updates it.
const (
	reserveSQLHead = `INSERT INTO request_nonces (pair, expires_at) VALUES `
	reserveSQLTail = ` ON CONFLICT (pair) DO UPDATE SET expires_at = excluded.expires_at
WHERE request_nonces.expires_at <= ? RETURNING pair`
)

// pairDigest is the stored identity of (keyID, nonce): SHA-256 over both strings, each prefixed
// with its length, so that distinct pairs have distinct encodings (no separator can be forged).
// No secret is needed: the digest only has to be collision-free, not unguessable.
type pairDigest [sha256.Size]byte

func digestPair(keyID, nonce string) pairDigest {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(keyID)))
	h.Write(n[:])
	h.Write([]byte(keyID))
	binary.BigEndian.PutUint64(n[:], uint64(len(nonce)))
	h.Write(n[:])
	h.Write([]byte(nonce))
	var d pairDigest
	h.Sum(d[:0])
	return d
}

// dbMillis is a time as stored in request_nonces.expires_at: unix milliseconds.
func dbMillis(t time.Time) int64 { return t.UnixMilli() }

// maxNonceBatch bounds the rows of one upsert (3 parameters each, far below PostgreSQL's limit).
const maxNonceBatch = 512

// reservation is one caller waiting in the batcher.
type reservation struct {
	pair    pairDigest
	expires time.Time
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
	// conn is the connection the leaders reserve on, on SQLite (nil until the first batch, and
	// after a failure). A SQLite connection drops its whole page cache whenever another connection
	// wrote since its last transaction; running every batch on the same one keeps the upper pages
	// of the table cached, which is what the cost of a reservation in a large table hinges on.
	conn   *bun.Conn
	closed bool
}

// leaderConn returns what the leader runs its statements on: the pinned connection on SQLite,
// the pool on PostgreSQL.
func (n NonceStore) leaderConn(ctx context.Context) (bun.IConn, error) {
	if n.s.dialect != DialectSQLite {
		return n.s.db, nil
	}
	b := &n.s.nonceBatch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errs.Internalf("pgstore: store closed")
	}
	if b.conn == nil {
		c, err := n.s.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		b.conn = &c
	}
	return b.conn, nil
}

// dropLeaderConn releases the pinned connection after a failure, so that the next batch takes a
// fresh one.
func (n NonceStore) dropLeaderConn() {
	b := &n.s.nonceBatch
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		_ = b.conn.Close()
		b.conn = nil
	}
}

// closeNonceConn releases the pinned connection when the store closes.
func (s *Store) closeNonceConn() {
	b := &s.nonceBatch
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.conn != nil {
		_ = b.conn.Close()
		b.conn = nil
	}
}

// Reserve records (keyID, nonce) until now+ttl on the store's clock. Any database failure is
// errs.Unavailable, so that callers fail closed.
func (n NonceStore) Reserve(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	r := &reservation{pair: digestPair(keyID, nonce), expires: n.s.clock.Now().Add(ttl), done: make(chan reserveOutcome, 1)}
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
	first := make(map[pairDigest]*reservation, len(batch))
	var sb strings.Builder
	sb.WriteString(reserveSQLHead)
	args := make([]any, 0, 2*len(batch)+1)
	for _, r := range batch {
		if _, dup := first[r.pair]; dup {
			continue
		}
		first[r.pair] = r
		if len(args) > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?)")
		args = append(args, r.pair[:], dbMillis(r.expires))
	}
	sb.WriteString(reserveSQLTail)
	now := n.s.clock.Now()
	args = append(args, dbMillis(now))

	// The batch is shared by several requests: no single caller's cancellation may fail it.
	ctx, cancel := context.WithTimeout(context.Background(), sqliteBusyTimeout+5*time.Second)
	defer cancel()
	taken := make(map[pairDigest]bool, len(first))
	conn, err := n.leaderConn(ctx)
	var rows *sql.Rows
	if err == nil {
		rows, err = conn.QueryContext(ctx, sb.String(), args...)
	}
	if err == nil {
		var raw []byte
		for rows.Next() {
			if err = rows.Scan(&raw); err != nil {
				break
			}
			var p pairDigest
			if len(raw) != len(p) {
				err = errs.Internalf("pgstore: nonce store returned a %d-byte pair", len(raw))
				break
			}
			copy(p[:], raw)
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
		n.dropLeaderConn()
		fail = errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "nonce store unavailable", err)
	}
	// The purge runs before the answers, so that a caller sees the table it left behind.
	if prev := n.s.reserves.Add(uint64(len(batch))); fail == nil && prev/purgeEvery != (prev-uint64(len(batch)))/purgeEvery {
		n.purgeSome(ctx, conn, now)
	}
	for _, r := range batch {
		out := reserveOutcome{err: fail}
		if fail == nil && first[r.pair] == r {
			out.fresh = taken[r.pair]
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
func (n NonceStore) purgeSome(ctx context.Context, conn bun.IConn, now time.Time) {
	// The subquery walks the expires_at index; the DELETE then finds each row by its primary key.
	_, _ = conn.ExecContext(ctx,
		"DELETE FROM request_nonces WHERE pair IN (SELECT pair FROM request_nonces WHERE expires_at <= ? LIMIT ?)",
		dbMillis(now), purgeBatch)
}

// PurgeExpired deletes the pairs that expired at or before now, through the expires_at index, and
// reports how many. Expired rows are already treated as absent; purging only reclaims space, so
// a periodic job may call it as rarely as it likes.
func (n NonceStore) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := n.s.db.NewDelete().Model((*nonceRow)(nil)).Where("expires_at <= ?", dbMillis(now)).Exec(ctx)
	if err != nil {
		return 0, n.s.mapErr(err, "nonce")
	}
	affected, err := res.RowsAffected()
	if err != nil {
		return 0, n.s.mapErr(err, "nonce")
	}
	return affected, nil
}
