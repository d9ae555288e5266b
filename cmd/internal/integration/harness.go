// Package integration runs the licensing core over the real adapters, the way cmd/internal/boot
// wires them (pgstore on PostgreSQL or SQLite, the file CA behind the PKI core, the file server
// keys, the key vault), without HTTP and without Temporal. Its tests check what only a real
// database can show: seat limits under concurrent activations, the row lock and the unique index
// behind it, and that no secret reaches a table in readable form. Its benchmarks feed
// docs/performance.md.
package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/emailtmpl"
	"github.com/samplero/samplero/adapters/keyvault"
	"github.com/samplero/samplero/adapters/pgstore"
	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/core/licensing"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
)

// SystemClock is the wall clock. The tests here measure real concurrency, so they run on real time;
// nothing in them waits for time to pass.
type SystemClock struct{}

// Now returns time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// Outbox is a ports.Processes that keeps the e-mails it is asked to send, in order, instead of
// starting delivery workflows.
type Outbox struct {
	mu   sync.Mutex
	msgs []ports.EmailMessage
}

var _ ports.Processes = (*Outbox)(nil)

// SendEmail records msg.
func (o *Outbox) SendEmail(_ context.Context, msg ports.EmailMessage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, msg)
	return nil
}

// Messages returns a copy of what was sent so far.
func (o *Outbox) Messages() []ports.EmailMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ports.EmailMessage(nil), o.msgs...)
}

// Harness is a licensing service over a real store, with the adapters it was built from.
type Harness struct {
	Store            *pgstore.Store
	Service          *licensing.Service
	PKI              *pki.Service
	CA               *casigner.LocalCA
	Keys             *serverkeys.Keys
	Vault            *keyvault.Vault
	Outbox           *Outbox
	Clock            ports.Clock
	LookupSecret     []byte // the key vault's lookup secret
	EncryptionSecret []byte // the key vault's encryption secret
}

// Build wires the licensing service over store (open and migrated), with a new file CA and new
// server keys under dir and fresh random key-vault secrets.
func Build(store *pgstore.Store, dir string, clock ports.Clock) (*Harness, error) {
	h := &Harness{Store: store, Outbox: &Outbox{}, Clock: clock}
	var err error
	if h.CA, err = casigner.EnsureLocalCA(filepath.Join(dir, "pki"), clock); err != nil {
		return nil, fmt.Errorf("local CA: %w", err)
	}
	h.PKI = pki.New(pki.Deps{CA: h.CA, Clock: clock, Revocations: store.Certificates(), CRLBaseURL: "http://127.0.0.1:8080"})
	if h.Keys, err = serverkeys.Open(filepath.Join(dir, "keys"), "samplero", clock); err != nil {
		return nil, fmt.Errorf("server keys: %w", err)
	}
	h.LookupSecret, h.EncryptionSecret = make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(h.LookupSecret) // crypto/rand.Read always fills its buffer
	_, _ = rand.Read(h.EncryptionSecret)
	if h.Vault, err = keyvault.New(h.LookupSecret, h.EncryptionSecret); err != nil {
		return nil, fmt.Errorf("key vault: %w", err)
	}
	renderer, err := emailtmpl.New(emailtmpl.Options{VendorName: "Samplero"})
	if err != nil {
		return nil, err
	}
	h.Service = licensing.New(licensing.Deps{
		Clock:        clock,
		Tx:           store.Tx(),
		Products:     store.Products(),
		Licenses:     store.Licenses(),
		Activations:  store.Activations(),
		Certificates: store.Certificates(),
		Claims:       store.Claims(),
		Issuer:       h.PKI,
		Vault:        h.Vault,
		Leases:       h.Keys,
		LeaseIssuer:  h.Keys.Issuer(),
		Processes:    h.Outbox,
		Emails:       renderer,
		Config: licensing.Config{
			PublicURL:  "http://127.0.0.1:8080",
			MTLSURL:    "https://127.0.0.1:8443",
			VendorName: "Samplero",
		},
	})
	return h, nil
}

// StartFulfillment is not used by these tests.
func (o *Outbox) StartFulfillment(context.Context, string) error { return nil }

// StartRevocation is not used by these tests.
func (o *Outbox) StartRevocation(context.Context, string, string, string) error { return nil }
