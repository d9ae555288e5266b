package ports

import (
	"context"
	"crypto"
	"time"

	"github.com/samplero/samplero/core/licensing/license"
)

// DeviceOp names a device endpoint, for key resolution and rate limits.
type DeviceOp string

const (
	OpActivate   DeviceOp = "activate"
	OpBootstrap  DeviceOp = "bootstrap"
	OpValidate   DeviceOp = "validate"
	OpHeartbeat  DeviceOp = "heartbeat"
	OpDeactivate DeviceOp = "deactivate"
	OpRenew      DeviceOp = "renew"
	OpStatus     DeviceOp = "status"
)

// DeviceIdentity is what step 5 of PROTOCOL.md section 2 resolves: the key that must have signed the
// request, and for certificate-bound endpoints, the activation it speaks for.
type DeviceIdentity struct {
	ActivationID string // "" for activate, bootstrap and status
	LicenseID    string
	ClaimID      string // bootstrap only
	Thumbprint   string
	PublicKey    crypto.PublicKey
	MTLS         bool // the key was proven by a client certificate on this connection
	// CertificateSerial is the certificate presented, when MTLS.
	CertificateSerial string
}

// ActivateCommand is a verified POST /v1/activate.
type ActivateCommand struct {
	LicenseKey    string
	Fingerprint   string
	Platform      string
	PluginVersion string
	CSRPEM        string
	DeviceName    string
	Product       string
	RequestAddr   string
	Identity      DeviceIdentity // from ResolveCSR
}

// ActivationGrant is the 200/201 body of activate (and of an approved bootstrap).
type ActivationGrant struct {
	Created             bool // 201 (a new activation) rather than 200 (the same one again)
	ActivationID        string
	CertificatePEM      string
	CAChainPEM          string
	CertificateSerial   string
	CertificateNotAfter time.Time
	Lease               string
	HeartbeatInterval   time.Duration
	GracePeriod         time.Duration
	// MTLSURL is the mtls_url of the answer: the device base URL with mutual TLS, from the
	// licensing service's configuration.
	MTLSURL string
}

// PendingClaim is the 202 body of activate and bootstrap.
type PendingClaim struct {
	ClaimID   string
	ExpiresAt time.Time
}

// ActivateResult is either a grant or a pending claim.
type ActivateResult struct {
	Grant   *ActivationGrant
	Pending *PendingClaim
}

// ValidateCommand is a verified POST /v1/validate.
type ValidateCommand struct {
	Identity      DeviceIdentity
	Product       string
	PluginVersion string
}

// LicenseSummary is the "license" object of validate.
type LicenseSummary struct {
	ID           string
	Product      string
	ExpiresAt    *time.Time
	Entitlements []string
}

// ValidateResult is the body of validate.
type ValidateResult struct {
	Valid                bool
	Status               string // section 5 status after precedence
	Action               string // "" or heartbeat_required
	ActivationID         string
	License              LicenseSummary
	HeartbeatDueAt       time.Time
	GracePeriodRemaining time.Duration
}

// HeartbeatCommand is a verified POST /v1/heartbeat.
type HeartbeatCommand struct {
	Identity      DeviceIdentity
	PluginVersion string
}

// HeartbeatResult is the body of heartbeat. When Valid is false only Status is meaningful.
type HeartbeatResult struct {
	Valid                bool
	Status               string
	PreviousStatus       string // "" unless recovering from a grace state
	Recovered            bool
	Lease                string
	HeartbeatDueAt       time.Time
	GracePeriodRemaining time.Duration
	RenewCertificate     bool
}

// DeactivateCommand is a verified POST /v1/deactivate.
type DeactivateCommand struct {
	Identity DeviceIdentity
}

// DeactivateResult is the body of deactivate.
type DeactivateResult struct {
	SeatsUsed      int
	SeatsTotal     int
	SeatReleasedAt time.Time
}

// RenewCommand is a verified POST /v1/certificates/renew.
type RenewCommand struct {
	Identity DeviceIdentity
	CSRPEM   string
}

// RenewResult is the body of renew.
type RenewResult struct {
	CertificatePEM      string
	CAChainPEM          string
	CertificateSerial   string
	CertificateNotAfter time.Time
	Lease               string
}

// StatusResult is the body of status.
type StatusResult struct {
	Status     string
	SeatsUsed  int
	SeatsTotal int
	ExpiresAt  *time.Time
}

// ProductSpec is the admin products call.
type ProductSpec struct {
	Slug       string
	Name       string
	Type       string
	PriceCents int64
	Currency   string
	Policy     PolicySpec
}

// PolicySpec carries the policy as given; zero optional values take the defaults.
type PolicySpec struct {
	MaxActivations       int
	FirstActivation      string
	HeartbeatIntervalS   int64
	GracePeriodS         int64
	CertificateValidityS *int64
	TransfersPer30d      *int
	DurationS            *int64
}

// CreateLicenseCommand is the admin licenses call (and, later, fulfilment's).
type CreateLicenseCommand struct {
	Product        string
	OwnerEmail     string
	MaxActivations *int
	ExpiresAt      *time.Time
	// IdempotencyKey, when set, makes a retry return the license first created with it.
	IdempotencyKey string
}

// ActivationView is an activation as admins see it.
type ActivationView struct {
	ID                string
	LicenseID         string
	Status            string
	DeviceFingerprint string
	DeviceName        string
	Platform          string
	PluginVersion     string
	LastHeartbeatAt   *time.Time
	CertificateSerial string
	CreatedAt         time.Time
}

// LicenseView is a license as admins see it (PROTOCOL.md section 9).
type LicenseView struct {
	ID             string
	Key            string // the canonical key, formatted with dashes
	Status         string // after precedence
	Product        string
	OwnerEmail     string // "" = null
	MaxActivations int
	SeatsUsed      int
	ExpiresAt      *time.Time
	CreatedAt      time.Time
	Activations    []ActivationView
}

// ClaimView is a claim as the owner's confirmation page and admins see it.
type ClaimView struct {
	ID          string
	LicenseID   string
	Status      string
	DeviceName  string
	Platform    string
	Fingerprint string
	RequestAddr string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Licensing is the driving port of the licensing context.
//
// Resolve* implement step 5 of PROTOCOL.md section 2 and change nothing. The device use cases run
// only after every check of section 2 passed; each runs in one transaction, row-locking the license
// when it counts seats, and returns *errs.Error with the codes of PROTOCOL.md section 6.
type Licensing interface {
	// ResolveCSR parses the CSR of an activate request: INVALID_CSR when it does not parse, its
	// self-signature fails or its key is not allowed; UNKNOWN_KEY when keyID is not its thumbprint.
	ResolveCSR(ctx context.Context, csrPEM, keyID string) (DeviceIdentity, error)
	// ResolveClaim: CLAIM_NOT_FOUND for an unknown claim, UNKNOWN_KEY when keyID is not its key.
	ResolveClaim(ctx context.Context, claimID, keyID string) (DeviceIdentity, error)
	// ResolveStatusKey returns the key of an active activation or open claim with this thumbprint;
	// ok=false when there is none (the signature is then not checked).
	ResolveStatusKey(ctx context.Context, keyID string) (id DeviceIdentity, ok bool, err error)
	// ResolveCertificate resolves a verified client certificate (chain already checked) for op:
	// CERTIFICATE_UNKNOWN, ACTIVATION_REVOKED, CERTIFICATE_REVOKED, KEY_MISMATCH.
	ResolveCertificate(ctx context.Context, serial, keyID string, op DeviceOp) (DeviceIdentity, error)
	// ResolveKey resolves a request without a client certificate (require_mtls off): UNKNOWN_KEY
	// when keyID names no active activation's key, then ACTIVATION_REVOKED.
	ResolveKey(ctx context.Context, keyID string, op DeviceOp) (DeviceIdentity, error)

	Activate(ctx context.Context, cmd ActivateCommand) (ActivateResult, error)
	Bootstrap(ctx context.Context, id DeviceIdentity) (ActivateResult, error)
	Validate(ctx context.Context, cmd ValidateCommand) (ValidateResult, error)
	Heartbeat(ctx context.Context, cmd HeartbeatCommand) (HeartbeatResult, error)
	Deactivate(ctx context.Context, cmd DeactivateCommand) (DeactivateResult, error)
	Renew(ctx context.Context, cmd RenewCommand) (RenewResult, error)
	Status(ctx context.Context, licenseKey string) (StatusResult, error)
	// LicenseIDForKey returns the id of the license with this key (for per-license rate limits);
	// LICENSE_NOT_FOUND otherwise.
	LicenseIDForKey(ctx context.Context, licenseKey string) (string, error)

	// Admin.
	PutProduct(ctx context.Context, spec ProductSpec) (license.ProductRecord, error)
	GetProduct(ctx context.Context, slug string) (license.ProductRecord, error)
	CreateLicense(ctx context.Context, cmd CreateLicenseCommand) (LicenseView, error)
	GetLicense(ctx context.Context, id string) (LicenseView, error)
	ListLicenses(ctx context.Context, f LicenseFilter) ([]LicenseView, string, error)
	ListActivations(ctx context.Context, f ActivationFilter) ([]ActivationView, string, error)
	// ChangeLicenseStatus applies "revoke", "suspend" or "reinstate".
	ChangeLicenseStatus(ctx context.Context, id, action, reason string) (LicenseView, error)
	// ReleaseSeat ends the hold on an ended activation's seat at once.
	ReleaseSeat(ctx context.Context, activationID string) (LicenseView, error)

	// Claims: admins by id, owners through the single-use token of the e-mail.
	DecideClaim(ctx context.Context, claimID string, approve bool, actor string) (ClaimView, error)
	ClaimByToken(ctx context.Context, token string) (ClaimView, error)
	DecideClaimByToken(ctx context.Context, token string, approve bool) (ClaimView, error)

	// Owner calls (the customer portal and /v1/me). owner is the signed-in customer's verified
	// e-mail (lower case). A license, device or claim of another owner is NOT_FOUND with the same
	// code as a missing one (LICENSE_NOT_FOUND, ACTIVATION_NOT_FOUND, CLAIM_NOT_FOUND), never
	// FORBIDDEN, so that ids and keys cannot be probed.
	OwnerLicenses(ctx context.Context, owner string) ([]OwnerLicenseView, error)
	// OwnerLicense looks a license up by id or by license key.
	OwnerLicense(ctx context.Context, owner, ref string) (OwnerLicenseView, error)
	// RevealKey returns the formatted key.
	RevealKey(ctx context.Context, owner, licenseID string) (string, error)
	RenameDevice(ctx context.Context, owner, activationID, name string) (ActivationView, error)
	// RevokeDevice ends an activation at the owner's request: its seat is freed at once (not held),
	// its certificate revoked; the owner is e-mailed.
	RevokeDevice(ctx context.Context, owner, activationID string) (OwnerLicenseView, error)
	// OwnerReleaseSeat ends the hold on a seat held after too many transfers (PROTOCOL.md section 5).
	OwnerReleaseSeat(ctx context.Context, owner, activationID string) (OwnerLicenseView, error)
	OwnerDecideClaim(ctx context.Context, owner, claimID string, approve bool) (ClaimView, error)
	// ReissueKey gives the license a new key; the old key stops working at once (activate and
	// status refuse it), devices already active keep working. The new key is e-mailed and returned.
	ReissueKey(ctx context.Context, owner, licenseID string) (OwnerLicenseView, string, error)
	// RecoverLicenses e-mails every license of email (keys included) to that address; nothing
	// when there is none. Callers rate-limit; the answer never says whether there was any.
	RecoverLicenses(ctx context.Context, email string) error
	// SendExpiryNotices e-mails, once per license, the owners of licenses that expire within 7 days
	// of now and of licenses that expired before now; returns how many e-mails it started.
	SendExpiryNotices(ctx context.Context, now time.Time) (int, error)
}

// OwnerDevice is an activation as its owner sees it.
type OwnerDevice struct {
	ActivationView
	TrustLevel     int // the trust level of its last validate or heartbeat (0 = none yet)
	SeatHeldUntil  *time.Time
	EndedAt        *time.Time
	CanReleaseSeat bool
}

// OwnerLicenseView is a license as its owner sees it.
type OwnerLicenseView struct {
	ID             string
	MaskedKey      string // VST-ABCDE-•••••-•••••-WXYZ1 style
	Status         string // after precedence
	Product        string
	MaxActivations int
	SeatsUsed      int
	ExpiresAt      *time.Time
	CreatedAt      time.Time
	Devices        []OwnerDevice
	Claims         []ClaimView // pending claims
}
