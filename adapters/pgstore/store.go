// Package pgstore implements the licensing repositories, ports.Tx, a database-backed
// ports.NonceStore and ports.Migrator with bun, over PostgreSQL (pgdialect + pgdriver) for
// production and SQLite (sqlitedialect + the pure-Go sqliteshim driver) for the embedded default.
//
// The transaction of ports.Tx travels in the context; every repository method runs on it when the
// context carries one and on the pool otherwise. Database rows are separate structs mapped to and
// from the license records, and database errors become *errs.Error at this boundary.
package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// Dialect names returned by Store.Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// sqliteBusyTimeout is how long a SQLite writer waits for the write lock before failing. Every
// transaction takes the lock at BEGIN (_txlock=immediate), so writers queue here instead of
// failing with SQLITE_BUSY halfway through a use case.
const sqliteBusyTimeout = 10 * time.Second

type config struct {
	schema    string
	clock     ports.Clock
	readCache bool
}

// Option configures Open.
type Option func(*config)

// WithSchema makes a PostgreSQL store live in schema name: created if missing and set as the
// search_path of every connection. Ignored on SQLite.
func WithSchema(name string) Option { return func(c *config) { c.schema = name } }

// WithClock sets the clock that decides when nonces expire (the system clock by default).
func WithClock(clock ports.Clock) Option { return func(c *config) { c.clock = clock } }

// WithReadCache keeps recently read products, licenses, activations and certificates in memory
// (see readCache). Only for a process that is the sole writer of its database: `samplero dev`.
func WithReadCache() Option { return func(c *config) { c.readCache = true } }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Store is an open database with the licensing repositories over it.
type Store struct {
	db       *bun.DB
	dialect  string
	clock    ports.Clock
	reserves atomic.Uint64 // nonce reservations so far, to pace the purge of expired ones
	// nonceBatch queues concurrent nonce reservations into one statement (see NonceStore).
	nonceBatch nonceBatcher
	cache      *readCache // nil unless WithReadCache
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Open connects to dsn and checks the connection. "postgres://…" (or "postgresql://…") opens
// PostgreSQL; "sqlite:PATH" or "file:PATH[?…]" opens (creating) a SQLite database file with WAL,
// a busy timeout, foreign keys and immediate transactions. Open does not migrate: call
// Migrator().Up.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{clock: systemClock{}}
	for _, o := range opts {
		o(&cfg)
	}
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err = openPostgres(ctx, dsn, cfg)
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasPrefix(dsn, "file:"):
		s, err = openSQLite(ctx, dsn, cfg)
	default:
		return nil, errs.Validation("database URL must start with postgres://, sqlite: or file:")
	}
	if err != nil {
		return nil, err
	}
	if cfg.readCache {
		s.cache = newReadCache()
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, cfg config) (*Store, error) {
	if _, err := url.Parse(dsn); err != nil {
		return nil, errs.Validation("database URL does not parse")
	}
	if cfg.schema != "" && !identRE.MatchString(cfg.schema) {
		return nil, errs.Validation("schema name must be a plain SQL identifier")
	}
	popts := []pgdriver.Option{pgdriver.WithDSN(dsn)}
	if cfg.schema != "" {
		schema := cfg.schema
		popts = append(popts, func(c *pgdriver.Config) {
			params := map[string]any{}
			for k, v := range c.ConnParams {
				params[k] = v
			}
			params["search_path"] = schema
			c.ConnParams = params
		})
	}
	connector, err := newConnector(popts)
	if err != nil {
		return nil, err
	}
	sqldb := sql.OpenDB(connector)
	// bun's advice: a few connections per CPU. More only queue inside PostgreSQL.
	maxConns := 4 * runtime.GOMAXPROCS(0)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	db := bun.NewDB(sqldb, pgdialect.New())
	s := &Store{db: db, dialect: DialectPostgres, clock: cfg.clock}
	if cfg.schema != "" {
		// Create the schema only when it is missing: a role without CREATE on the database can
		// still use a schema made for it.
		exists, err := db.NewSelect().TableExpr("pg_namespace").Where("nspname = ?", cfg.schema).Exists(ctx)
		if err == nil && !exists {
			_, err = db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS ?", bun.Ident(cfg.schema))
		}
		if err != nil {
			_ = db.Close()
			return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "database unavailable", err)
		}
	}
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// newConnector builds the pgdriver connector, whose DSN option panics on a DSN it cannot use
// (an unknown scheme, an unreadable sslrootcert): that becomes an error here.
func newConnector(opts []pgdriver.Option) (c *pgdriver.Connector, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, "database URL is not usable", fmt.Errorf("%v", r))
		}
	}()
	return pgdriver.NewConnector(opts...), nil
}

func openSQLite(ctx context.Context, dsn string, cfg config) (*Store, error) {
	path := dsn
	if rest, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		path = "file:" + strings.TrimPrefix(rest, "//")
	}
	if path == "file:" {
		return nil, errs.Validation("sqlite database URL needs a path")
	}
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
	}
	memory := strings.Contains(path, ":memory:") || strings.Contains(path, "mode=memory")
	if !memory {
		params = append(params, "_pragma=journal_mode(WAL)")
	}
	if !strings.Contains(path, "_txlock=") {
		params = append(params, "_txlock=immediate")
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	sqldb, err := sql.Open(sqliteshim.ShimName, path+sep+strings.Join(params, "&"))
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "database unavailable", err)
	}
	if memory {
		// Every connection to ":memory:" is a database of its own: keep exactly one.
		sqldb.SetMaxOpenConns(1)
		sqldb.SetConnMaxIdleTime(0)
		sqldb.SetConnMaxLifetime(0)
	} else {
		// WAL lets readers run beside the one writer; a few connections are plenty.
		sqldb.SetMaxOpenConns(4)
		sqldb.SetMaxIdleConns(4)
	}
	db := bun.NewDB(sqldb, sqlitedialect.New())
	s := &Store{db: db, dialect: DialectSQLite, clock: cfg.clock}
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "database unavailable", err)
	}
	return nil
}

// DB returns the underlying bun database, for the composition root and other adapters' tests.
func (s *Store) DB() *bun.DB { return s.db }

// Dialect reports "postgres" or "sqlite".
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	s.closeNonceConn()
	return s.db.Close()
}

// Tx returns the transaction port.
func (s *Store) Tx() ports.Tx { return txPort{s} }

// Products returns the product repository.
func (s *Store) Products() ports.ProductRepo { return productRepo{s} }

// Licenses returns the license repository.
func (s *Store) Licenses() ports.LicenseRepo { return licenseRepo{s} }

// Activations returns the activation repository.
func (s *Store) Activations() ports.ActivationRepo { return activationRepo{s} }

// Certificates returns the certificate repository.
func (s *Store) Certificates() ports.CertificateRepo { return certificateRepo{s} }

// Claims returns the claim repository.
func (s *Store) Claims() ports.ClaimRepo { return claimRepo{s} }

// AdminTokens returns the admin token repository.
func (s *Store) AdminTokens() ports.AdminTokenRepo { return adminTokenRepo{s} }

// Nonces returns the database-backed nonce store (a NonceStore).
func (s *Store) Nonces() ports.NonceStore { return NonceStore{s} }

// PurgeExpired deletes the nonces that expired at or before now (see NonceStore.PurgeExpired).
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	return NonceStore{s}.PurgeExpired(ctx, now)
}

// ---- transactions ----

type txKey struct{}

type txState struct {
	store *Store
	tx    bun.Tx
	// dirty is set by a write to a cached table, so that the read cache is cleared again once the
	// transaction ends (a reader may have cached the old row between the write and the commit).
	dirty *bool
}

// idb returns the transaction of ctx when it belongs to this store, else the pool.
func (s *Store) idb(ctx context.Context) bun.IDB {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.store == s {
		return st.tx
	}
	return s.db
}

func (s *Store) inTx(ctx context.Context) bool {
	st, ok := ctx.Value(txKey{}).(*txState)
	return ok && st.store == s
}

// maxTxAttempts bounds the re-runs of a transaction that lost a serialization race or a deadlock.
const maxTxAttempts = 4

type txPort struct{ s *Store }

var _ ports.Tx = txPort{}

// InTx runs fn in a transaction (joining the one in ctx, if any). A serialization failure or
// deadlock on PostgreSQL, or a busy database on SQLite, runs fn again, up to maxTxAttempts times.
func (p txPort) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	s := p.s
	if s.inTx(ctx) {
		return fn(ctx)
	}
	var err error
	for attempt := 1; ; attempt++ {
		dirty := false
		err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return fn(context.WithValue(ctx, txKey{}, &txState{store: s, tx: tx, dirty: &dirty}))
		})
		if dirty && s.cache != nil {
			s.cache.invalidate()
		}
		if err == nil || attempt >= maxTxAttempts || !s.retryable(err) {
			break
		}
		// A short, growing pause lets the winner of the race commit first.
		select {
		case <-ctx.Done():
			return s.mapErr(ctx.Err(), "transaction")
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
	if err == nil {
		return nil
	}
	if _, ok := errs.As(err); ok {
		return err // fn's own error, or a repository's, already mapped
	}
	return s.mapErr(err, "transaction")
}

// ---- errors ----

// sqliteCoder is the error of modernc.org/sqlite (behind sqliteshim), read without importing it.
type sqliteCoder interface{ Code() int }

const (
	sqliteBusy       = 5
	sqliteLocked     = 6
	sqliteUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
	sqlitePrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
)

func (s *Store) retryable(err error) bool {
	var pe pgdriver.Error
	if errors.As(err, &pe) {
		switch pe.Field('C') {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
		return false
	}
	var se sqliteCoder
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked:
			return true
		}
	}
	return false
}

// CodeActivationExists is the code of the unique (license, fingerprint) violation among active
// activations (see ports.ActivationRepo.Insert).
const CodeActivationExists = license.CodeActivationExists

// mapErr turns a database error into the error vocabulary: no rows → NOT_FOUND, a unique
// violation → CONFLICT (ACTIVATION_EXISTS for the active-device index), anything else internal.
func (s *Store) mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := errs.As(err); ok {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(what)
	}
	if ok, activeDevice := s.uniqueViolation(err); ok {
		if activeDevice {
			return errs.Wrap(errs.Conflict, CodeActivationExists, "this device already has an active activation on this license", err)
		}
		return errs.Wrap(errs.Conflict, errs.CodeConflict, what+" already exists", err)
	}
	return errs.Internalf("pgstore: %s: %w", what, err)
}

// uniqueViolation reports a unique or primary-key violation and whether it is the active-device
// index of activations.
func (s *Store) uniqueViolation(err error) (unique, activeDevice bool) {
	var pe pgdriver.Error
	if errors.As(err, &pe) {
		if pe.Field('C') != "23505" {
			return false, false
		}
		return true, pe.Field('n') == "activations_active_device_key"
	}
	var se sqliteCoder
	if errors.As(err, &se) {
		switch se.Code() {
		case sqliteUnique, sqlitePrimaryKey:
			// SQLite names the columns, not the index: "activations.license_id, activations.fingerprint".
			return true, strings.Contains(err.Error(), "activations.license_id, activations.fingerprint")
		}
	}
	return false, false
}

func notFound(what string) error {
	return errs.E(errs.NotFound, errs.CodeNotFound, what+" not found")
}
