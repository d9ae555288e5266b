package pgstore_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports/portstest"
)

func commerceStores(s *pgstore.Store) portstest.CommerceStores {
	return portstest.CommerceStores{
		Tx: s.Tx(), Catalog: s.Catalog(), Orders: s.Orders(), Coupons: s.Coupons(),
		Entitlements: s.Entitlements(), PaymentEvents: s.PaymentEvents(), Downloads: s.Downloads(),
	}
}

func TestCommerceContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunCommerceContract(t, func(t *testing.T) portstest.CommerceStores { return commerceStores(b.open(t)) })
		})
	}
}

// Fulfilment issues licenses and entitlements in one transaction of the one store.
func TestCommerceSharesTransactions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			portstest.RunSharedTxCheck(t, stores(s), commerceStores(s))
		})
	}
}

// The in-memory SQLite database (one connection) numbers orders and races coupons too.
func TestCommerceSQLiteInMemory(t *testing.T) {
	s, err := pgstore.Open(t.Context(), "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrator().Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	portstest.RunCommerceContract(t, func(t *testing.T) portstest.CommerceStores {
		// Every subtest needs empty tables: empty them rather than open another database.
		for _, table := range []string{"downloads", "payment_events", "entitlements", "coupons", "order_lines", "orders", "catalog_versions", "catalog_products"} {
			if _, err := s.DB().ExecContext(t.Context(), "DELETE FROM "+table); err != nil {
				t.Fatal(err)
			}
		}
		return commerceStores(s)
	})
}

// Down drops every commerce table and index; up again recreates them empty.
func TestCommerceMigrationDownUp(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := t.Context()
			if _, err := s.Orders().Insert(ctx, order.Order{ID: "ord_1", CustomerEmail: "a@example.com", Source: order.SourceAdmin,
				Currency: "EUR", Status: order.StatusPending, Lines: []order.Line{{Product: "synth", Quantity: 1}}, CreatedAt: base, UpdatedAt: base}); err != nil {
				t.Fatal(err)
			}
			before := schemaObjects(t, s)
			for _, want := range []string{"catalog_products", "catalog_versions", "orders", "order_lines", "coupons", "entitlements",
				"payment_events", "downloads", "orders_unfinished_idx", "coupons_code_key", "order_lines_product_idx"} {
				if !before[want] {
					t.Fatalf("%s missing after up; have %v", want, before)
				}
			}
			if err := s.Migrator().Down(ctx); err != nil {
				t.Fatal(err)
			}
			if left := schemaObjects(t, s); len(left) != 0 {
				t.Fatalf("left after down: %v", left)
			}
			if err := s.Migrator().Up(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Orders().Get(ctx, "ord_1"); !errs.Is(err, errs.CodeNotFound) {
				t.Fatalf("after up again: want NOT_FOUND, got %v", err)
			}
			o, err := s.Orders().Insert(ctx, order.Order{ID: "ord_2", CustomerEmail: "a@example.com", Source: order.SourceAdmin,
				Currency: "EUR", Status: order.StatusPending, CreatedAt: base, UpdatedAt: base})
			if err != nil {
				t.Fatal(err)
			}
			if o.Number != 1 {
				t.Fatalf("first order after a fresh schema got number %d, want 1", o.Number)
			}
		})
	}
}

// schemaObjects lists the tables and indexes of the store's schema, except bun's own.
func schemaObjects(t *testing.T, s *pgstore.Store) map[string]bool {
	t.Helper()
	var names []string
	var err error
	if s.Dialect() == pgstore.DialectPostgres {
		err = s.DB().NewRaw("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "+
			"WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 'S')").Scan(t.Context(), &names)
	} else {
		err = s.DB().NewRaw("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')").Scan(t.Context(), &names)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		if !strings.HasPrefix(n, "bun_") && !strings.HasPrefix(n, "sqlite_") {
			out[n] = true
		}
	}
	return out
}

// On SQLite the order number is MAX + 1 inside the INSERT: many writers on a file database (four
// connections) still never share a number.
func TestSQLiteOrderNumbersUnderLoad(t *testing.T) {
	s := openSQLite(t)
	ctx := t.Context()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	numbers := make(chan int64, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				o, err := s.Orders().Insert(ctx, order.Order{ID: fmt.Sprintf("ord_%d_%d", w, i), CustomerEmail: "a@example.com",
					Source: order.SourceCheckout, Currency: "EUR", Status: order.StatusPending,
					Lines: []order.Line{{Product: "synth", Quantity: 1}}, CreatedAt: base, UpdatedAt: base})
				errc <- err
				numbers <- o.Number
			}
		}()
	}
	wg.Wait()
	close(errc)
	close(numbers)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	for n := range numbers {
		if seen[n] {
			t.Fatalf("number %d handed out twice", n)
		}
		seen[n] = true
	}
	for n := int64(1); n <= workers*each; n++ {
		if !seen[n] {
			t.Fatalf("number %d missing: want 1..%d without gaps", n, workers*each)
		}
	}
}
