package license

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Policy defaults (PROTOCOL.md sections 5, 7 and 9).
const (
	DefaultHeartbeatInterval   = 24 * time.Hour
	DefaultGracePeriod         = 7 * 24 * time.Hour
	DefaultCertificateValidity = 31536000 * time.Second
	DefaultTransfersPer30d     = 3
)

// PolicySpec is a policy as an admin gives it, in seconds; zero or nil optional values take the
// defaults. It mirrors ports.PolicySpec (the aggregate cannot import ports).
type PolicySpec struct {
	MaxActivations       int
	FirstActivation      string
	HeartbeatIntervalS   int64
	GracePeriodS         int64
	CertificateValidityS *int64
	TransfersPer30d      *int
	DurationS            *int64
}

// maxDurationS bounds every policy duration (100 years) so that adding it to a time never overflows.
const maxDurationS = 100 * 366 * 24 * 3600

// NormalizePolicy fills defaults and validates a policy. Rules: max_activations ≥ 1; first_activation
// is instant (default) or owner_approval; every given duration is a whole number of seconds ≥ 1 (0
// means "default" for heartbeat and grace, which the JSON cannot tell from absent; an explicit 0 for
// the optional ones is refused); transfers_per_30d ≥ 0; and the grace period is at least the
// heartbeat interval, since a grace period shorter than the interval would make a device that
// heartbeats on time fall out of grace before its next heartbeat is even due. Violations are
// VALIDATION_FAILED.
func NormalizePolicy(spec PolicySpec) (Policy, error) {
	p := Policy{
		MaxActivations:      spec.MaxActivations,
		FirstActivation:     FirstActivation(spec.FirstActivation),
		HeartbeatInterval:   DefaultHeartbeatInterval,
		GracePeriod:         DefaultGracePeriod,
		CertificateValidity: DefaultCertificateValidity,
		TransfersPer30d:     DefaultTransfersPer30d,
	}
	if p.MaxActivations < 1 {
		return Policy{}, errs.Validation("policy.max_activations must be at least 1")
	}
	switch p.FirstActivation {
	case "":
		p.FirstActivation = FirstInstant
	case FirstInstant, FirstOwnerApproval:
	default:
		return Policy{}, errs.Validation("policy.first_activation must be instant or owner_approval")
	}
	dur := func(name string, s int64) (time.Duration, error) {
		if s < 1 || s > maxDurationS {
			return 0, errs.Validation("policy." + name + " must be a whole number of seconds from 1 up")
		}
		return time.Duration(s) * time.Second, nil
	}
	var err error
	if spec.HeartbeatIntervalS != 0 {
		if p.HeartbeatInterval, err = dur("heartbeat_interval_s", spec.HeartbeatIntervalS); err != nil {
			return Policy{}, err
		}
	}
	if spec.GracePeriodS != 0 {
		if p.GracePeriod, err = dur("grace_period_s", spec.GracePeriodS); err != nil {
			return Policy{}, err
		}
	}
	if spec.CertificateValidityS != nil {
		if p.CertificateValidity, err = dur("certificate_validity_s", *spec.CertificateValidityS); err != nil {
			return Policy{}, err
		}
	}
	if spec.DurationS != nil {
		if p.Duration, err = dur("duration_s", *spec.DurationS); err != nil {
			return Policy{}, err
		}
	}
	if spec.TransfersPer30d != nil {
		if *spec.TransfersPer30d < 0 {
			return Policy{}, errs.Validation("policy.transfers_per_30d must not be negative")
		}
		p.TransfersPer30d = *spec.TransfersPer30d
	}
	if p.GracePeriod < p.HeartbeatInterval {
		return Policy{}, errs.Validation("policy.grace_period_s must be at least heartbeat_interval_s")
	}
	return p, nil
}

// ValidateSlug checks a product slug: 2 to 64 characters of [a-z0-9-].
func ValidateSlug(slug string) error {
	if len(slug) < 2 || len(slug) > 64 {
		return errs.Validation("slug must be 2 to 64 characters")
	}
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return errs.Validation("slug may contain only a-z, 0-9 and -")
		}
	}
	return nil
}

// ProductFields is what ValidateProduct checks besides the policy.
type ProductFields struct {
	Slug       string
	Name       string
	Type       string
	PriceCents int64
	Currency   string
}

// ValidateProduct checks the catalog fields of a product: slug (ValidateSlug), a name of 1 to 200
// code points without control characters, type plugin|sample_pack|bundle, a currency of three
// upper-case letters and a price ≥ 0.
func ValidateProduct(f ProductFields) error {
	if err := ValidateSlug(f.Slug); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(f.Name); n < 1 || n > 200 || !utf8.ValidString(f.Name) || hasControl(f.Name) || strings.TrimSpace(f.Name) == "" {
		return errs.Validation("name must be 1 to 200 characters without control characters")
	}
	switch f.Type {
	case TypePlugin, TypeSamplePack, TypeBundle:
	default:
		return errs.Validation("type must be plugin, sample_pack or bundle")
	}
	if len(f.Currency) != 3 {
		return errs.Validation("currency must be three upper-case letters")
	}
	for i := 0; i < 3; i++ {
		if f.Currency[i] < 'A' || f.Currency[i] > 'Z' {
			return errs.Validation("currency must be three upper-case letters")
		}
	}
	if f.PriceCents < 0 {
		return errs.Validation("price_cents must not be negative")
	}
	return nil
}

// Covers reports whether a license sold as product with these entitlements covers slug.
func Covers(product string, entitlements []string, slug string) bool {
	if slug == product {
		return true
	}
	for _, e := range entitlements {
		if e == slug {
			return true
		}
	}
	return false
}

// EntitlementsOf returns every slug a license covers, its product first, without duplicates (the
// lease's ent claim).
func EntitlementsOf(product string, entitlements []string) []string {
	out := []string{product}
	for _, e := range entitlements {
		if !Covers(product, out[1:], e) {
			out = append(out, e)
		}
	}
	return out
}
