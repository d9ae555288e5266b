// Package license holds the License, Activation, Certificate and Claim aggregates of the licensing
// context, the product policy, the license key format and the status rules of PROTOCOL.md sections 1
// and 5.
//
// The *Record structs are the persistence shapes: stores map database rows to and from them and
// nothing else reads their fields to make decisions; the behaviour (state rules, seats, transitions)
// lives in the functions and methods of this package that take and return records, so that every
// rule is in one place and table-tested.
package license

import "time"

// LicenseStatus is the stored status of a license. "expired" is never stored: it is derived from
// ExpiresAt (see EffectiveStatus).
type LicenseStatus string

const (
	LicenseActive    LicenseStatus = "active"
	LicenseSuspended LicenseStatus = "suspended"
	LicenseRevoked   LicenseStatus = "revoked"
	LicenseExpired   LicenseStatus = "expired" // derived only
)

// ActivationStatus is the stored status of an activation.
type ActivationStatus string

const (
	ActivationActive      ActivationStatus = "active"
	ActivationDeactivated ActivationStatus = "deactivated"
	ActivationRevoked     ActivationStatus = "revoked"
	ActivationSuperseded  ActivationStatus = "superseded"
)

// CertificateStatus is the stored status of a device certificate.
type CertificateStatus string

const (
	CertificateCurrent  CertificateStatus = "current"  // the activation's certificate
	CertificateReplaced CertificateStatus = "replaced" // replaced by a renewal; valid for validate/heartbeat until OverlapUntil
	CertificateRevoked  CertificateStatus = "revoked"
)

// ClaimStatus is the stored status of a first-activation claim.
type ClaimStatus string

const (
	ClaimPending  ClaimStatus = "pending"
	ClaimApproved ClaimStatus = "approved"
	ClaimRejected ClaimStatus = "rejected"
	ClaimExpired  ClaimStatus = "expired" // derived from ExpiresAt for pending claims; stored once observed
)

// FirstActivation is the product policy for a license's first device.
type FirstActivation string

const (
	FirstInstant       FirstActivation = "instant"
	FirstOwnerApproval FirstActivation = "owner_approval"
)

// Policy is the licensing policy of a product (PROTOCOL.md sections 5 and 9). Zero durations are
// never valid in a stored policy: NormalizePolicy fills defaults and validates.
type Policy struct {
	MaxActivations      int
	FirstActivation     FirstActivation
	HeartbeatInterval   time.Duration
	GracePeriod         time.Duration
	CertificateValidity time.Duration
	TransfersPer30d     int
	Duration            time.Duration // license duration from issue; 0 = perpetual
}

// ProductRecord is a product as the licensing context knows it: its slug, what it entitles and its
// policy. The commerce context adds the catalog side (prices, versions) behind the same admin call.
type ProductRecord struct {
	Slug         string
	Name         string
	Type         string // plugin | sample_pack | bundle
	PriceCents   int64
	Currency     string
	Entitlements []string // slugs covered besides Slug itself (bundles)
	Policy       Policy
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// LicenseRecord is a license as stored.
type LicenseRecord struct {
	ID             string // lic_…
	KeyHash        []byte // HMAC-SHA-256 of the canonical key under the lookup secret
	KeySealed      []byte // the canonical key, encrypted under the key-encryption secret
	KeyPrefix      string // VST | DIG | LIC
	Product        string // slug sold as
	Entitlements   []string
	OwnerEmail     string // "" when there is none
	MaxActivations int
	Status         LicenseStatus
	StatusReason   string
	ExpiresAt      *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// IdempotencyKey is the key the license was created with ("" = none). Unique when set, so a
	// retried CreateLicense finds the license it created first (LicenseRepo.ByIdempotencyKey).
	IdempotencyKey string
	// ExpiryWarnedAt and ExpiredNoticedAt record when the owner was e-mailed that the license
	// expires within ExpiryWarning, and that it has expired: each notice goes out once (see
	// ExpiryNoticeDue).
	ExpiryWarnedAt   *time.Time
	ExpiredNoticedAt *time.Time
}

// ActivationRecord is one device slot.
type ActivationRecord struct {
	ID                string // act_…
	LicenseID         string
	Fingerprint       string
	DeviceName        string
	Platform          string
	PluginVersion     string
	KeyThumbprint     string // base64url SHA-256 of the SPKI DER
	PublicKeyDER      []byte // SPKI DER of the device key
	Status            ActivationStatus
	StatusReason      string
	CertificateSerial string // the current certificate's canonical serial
	CreatedAt         time.Time
	LastHeartbeatAt   time.Time  // activation counts as one
	LastLeaseExp      *time.Time // exp of the newest lease issued
	EndedAt           *time.Time // when it stopped being active
	FreedByTransfer   bool       // its seat was freed at once, spending one of the 30-day transfers
	SeatHeldUntil     *time.Time // when ended past the transfer limit: the seat counts until then
	// LastTrustLevel is the trust level (PROTOCOL.md section 5) of the last validate or heartbeat
	// of this activation: TrustSigned or TrustMTLSSigned; TrustNone before the first one.
	LastTrustLevel int
	UpdatedAt      time.Time
}

// CertificateRecord is a device certificate on record.
type CertificateRecord struct {
	Serial        string // canonical upper-case hex, no leading zeros
	ActivationID  string
	LicenseID     string
	KeyThumbprint string
	IssuerID      string // intermediate that issued it
	DER           []byte
	NotBefore     time.Time
	NotAfter      time.Time
	Status        CertificateStatus
	OverlapUntil  *time.Time // for replaced certificates
	RevokedAt     *time.Time
	RevokeReason  string
	CreatedAt     time.Time
}

// ClaimRecord is a first-activation claim waiting for the owner's (or an admin's) decision.
type ClaimRecord struct {
	ID            string // clm_…
	LicenseID     string
	Fingerprint   string
	DeviceName    string
	Platform      string
	PluginVersion string
	Product       string
	CSRPEM        string
	KeyThumbprint string
	PublicKeyDER  []byte
	RequestAddr   string
	Status        ClaimStatus
	TokenHash     []byte // SHA-256 of the single-use confirmation token
	TokenUsed     bool
	AttemptCount  int    // other devices that asked while it was open
	ActivationID  string // set once approved and bootstrapped
	DecidedBy     string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	DecidedAt     *time.Time
}
