package integration

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

func postgresURL() string {
	if u := os.Getenv("SAMPLERO_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// openPostgres opens a migrated PostgreSQL store in a fresh random schema, dropped when the test
// ends. It skips when PostgreSQL cannot be reached, unless SAMPLERO_REQUIRE_SERVICES=1, when it fails.
func openPostgres(tb testing.TB) *pgstore.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	schema := "samplero_it_" + randomHex(tb, 6)
	s, err := pgstore.Open(ctx, postgresURL(), pgstore.WithSchema(schema))
	if err != nil {
		if os.Getenv("SAMPLERO_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("PostgreSQL required (SAMPLERO_REQUIRE_SERVICES=1) but not reachable: %v", err)
		}
		tb.Skipf("PostgreSQL not reachable (%v); set SAMPLERO_REQUIRE_SERVICES=1 to fail instead", err)
	}
	tb.Cleanup(func() {
		if _, err := s.DB().ExecContext(context.Background(), fmt.Sprintf("DROP SCHEMA %s CASCADE", schema)); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
		_ = s.Close()
	})
	if err := s.Migrator().Up(ctx); err != nil {
		tb.Fatalf("migrate postgres: %v", err)
	}
	return s
}

// openSQLite opens a migrated SQLite store in a fresh temporary file.
func openSQLite(tb testing.TB) *pgstore.Store {
	tb.Helper()
	ctx := context.Background()
	s, err := pgstore.Open(ctx, "sqlite:"+filepath.Join(tb.TempDir(), "samplero.db"))
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Migrator().Up(ctx); err != nil {
		tb.Fatalf("migrate sqlite: %v", err)
	}
	return s
}

type backend struct {
	name string
	open func(testing.TB) *pgstore.Store
}

var (
	sqliteBackend   = backend{"sqlite", openSQLite}
	postgresBackend = backend{"postgres", openPostgres}
)

func newHarness(tb testing.TB, store *pgstore.Store) *Harness {
	tb.Helper()
	h, err := Build(store, tb.TempDir(), SystemClock{})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// putProduct creates a plugin product with an instant first activation and maxActivations seats.
func putProduct(tb testing.TB, h *Harness, slug string, maxActivations int, first string) {
	tb.Helper()
	_, err := h.Service.PutProduct(context.Background(), ports.ProductSpec{
		Slug: slug, Name: "Product " + slug, Type: license.TypePlugin, PriceCents: 4900, Currency: "EUR",
		Policy: ports.PolicySpec{MaxActivations: maxActivations, FirstActivation: first},
	})
	if err != nil {
		tb.Fatalf("put product %s: %v", slug, err)
	}
}

func createLicense(tb testing.TB, h *Harness, product, owner string, maxActivations *int) ports.LicenseView {
	tb.Helper()
	v, err := h.Service.CreateLicense(context.Background(), ports.CreateLicenseCommand{
		Product: product, OwnerEmail: owner, MaxActivations: maxActivations,
	})
	if err != nil {
		tb.Fatalf("create license: %v", err)
	}
	return v
}

// device is one device's request material, made before the timed part: key generation and CSR
// signing are the client's work, not the server's.
type device struct {
	fingerprint string
	key         crypto.Signer
	csr         string
	thumb       string
}

func newDevice(fingerprint string) (device, error) {
	key, err := samplero.GenerateKey(samplero.KeyP256)
	if err != nil {
		return device{}, err
	}
	return deviceWithKey(fingerprint, key)
}

func deviceWithKey(fingerprint string, key crypto.Signer) (device, error) {
	csr, err := samplero.CreateCSR(key)
	if err != nil {
		return device{}, err
	}
	thumb, err := httpsig.Thumbprint(key.Public())
	if err != nil {
		return device{}, err
	}
	return device{fingerprint: fingerprint, key: key, csr: csr, thumb: thumb}, nil
}

// newDevices makes n devices with distinct fingerprints (prefix-0 …) and keys, spread over the CPUs.
func newDevices(tb testing.TB, prefix string, n int) []device {
	tb.Helper()
	out := make([]device, n)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := newDevice(fmt.Sprintf("%s-%04d", prefix, i))
			if err != nil {
				errc <- err
				return
			}
			out[i] = d
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		tb.Fatalf("making devices: %v", err)
	}
	return out
}

// activate does what the activate handler does after the checks of PROTOCOL.md section 2: resolve
// the CSR's key, then call the use case.
func activate(ctx context.Context, h *Harness, licenseKey string, d device) (ports.ActivateResult, error) {
	id, err := h.Service.ResolveCSR(ctx, d.csr, d.thumb)
	if err != nil {
		return ports.ActivateResult{}, err
	}
	return h.Service.Activate(ctx, ports.ActivateCommand{
		LicenseKey:    licenseKey,
		Fingerprint:   d.fingerprint,
		Platform:      license.PlatformLinux,
		PluginVersion: "1.0.0",
		CSRPEM:        d.csr,
		DeviceName:    "Studio " + d.fingerprint,
		RequestAddr:   "127.0.0.1",
		Identity:      id,
	})
}

// activationsByStatus counts a license's activations by status, read from the database.
func activationsByStatus(tb testing.TB, h *Harness, licenseID string) map[license.ActivationStatus]int {
	tb.Helper()
	counts := map[license.ActivationStatus]int{}
	f := ports.ActivationFilter{LicenseID: licenseID, Page: ports.Page{Limit: 200}}
	for {
		rows, next, err := h.Store.Activations().List(context.Background(), f)
		if err != nil {
			tb.Fatalf("list activations: %v", err)
		}
		for _, a := range rows {
			counts[a.Status]++
		}
		if next == "" {
			return counts
		}
		f.Cursor = next
	}
}

func intPtr(n int) *int { return &n }

func activationFilterActive(licenseID string) ports.ActivationFilter {
	return ports.ActivationFilter{LicenseID: licenseID, Status: license.ActivationActive, Page: ports.Page{Limit: 200}}
}

// certificatesOf counts the certificate rows of a license (no port lists them by license).
func certificatesOf(tb testing.TB, h *Harness, licenseID string) int {
	tb.Helper()
	n, err := h.Store.DB().NewSelect().TableExpr("certificates").Where("license_id = ?", licenseID).Count(context.Background())
	if err != nil {
		tb.Fatalf("count certificates: %v", err)
	}
	return int(n)
}
