package pgstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/ports"
)

// The rollout's health events over migrations/*/20261129000007_rollout_events, and its reads of
// the certificates table.

var _ ports.RolloutEventRepo = rolloutEventRepo{}

// RolloutEvents returns the rollout event repository.
func (s *Store) RolloutEvents() ports.RolloutEventRepo { return rolloutEventRepo{s} }

type rolloutEventRow struct {
	bun.BaseModel `bun:"table:rollout_events,alias:re"`

	ID             int64     `bun:"id,pk,autoincrement"`
	IntermediateID string    `bun:"intermediate_id"`
	Kind           string    `bun:"kind"`
	Detail         string    `bun:"detail"`
	At             time.Time `bun:"at"`
}

type rolloutEventRepo struct{ s *Store }

func (r rolloutEventRepo) Record(ctx context.Context, ev ports.RolloutEvent) error {
	row := rolloutEventRow{IntermediateID: ev.IntermediateID, Kind: ev.Kind, Detail: ev.Detail, At: dbTime(ev.At)}
	_, err := r.s.idb(ctx).NewInsert().Model(&row).ExcludeColumn("id").Exec(ctx)
	return r.s.mapErr(err, "rollout event")
}

func (r rolloutEventRepo) Figures(ctx context.Context, id string, since time.Time) (ports.RolloutFigures, error) {
	var counts []struct {
		Kind string `bun:"kind"`
		N    int    `bun:"n"`
	}
	db := r.s.idb(ctx)
	err := db.NewSelect().Model((*rolloutEventRow)(nil)).Column("kind").ColumnExpr("count(*) AS n").
		Where("intermediate_id = ?", id).Where("at >= ?", dbTime(since)).Group("kind").Scan(ctx, &counts)
	if err != nil {
		return ports.RolloutFigures{}, r.s.mapErr(err, "rollout events")
	}
	var f ports.RolloutFigures
	for _, c := range counts {
		switch c.Kind {
		case ports.RolloutEventIssueError:
			f.IssuanceErrors += c.N
		case ports.RolloutEventValidationFailure:
			f.ValidationFailures += c.N
		case ports.RolloutEventChainCheck:
			f.ChainChecks += c.N
		case ports.RolloutEventChainFailure:
			// A failed check is a check too.
			f.ChainChecks += c.N
			f.ChainFailures += c.N
		}
	}
	n, err := db.NewSelect().Table("certificates").Where("issuer_id = ?", id).Where("created_at >= ?", dbTime(since)).Count(ctx)
	if err != nil {
		return ports.RolloutFigures{}, r.s.mapErr(err, "certificates")
	}
	f.Issued = int(n)
	return f, nil
}

func (r rolloutEventRepo) LastCertificateExpiry(ctx context.Context, id string) (time.Time, bool, error) {
	var last []time.Time
	// ORDER BY ... LIMIT 1 rather than max(): SQLite returns max() of a TIMESTAMP column as text
	// that bun cannot scan into a time, while a plain column keeps its declared type.
	err := r.s.idb(ctx).NewSelect().Table("certificates").Column("not_after").Where("issuer_id = ?", id).
		OrderExpr("not_after DESC").Limit(1).Scan(ctx, &last)
	if err != nil {
		return time.Time{}, false, r.s.mapErr(err, "certificates")
	}
	if len(last) == 0 {
		return time.Time{}, false, nil
	}
	return recTime(last[0]), true, nil
}
