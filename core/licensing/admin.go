package licensing

import (
	"context"
	"crypto/rand"
	"slices"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// PutProduct implements ports.Licensing: validates and creates or replaces a product. The
// entitlements of an existing product (bundles) and its creation time are kept, since the spec does
// not carry them.
func (s *Service) PutProduct(ctx context.Context, spec ports.ProductSpec) (license.ProductRecord, error) {
	if err := license.ValidateProduct(license.ProductFields{Slug: spec.Slug, Name: spec.Name, Type: spec.Type, PriceCents: spec.PriceCents, Currency: spec.Currency}); err != nil {
		return license.ProductRecord{}, err
	}
	policy, err := license.NormalizePolicy(license.PolicySpec{
		MaxActivations:       spec.Policy.MaxActivations,
		FirstActivation:      spec.Policy.FirstActivation,
		HeartbeatIntervalS:   spec.Policy.HeartbeatIntervalS,
		GracePeriodS:         spec.Policy.GracePeriodS,
		CertificateValidityS: spec.Policy.CertificateValidityS,
		TransfersPer30d:      spec.Policy.TransfersPer30d,
		DurationS:            spec.Policy.DurationS,
	})
	if err != nil {
		return license.ProductRecord{}, err
	}
	now := s.now()
	var out license.ProductRecord
	err = s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		p := license.ProductRecord{
			Slug: spec.Slug, Name: spec.Name, Type: spec.Type, PriceCents: spec.PriceCents,
			Currency: spec.Currency, Policy: policy, CreatedAt: now, UpdatedAt: now,
		}
		old, err := s.d.Products.Get(ctx, spec.Slug)
		switch {
		case err == nil:
			p.CreatedAt = old.CreatedAt
			p.Entitlements = old.Entitlements
		case !isNotFound(err):
			return internal("loading product", err)
		}
		if err := s.d.Products.Upsert(ctx, p); err != nil {
			return internal("storing product", err)
		}
		out = p
		return nil
	})
	return out, err
}

// GetProduct implements ports.Licensing: PRODUCT_NOT_FOUND when there is none.
func (s *Service) GetProduct(ctx context.Context, slug string) (license.ProductRecord, error) {
	p, err := s.d.Products.Get(ctx, slug)
	if err != nil {
		if isNotFound(err) {
			return p, errs.E(errs.NotFound, license.CodeProductNotFound, "product not found")
		}
		return p, internal("loading product", err)
	}
	return p, nil
}

// keyAttempts bounds the draws of a fresh license key; with 100-bit keys a second draw is already
// beyond unlikely, so running out means the store is refusing for another reason.
const keyAttempts = 3

// CreateLicense implements ports.Licensing. An unknown product is VALIDATION_FAILED (the body names
// it). max_activations defaults to the policy's; expires_at defaults to now + the policy's duration
// when it has one, and a given expires_at must be in the future. With an IdempotencyKey, a retry
// returns the license first created with it, whatever the retry's other fields.
func (s *Service) CreateLicense(ctx context.Context, cmd ports.CreateLicenseCommand) (ports.LicenseView, error) {
	if cmd.IdempotencyKey != "" {
		l, err := s.d.Licenses.ByIdempotencyKey(ctx, cmd.IdempotencyKey)
		if err == nil {
			return s.view(ctx, l, false)
		}
		if !isNotFound(err) {
			return ports.LicenseView{}, internal("looking up idempotency key", err)
		}
	}
	prod, err := s.d.Products.Get(ctx, cmd.Product)
	if err != nil {
		if isNotFound(err) {
			return ports.LicenseView{}, errs.Validation("product does not exist")
		}
		return ports.LicenseView{}, internal("loading product", err)
	}
	now := s.now()
	l := license.LicenseRecord{
		ID:             license.NewID(license.IDPrefixLicense),
		KeyPrefix:      license.PrefixForProductType(prod.Type),
		Product:        prod.Slug,
		Entitlements:   slices.Clone(prod.Entitlements),
		MaxActivations: prod.Policy.MaxActivations,
		Status:         license.LicenseActive,
		CreatedAt:      now,
		UpdatedAt:      now,
		IdempotencyKey: cmd.IdempotencyKey,
	}
	if cmd.OwnerEmail != "" {
		if l.OwnerEmail, err = license.NormalizeEmail(cmd.OwnerEmail); err != nil {
			return ports.LicenseView{}, err
		}
	}
	if cmd.MaxActivations != nil {
		if *cmd.MaxActivations < 1 {
			return ports.LicenseView{}, errs.Validation("max_activations must be at least 1")
		}
		l.MaxActivations = *cmd.MaxActivations
	}
	switch {
	case cmd.ExpiresAt != nil:
		exp := cmd.ExpiresAt.UTC().Truncate(time.Second)
		if !exp.After(now) {
			return ports.LicenseView{}, errs.Validation("expires_at must be in the future")
		}
		l.ExpiresAt = &exp
	case prod.Policy.Duration > 0:
		exp := now.Add(prod.Policy.Duration)
		l.ExpiresAt = &exp
	}
	for attempt := 1; ; attempt++ {
		key, err := license.GenerateKey(l.KeyPrefix, rand.Reader)
		if err != nil {
			return ports.LicenseView{}, errs.Internalf("licensing: drawing a license key: %w", err)
		}
		l.KeyHash = s.d.Vault.Lookup(key)
		if l.KeySealed, err = s.d.Vault.Seal(key); err != nil {
			return ports.LicenseView{}, internal("sealing license key", err)
		}
		// One insert, no surrounding transaction: on PostgreSQL a unique violation aborts the
		// transaction it happens in, and the look-up below must still run.
		err = s.d.Licenses.Insert(ctx, l)
		if err == nil {
			return s.view(ctx, l, true)
		}
		if errs.KindOf(err) != errs.Conflict {
			return ports.LicenseView{}, internal("inserting license", err)
		}
		if cmd.IdempotencyKey != "" {
			if first, ferr := s.d.Licenses.ByIdempotencyKey(ctx, cmd.IdempotencyKey); ferr == nil {
				return s.view(ctx, first, false)
			}
		}
		if attempt == keyAttempts {
			return ports.LicenseView{}, internal("inserting license", err)
		}
	}
}

// view renders a license for admins. withActivations adds its activations (every page).
func (s *Service) view(ctx context.Context, l license.LicenseRecord, withActivations bool) (ports.LicenseView, error) {
	now := s.now()
	key, err := s.d.Vault.Open(l.KeySealed)
	if err != nil {
		return ports.LicenseView{}, internal("opening license key", err)
	}
	used, err := s.seatsUsed(ctx, l.ID, now)
	if err != nil {
		return ports.LicenseView{}, err
	}
	v := ports.LicenseView{
		ID:             l.ID,
		Key:            license.FormatKey(key),
		Status:         string(license.EffectiveLicenseStatus(l, now)),
		Product:        l.Product,
		OwnerEmail:     l.OwnerEmail,
		MaxActivations: l.MaxActivations,
		SeatsUsed:      used,
		ExpiresAt:      l.ExpiresAt,
		CreatedAt:      l.CreatedAt,
		Activations:    []ports.ActivationView{},
	}
	if !withActivations {
		return v, nil
	}
	f := ports.ActivationFilter{LicenseID: l.ID, Page: ports.Page{Limit: 200}}
	for {
		rows, next, err := s.d.Activations.List(ctx, f)
		if err != nil {
			return ports.LicenseView{}, internal("listing activations", err)
		}
		for _, a := range rows {
			v.Activations = append(v.Activations, activationView(a))
		}
		if next == "" {
			return v, nil
		}
		f.Cursor = next
	}
}

func activationView(a license.ActivationRecord) ports.ActivationView {
	last := a.LastHeartbeatAt
	v := ports.ActivationView{
		ID:                a.ID,
		LicenseID:         a.LicenseID,
		Status:            string(a.Status),
		DeviceFingerprint: a.Fingerprint,
		DeviceName:        a.DeviceName,
		Platform:          a.Platform,
		PluginVersion:     a.PluginVersion,
		CertificateSerial: a.CertificateSerial,
		CreatedAt:         a.CreatedAt,
	}
	if !last.IsZero() {
		v.LastHeartbeatAt = &last
	}
	return v
}

// GetLicense implements ports.Licensing: NOT_FOUND when there is none.
func (s *Service) GetLicense(ctx context.Context, id string) (ports.LicenseView, error) {
	l, err := s.d.Licenses.Get(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return ports.LicenseView{}, errs.E(errs.NotFound, errs.CodeNotFound, "license not found")
		}
		return ports.LicenseView{}, internal("loading license", err)
	}
	return s.view(ctx, l, true)
}

// ListLicenses implements ports.Licensing: one page, without the activations of each license.
func (s *Service) ListLicenses(ctx context.Context, f ports.LicenseFilter) ([]ports.LicenseView, string, error) {
	rows, next, err := s.d.Licenses.List(ctx, f)
	if err != nil {
		return nil, "", internal("listing licenses", err)
	}
	out := make([]ports.LicenseView, 0, len(rows))
	for _, l := range rows {
		v, err := s.view(ctx, l, false)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

// ListActivations implements ports.Licensing: one page.
func (s *Service) ListActivations(ctx context.Context, f ports.ActivationFilter) ([]ports.ActivationView, string, error) {
	rows, next, err := s.d.Activations.List(ctx, f)
	if err != nil {
		return nil, "", internal("listing activations", err)
	}
	out := make([]ports.ActivationView, 0, len(rows))
	for _, a := range rows {
		out = append(out, activationView(a))
	}
	return out, next, nil
}

// ChangeLicenseStatus implements ports.Licensing with the transitions of license.ChangeStatus.
// Activations and certificates stay on record: devices get a signed valid:false with the reason,
// and reinstating restores them.
func (s *Service) ChangeLicenseStatus(ctx context.Context, id, action, reason string) (ports.LicenseView, error) {
	var v ports.LicenseView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		l, err := s.d.Licenses.GetForUpdate(ctx, id)
		if err != nil {
			if isNotFound(err) {
				return errs.E(errs.NotFound, errs.CodeNotFound, "license not found")
			}
			return internal("locking license", err)
		}
		l, changed, err := license.ChangeStatus(l, action, reason, s.now())
		if err != nil {
			return err
		}
		if changed {
			if err := s.d.Licenses.Update(ctx, l); err != nil {
				return internal("updating license", err)
			}
		}
		v, err = s.view(ctx, l, true)
		return err
	})
	return v, err
}

// ReleaseSeat implements ports.Licensing: the seat of an ended activation held past the transfer
// limit stops counting now. An active activation cannot be released this way (CONFLICT: deactivate
// or revoke it); one whose seat is already free changes nothing.
func (s *Service) ReleaseSeat(ctx context.Context, activationID string) (ports.LicenseView, error) {
	var v ports.LicenseView
	err := s.d.Tx.InTx(ctx, func(ctx context.Context) error {
		a, err := s.d.Activations.Get(ctx, activationID)
		if err != nil {
			if isNotFound(err) {
				return errs.E(errs.NotFound, errs.CodeNotFound, "activation not found")
			}
			return internal("loading activation", err)
		}
		l, err := s.d.Licenses.GetForUpdate(ctx, a.LicenseID)
		if err != nil {
			return internal("locking license", err)
		}
		if a, err = s.d.Activations.Get(ctx, activationID); err != nil {
			return internal("loading activation", err)
		}
		if a.Status == license.ActivationActive {
			return errs.E(errs.Conflict, errs.CodeConflict, "the activation is active; deactivate it to free its seat")
		}
		if released, changed := license.ReleaseSeat(a, s.now()); changed {
			if err := s.d.Activations.Update(ctx, released); err != nil {
				return internal("updating activation", err)
			}
		}
		v, err = s.view(ctx, l, true)
		return err
	})
	return v, err
}
