package ports

import (
	"context"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
)

// Page asks for one page of a list: at most Limit rows (1..200, default 50) after the opaque Cursor.
type Page struct {
	Limit  int
	Cursor string
}

// LicenseFilter narrows ListLicenses. Empty fields do not filter.
type LicenseFilter struct {
	Product    string
	Status     license.LicenseStatus // stored status
	OwnerEmail string
	Page
}

// ActivationFilter narrows ListActivations. Empty fields do not filter.
type ActivationFilter struct {
	LicenseID   string
	Status      license.ActivationStatus
	Fingerprint string
	Page
}

// Every repository method takes part in the transaction carried by ctx (see Tx) when there is one.
// Lookups of a missing row return errs.NotFound with code NOT_FOUND. Records are returned by value:
// changing one changes nothing until Update.

// ProductRepo stores product policies.
type ProductRepo interface {
	// Upsert creates or replaces the product with this slug.
	Upsert(ctx context.Context, p license.ProductRecord) error
	Get(ctx context.Context, slug string) (license.ProductRecord, error)
	List(ctx context.Context) ([]license.ProductRecord, error)
}

// LicenseRepo stores licenses.
type LicenseRepo interface {
	// Insert adds a license. A duplicate id, key hash or (non-empty) idempotency key is errs.Conflict
	// code CONFLICT.
	Insert(ctx context.Context, l license.LicenseRecord) error
	Get(ctx context.Context, id string) (license.LicenseRecord, error)
	// GetForUpdate loads the license and locks its row until the transaction in ctx ends, so that
	// every use case that counts seats on a license runs one after the other. Requires a transaction.
	GetForUpdate(ctx context.Context, id string) (license.LicenseRecord, error)
	ByKeyHash(ctx context.Context, hash []byte) (license.LicenseRecord, error)
	// ByIdempotencyKey returns the license inserted with this IdempotencyKey (unique when set);
	// NOT_FOUND when there is none or key is "".
	ByIdempotencyKey(ctx context.Context, key string) (license.LicenseRecord, error)
	// Update writes every field of l (by ID).
	Update(ctx context.Context, l license.LicenseRecord) error
	// List returns a page ordered by creation (newest first) and the cursor of the next page ("" at the end).
	List(ctx context.Context, f LicenseFilter) ([]license.LicenseRecord, string, error)
	// ListByOwner returns every license whose OwnerEmail equals owner (a lower-case address) in any
	// case, newest first (ties by id, descending); none for "". Served by an index on the
	// lower-cased owner_email.
	ListByOwner(ctx context.Context, owner string) ([]license.LicenseRecord, error)
	// ExpiryNoticesDue returns up to limit licenses (at most 500; 0 or less means 500) that owe
	// notice n at now: exactly those for which license.ExpiryNoticeDue(l, now) == n, ordered by
	// (ExpiresAt, ID) and strictly after the cursor after (the zero cursor starts at the
	// beginning). Served by partial indexes on expires_at, so its cost follows the licenses due,
	// not every license. A notice other than expiring or expired is VALIDATION_FAILED.
	ExpiryNoticesDue(ctx context.Context, n license.ExpiryNotice, now time.Time, after ExpiryCursor, limit int) ([]license.LicenseRecord, error)
}

// ExpiryCursor is the (ExpiresAt, ID) of the last license of a page of ExpiryNoticesDue.
type ExpiryCursor struct {
	ExpiresAt time.Time
	ID        string
}

// SeatCounter is an optional extension of ActivationRepo: a repository that can count seats
// without loading the seat holders implements it, and the licensing core then uses it instead of
// SeatHolders, so that an activation on a license with many devices does not read them all.
type SeatCounter interface {
	// CountSeats returns, for the activations SeatHolders would return at now, how many hold a
	// seat (license.SeatsUsed of them) and how many of those are active.
	CountSeats(ctx context.Context, licenseID string, now time.Time) (held, active int, err error)
}

// ActivationRepo stores activations.
type ActivationRepo interface {
	// Insert adds an activation. A second active activation with the same (license, fingerprint) is
	// refused by a unique index as errs.Conflict code ACTIVATION_EXISTS: the last line of defence
	// behind the license row lock.
	Insert(ctx context.Context, a license.ActivationRecord) error
	Get(ctx context.Context, id string) (license.ActivationRecord, error)
	Update(ctx context.Context, a license.ActivationRecord) error
	// ActiveByFingerprint returns the active activation of this device on this license.
	ActiveByFingerprint(ctx context.Context, licenseID, fingerprint string) (license.ActivationRecord, error)
	// ActiveByThumbprint returns the active activation holding this device key.
	ActiveByThumbprint(ctx context.Context, thumbprint string) (license.ActivationRecord, error)
	// SeatHolders returns the activations of a license that may hold a seat at now: every active one,
	// and every ended one whose SeatHeldUntil is after now. Its cost does not grow with ended ones.
	SeatHolders(ctx context.Context, licenseID string, now time.Time) ([]license.ActivationRecord, error)
	// TransfersSince counts the license's activations with FreedByTransfer whose EndedAt is after since.
	TransfersSince(ctx context.Context, licenseID string, since time.Time) (int, error)
	List(ctx context.Context, f ActivationFilter) ([]license.ActivationRecord, string, error)
	// SetTrustLevel records the trust level of the activation's last validate or heartbeat. It
	// writes that one column (and UpdatedAt not at all), and only when the level differs, so that
	// validate, which holds no lock, never overwrites what a concurrent use case wrote. Nothing
	// changing (the level is already recorded, or there is no such activation) is not an error.
	SetTrustLevel(ctx context.Context, id string, level int) error
}

// CertificateRepo stores device certificates.
type CertificateRepo interface {
	Insert(ctx context.Context, c license.CertificateRecord) error
	// BySerial looks a certificate up by its canonical serial.
	BySerial(ctx context.Context, serial string) (license.CertificateRecord, error)
	Update(ctx context.Context, c license.CertificateRecord) error
	ListByActivation(ctx context.Context, activationID string) ([]license.CertificateRecord, error)
	// RevokedByIssuer lists the certificates with status revoked that intermediate issuerID signed
	// and whose NotAfter is after now (an expired certificate drops out of revocation lists), in
	// serial order. It reads only what a revocation list needs (never the DER), through an index on
	// revoked rows, so that the CRL publisher may call it on every request. An issuer with none
	// gives an empty list. Errors: errs.Unavailable when the store is down.
	RevokedByIssuer(ctx context.Context, issuerID string, now time.Time) ([]RevokedCertificate, error)
}

// RevokedCertificate is a revoked device certificate as a revocation list names it.
type RevokedCertificate struct {
	Serial    string    // canonical upper-case hex
	RevokedAt time.Time // when it was revoked (the CRL entry's revocation date)
	NotAfter  time.Time
	Reason    string // license.CertificateRecord.RevokeReason, free text
}

// ClaimRepo stores first-activation claims.
type ClaimRepo interface {
	Insert(ctx context.Context, c license.ClaimRecord) error
	Get(ctx context.Context, id string) (license.ClaimRecord, error)
	Update(ctx context.Context, c license.ClaimRecord) error
	// OpenByLicense returns the license's pending claims whose ExpiresAt is after now.
	OpenByLicense(ctx context.Context, licenseID string, now time.Time) ([]license.ClaimRecord, error)
	// OpenByThumbprint returns the pending, unexpired claim holding this key, if any.
	OpenByThumbprint(ctx context.Context, thumbprint string, now time.Time) (license.ClaimRecord, error)
	ByTokenHash(ctx context.Context, hash []byte) (license.ClaimRecord, error)
}

// AdminToken is an admin API token as stored: only its hash.
type AdminToken struct {
	ID        string
	Name      string
	Hash      []byte // SHA-256 of the token
	CreatedAt time.Time
}

// AdminTokenRepo stores admin API tokens.
type AdminTokenRepo interface {
	Insert(ctx context.Context, t AdminToken) error
	ByHash(ctx context.Context, hash []byte) (AdminToken, error)
}

// Migrator applies the embedded schema migrations.
type Migrator interface {
	Up(ctx context.Context) error
	Down(ctx context.Context) error // rolls back the last group
	Status(ctx context.Context) (string, error)
}
