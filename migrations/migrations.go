// Package migrations embeds the SQL schema of Samplero, one directory per dialect. The files follow
// bun/migrate's naming (YYYYMMDDHHMMSS_name.tx.up.sql / .tx.down.sql: each runs in a transaction)
// and are applied by pgstore's Migrator: `samplero migrate` and the start of `samplero dev`.
//
// Both dialects describe the same tables and constraints; a change to one is a change to both.
package migrations

import "embed"

// Postgres holds the PostgreSQL migrations under "postgres/".
//
//go:embed postgres/*.sql
var Postgres embed.FS

// SQLite holds the SQLite migrations under "sqlite/".
//
//go:embed sqlite/*.sql
var SQLite embed.FS
