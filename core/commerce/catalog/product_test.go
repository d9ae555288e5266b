package catalog

import (
	"slices"
	"strings"
	"testing"

	"github.com/samplero/samplero/core/errs"
)

func TestNormalizeCurrency(t *testing.T) {
	for in, want := range map[string]string{"EUR": "EUR", "usd": "USD", " gbp ": "GBP", "Jpy": "JPY"} {
		got, err := NormalizeCurrency(in)
		if err != nil || got != want {
			t.Errorf("NormalizeCurrency(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "EU", "EURO", "E1R", "€€€", "US D"} {
		_, err := NormalizeCurrency(in)
		if errs.CodeOf(err) != CodeInvalidCurrency || errs.KindOf(err) != errs.Invalid {
			t.Errorf("NormalizeCurrency(%q) = %v, want INVALID_CURRENCY", in, err)
		}
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]ProductType{"plugin": TypePlugin, "Sample_Pack": TypeSamplePack, " bundle": TypeBundle} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "preset", "sample-pack"} {
		if _, err := ParseType(in); errs.CodeOf(err) != CodeInvalidProductType {
			t.Errorf("ParseType(%q) = %v", in, err)
		}
	}
}

func TestBuildPrices(t *testing.T) {
	got, err := BuildPrices("eur", 4900, []Price{{Currency: "usd", AmountCents: 5500}, {Currency: "EUR", AmountCents: 4900}, {Currency: "GBP", AmountCents: 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Price{{"EUR", 4900}, {"USD", 5500}, {"GBP", 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v (the primary first, the repeated primary dropped)", got, want)
	}
	cases := []struct {
		name     string
		currency string
		price    int64
		extra    []Price
		code     string
	}{
		{"bad primary currency", "EURO", 100, nil, CodeInvalidCurrency},
		{"negative primary", "EUR", -1, nil, CodeInvalidPrice},
		{"too large primary", "EUR", MaxPriceCents + 1, nil, CodeInvalidPrice},
		{"bad extra currency", "EUR", 100, []Price{{"U$D", 1}}, CodeInvalidCurrency},
		{"negative extra", "EUR", 100, []Price{{"USD", -5}}, CodeInvalidPrice},
		{"currency twice", "EUR", 100, []Price{{"USD", 1}, {"usd", 2}}, CodeInvalidCurrency},
		{"primary with another amount", "EUR", 100, []Price{{"EUR", 200}}, CodeInvalidCurrency},
		{"too many", "EUR", 100, make([]Price, MaxPrices+1), CodeInvalidPrice},
	}
	for _, c := range cases {
		_, err := BuildPrices(c.currency, c.price, c.extra)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
}

func TestPriceIn(t *testing.T) {
	p := Product{Currency: "EUR", Prices: []Price{{"EUR", 4900}, {"USD", 5500}, {"GBP", 0}}}
	cases := []struct {
		currency string
		want     int64
		ok       bool
	}{
		{"EUR", 4900, true},
		{"usd", 5500, true},
		{"GBP", 0, true}, // free in GBP is a price, not an absence
		{"JPY", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := PriceIn(p, c.currency)
		if got != c.want || ok != c.ok {
			t.Errorf("PriceIn(%s) = %d, %v; want %d, %v", c.currency, got, ok, c.want, c.ok)
		}
	}
	if PrimaryPrice(p) != 4900 {
		t.Fatal("PrimaryPrice")
	}
}

func TestValidateProduct(t *testing.T) {
	good := Product{Slug: "space-echo", Name: "Space Echo", Type: TypePlugin, Currency: "EUR", Prices: []Price{{"EUR", 4900}}}
	if err := ValidateProduct(good); err != nil {
		t.Fatal(err)
	}
	bundle := Product{Slug: "all-in", Name: "All in", Type: TypeBundle, Currency: "EUR", Prices: []Price{{"EUR", 9900}}, Components: []string{"space-echo", "drum-pack"}}
	if err := ValidateProduct(bundle); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		base Product
		mod  func(*Product)
		code string
	}{
		{"bad slug", good, func(p *Product) { p.Slug = "Space Echo" }, CodeInvalidSlug},
		{"empty name", good, func(p *Product) { p.Name = "" }, errs.CodeValidationFailed},
		{"blank name", good, func(p *Product) { p.Name = "   " }, errs.CodeValidationFailed},
		{"long name", good, func(p *Product) { p.Name = strings.Repeat("n", MaxNameLen+1) }, errs.CodeValidationFailed},
		{"name with control", good, func(p *Product) { p.Name = "Space\nEcho" }, errs.CodeValidationFailed},
		{"long description", good, func(p *Product) { p.Description = strings.Repeat("d", MaxDescriptionLen+1) }, errs.CodeValidationFailed},
		{"bad type", good, func(p *Product) { p.Type = "preset" }, CodeInvalidProductType},
		{"lower-case currency", good, func(p *Product) { p.Currency = "eur" }, CodeInvalidCurrency},
		{"no prices", good, func(p *Product) { p.Prices = nil }, CodeInvalidPrice},
		{"no primary price", good, func(p *Product) { p.Prices = []Price{{"USD", 1}} }, CodeInvalidPrice},
		{"repeated currency", good, func(p *Product) { p.Prices = []Price{{"EUR", 1}, {"EUR", 1}} }, CodeInvalidCurrency},
		{"negative price", good, func(p *Product) { p.Prices = []Price{{"EUR", -1}} }, CodeInvalidPrice},
		{"plugin with components", good, func(p *Product) { p.Components = []string{"x-y"} }, CodeInvalidComponents},
		{"empty bundle", bundle, func(p *Product) { p.Components = nil }, CodeInvalidComponents},
		{"bundle of itself", bundle, func(p *Product) { p.Components = []string{"all-in"} }, CodeInvalidComponents},
		{"component twice", bundle, func(p *Product) { p.Components = []string{"ab", "ab"} }, CodeInvalidComponents},
		{"component not a slug", bundle, func(p *Product) { p.Components = []string{"Not A Slug"} }, CodeInvalidComponents},
		{"too many components", bundle, func(p *Product) {
			p.Components = nil
			for i := range MaxComponents + 1 {
				p.Components = append(p.Components, "c-"+strings.Repeat("x", i+1))
			}
		}, CodeInvalidComponents},
	}
	for _, c := range cases {
		p := c.base
		p.Prices = slices.Clone(c.base.Prices)
		p.Components = slices.Clone(c.base.Components)
		c.mod(&p)
		err := ValidateProduct(p)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
}

func TestNormalizeComponents(t *testing.T) {
	if got := NormalizeComponents([]string{" Space-Echo ", "drum-pack"}); !slices.Equal(got, []string{"space-echo", "drum-pack"}) {
		t.Fatalf("got %v", got)
	}
	if NormalizeComponents(nil) != nil || NormalizeComponents([]string{}) != nil {
		t.Fatal("empty stays nil")
	}
}

func TestNewIDs(t *testing.T) {
	a, b := NewProductID(), NewProductID()
	if a == b || !strings.HasPrefix(a, "prd_") || len(a) != 4+26 {
		t.Fatalf("product ids %q %q", a, b)
	}
	if v := NewVersionID(); !strings.HasPrefix(v, "ver_") || len(v) != 4+26 || strings.ToLower(v) != v {
		t.Fatalf("version id %q", v)
	}
}
