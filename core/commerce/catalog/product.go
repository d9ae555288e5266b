package catalog

import (
	"crypto/rand"
	"encoding/base32"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Limits of a product.
const (
	MaxNameLen        = 200   // code points
	MaxDescriptionLen = 20000 // code points
	MaxComponents     = 50
	// MaxPriceCents bounds a price (ten million in major units) so that price × quantity and
	// order totals stay far away from int64 overflow.
	MaxPriceCents = 1_000_000_000
	MaxPrices     = 20
)

// Id prefixes (PROTOCOL.md section 1 style).
const (
	IDPrefixProduct = "prd_"
	IDPrefixVersion = "ver_"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [16]byte
	// crypto/rand.Read never returns an error and always fills b (Go 1.24+).
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewProductID returns a fresh product id: prd_ and 26 base32 characters of 128 random bits.
func NewProductID() string { return newID(IDPrefixProduct) }

// NewVersionID returns a fresh version id: ver_ and 26 base32 characters of 128 random bits.
func NewVersionID() string { return newID(IDPrefixVersion) }

// ParseType checks a product type. INVALID_PRODUCT_TYPE otherwise.
func ParseType(s string) (ProductType, error) {
	t := ProductType(strings.ToLower(strings.TrimSpace(s)))
	switch t {
	case TypePlugin, TypeSamplePack, TypeBundle:
		return t, nil
	}
	return "", errs.E(errs.Invalid, CodeInvalidProductType, "type must be plugin, sample_pack or bundle")
}

// NormalizeCurrency trims and upper-cases an ISO 4217 code and checks it is three letters.
// INVALID_CURRENCY otherwise.
func NormalizeCurrency(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 3 {
		return "", errs.E(errs.Invalid, CodeInvalidCurrency, "currency must be a three-letter ISO 4217 code")
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return "", errs.E(errs.Invalid, CodeInvalidCurrency, "currency must be a three-letter ISO 4217 code")
		}
	}
	return c, nil
}

// ValidateName checks a product name: 1 to 200 code points, not blank, no control characters.
func ValidateName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxNameLen || !utf8.ValidString(name) ||
		strings.TrimSpace(name) == "" || hasControl(name, false) {
		return errs.Validation("name must be 1 to 200 characters without control characters")
	}
	return nil
}

// BuildPrices assembles a product's price list: the primary price first, then the extra ones.
// Currencies are normalised; an extra price in the primary currency is accepted when its amount is
// the primary one (a product read back and sent again carries its primary price in Prices) and
// dropped; any other repetition of a currency is INVALID_CURRENCY. Amounts must be 0 to
// MaxPriceCents (INVALID_PRICE).
func BuildPrices(currency string, priceCents int64, extra []Price) ([]Price, error) {
	primary, err := NormalizeCurrency(currency)
	if err != nil {
		return nil, err
	}
	if err := checkAmount(priceCents); err != nil {
		return nil, err
	}
	if len(extra) > MaxPrices {
		return nil, errs.E(errs.Invalid, CodeInvalidPrice, "too many prices")
	}
	out := []Price{{Currency: primary, AmountCents: priceCents}}
	for _, p := range extra {
		c, err := NormalizeCurrency(p.Currency)
		if err != nil {
			return nil, err
		}
		if err := checkAmount(p.AmountCents); err != nil {
			return nil, err
		}
		if c == primary && p.AmountCents == priceCents {
			continue
		}
		if slices.ContainsFunc(out, func(q Price) bool { return q.Currency == c }) {
			return nil, errs.E(errs.Invalid, CodeInvalidCurrency, "prices must name each currency once (currency "+c+" is given twice)")
		}
		out = append(out, Price{Currency: c, AmountCents: p.AmountCents})
	}
	return out, nil
}

func checkAmount(cents int64) error {
	if cents < 0 {
		return errs.E(errs.Invalid, CodeInvalidPrice, "price must not be negative")
	}
	if cents > MaxPriceCents {
		return errs.E(errs.Invalid, CodeInvalidPrice, "price is too large")
	}
	return nil
}

// PriceIn returns the product's price in currency (case-insensitive); ok=false when the product is
// not sold in that currency.
func PriceIn(p Product, currency string) (int64, bool) {
	c := strings.ToUpper(strings.TrimSpace(currency))
	for _, pr := range p.Prices {
		if pr.Currency == c {
			return pr.AmountCents, true
		}
	}
	return 0, false
}

// PrimaryPrice returns the price in the product's primary currency (0 when missing, which
// ValidateProduct does not let happen).
func PrimaryPrice(p Product) int64 {
	v, _ := PriceIn(p, p.Currency)
	return v
}

// ValidateProduct checks a product as it is about to be stored, on its own: slug, name,
// description, type, primary currency and prices (the primary one present, every currency once,
// amounts in range) and components (a bundle has 1 to 50 distinct components other than itself;
// any other type has none). Whether the components exist and are not bundles is for the service,
// which can look them up.
func ValidateProduct(p Product) error {
	if err := ValidateSlug(p.Slug); err != nil {
		return err
	}
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if !utf8.ValidString(p.Description) || utf8.RuneCountInString(p.Description) > MaxDescriptionLen || hasControl(p.Description, true) {
		return errs.Validation("description must be at most 20000 characters of text")
	}
	if _, err := ParseType(string(p.Type)); err != nil || string(p.Type) != strings.ToLower(string(p.Type)) {
		return errs.E(errs.Invalid, CodeInvalidProductType, "type must be plugin, sample_pack or bundle")
	}
	if c, err := NormalizeCurrency(p.Currency); err != nil {
		return err
	} else if c != p.Currency {
		return errs.E(errs.Invalid, CodeInvalidCurrency, "currency must be upper case")
	}
	if len(p.Prices) == 0 || len(p.Prices) > MaxPrices+1 {
		return errs.E(errs.Invalid, CodeInvalidPrice, "a product needs its price in its currency")
	}
	seen := map[string]bool{}
	for _, pr := range p.Prices {
		if c, err := NormalizeCurrency(pr.Currency); err != nil {
			return err
		} else if c != pr.Currency || seen[c] {
			return errs.E(errs.Invalid, CodeInvalidCurrency, "prices must name each currency once, in upper case")
		}
		seen[pr.Currency] = true
		if err := checkAmount(pr.AmountCents); err != nil {
			return err
		}
	}
	if !seen[p.Currency] {
		return errs.E(errs.Invalid, CodeInvalidPrice, "a product needs its price in its currency")
	}
	return ValidateComponents(p.Type, p.Slug, p.Components)
}

// ValidateComponents checks the shape of a component list for a product of type t and slug self.
func ValidateComponents(t ProductType, self string, components []string) error {
	if t != TypeBundle {
		if len(components) > 0 {
			return errs.E(errs.Invalid, CodeInvalidComponents, "only bundles have components")
		}
		return nil
	}
	if len(components) == 0 {
		return errs.E(errs.Invalid, CodeInvalidComponents, "a bundle needs at least one component")
	}
	if len(components) > MaxComponents {
		return errs.E(errs.Invalid, CodeInvalidComponents, "a bundle has at most 50 components")
	}
	seen := map[string]bool{}
	for _, c := range components {
		if ValidateSlug(c) != nil {
			return errs.E(errs.Invalid, CodeInvalidComponents, "component "+quoteSafe(c)+" is not a product slug")
		}
		if c == self {
			return errs.E(errs.Invalid, CodeInvalidComponents, "a bundle cannot contain itself")
		}
		if seen[c] {
			return errs.E(errs.Invalid, CodeInvalidComponents, "component "+c+" is listed twice")
		}
		seen[c] = true
	}
	return nil
}

// NormalizeComponents trims and lower-cases component slugs as an admin typed them.
func NormalizeComponents(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = strings.ToLower(strings.TrimSpace(c))
	}
	return out
}

// quoteSafe shortens and quotes client text for an error message.
func quoteSafe(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

// IsComponentOf reports whether bundle lists slug among its components.
func IsComponentOf(bundle Product, slug string) bool {
	return bundle.Type == TypeBundle && slices.Contains(bundle.Components, slug)
}
