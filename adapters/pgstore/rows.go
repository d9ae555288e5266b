package pgstore

import (
	"encoding/json"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// The rows below are the tables of migrations/*/20261129000001_licensing: bun models, separate from
// the license records so that a schema change never leaks into the cores. Times are written in UTC
// at microsecond precision (what PostgreSQL keeps) and read back in UTC; empty byte strings are
// NULL; string lists are JSON text.

type productRow struct {
	bun.BaseModel `bun:"table:products,alias:p"`

	Slug                  string    `bun:"slug,pk"`
	Name                  string    `bun:"name"`
	Type                  string    `bun:"type"`
	PriceCents            int64     `bun:"price_cents"`
	Currency              string    `bun:"currency"`
	Entitlements          string    `bun:"entitlements"`
	MaxActivations        int       `bun:"max_activations"`
	FirstActivation       string    `bun:"first_activation"`
	HeartbeatIntervalMS   int64     `bun:"heartbeat_interval_ms"`
	GracePeriodMS         int64     `bun:"grace_period_ms"`
	CertificateValidityMS int64     `bun:"certificate_validity_ms"`
	TransfersPer30d       int       `bun:"transfers_per_30d"`
	DurationMS            int64     `bun:"duration_ms"`
	CreatedAt             time.Time `bun:"created_at"`
	UpdatedAt             time.Time `bun:"updated_at"`
}

type licenseRow struct {
	bun.BaseModel `bun:"table:licenses,alias:l"`

	ID             string     `bun:"id,pk"`
	KeyHash        []byte     `bun:"key_hash"`
	KeySealed      []byte     `bun:"key_sealed"`
	KeyPrefix      string     `bun:"key_prefix"`
	Product        string     `bun:"product"`
	Entitlements   string     `bun:"entitlements"`
	OwnerEmail     string     `bun:"owner_email"`
	MaxActivations int        `bun:"max_activations"`
	Status         string     `bun:"status"`
	StatusReason   string     `bun:"status_reason"`
	ExpiresAt      *time.Time `bun:"expires_at"`
	IdempotencyKey string     `bun:"idempotency_key,nullzero"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
	// 20261129000006_license_notices.
	ExpiryWarnedAt   *time.Time `bun:"expiry_warned_at"`
	ExpiredNoticedAt *time.Time `bun:"expired_noticed_at"`
}

type activationRow struct {
	bun.BaseModel `bun:"table:activations,alias:a"`

	ID                string     `bun:"id,pk"`
	LicenseID         string     `bun:"license_id"`
	Fingerprint       string     `bun:"fingerprint"`
	DeviceName        string     `bun:"device_name"`
	Platform          string     `bun:"platform"`
	PluginVersion     string     `bun:"plugin_version"`
	KeyThumbprint     string     `bun:"key_thumbprint"`
	PublicKeyDER      []byte     `bun:"public_key_der"`
	Status            string     `bun:"status"`
	StatusReason      string     `bun:"status_reason"`
	CertificateSerial string     `bun:"certificate_serial"`
	CreatedAt         time.Time  `bun:"created_at"`
	LastHeartbeatAt   time.Time  `bun:"last_heartbeat_at"`
	LastLeaseExp      *time.Time `bun:"last_lease_exp"`
	EndedAt           *time.Time `bun:"ended_at"`
	FreedByTransfer   bool       `bun:"freed_by_transfer"`
	SeatHeldUntil     *time.Time `bun:"seat_held_until"`
	UpdatedAt         time.Time  `bun:"updated_at"`
	// 20261129000006_license_notices.
	LastTrustLevel int `bun:"last_trust_level"`
}

type certificateRow struct {
	bun.BaseModel `bun:"table:certificates,alias:c"`

	Serial        string     `bun:"serial,pk"`
	ActivationID  string     `bun:"activation_id"`
	LicenseID     string     `bun:"license_id"`
	KeyThumbprint string     `bun:"key_thumbprint"`
	IssuerID      string     `bun:"issuer_id"`
	DER           []byte     `bun:"der"`
	NotBefore     time.Time  `bun:"not_before"`
	NotAfter      time.Time  `bun:"not_after"`
	Status        string     `bun:"status"`
	OverlapUntil  *time.Time `bun:"overlap_until"`
	RevokedAt     *time.Time `bun:"revoked_at"`
	RevokeReason  string     `bun:"revoke_reason"`
	CreatedAt     time.Time  `bun:"created_at"`
}

type claimRow struct {
	bun.BaseModel `bun:"table:claims,alias:cl"`

	ID            string     `bun:"id,pk"`
	LicenseID     string     `bun:"license_id"`
	Fingerprint   string     `bun:"fingerprint"`
	DeviceName    string     `bun:"device_name"`
	Platform      string     `bun:"platform"`
	PluginVersion string     `bun:"plugin_version"`
	Product       string     `bun:"product"`
	CSRPEM        string     `bun:"csr_pem"`
	KeyThumbprint string     `bun:"key_thumbprint"`
	PublicKeyDER  []byte     `bun:"public_key_der"`
	RequestAddr   string     `bun:"request_addr"`
	Status        string     `bun:"status"`
	TokenHash     []byte     `bun:"token_hash"`
	TokenUsed     bool       `bun:"token_used"`
	AttemptCount  int        `bun:"attempt_count"`
	ActivationID  string     `bun:"activation_id"`
	DecidedBy     string     `bun:"decided_by"`
	CreatedAt     time.Time  `bun:"created_at"`
	ExpiresAt     time.Time  `bun:"expires_at"`
	DecidedAt     *time.Time `bun:"decided_at"`
}

type adminTokenRow struct {
	bun.BaseModel `bun:"table:admin_tokens,alias:t"`

	ID        string    `bun:"id,pk"`
	Name      string    `bun:"name"`
	Hash      []byte    `bun:"hash"`
	CreatedAt time.Time `bun:"created_at"`
}

type nonceRow struct {
	bun.BaseModel `bun:"table:request_nonces,alias:n"`

	Pair      []byte `bun:"pair,pk"`    // digestPair(key id, nonce)
	ExpiresAt int64  `bun:"expires_at"` // unix milliseconds
}

// ---- value mappers ----

func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

func recTime(t time.Time) time.Time { return t.UTC() }

func recTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// dbBytes stores an empty byte string as NULL, so that "none" never collides in a unique index.
func dbBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func recBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func dbStrings(s []string) (string, error) {
	if len(s) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", errs.Internalf("pgstore: encoding a string list: %w", err)
	}
	return string(b), nil
}

func recStrings(s string) ([]string, error) {
	if s == "" || s == "[]" || s == "null" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, errs.Internalf("pgstore: decoding a string list: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func dur(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// ---- record mappers ----

func toProductRow(p license.ProductRecord) (productRow, error) {
	ent, err := dbStrings(p.Entitlements)
	if err != nil {
		return productRow{}, err
	}
	return productRow{
		Slug: p.Slug, Name: p.Name, Type: p.Type, PriceCents: p.PriceCents, Currency: p.Currency,
		Entitlements: ent, MaxActivations: p.Policy.MaxActivations,
		FirstActivation:       string(p.Policy.FirstActivation),
		HeartbeatIntervalMS:   ms(p.Policy.HeartbeatInterval),
		GracePeriodMS:         ms(p.Policy.GracePeriod),
		CertificateValidityMS: ms(p.Policy.CertificateValidity),
		TransfersPer30d:       p.Policy.TransfersPer30d,
		DurationMS:            ms(p.Policy.Duration),
		CreatedAt:             dbTime(p.CreatedAt), UpdatedAt: dbTime(p.UpdatedAt),
	}, nil
}

func (r productRow) record() (license.ProductRecord, error) {
	ent, err := recStrings(r.Entitlements)
	if err != nil {
		return license.ProductRecord{}, err
	}
	return license.ProductRecord{
		Slug: r.Slug, Name: r.Name, Type: r.Type, PriceCents: r.PriceCents, Currency: r.Currency,
		Entitlements: ent,
		Policy: license.Policy{
			MaxActivations:      r.MaxActivations,
			FirstActivation:     license.FirstActivation(r.FirstActivation),
			HeartbeatInterval:   dur(r.HeartbeatIntervalMS),
			GracePeriod:         dur(r.GracePeriodMS),
			CertificateValidity: dur(r.CertificateValidityMS),
			TransfersPer30d:     r.TransfersPer30d,
			Duration:            dur(r.DurationMS),
		},
		CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
	}, nil
}

func toLicenseRow(l license.LicenseRecord) (licenseRow, error) {
	ent, err := dbStrings(l.Entitlements)
	if err != nil {
		return licenseRow{}, err
	}
	return licenseRow{
		ID: l.ID, KeyHash: dbBytes(l.KeyHash), KeySealed: dbBytes(l.KeySealed), KeyPrefix: l.KeyPrefix,
		Product: l.Product, Entitlements: ent, OwnerEmail: l.OwnerEmail, MaxActivations: l.MaxActivations,
		Status: string(l.Status), StatusReason: l.StatusReason, ExpiresAt: dbTimePtr(l.ExpiresAt),
		IdempotencyKey: l.IdempotencyKey, CreatedAt: dbTime(l.CreatedAt), UpdatedAt: dbTime(l.UpdatedAt),
		ExpiryWarnedAt: dbTimePtr(l.ExpiryWarnedAt), ExpiredNoticedAt: dbTimePtr(l.ExpiredNoticedAt),
	}, nil
}

func (r licenseRow) record() (license.LicenseRecord, error) {
	ent, err := recStrings(r.Entitlements)
	if err != nil {
		return license.LicenseRecord{}, err
	}
	return license.LicenseRecord{
		ID: r.ID, KeyHash: recBytes(r.KeyHash), KeySealed: recBytes(r.KeySealed), KeyPrefix: r.KeyPrefix,
		Product: r.Product, Entitlements: ent, OwnerEmail: r.OwnerEmail, MaxActivations: r.MaxActivations,
		Status: license.LicenseStatus(r.Status), StatusReason: r.StatusReason, ExpiresAt: recTimePtr(r.ExpiresAt),
		IdempotencyKey: r.IdempotencyKey, CreatedAt: recTime(r.CreatedAt), UpdatedAt: recTime(r.UpdatedAt),
		ExpiryWarnedAt: recTimePtr(r.ExpiryWarnedAt), ExpiredNoticedAt: recTimePtr(r.ExpiredNoticedAt),
	}, nil
}

func toActivationRow(a license.ActivationRecord) activationRow {
	return activationRow{
		ID: a.ID, LicenseID: a.LicenseID, Fingerprint: a.Fingerprint, DeviceName: a.DeviceName,
		Platform: a.Platform, PluginVersion: a.PluginVersion, KeyThumbprint: a.KeyThumbprint,
		PublicKeyDER: dbBytes(a.PublicKeyDER), Status: string(a.Status), StatusReason: a.StatusReason,
		CertificateSerial: a.CertificateSerial, CreatedAt: dbTime(a.CreatedAt),
		LastHeartbeatAt: dbTime(a.LastHeartbeatAt), LastLeaseExp: dbTimePtr(a.LastLeaseExp),
		EndedAt: dbTimePtr(a.EndedAt), FreedByTransfer: a.FreedByTransfer,
		SeatHeldUntil: dbTimePtr(a.SeatHeldUntil), UpdatedAt: dbTime(a.UpdatedAt),
		LastTrustLevel: a.LastTrustLevel,
	}
}

func (r activationRow) record() license.ActivationRecord {
	return license.ActivationRecord{
		ID: r.ID, LicenseID: r.LicenseID, Fingerprint: r.Fingerprint, DeviceName: r.DeviceName,
		Platform: r.Platform, PluginVersion: r.PluginVersion, KeyThumbprint: r.KeyThumbprint,
		PublicKeyDER: recBytes(r.PublicKeyDER), Status: license.ActivationStatus(r.Status),
		StatusReason: r.StatusReason, CertificateSerial: r.CertificateSerial, CreatedAt: recTime(r.CreatedAt),
		LastHeartbeatAt: recTime(r.LastHeartbeatAt), LastLeaseExp: recTimePtr(r.LastLeaseExp),
		EndedAt: recTimePtr(r.EndedAt), FreedByTransfer: r.FreedByTransfer,
		SeatHeldUntil: recTimePtr(r.SeatHeldUntil), UpdatedAt: recTime(r.UpdatedAt),
		LastTrustLevel: r.LastTrustLevel,
	}
}

func toCertificateRow(c license.CertificateRecord) certificateRow {
	return certificateRow{
		Serial: c.Serial, ActivationID: c.ActivationID, LicenseID: c.LicenseID, KeyThumbprint: c.KeyThumbprint,
		IssuerID: c.IssuerID, DER: dbBytes(c.DER), NotBefore: dbTime(c.NotBefore), NotAfter: dbTime(c.NotAfter),
		Status: string(c.Status), OverlapUntil: dbTimePtr(c.OverlapUntil), RevokedAt: dbTimePtr(c.RevokedAt),
		RevokeReason: c.RevokeReason, CreatedAt: dbTime(c.CreatedAt),
	}
}

func (r certificateRow) record() license.CertificateRecord {
	return license.CertificateRecord{
		Serial: r.Serial, ActivationID: r.ActivationID, LicenseID: r.LicenseID, KeyThumbprint: r.KeyThumbprint,
		IssuerID: r.IssuerID, DER: recBytes(r.DER), NotBefore: recTime(r.NotBefore), NotAfter: recTime(r.NotAfter),
		Status: license.CertificateStatus(r.Status), OverlapUntil: recTimePtr(r.OverlapUntil),
		RevokedAt: recTimePtr(r.RevokedAt), RevokeReason: r.RevokeReason, CreatedAt: recTime(r.CreatedAt),
	}
}

func toClaimRow(c license.ClaimRecord) claimRow {
	return claimRow{
		ID: c.ID, LicenseID: c.LicenseID, Fingerprint: c.Fingerprint, DeviceName: c.DeviceName,
		Platform: c.Platform, PluginVersion: c.PluginVersion, Product: c.Product, CSRPEM: c.CSRPEM,
		KeyThumbprint: c.KeyThumbprint, PublicKeyDER: dbBytes(c.PublicKeyDER), RequestAddr: c.RequestAddr,
		Status: string(c.Status), TokenHash: dbBytes(c.TokenHash), TokenUsed: c.TokenUsed,
		AttemptCount: c.AttemptCount, ActivationID: c.ActivationID, DecidedBy: c.DecidedBy,
		CreatedAt: dbTime(c.CreatedAt), ExpiresAt: dbTime(c.ExpiresAt), DecidedAt: dbTimePtr(c.DecidedAt),
	}
}

func (r claimRow) record() license.ClaimRecord {
	return license.ClaimRecord{
		ID: r.ID, LicenseID: r.LicenseID, Fingerprint: r.Fingerprint, DeviceName: r.DeviceName,
		Platform: r.Platform, PluginVersion: r.PluginVersion, Product: r.Product, CSRPEM: r.CSRPEM,
		KeyThumbprint: r.KeyThumbprint, PublicKeyDER: recBytes(r.PublicKeyDER), RequestAddr: r.RequestAddr,
		Status: license.ClaimStatus(r.Status), TokenHash: recBytes(r.TokenHash), TokenUsed: r.TokenUsed,
		AttemptCount: r.AttemptCount, ActivationID: r.ActivationID, DecidedBy: r.DecidedBy,
		CreatedAt: recTime(r.CreatedAt), ExpiresAt: recTime(r.ExpiresAt), DecidedAt: recTimePtr(r.DecidedAt),
	}
}

func toAdminTokenRow(t ports.AdminToken) adminTokenRow {
	return adminTokenRow{ID: t.ID, Name: t.Name, Hash: dbBytes(t.Hash), CreatedAt: dbTime(t.CreatedAt)}
}

func (r adminTokenRow) record() ports.AdminToken {
	return ports.AdminToken{ID: r.ID, Name: r.Name, Hash: recBytes(r.Hash), CreatedAt: recTime(r.CreatedAt)}
}
