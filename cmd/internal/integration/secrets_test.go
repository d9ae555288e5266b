package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

func TestNoPlaintextSecretsInDatabasePostgres(t *testing.T) {
	noPlaintextSecrets(t, postgresBackend)
}

func TestNoPlaintextSecretsInDatabaseSQLite(t *testing.T) {
	noPlaintextSecrets(t, sqliteBackend)
}

// secret is a value that must never be stored readable, in any of its usual encodings.
type secret struct {
	name  string
	value []byte
}

// cell is one value of one row of one table.
type cell struct {
	where string // table.column
	data  []byte
}

// noPlaintextSecrets fills every table through the service and the repositories the way the
// product does (licenses, activations with certificates, a first-activation claim, an admin token),
// then reads every column of every row and looks for each secret: license keys, the claim's
// confirmation token, the admin token and the key vault's own secrets.
func noPlaintextSecrets(t *testing.T, b backend) {
	store := b.open(t)
	h := newHarness(t, store)
	ctx := context.Background()
	putProduct(t, h, "instant", 3, string(license.FirstInstant))
	putProduct(t, h, "approval", 3, string(license.FirstOwnerApproval))

	var secrets []secret
	var licenseIDs []string
	addKey := func(v ports.LicenseView) {
		canonical, ok := license.NormalizeKey(v.Key)
		if !ok || v.Key == canonical {
			t.Fatalf("license %s: key %q is not a dashed canonical key", v.ID, v.Key)
		}
		licenseIDs = append(licenseIDs, v.ID)
		secrets = append(secrets,
			secret{"license key " + v.ID, []byte(canonical)},
			secret{"dashed license key " + v.ID, []byte(v.Key)},
			// The random body alone, without the well-known prefix.
			secret{"license key body " + v.ID, []byte(canonical[3:])},
		)
	}
	plain := createLicense(t, h, "instant", "owner@example.com", nil)
	addKey(plain)
	v, err := h.Service.CreateLicense(ctx, ports.CreateLicenseCommand{Product: "instant", IdempotencyKey: "order-1/line-1"})
	if err != nil {
		t.Fatal(err)
	}
	addKey(v)
	approval := createLicense(t, h, "approval", "owner@example.com", intPtr(2))
	addKey(approval)

	// An activation (with its certificate and lease) and a pending claim, whose e-mail carries
	// the single-use confirmation token.
	devs := newDevices(t, "secret-device", 2)
	if _, err := activate(ctx, h, plain.Key, devs[0]); err != nil {
		t.Fatalf("activate: %v", err)
	}
	res, err := activate(ctx, h, approval.Key, devs[1])
	if err != nil || res.Pending == nil {
		t.Fatalf("activate on owner_approval: want a pending claim, got %+v, %v", res, err)
	}
	token := claimToken(t, h.Outbox.Messages())
	secrets = append(secrets, secret{"claim confirmation token", []byte(token)})

	// An admin token made as `samplero admin token create` makes it: only its SHA-256 is stored.
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	adminToken := "sat_" + base64.RawURLEncoding.EncodeToString(raw)
	adminHash := sha256.Sum256([]byte(adminToken))
	err = store.AdminTokens().Insert(ctx, ports.AdminToken{
		ID: license.NewID("adm_"), Name: "ci", Hash: adminHash[:], CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatalf("insert admin token: %v", err)
	}
	secrets = append(secrets,
		secret{"admin token", []byte(adminToken)},
		secret{"admin token randomness", raw},
		secret{"key lookup secret", h.LookupSecret},
		secret{"key encryption secret", h.EncryptionSecret},
	)

	cells, tables := dumpDatabase(t, store)
	for _, want := range []string{"products", "licenses", "activations", "certificates", "claims", "admin_tokens"} {
		if !tables[want] {
			t.Errorf("table %s missing from the dump (tables: %v)", want, tables)
		}
	}
	// The dump must be able to find what is there, or finding no secret would prove nothing:
	// the stored hashes (bytea) and the ids (text) are in it.
	claimHash := sha256.Sum256([]byte(token))
	controls := []secret{
		{"admin token hash", adminHash[:]},
		{"claim token hash", claimHash[:]},
		{"license id", []byte(licenseIDs[0])},
		{"device fingerprint", []byte(devs[0].fingerprint)},
	}
	for _, c := range controls {
		if where := find(cells, [][]byte{c.value}); len(where) == 0 {
			t.Errorf("control: %s is not in the dump, so the dump misses columns", c.name)
		}
	}

	var found int
	for _, s := range secrets {
		if where := find(cells, encodings(s.value)); len(where) > 0 {
			found++
			t.Errorf("%s is readable in the database: %s", s.name, strings.Join(where, ", "))
		}
	}
	if b.name == sqliteBackend.name {
		// Also the files themselves, WAL included: freed pages and unmerged WAL frames are not
		// reachable through SELECT.
		files := sqliteFiles(t, store)
		if len(find(files, [][]byte{[]byte(licenseIDs[0])})) == 0 {
			t.Errorf("control: license id %s is not in the SQLite files", licenseIDs[0])
		}
		for _, s := range secrets {
			if where := find(files, encodings(s.value)); len(where) > 0 {
				found++
				t.Errorf("%s is in the SQLite files: %s", s.name, strings.Join(where, ", "))
			}
		}
	}
	t.Logf("%s: %d tables, %d cells, %d secrets × %d encodings checked, %d found", b.name, len(tables), len(cells), len(secrets), len(encodings(nil)), found)
}

// claimToken takes the token out of the confirmation link of the claim e-mail.
func claimToken(t *testing.T, msgs []ports.EmailMessage) string {
	t.Helper()
	re := regexp.MustCompile(`[?&]token=([^\s"&<]+)`)
	for _, m := range msgs {
		if sub := re.FindStringSubmatch(m.Text); sub != nil {
			tok, err := url.QueryUnescape(sub[1])
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
	}
	t.Fatalf("no e-mail with a confirmation link among %d", len(msgs))
	return ""
}

// encodings returns v as it could sit in a column: raw, hex (either case) and the four base64
// alphabets. Matching is also done case-insensitively (see find), which covers a key stored in
// lower case.
func encodings(v []byte) [][]byte {
	return [][]byte{
		v,
		[]byte(hex.EncodeToString(v)),
		[]byte(strings.ToUpper(hex.EncodeToString(v))),
		[]byte(base64.StdEncoding.EncodeToString(v)),
		[]byte(base64.RawStdEncoding.EncodeToString(v)),
		[]byte(base64.URLEncoding.EncodeToString(v)),
		[]byte(base64.RawURLEncoding.EncodeToString(v)),
	}
}

// asciiLower lower-cases ASCII letters only, leaving every other byte (binary data) as it is.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// find returns where any needle occurs, exactly or ignoring ASCII case. Empty needles are skipped.
func find(cells []cell, needles [][]byte) []string {
	var where []string
	for _, c := range cells {
		lower := asciiLower(c.data)
		for _, n := range needles {
			if len(n) == 0 {
				continue
			}
			if bytes.Contains(c.data, n) || bytes.Contains(lower, asciiLower(n)) {
				where = append(where, c.where)
				break
			}
		}
	}
	return where
}

// dumpDatabase reads every column of every row of every table of the store (its schema on
// PostgreSQL), as bytes: text as written, bytea/blob raw, anything else formatted.
func dumpDatabase(t *testing.T, store *pgstore.Store) ([]cell, map[string]bool) {
	t.Helper()
	ctx := context.Background()
	db := store.DB()
	listSQL := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if store.Dialect() == pgstore.DialectPostgres {
		listSQL = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	rows, err := db.QueryContext(ctx, listSQL)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	var cells []cell
	for _, name := range names {
		tables[name] = true
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT * FROM "%s"`, name))
		if err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("scan %s: %v", name, err)
			}
			for i, v := range vals {
				var data []byte
				switch v := v.(type) {
				case nil:
					continue
				case []byte:
					data = append([]byte(nil), v...)
				case string:
					data = []byte(v)
				default:
					data = []byte(fmt.Sprint(v))
				}
				cells = append(cells, cell{where: name + "." + cols[i], data: data})
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return cells, tables
}

// sqliteFiles reads the SQLite database file and its WAL and shared-memory files, if present.
func sqliteFiles(t *testing.T, store *pgstore.Store) []cell {
	t.Helper()
	var path string
	if err := store.DB().QueryRowContext(context.Background(), `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		t.Fatalf("locating the SQLite file: %v", err)
	}
	if path == "" {
		t.Fatal("the SQLite database has no file")
	}
	var out []cell
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		data, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cell{where: filepath.Base(p), data: data})
	}
	if len(out) == 0 {
		t.Fatalf("no SQLite files at %s", path)
	}
	return out
}
