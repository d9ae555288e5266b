package pgstore

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/uptrace/bun/migrate"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/migrations"
	"github.com/samplero/samplero/ports"
)

// Migrator applies the embedded migrations of the store's dialect with bun/migrate. Each file runs
// in its own transaction and is marked applied only once it committed, so a failed migration can
// be fixed and run again. Two migrators racing on one PostgreSQL database fail loudly (the second
// one's CREATE TABLE errors and rolls back) rather than corrupt anything.
type Migrator struct {
	s *Store
}

var _ ports.Migrator = Migrator{}

// Migrator returns the schema migrator.
func (s *Store) Migrator() ports.Migrator { return Migrator{s} }

func (m Migrator) migrator(ctx context.Context) (*migrate.Migrator, error) {
	var (
		sub fs.FS
		err error
	)
	switch m.s.dialect {
	case DialectPostgres:
		sub, err = fs.Sub(migrations.Postgres, "postgres")
	default:
		sub, err = fs.Sub(migrations.SQLite, "sqlite")
	}
	if err != nil {
		return nil, errs.Internalf("pgstore: migrations: %w", err)
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		return nil, errs.Internalf("pgstore: migrations: %w", err)
	}
	mg := migrate.NewMigrator(m.s.db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := mg.Init(ctx); err != nil {
		return nil, errs.Internalf("pgstore: migration tables: %w", err)
	}
	return mg, nil
}

// Up applies every pending migration, as one group.
func (m Migrator) Up(ctx context.Context) error {
	mg, err := m.migrator(ctx)
	if err != nil {
		return err
	}
	if _, err := mg.Migrate(ctx); err != nil {
		return errs.Internalf("pgstore: migrate up: %w", err)
	}
	return nil
}

// Down rolls back the last group applied.
func (m Migrator) Down(ctx context.Context) error {
	mg, err := m.migrator(ctx)
	if err != nil {
		return err
	}
	if _, err := mg.Rollback(ctx); err != nil {
		return errs.Internalf("pgstore: migrate down: %w", err)
	}
	return nil
}

// Status lists every migration, one a line: "applied <name> (group N)" or "pending <name>".
func (m Migrator) Status(ctx context.Context) (string, error) {
	mg, err := m.migrator(ctx)
	if err != nil {
		return "", err
	}
	all, err := mg.MigrationsWithStatus(ctx)
	if err != nil {
		return "", errs.Internalf("pgstore: migration status: %w", err)
	}
	var b strings.Builder
	for _, mi := range all {
		if mi.IsApplied() {
			fmt.Fprintf(&b, "applied %s (group %d)\n", mi.String(), mi.GroupID)
		} else {
			fmt.Fprintf(&b, "pending %s\n", mi.String())
		}
	}
	return b.String(), nil
}
