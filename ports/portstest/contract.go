package portstest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// Stores is one set of repositories over one backing store, as the repository contract needs it.
type Stores struct {
	Tx           ports.Tx
	Products     ports.ProductRepo
	Licenses     ports.LicenseRepo
	Activations  ports.ActivationRepo
	Certificates ports.CertificateRepo
	Claims       ports.ClaimRepo
	AdminTokens  ports.AdminTokenRepo
}

// Stores returns the repositories of s, for RunRepositoryContract.
func (s *MemStore) Stores() Stores {
	return Stores{
		Tx: s.Tx(), Products: s.Products(), Licenses: s.Licenses(), Activations: s.Activations(),
		Certificates: s.Certificates(), Claims: s.Claims(), AdminTokens: s.AdminTokens(),
	}
}

// t0 is the base time of the contract: a whole second in UTC, the precision every store keeps.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := errs.CodeOf(err); got != code {
		t.Fatalf("want error code %s, got %s (%v)", code, got, err)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func same[T any](t *testing.T, what string, want, got T) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s differs\nwant %+v\n got %+v", what, want, got)
	}
}

func sampleProduct(slug string) license.ProductRecord {
	return license.ProductRecord{
		Slug: slug, Name: "Product " + slug, Type: "bundle", PriceCents: 4999, Currency: "EUR",
		Entitlements: []string{"synth-a", "fx-b"},
		Policy: license.Policy{
			MaxActivations: 3, FirstActivation: license.FirstOwnerApproval,
			HeartbeatInterval: 24 * time.Hour, GracePeriod: 72 * time.Hour,
			CertificateValidity: 90 * 24 * time.Hour, TransfersPer30d: 2, Duration: 365 * 24 * time.Hour,
		},
		CreatedAt: at(0), UpdatedAt: at(time.Second),
	}
}

func sampleLicense(id string, n int) license.LicenseRecord {
	return license.LicenseRecord{
		ID: id, KeyHash: []byte(fmt.Sprintf("hash-%s-\x00\xff", id)), KeySealed: []byte{0, 1, 2, byte(n), 0xfe},
		KeyPrefix: "VST", Product: "synth", Entitlements: []string{"synth", "extra"},
		OwnerEmail: "owner@example.com", MaxActivations: 2, Status: license.LicenseActive,
		StatusReason: "", ExpiresAt: ptr(at(365 * 24 * time.Hour)),
		CreatedAt: at(time.Duration(n) * time.Minute), UpdatedAt: at(time.Duration(n)*time.Minute + time.Second),
	}
}

func sampleActivation(id, licenseID, fingerprint string, n int) license.ActivationRecord {
	return license.ActivationRecord{
		ID: id, LicenseID: licenseID, Fingerprint: fingerprint, DeviceName: "Studio Mac " + id,
		Platform: "macos-arm64", PluginVersion: "1.2.3", KeyThumbprint: "thumb-" + id,
		PublicKeyDER: []byte{0x30, 0x59, byte(n), 0x00}, Status: license.ActivationActive,
		CertificateSerial: "0A1B" + id, CreatedAt: at(time.Duration(n) * time.Minute),
		LastHeartbeatAt: at(time.Duration(n)*time.Minute + time.Hour),
		LastLeaseExp:    ptr(at(time.Duration(n)*time.Minute + 48*time.Hour)),
		UpdatedAt:       at(time.Duration(n)*time.Minute + time.Hour),
		LastTrustLevel:  license.TrustMTLSSigned,
	}
}

// ended turns a into an ended activation.
func ended(a license.ActivationRecord, status license.ActivationStatus, endedAt time.Time, transfer bool, heldUntil *time.Time) license.ActivationRecord {
	a.Status = status
	a.StatusReason = "ended in test"
	a.EndedAt = ptr(endedAt)
	a.FreedByTransfer = transfer
	a.SeatHeldUntil = heldUntil
	return a
}

func ids[T any](rows []T, id func(T) string) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

func licID(l license.LicenseRecord) string    { return l.ID }
func actID(a license.ActivationRecord) string { return a.ID }
func clmID(c license.ClaimRecord) string      { return c.ID }

// RunRepositoryContract checks that the repositories and Tx built by newStore behave as the ports
// promise. newStore must return empty stores, independent of any other call.
func RunRepositoryContract(t *testing.T, newStore func(t *testing.T) Stores) {
	t.Run("Products", func(t *testing.T) { testProducts(t, newStore(t)) })
	t.Run("LicenseRoundTrip", func(t *testing.T) { testLicenseRoundTrip(t, newStore(t)) })
	t.Run("LicenseConstraints", func(t *testing.T) { testLicenseConstraints(t, newStore(t)) })
	t.Run("LicenseList", func(t *testing.T) { testLicenseList(t, newStore(t)) })
	t.Run("LicensesByOwner", func(t *testing.T) { testLicensesByOwner(t, newStore(t)) })
	t.Run("ExpiryNoticesDue", func(t *testing.T) { testExpiryNoticesDue(t, newStore(t)) })
	t.Run("SetTrustLevel", func(t *testing.T) { testSetTrustLevel(t, newStore(t)) })
	t.Run("ActivationRoundTrip", func(t *testing.T) { testActivationRoundTrip(t, newStore(t)) })
	t.Run("ActivationExists", func(t *testing.T) { testActivationExists(t, newStore(t)) })
	t.Run("SeatHoldersAndTransfers", func(t *testing.T) { testSeatHolders(t, newStore(t)) })
	t.Run("ActivationList", func(t *testing.T) { testActivationList(t, newStore(t)) })
	t.Run("Certificates", func(t *testing.T) { testCertificates(t, newStore(t)) })
	t.Run("RevokedCertificates", func(t *testing.T) { testRevokedCertificates(t, newStore(t)) })
	t.Run("Claims", func(t *testing.T) { testClaims(t, newStore(t)) })
	t.Run("AdminTokens", func(t *testing.T) { testAdminTokens(t, newStore(t)) })
	t.Run("TxRollback", func(t *testing.T) { testTxRollback(t, newStore(t)) })
	t.Run("GetForUpdateSerialises", func(t *testing.T) { testGetForUpdate(t, newStore(t)) })
}

func testProducts(t *testing.T, s Stores) {
	ctx := t.Context()
	_, err := s.Products.Get(ctx, "nope")
	wantCode(t, err, errs.CodeNotFound)

	p := sampleProduct("synth")
	noErr(t, s.Products.Upsert(ctx, p))
	got, err := s.Products.Get(ctx, "synth")
	noErr(t, err)
	same(t, "product", p, got)

	// nil/zero optional values round trip too.
	bare := license.ProductRecord{Slug: "bare", Name: "Bare", Type: "plugin", Currency: "USD",
		Policy:    license.Policy{MaxActivations: 1, FirstActivation: license.FirstInstant, HeartbeatInterval: time.Hour, GracePeriod: time.Hour, CertificateValidity: time.Hour},
		CreatedAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Products.Upsert(ctx, bare))
	got, err = s.Products.Get(ctx, "bare")
	noErr(t, err)
	same(t, "bare product", bare, got)

	// Upsert replaces everything but the creation time.
	p2 := p
	p2.Name, p2.Entitlements, p2.Policy.MaxActivations = "Renamed", []string{"only"}, 5
	p2.CreatedAt, p2.UpdatedAt = at(time.Hour), at(time.Hour)
	noErr(t, s.Products.Upsert(ctx, p2))
	got, err = s.Products.Get(ctx, "synth")
	noErr(t, err)
	want := p2
	want.CreatedAt = p.CreatedAt
	same(t, "upserted product", want, got)

	all, err := s.Products.List(ctx)
	noErr(t, err)
	same(t, "product slugs", []string{"bare", "synth"}, ids(all, func(p license.ProductRecord) string { return p.Slug }))

	// A record handed out is a copy.
	got.Entitlements[0] = "mutated"
	again, err := s.Products.Get(ctx, "synth")
	noErr(t, err)
	same(t, "entitlements after mutating a copy", []string{"only"}, again.Entitlements)
}

func testLicenseRoundTrip(t *testing.T, s Stores) {
	ctx := t.Context()
	full := sampleLicense("lic_full", 1)
	full.IdempotencyKey = "fulfillment/ord_1/0"
	full.StatusReason = "because"
	full.ExpiryWarnedAt, full.ExpiredNoticedAt = ptr(at(2*time.Minute)), ptr(at(3*time.Minute))
	bare := license.LicenseRecord{ID: "lic_bare", KeyHash: []byte{9, 9, 9}, KeyPrefix: "LIC", Product: "synth",
		MaxActivations: 1, Status: license.LicenseSuspended, CreatedAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Licenses.Insert(ctx, full))
	noErr(t, s.Licenses.Insert(ctx, bare))

	for _, want := range []license.LicenseRecord{full, bare} {
		got, err := s.Licenses.Get(ctx, want.ID)
		noErr(t, err)
		same(t, "license by id", want, got)
		got, err = s.Licenses.ByKeyHash(ctx, want.KeyHash)
		noErr(t, err)
		same(t, "license by key hash", want, got)
		noErr(t, s.Tx.InTx(ctx, func(ctx context.Context) error {
			got, err := s.Licenses.GetForUpdate(ctx, want.ID)
			noErr(t, err)
			same(t, "license for update", want, got)
			return nil
		}))
	}
	got, err := s.Licenses.ByIdempotencyKey(ctx, "fulfillment/ord_1/0")
	noErr(t, err)
	same(t, "license by idempotency key", full, got)

	// Update writes every field, pointers set to nil included.
	upd := full
	upd.KeyHash, upd.KeySealed = []byte("new-hash"), []byte("new-sealed")
	upd.KeyPrefix, upd.Product, upd.Entitlements = "DIG", "drums", []string{"drums"}
	upd.OwnerEmail, upd.MaxActivations = "", 7
	upd.Status, upd.StatusReason = license.LicenseRevoked, "chargeback"
	upd.ExpiresAt, upd.UpdatedAt = nil, at(time.Hour)
	upd.IdempotencyKey = "other"
	upd.ExpiryWarnedAt, upd.ExpiredNoticedAt = nil, nil
	noErr(t, s.Licenses.Update(ctx, upd))
	got, err = s.Licenses.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "updated license", upd, got)
	_, err = s.Licenses.ByKeyHash(ctx, full.KeyHash)
	wantCode(t, err, errs.CodeNotFound)

	// And back from nil to set.
	upd.ExpiresAt, upd.Entitlements = ptr(at(2*time.Hour)), nil
	upd.ExpiryWarnedAt = ptr(at(90 * time.Minute))
	noErr(t, s.Licenses.Update(ctx, upd))
	got, err = s.Licenses.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "re-updated license", upd, got)

	// Copies: mutating what was returned changes nothing stored.
	got.KeyHash[0] = 'X'
	again, err := s.Licenses.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "key hash after mutating a copy", []byte("new-hash"), again.KeyHash)
}

func testLicenseConstraints(t *testing.T, s Stores) {
	ctx := t.Context()
	_, err := s.Licenses.Get(ctx, "lic_missing")
	wantCode(t, err, errs.CodeNotFound)
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("want kind not_found, got %s", errs.KindOf(err))
	}
	_, err = s.Licenses.ByKeyHash(ctx, []byte("missing"))
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Licenses.ByIdempotencyKey(ctx, "missing")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Licenses.ByIdempotencyKey(ctx, "")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Licenses.Update(ctx, sampleLicense("lic_missing", 1)), errs.CodeNotFound)
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		_, err := s.Licenses.GetForUpdate(ctx, "lic_missing")
		return err
	})
	wantCode(t, err, errs.CodeNotFound)

	a := sampleLicense("lic_a", 1)
	a.IdempotencyKey = "idem-a"
	noErr(t, s.Licenses.Insert(ctx, a))

	// GetForUpdate is only meaningful in a transaction.
	_, err = s.Licenses.GetForUpdate(ctx, "lic_a")
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("GetForUpdate outside a transaction: want an internal error, got %v", err)
	}

	dupKey := sampleLicense("lic_b", 2)
	dupKey.KeyHash = a.KeyHash
	err = s.Licenses.Insert(ctx, dupKey)
	wantCode(t, err, errs.CodeConflict)
	if errs.KindOf(err) != errs.Conflict {
		t.Fatalf("want kind conflict, got %s", errs.KindOf(err))
	}
	dupID := sampleLicense("lic_a", 3)
	wantCode(t, s.Licenses.Insert(ctx, dupID), errs.CodeConflict)
	dupIdem := sampleLicense("lic_c", 4)
	dupIdem.IdempotencyKey = "idem-a"
	wantCode(t, s.Licenses.Insert(ctx, dupIdem), errs.CodeConflict)

	// Licenses without an idempotency key do not collide with each other.
	noErr(t, s.Licenses.Insert(ctx, sampleLicense("lic_d", 5)))
	noErr(t, s.Licenses.Insert(ctx, sampleLicense("lic_e", 6)))

	// Updating onto another license's key hash is a conflict too.
	e := sampleLicense("lic_e", 6)
	e.KeyHash = a.KeyHash
	wantCode(t, s.Licenses.Update(ctx, e), errs.CodeConflict)
	got, err := s.Licenses.Get(ctx, "lic_e")
	noErr(t, err)
	same(t, "license after refused update", sampleLicense("lic_e", 6), got)
}

func testLicenseList(t *testing.T, s Stores) {
	ctx := t.Context()
	var all []license.LicenseRecord
	for i := range 9 {
		l := sampleLicense(fmt.Sprintf("lic_%02d", i), i)
		if i == 4 {
			l.CreatedAt = at(3 * time.Minute) // a tie with lic_03: ordered by id
		}
		if i%3 == 0 {
			l.Product = "drums"
		}
		if i%4 == 1 {
			l.Status = license.LicenseSuspended
		}
		if i == 7 {
			l.OwnerEmail = "other@example.com"
		}
		noErr(t, s.Licenses.Insert(ctx, l))
		all = append(all, l)
	}
	wantOrder := []string{"lic_08", "lic_07", "lic_06", "lic_05", "lic_04", "lic_03", "lic_02", "lic_01", "lic_00"}

	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := s.Licenses.List(ctx, ports.LicenseFilter{Page: ports.Page{Limit: 4, Cursor: cursor}})
		noErr(t, err)
		if len(rows) > 4 {
			t.Fatalf("page of %d rows for limit 4", len(rows))
		}
		seen = append(seen, ids(rows, licID)...)
		if next == "" {
			break
		}
		cursor = next
	}
	same(t, "paged order", wantOrder, seen)

	rows, next, err := s.Licenses.List(ctx, ports.LicenseFilter{})
	noErr(t, err)
	same(t, "default page", wantOrder, ids(rows, licID))
	same(t, "cursor after the last page", "", next)
	same(t, "full rows", all[8], rows[0])

	rows, _, err = s.Licenses.List(ctx, ports.LicenseFilter{Product: "drums"})
	noErr(t, err)
	same(t, "by product", []string{"lic_06", "lic_03", "lic_00"}, ids(rows, licID))
	rows, _, err = s.Licenses.List(ctx, ports.LicenseFilter{Status: license.LicenseSuspended})
	noErr(t, err)
	same(t, "by status", []string{"lic_05", "lic_01"}, ids(rows, licID))
	rows, _, err = s.Licenses.List(ctx, ports.LicenseFilter{OwnerEmail: "other@example.com"})
	noErr(t, err)
	same(t, "by owner", []string{"lic_07"}, ids(rows, licID))
	rows, next, err = s.Licenses.List(ctx, ports.LicenseFilter{Product: "synth", Status: license.LicenseActive, Page: ports.Page{Limit: 2}})
	noErr(t, err)
	same(t, "filtered first page", []string{"lic_08", "lic_07"}, ids(rows, licID))
	rows, _, err = s.Licenses.List(ctx, ports.LicenseFilter{Product: "synth", Status: license.LicenseActive, Page: ports.Page{Limit: 2, Cursor: next}})
	noErr(t, err)
	same(t, "filtered second page", []string{"lic_04", "lic_02"}, ids(rows, licID))

	_, _, err = s.Licenses.List(ctx, ports.LicenseFilter{Page: ports.Page{Cursor: "!!not a cursor"}})
	if errs.KindOf(err) != errs.Invalid {
		t.Fatalf("bad cursor: want an invalid error, got %v", err)
	}
}

func testLicensesByOwner(t *testing.T, s Stores) {
	ctx := t.Context()
	for i, owner := range []string{"Ann.Lee@example.com", "bob@example.com", "ann.lee@example.com", "", "ann.lee@example.org"} {
		l := sampleLicense(fmt.Sprintf("lic_%d", i), i)
		l.OwnerEmail = owner
		noErr(t, s.Licenses.Insert(ctx, l))
	}
	rows, err := s.Licenses.ListByOwner(ctx, "ann.lee@example.com")
	noErr(t, err)
	// Any case of the stored address, newest first.
	same(t, "by owner", []string{"lic_2", "lic_0"}, ids(rows, licID))
	same(t, "full row", sampleLicense("lic_2", 2).Product, rows[0].Product)
	rows, err = s.Licenses.ListByOwner(ctx, "carol@example.com")
	noErr(t, err)
	same(t, "unknown owner", 0, len(rows))
	// A license without an owner belongs to nobody, not to "".
	rows, err = s.Licenses.ListByOwner(ctx, "")
	noErr(t, err)
	same(t, "empty owner", 0, len(rows))
}

func testExpiryNoticesDue(t *testing.T, s Stores) {
	ctx := t.Context()
	now := at(100 * 24 * time.Hour)
	day := 24 * time.Hour
	n := 0
	add := func(id string, exp *time.Time, mod func(*license.LicenseRecord)) {
		t.Helper()
		n++
		l := sampleLicense(id, n)
		l.ExpiresAt = exp
		if mod != nil {
			mod(&l)
		}
		noErr(t, s.Licenses.Insert(ctx, l))
	}
	in := func(d time.Duration) *time.Time { return ptr(now.Add(d)) }
	add("lic_e1", in(time.Hour), nil)
	add("lic_e2", in(7*day), nil) // the last second of the warning window
	add("lic_e3", in(7*day+time.Second), nil)
	add("lic_e4", in(time.Hour), func(l *license.LicenseRecord) { l.ExpiryWarnedAt = ptr(now) })
	add("lic_e5", in(2*time.Hour), func(l *license.LicenseRecord) { l.Status = license.LicenseSuspended })
	add("lic_e6", in(3*time.Hour), func(l *license.LicenseRecord) { l.OwnerEmail = "" })
	add("lic_e7", in(time.Hour), nil) // the same expiry as lic_e1: ordered by id
	add("lic_x1", in(0), nil)         // expires at now: expired
	add("lic_x2", in(-29*day), nil)
	add("lic_x3", in(-30*day), nil) // outside the window
	add("lic_x4", in(-time.Hour), func(l *license.LicenseRecord) { l.ExpiredNoticedAt = ptr(now) })
	add("lic_x5", in(-time.Hour), func(l *license.LicenseRecord) { l.ExpiryWarnedAt = ptr(now.Add(-2 * day)) })
	add("lic_x6", in(-time.Hour), func(l *license.LicenseRecord) { l.Status = license.LicenseRevoked })
	add("lic_p", nil, nil) // perpetual

	rows, err := s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpiring, now, ports.ExpiryCursor{}, 10)
	noErr(t, err)
	same(t, "expiring", []string{"lic_e1", "lic_e7", "lic_e2"}, ids(rows, licID))
	rows, err = s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpired, now, ports.ExpiryCursor{}, 10)
	noErr(t, err)
	same(t, "expired", []string{"lic_x2", "lic_x5", "lic_x1"}, ids(rows, licID))
	// The stores agree with the aggregate's rule on every row they return.
	for _, l := range rows {
		if license.ExpiryNoticeDue(l, now) != license.ExpiryNoticeExpired {
			t.Fatalf("%s returned but not due", l.ID)
		}
	}

	// Keyset pages: strictly after (ExpiresAt, ID).
	page, err := s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpiring, now, ports.ExpiryCursor{}, 1)
	noErr(t, err)
	same(t, "first page", []string{"lic_e1"}, ids(page, licID))
	page, err = s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpiring, now, ports.ExpiryCursor{ExpiresAt: *page[0].ExpiresAt, ID: page[0].ID}, 1)
	noErr(t, err)
	same(t, "second page", []string{"lic_e7"}, ids(page, licID))
	page, err = s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpiring, now, ports.ExpiryCursor{ExpiresAt: *page[0].ExpiresAt, ID: page[0].ID}, 5)
	noErr(t, err)
	same(t, "last page", []string{"lic_e2"}, ids(page, licID))

	// Recording a notice takes the license out.
	e1, err := s.Licenses.Get(ctx, "lic_e1")
	noErr(t, err)
	noErr(t, s.Licenses.Update(ctx, license.MarkExpiryNotice(e1, license.ExpiryNoticeExpiring, now)))
	rows, err = s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeExpiring, now, ports.ExpiryCursor{}, 10)
	noErr(t, err)
	same(t, "expiring after a notice", []string{"lic_e7", "lic_e2"}, ids(rows, licID))

	_, err = s.Licenses.ExpiryNoticesDue(ctx, license.ExpiryNoticeNone, now, ports.ExpiryCursor{}, 10)
	wantCode(t, err, errs.CodeValidationFailed)
}

func testSetTrustLevel(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	a := sampleActivation("act_1", "lic_1", "fp-1", 1)
	a.LastTrustLevel = license.TrustNone
	noErr(t, s.Activations.Insert(ctx, a))
	noErr(t, s.Activations.SetTrustLevel(ctx, "act_1", license.TrustSigned))
	got, err := s.Activations.Get(ctx, "act_1")
	noErr(t, err)
	want := a
	want.LastTrustLevel = license.TrustSigned // and nothing else, UpdatedAt included
	same(t, "after SetTrustLevel", want, got)
	noErr(t, s.Activations.SetTrustLevel(ctx, "act_1", license.TrustSigned)) // unchanged: no error
	noErr(t, s.Activations.SetTrustLevel(ctx, "act_missing", license.TrustSigned))
	// Inside a transaction that rolls back, it is undone with the rest.
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		noErr(t, s.Activations.SetTrustLevel(ctx, "act_1", license.TrustMTLSSigned))
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("the transaction did not fail")
	}
	got, err = s.Activations.Get(ctx, "act_1")
	noErr(t, err)
	same(t, "after a rolled back SetTrustLevel", license.TrustSigned, got.LastTrustLevel)
}

func insertLicense(t *testing.T, s Stores, id string) license.LicenseRecord {
	t.Helper()
	l := sampleLicense(id, 0)
	noErr(t, s.Licenses.Insert(t.Context(), l))
	return l
}

func testActivationRoundTrip(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	full := ended(sampleActivation("act_full", "lic_1", "fp-1", 1), license.ActivationDeactivated, at(time.Hour), true, ptr(at(2*time.Hour)))
	bare := license.ActivationRecord{ID: "act_bare", LicenseID: "lic_1", Fingerprint: "fp-2", KeyThumbprint: "tp-bare",
		Status: license.ActivationActive, CreatedAt: at(0), LastHeartbeatAt: at(0), UpdatedAt: at(0)}
	noErr(t, s.Activations.Insert(ctx, full))
	noErr(t, s.Activations.Insert(ctx, bare))
	for _, want := range []license.ActivationRecord{full, bare} {
		got, err := s.Activations.Get(ctx, want.ID)
		noErr(t, err)
		same(t, "activation", want, got)
	}
	got, err := s.Activations.ActiveByFingerprint(ctx, "lic_1", "fp-2")
	noErr(t, err)
	same(t, "active by fingerprint", bare, got)
	got, err = s.Activations.ActiveByThumbprint(ctx, "tp-bare")
	noErr(t, err)
	same(t, "active by thumbprint", bare, got)

	// Ended activations are not found by the active lookups.
	_, err = s.Activations.ActiveByFingerprint(ctx, "lic_1", "fp-1")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Activations.ActiveByThumbprint(ctx, full.KeyThumbprint)
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Activations.Get(ctx, "act_missing")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Activations.Update(ctx, sampleActivation("act_missing", "lic_1", "fp-9", 9)), errs.CodeNotFound)
	wantCode(t, s.Activations.Insert(ctx, sampleActivation("act_full", "lic_1", "fp-9", 9)), errs.CodeConflict)
	// An activation of a license that does not exist is a bug (a foreign key), not a lookup miss.
	if err := s.Activations.Insert(ctx, sampleActivation("act_orphan", "lic_missing", "fp-9", 9)); errs.KindOf(err) != errs.Internal {
		t.Fatalf("activation of a missing license: want an internal error, got %v", err)
	}

	// Update every field: set pointers, then clear them.
	upd := bare
	upd.DeviceName, upd.Platform, upd.PluginVersion = "Renamed", "windows-x64", "2.0.0"
	upd.KeyThumbprint, upd.PublicKeyDER, upd.CertificateSerial = "tp-new", []byte{1, 2, 3}, "FF01"
	upd.LastHeartbeatAt, upd.LastLeaseExp, upd.UpdatedAt = at(5*time.Hour), ptr(at(6*time.Hour)), at(5*time.Hour)
	upd.LastTrustLevel = license.TrustSigned
	upd = ended(upd, license.ActivationRevoked, at(7*time.Hour), false, ptr(at(8*time.Hour)))
	noErr(t, s.Activations.Update(ctx, upd))
	got, err = s.Activations.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "updated activation", upd, got)
	upd.LastLeaseExp, upd.EndedAt, upd.SeatHeldUntil, upd.PublicKeyDER = nil, nil, nil, nil
	upd.Status, upd.StatusReason = license.ActivationActive, ""
	noErr(t, s.Activations.Update(ctx, upd))
	got, err = s.Activations.Get(ctx, upd.ID)
	noErr(t, err)
	same(t, "cleared activation", upd, got)
}

func testActivationExists(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	insertLicense(t, s, "lic_2")
	old := ended(sampleActivation("act_old", "lic_1", "fp", 1), license.ActivationDeactivated, at(time.Hour), false, nil)
	noErr(t, s.Activations.Insert(ctx, old))
	cur := sampleActivation("act_cur", "lic_1", "fp", 2)
	noErr(t, s.Activations.Insert(ctx, cur)) // an ended one with the same fingerprint does not count

	err := s.Activations.Insert(ctx, sampleActivation("act_dup", "lic_1", "fp", 3))
	wantCode(t, err, CodeActivationExists)
	if errs.KindOf(err) != errs.Conflict {
		t.Fatalf("want kind conflict, got %s", errs.KindOf(err))
	}
	// A second ended one, and the same device on another license, are fine.
	noErr(t, s.Activations.Insert(ctx, ended(sampleActivation("act_old2", "lic_1", "fp", 4), license.ActivationSuperseded, at(time.Hour), false, nil)))
	noErr(t, s.Activations.Insert(ctx, sampleActivation("act_other", "lic_2", "fp", 5)))

	// Reactivating an ended one next to an active one is refused as well.
	react := old
	react.Status, react.EndedAt = license.ActivationActive, nil
	wantCode(t, s.Activations.Update(ctx, react), CodeActivationExists)

	// Inside a transaction the refusal is an error the use case can return (and roll back on).
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		return s.Activations.Insert(ctx, sampleActivation("act_dup2", "lic_1", "fp", 6))
	})
	wantCode(t, err, CodeActivationExists)
	_, err = s.Activations.Get(ctx, "act_dup2")
	wantCode(t, err, errs.CodeNotFound)
}

func testSeatHolders(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	insertLicense(t, s, "lic_2")
	now := at(24 * time.Hour)
	rows := []license.ActivationRecord{
		sampleActivation("act_active", "lic_1", "fp-1", 1),
		ended(sampleActivation("act_held", "lic_1", "fp-2", 2), license.ActivationDeactivated, now.Add(-time.Hour), false, ptr(now.Add(time.Hour))),
		ended(sampleActivation("act_released", "lic_1", "fp-3", 3), license.ActivationDeactivated, now.Add(-2*time.Hour), false, ptr(now.Add(-time.Hour))),
		ended(sampleActivation("act_at_now", "lic_1", "fp-4", 4), license.ActivationRevoked, now.Add(-2*time.Hour), false, ptr(now)),
		ended(sampleActivation("act_transfer", "lic_1", "fp-5", 5), license.ActivationDeactivated, now.Add(-time.Hour), true, nil),
		ended(sampleActivation("act_old_transfer", "lic_1", "fp-6", 6), license.ActivationDeactivated, now.Add(-40*24*time.Hour), true, nil),
		ended(sampleActivation("act_transfer_edge", "lic_1", "fp-7", 7), license.ActivationDeactivated, now.Add(-30*24*time.Hour), true, nil),
		sampleActivation("act_other", "lic_2", "fp-1", 8),
		ended(sampleActivation("act_other_transfer", "lic_2", "fp-2", 9), license.ActivationDeactivated, now.Add(-time.Hour), true, nil),
	}
	for _, a := range rows {
		noErr(t, s.Activations.Insert(ctx, a))
	}
	holders, err := s.Activations.SeatHolders(ctx, "lic_1", now)
	noErr(t, err)
	got := ids(holders, actID)
	slices.Sort(got)
	same(t, "seat holders", []string{"act_active", "act_held"}, got)
	for _, h := range holders {
		if h.ID == "act_held" {
			same(t, "seat holder record", rows[1], h)
		}
	}
	holders, err = s.Activations.SeatHolders(ctx, "lic_missing", now)
	noErr(t, err)
	same(t, "seat holders of an unknown license", 0, len(holders))

	n, err := s.Activations.TransfersSince(ctx, "lic_1", now.Add(-30*24*time.Hour))
	noErr(t, err)
	same(t, "transfers in 30 days (ended exactly at since excluded)", 1, n)
	n, err = s.Activations.TransfersSince(ctx, "lic_1", now.Add(-60*24*time.Hour))
	noErr(t, err)
	same(t, "transfers in 60 days", 3, n)
	n, err = s.Activations.TransfersSince(ctx, "lic_missing", now.Add(-60*24*time.Hour))
	noErr(t, err)
	same(t, "transfers of an unknown license", 0, n)
}

func testActivationList(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	insertLicense(t, s, "lic_2")
	for i := range 7 {
		lic := "lic_1"
		if i%2 == 1 {
			lic = "lic_2"
		}
		a := sampleActivation(fmt.Sprintf("act_%02d", i), lic, fmt.Sprintf("fp-%d", i%3), i)
		if i < 3 {
			a = ended(a, license.ActivationDeactivated, at(time.Hour), false, nil)
		}
		noErr(t, s.Activations.Insert(ctx, a))
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := s.Activations.List(ctx, ports.ActivationFilter{Page: ports.Page{Limit: 3, Cursor: cursor}})
		noErr(t, err)
		seen = append(seen, ids(rows, actID)...)
		if next == "" {
			break
		}
		cursor = next
	}
	same(t, "paged activations", []string{"act_06", "act_05", "act_04", "act_03", "act_02", "act_01", "act_00"}, seen)

	rows, _, err := s.Activations.List(ctx, ports.ActivationFilter{LicenseID: "lic_1"})
	noErr(t, err)
	same(t, "by license", []string{"act_06", "act_04", "act_02", "act_00"}, ids(rows, actID))
	rows, _, err = s.Activations.List(ctx, ports.ActivationFilter{LicenseID: "lic_1", Status: license.ActivationActive})
	noErr(t, err)
	same(t, "by license and status", []string{"act_06", "act_04"}, ids(rows, actID))
	rows, _, err = s.Activations.List(ctx, ports.ActivationFilter{Fingerprint: "fp-0"})
	noErr(t, err)
	same(t, "by fingerprint", []string{"act_06", "act_03", "act_00"}, ids(rows, actID))
}

func testCertificates(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	noErr(t, s.Activations.Insert(ctx, sampleActivation("act_1", "lic_1", "fp", 1)))
	c1 := license.CertificateRecord{Serial: "1F2E3D", ActivationID: "act_1", LicenseID: "lic_1", KeyThumbprint: "tp",
		IssuerID: "int-2026a", DER: []byte{0x30, 0x82, 0x01, 0x00}, NotBefore: at(0), NotAfter: at(90 * 24 * time.Hour),
		Status: license.CertificateCurrent, CreatedAt: at(time.Minute)}
	c0 := c1
	c0.Serial, c0.CreatedAt, c0.Status = "0ABC", at(0), license.CertificateReplaced
	c0.OverlapUntil, c0.RevokedAt, c0.RevokeReason = ptr(at(time.Hour)), ptr(at(2*time.Hour)), "key compromise"
	noErr(t, s.Certificates.Insert(ctx, c1))
	noErr(t, s.Certificates.Insert(ctx, c0))
	for _, want := range []license.CertificateRecord{c0, c1} {
		got, err := s.Certificates.BySerial(ctx, want.Serial)
		noErr(t, err)
		same(t, "certificate", want, got)
	}
	list, err := s.Certificates.ListByActivation(ctx, "act_1")
	noErr(t, err)
	same(t, "certificates of the activation", []license.CertificateRecord{c0, c1}, list)
	list, err = s.Certificates.ListByActivation(ctx, "act_none")
	noErr(t, err)
	same(t, "certificates of an unknown activation", 0, len(list))

	c1.Status, c1.RevokedAt, c1.RevokeReason = license.CertificateRevoked, ptr(at(3*time.Hour)), "activation revoked"
	noErr(t, s.Certificates.Update(ctx, c1))
	got, err := s.Certificates.BySerial(ctx, c1.Serial)
	noErr(t, err)
	same(t, "updated certificate", c1, got)

	_, err = s.Certificates.BySerial(ctx, "DEAD")
	wantCode(t, err, errs.CodeNotFound)
	wantCode(t, s.Certificates.Update(ctx, license.CertificateRecord{Serial: "DEAD", ActivationID: "act_1", LicenseID: "lic_1"}), errs.CodeNotFound)
	wantCode(t, s.Certificates.Insert(ctx, c1), errs.CodeConflict)
}

// testRevokedCertificates checks the revocation-list query: revoked only, this issuer only,
// unexpired at now (NotAfter exclusive), serial order, and the revocation's time and reason.
func testRevokedCertificates(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	noErr(t, s.Activations.Insert(ctx, sampleActivation("act_1", "lic_1", "fp", 1)))
	mk := func(serial, issuer string, status license.CertificateStatus, notAfter time.Duration, reason string) license.CertificateRecord {
		c := license.CertificateRecord{Serial: serial, ActivationID: "act_1", LicenseID: "lic_1", KeyThumbprint: "tp-" + serial,
			IssuerID: issuer, DER: []byte{0x30, 0x03, 0x01, 0x01, 0xff}, NotBefore: at(0), NotAfter: at(notAfter),
			Status: status, CreatedAt: at(time.Minute)}
		if status == license.CertificateRevoked {
			c.RevokedAt, c.RevokeReason = ptr(at(time.Hour)), reason
		}
		return c
	}
	now := at(10 * time.Hour)
	for _, c := range []license.CertificateRecord{
		mk("B2", "int-a", license.CertificateRevoked, 48*time.Hour, "deactivated"),
		mk("0A1", "int-a", license.CertificateRevoked, 24*time.Hour, "reissued"),
		mk("C3", "int-a", license.CertificateRevoked, 10*time.Hour, "expires exactly now"),
		mk("D4", "int-a", license.CertificateRevoked, 9*time.Hour, "expired"),
		mk("E5", "int-a", license.CertificateCurrent, 48*time.Hour, ""),
		mk("F6", "int-a", license.CertificateReplaced, 48*time.Hour, ""),
		mk("A7", "int-b", license.CertificateRevoked, 48*time.Hour, "revoked"),
	} {
		noErr(t, s.Certificates.Insert(ctx, c))
	}
	got, err := s.Certificates.RevokedByIssuer(ctx, "int-a", now)
	noErr(t, err)
	same(t, "revoked by int-a", []ports.RevokedCertificate{
		{Serial: "0A1", RevokedAt: at(time.Hour), NotAfter: at(24 * time.Hour), Reason: "reissued"},
		{Serial: "B2", RevokedAt: at(time.Hour), NotAfter: at(48 * time.Hour), Reason: "deactivated"},
	}, got)
	got, err = s.Certificates.RevokedByIssuer(ctx, "int-a", at(30*time.Hour))
	noErr(t, err)
	same(t, "revoked by int-a later", 1, len(got))
	same(t, "the one left later", "B2", got[0].Serial)
	got, err = s.Certificates.RevokedByIssuer(ctx, "int-none", now)
	noErr(t, err)
	same(t, "revoked by an unknown issuer", 0, len(got))

	// A revocation recorded later shows in the next call: nothing may serve an older answer.
	current, err := s.Certificates.BySerial(ctx, "E5")
	noErr(t, err)
	noErr(t, s.Certificates.Update(ctx, license.RevokeCertificate(current, "deactivated", at(2*time.Hour))))
	got, err = s.Certificates.RevokedByIssuer(ctx, "int-a", now)
	noErr(t, err)
	serials := make([]string, 0, len(got))
	for _, r := range got {
		serials = append(serials, r.Serial)
	}
	same(t, "serials after a new revocation", []string{"0A1", "B2", "E5"}, serials)
	same(t, "time of the new revocation", at(2*time.Hour), got[2].RevokedAt)
}

func testClaims(t *testing.T, s Stores) {
	ctx := t.Context()
	insertLicense(t, s, "lic_1")
	insertLicense(t, s, "lic_2")
	now := at(time.Hour)
	mk := func(id, lic, thumb string, status license.ClaimStatus, expires time.Time, n int) license.ClaimRecord {
		return license.ClaimRecord{ID: id, LicenseID: lic, Fingerprint: "fp-" + id, DeviceName: "Dev " + id,
			Platform: "linux-x64", PluginVersion: "1.0.0", Product: "synth", CSRPEM: "-----BEGIN CERTIFICATE REQUEST-----\n…",
			KeyThumbprint: thumb, PublicKeyDER: []byte{1, byte(n)}, RequestAddr: "203.0.113.7", Status: status,
			TokenHash: []byte("token-" + id), CreatedAt: at(time.Duration(n) * time.Minute), ExpiresAt: expires}
	}
	open1 := mk("clm_open1", "lic_1", "tp-1", license.ClaimPending, now.Add(time.Hour), 1)
	open2 := mk("clm_open2", "lic_1", "tp-2", license.ClaimPending, now.Add(2*time.Hour), 2)
	expired := mk("clm_expired", "lic_1", "tp-3", license.ClaimPending, now, 3)
	decided := mk("clm_decided", "lic_1", "tp-4", license.ClaimApproved, now.Add(time.Hour), 4)
	decided.TokenUsed, decided.AttemptCount, decided.ActivationID, decided.DecidedBy = true, 2, "act_x", "owner"
	decided.DecidedAt = ptr(now.Add(-time.Minute))
	other := mk("clm_other", "lic_2", "tp-5", license.ClaimPending, now.Add(time.Hour), 5)
	for _, c := range []license.ClaimRecord{open2, open1, expired, decided, other} {
		noErr(t, s.Claims.Insert(ctx, c))
	}
	for _, want := range []license.ClaimRecord{open1, decided} {
		got, err := s.Claims.Get(ctx, want.ID)
		noErr(t, err)
		same(t, "claim", want, got)
	}
	open, err := s.Claims.OpenByLicense(ctx, "lic_1", now)
	noErr(t, err)
	got := ids(open, clmID)
	slices.Sort(got)
	same(t, "open claims", []string{"clm_open1", "clm_open2"}, got)
	open, err = s.Claims.OpenByLicense(ctx, "lic_1", now.Add(90*time.Minute))
	noErr(t, err)
	same(t, "open claims later", []string{"clm_open2"}, ids(open, clmID))

	c, err := s.Claims.OpenByThumbprint(ctx, "tp-1", now)
	noErr(t, err)
	same(t, "open claim by thumbprint", open1, c)
	_, err = s.Claims.OpenByThumbprint(ctx, "tp-1", now.Add(time.Hour))
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Claims.OpenByThumbprint(ctx, "tp-3", now)
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Claims.OpenByThumbprint(ctx, "tp-4", now)
	wantCode(t, err, errs.CodeNotFound)

	c, err = s.Claims.ByTokenHash(ctx, []byte("token-clm_decided"))
	noErr(t, err)
	same(t, "claim by token hash", decided, c)
	_, err = s.Claims.ByTokenHash(ctx, []byte("token-none"))
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Claims.Get(ctx, "clm_none")
	wantCode(t, err, errs.CodeNotFound)

	dup := mk("clm_dup", "lic_1", "tp-9", license.ClaimPending, now.Add(time.Hour), 9)
	dup.TokenHash = open1.TokenHash
	wantCode(t, s.Claims.Insert(ctx, dup), errs.CodeConflict)
	wantCode(t, s.Claims.Insert(ctx, open1), errs.CodeConflict)

	open1.Status, open1.TokenUsed, open1.DecidedBy, open1.DecidedAt = license.ClaimRejected, true, "admin:7", ptr(now)
	open1.AttemptCount, open1.ActivationID = 3, ""
	noErr(t, s.Claims.Update(ctx, open1))
	c, err = s.Claims.Get(ctx, open1.ID)
	noErr(t, err)
	same(t, "updated claim", open1, c)
	wantCode(t, s.Claims.Update(ctx, mk("clm_none", "lic_1", "tp", license.ClaimPending, now, 10)), errs.CodeNotFound)
}

func testAdminTokens(t *testing.T, s Stores) {
	ctx := t.Context()
	tok := ports.AdminToken{ID: "adm_1", Name: "ci", Hash: []byte{0xde, 0xad, 0xbe, 0xef}, CreatedAt: at(0)}
	noErr(t, s.AdminTokens.Insert(ctx, tok))
	got, err := s.AdminTokens.ByHash(ctx, tok.Hash)
	noErr(t, err)
	same(t, "admin token", tok, got)
	_, err = s.AdminTokens.ByHash(ctx, []byte("nope"))
	wantCode(t, err, errs.CodeNotFound)
	dup := tok
	dup.ID = "adm_2"
	wantCode(t, s.AdminTokens.Insert(ctx, dup), errs.CodeConflict)
}

func testTxRollback(t *testing.T, s Stores) {
	ctx := t.Context()
	boom := errors.New("use case failed")
	err := s.Tx.InTx(ctx, func(ctx context.Context) error {
		noErr(t, s.Licenses.Insert(ctx, sampleLicense("lic_rb", 1)))
		noErr(t, s.Activations.Insert(ctx, sampleActivation("act_rb", "lic_rb", "fp", 1)))
		noErr(t, s.Products.Upsert(ctx, sampleProduct("prod_rb")))
		// Reads in the transaction see its own writes.
		if _, err := s.Licenses.GetForUpdate(ctx, "lic_rb"); err != nil {
			t.Errorf("own write not visible: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	_, err = s.Licenses.Get(ctx, "lic_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Activations.Get(ctx, "act_rb")
	wantCode(t, err, errs.CodeNotFound)
	_, err = s.Products.Get(ctx, "prod_rb")
	wantCode(t, err, errs.CodeNotFound)

	// An update rolled back restores the previous row.
	l := insertLicense(t, s, "lic_keep")
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		m := l
		m.MaxActivations, m.Status = 99, license.LicenseRevoked
		noErr(t, s.Licenses.Update(ctx, m))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx: want fn's error back, got %v", err)
	}
	got, err := s.Licenses.Get(ctx, "lic_keep")
	noErr(t, err)
	same(t, "license after rolled-back update", l, got)

	// Nested calls join the outer transaction: the outer failure undoes the inner work.
	err = s.Tx.InTx(ctx, func(ctx context.Context) error {
		if err := s.Tx.InTx(ctx, func(ctx context.Context) error {
			return s.Licenses.Insert(ctx, sampleLicense("lic_nested", 2))
		}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("nested InTx: want fn's error back, got %v", err)
	}
	_, err = s.Licenses.Get(ctx, "lic_nested")
	wantCode(t, err, errs.CodeNotFound)

	// A panic rolls back and propagates.
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic in fn was swallowed")
			}
		}()
		_ = s.Tx.InTx(ctx, func(ctx context.Context) error {
			noErr(t, s.Licenses.Insert(ctx, sampleLicense("lic_panic", 3)))
			panic("boom")
		})
	}()
	_, err = s.Licenses.Get(ctx, "lic_panic")
	wantCode(t, err, errs.CodeNotFound)

	// And success commits.
	noErr(t, s.Tx.InTx(ctx, func(ctx context.Context) error {
		return s.Tx.InTx(ctx, func(ctx context.Context) error {
			return s.Licenses.Insert(ctx, sampleLicense("lic_commit", 4))
		})
	}))
	_, err = s.Licenses.Get(ctx, "lic_commit")
	noErr(t, err)
}

func testGetForUpdate(t *testing.T, s Stores) {
	ctx := t.Context()
	l := insertLicense(t, s, "lic_counter")
	const workers, rounds = 2, 20
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				errc <- s.Tx.InTx(ctx, func(ctx context.Context) error {
					cur, err := s.Licenses.GetForUpdate(ctx, "lic_counter")
					if err != nil {
						return err
					}
					// Widen the race window: without the lock the other worker reads the same value.
					if _, err := s.Activations.SeatHolders(ctx, cur.ID, t0); err != nil {
						return err
					}
					time.Sleep(time.Millisecond)
					cur.MaxActivations++
					return s.Licenses.Update(ctx, cur)
				})
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		noErr(t, err)
	}
	got, err := s.Licenses.Get(ctx, "lic_counter")
	noErr(t, err)
	same(t, "counter after concurrent read-modify-writes", l.MaxActivations+workers*rounds, got.MaxActivations)
}

// NonceHarness is a nonce store under test and a way to let time pass for it: moving a fake clock,
// or sleeping for stores that expire on their server's clock.
type NonceHarness struct {
	Store   ports.NonceStore
	Advance func(d time.Duration)
}

// RunNonceStoreContract checks ports.NonceStore: exactly-once reservation, independence of pairs,
// expiry after ttl. newStore must return an empty store.
func RunNonceStoreContract(t *testing.T, newStore func(t *testing.T) NonceHarness) {
	t.Run("ReserveOnce", func(t *testing.T) {
		h := newStore(t)
		ctx := t.Context()
		fresh, err := h.Store.Reserve(ctx, "key-1", "nonce-1", time.Minute)
		noErr(t, err)
		same(t, "first reserve", true, fresh)
		fresh, err = h.Store.Reserve(ctx, "key-1", "nonce-1", time.Minute)
		noErr(t, err)
		same(t, "replay", false, fresh)
		// Pairs are independent, case-sensitive (key ids and nonces are base64url), and the parts
		// cannot be shifted into each other.
		for _, p := range [][2]string{{"key-1", "nonce-2"}, {"key-2", "nonce-1"}, {"KEY-1", "nonce-1"}, {"key-1", "NONCE-1"},
			{"key-1:nonce", "1"}, {"key", "1:nonce-1"}} {
			fresh, err = h.Store.Reserve(ctx, p[0], p[1], time.Minute)
			noErr(t, err)
			same(t, fmt.Sprintf("reserve %q", p), true, fresh)
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		h := newStore(t)
		ctx := t.Context()
		fresh, err := h.Store.Reserve(ctx, "key-1", "nonce-1", time.Second)
		noErr(t, err)
		same(t, "first reserve", true, fresh)
		fresh, err = h.Store.Reserve(ctx, "key-1", "nonce-2", 5*time.Second)
		noErr(t, err)
		same(t, "second pair", true, fresh)
		h.Advance(1500 * time.Millisecond)
		fresh, err = h.Store.Reserve(ctx, "key-1", "nonce-1", time.Second)
		noErr(t, err)
		same(t, "reserve after expiry", true, fresh)
		fresh, err = h.Store.Reserve(ctx, "key-1", "nonce-1", time.Second)
		noErr(t, err)
		same(t, "replay of the re-reserved pair", false, fresh)
		fresh, err = h.Store.Reserve(ctx, "key-1", "nonce-2", time.Second)
		noErr(t, err)
		same(t, "replay within the longer ttl", false, fresh)
	})
	t.Run("ConcurrentExactlyOnce", func(t *testing.T) {
		h := newStore(t)
		ctx := t.Context()
		race := func(nonce string) int {
			const n = 50
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins := 0
			start := make(chan struct{})
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					fresh, err := h.Store.Reserve(ctx, "key-c", nonce, time.Second)
					if err != nil {
						t.Errorf("reserve: %v", err)
						return
					}
					if fresh {
						mu.Lock()
						wins++
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			return wins
		}
		same(t, "fresh reservations of one pair by 50 goroutines", 1, race("n-1"))
		// An expired pair is re-claimed exactly once too.
		h.Advance(1500 * time.Millisecond)
		same(t, "fresh re-reservations of an expired pair", 1, race("n-1"))
	})
}

// LimiterHarness is a rate limiter under test and a way to let time pass for it.
type LimiterHarness struct {
	Limiter ports.RateLimiter
	Advance func(d time.Duration)
}

// RunRateLimiterContract checks ports.RateLimiter: at most Max events per Window per key, a
// retryAfter within the window when refused, independence of keys and exact counting under
// concurrency. newLimiter must return a limiter with no events counted.
func RunRateLimiterContract(t *testing.T, newLimiter func(t *testing.T) LimiterHarness) {
	limit := ports.Limit{Max: 3, Window: time.Second}
	t.Run("Window", func(t *testing.T) {
		h := newLimiter(t)
		ctx := t.Context()
		for i := range limit.Max {
			ok, _, err := h.Limiter.Allow(ctx, "k1", limit)
			noErr(t, err)
			same(t, fmt.Sprintf("event %d", i+1), true, ok)
		}
		ok, retry, err := h.Limiter.Allow(ctx, "k1", limit)
		noErr(t, err)
		same(t, "event over the limit", false, ok)
		if retry <= 0 || retry > limit.Window {
			t.Fatalf("retryAfter %v, want within (0, %v]", retry, limit.Window)
		}
		ok, _, err = h.Limiter.Allow(ctx, "k2", limit)
		noErr(t, err)
		same(t, "another key", true, ok)

		h.Advance(limit.Window + 200*time.Millisecond)
		for i := range limit.Max {
			ok, _, err := h.Limiter.Allow(ctx, "k1", limit)
			noErr(t, err)
			same(t, fmt.Sprintf("event %d after the window", i+1), true, ok)
		}
		ok, _, err = h.Limiter.Allow(ctx, "k1", limit)
		noErr(t, err)
		same(t, "over the limit again", false, ok)
	})
	t.Run("Concurrent", func(t *testing.T) {
		h := newLimiter(t)
		ctx := t.Context()
		lim := ports.Limit{Max: 10, Window: time.Minute}
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _, err := h.Limiter.Allow(ctx, "hot", lim)
				if err != nil {
					t.Errorf("allow: %v", err)
					return
				}
				if ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		same(t, "allowed of 50 concurrent events", lim.Max, allowed)
	})
}
