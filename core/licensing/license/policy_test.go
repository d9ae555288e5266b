package license

import (
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

func i64(v int64) *int64 { return &v }
func iptr(v int) *int    { return &v }

func TestNormalizePolicyDefaults(t *testing.T) {
	p, err := NormalizePolicy(PolicySpec{MaxActivations: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{MaxActivations: 2, FirstActivation: FirstInstant, HeartbeatInterval: 24 * time.Hour,
		GracePeriod: 7 * 24 * time.Hour, CertificateValidity: 31536000 * time.Second, TransfersPer30d: 3}
	if p != want {
		t.Fatalf("got %+v want %+v", p, want)
	}
}

func TestNormalizePolicyRules(t *testing.T) {
	cases := []struct {
		name string
		spec PolicySpec
		ok   bool
	}{
		{"one-second policies", PolicySpec{MaxActivations: 1, HeartbeatIntervalS: 1, GracePeriodS: 1, CertificateValidityS: i64(1), DurationS: i64(1), TransfersPer30d: iptr(0)}, true},
		{"owner approval", PolicySpec{MaxActivations: 1, FirstActivation: "owner_approval"}, true},
		{"zero seats", PolicySpec{MaxActivations: 0}, false},
		{"bad first activation", PolicySpec{MaxActivations: 1, FirstActivation: "auto"}, false},
		{"negative heartbeat", PolicySpec{MaxActivations: 1, HeartbeatIntervalS: -1}, false},
		{"negative grace", PolicySpec{MaxActivations: 1, GracePeriodS: -5}, false},
		{"zero validity", PolicySpec{MaxActivations: 1, CertificateValidityS: i64(0)}, false},
		{"zero duration", PolicySpec{MaxActivations: 1, DurationS: i64(0)}, false},
		{"huge duration", PolicySpec{MaxActivations: 1, DurationS: i64(1 << 50)}, false},
		{"negative transfers", PolicySpec{MaxActivations: 1, TransfersPer30d: iptr(-1)}, false},
		{"grace = heartbeat", PolicySpec{MaxActivations: 1, HeartbeatIntervalS: 60, GracePeriodS: 60}, true},
		{"grace < heartbeat", PolicySpec{MaxActivations: 1, HeartbeatIntervalS: 61, GracePeriodS: 60}, false},
		{"grace default < heartbeat", PolicySpec{MaxActivations: 1, HeartbeatIntervalS: 8 * 24 * 3600}, false},
	}
	for _, c := range cases {
		_, err := NormalizePolicy(c.spec)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && (errs.CodeOf(err) != errs.CodeValidationFailed || errs.KindOf(err) != errs.Invalid) {
			t.Errorf("%s: code %s kind %s", c.name, errs.CodeOf(err), errs.KindOf(err))
		}
	}
}

func TestValidateProduct(t *testing.T) {
	good := ProductFields{Slug: "super-synth-2", Name: "Super Synth", Type: "plugin", PriceCents: 0, Currency: "EUR"}
	if err := ValidateProduct(good); err != nil {
		t.Fatal(err)
	}
	mut := []struct {
		name string
		f    func(*ProductFields)
	}{
		{"slug too short", func(p *ProductFields) { p.Slug = "a" }},
		{"slug too long", func(p *ProductFields) { p.Slug = string(make([]byte, 65)) }},
		{"slug upper", func(p *ProductFields) { p.Slug = "Synth" }},
		{"slug underscore", func(p *ProductFields) { p.Slug = "my_synth" }},
		{"empty name", func(p *ProductFields) { p.Name = " " }},
		{"control in name", func(p *ProductFields) { p.Name = "a\x00b" }},
		{"type", func(p *ProductFields) { p.Type = "vst" }},
		{"currency lower", func(p *ProductFields) { p.Currency = "eur" }},
		{"currency long", func(p *ProductFields) { p.Currency = "EURO" }},
		{"negative price", func(p *ProductFields) { p.PriceCents = -1 }},
	}
	for _, m := range mut {
		f := good
		m.f(&f)
		if err := ValidateProduct(f); errs.CodeOf(err) != errs.CodeValidationFailed {
			t.Errorf("%s: got %v", m.name, err)
		}
	}
	for _, s := range []string{"ab", "a-b-c", "0123456789012345678901234567890123456789012345678901234567890123"} {
		if err := ValidateSlug(s); err != nil {
			t.Errorf("slug %q: %v", s, err)
		}
	}
}

func TestCoversAndEntitlements(t *testing.T) {
	if !Covers("bundle", []string{"a", "b"}, "bundle") || !Covers("bundle", []string{"a", "b"}, "b") || Covers("bundle", []string{"a"}, "c") {
		t.Fatal("Covers")
	}
	got := EntitlementsOf("bundle", []string{"a", "bundle", "a", "b"})
	if len(got) != 3 || got[0] != "bundle" || got[1] != "a" || got[2] != "b" {
		t.Fatalf("EntitlementsOf = %v", got)
	}
}

func TestDeviceRules(t *testing.T) {
	long := func(n int, c string) string {
		s := ""
		for i := 0; i < n; i++ {
			s += c
		}
		return s
	}
	ok := DeviceInput{Fingerprint: "12345678", Platform: "mac", PluginVersion: "1.0.0"}
	if err := ValidateDevice(ok); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		d    DeviceInput
		ok   bool
	}{
		{"fp 7", DeviceInput{Fingerprint: "1234567", Platform: "mac", PluginVersion: "1"}, false},
		{"fp 256", DeviceInput{Fingerprint: long(256, "x"), Platform: "win", PluginVersion: "1"}, true},
		{"fp 257", DeviceInput{Fingerprint: long(257, "x"), Platform: "win", PluginVersion: "1"}, false},
		{"fp non-ascii", DeviceInput{Fingerprint: "12345678é", Platform: "win", PluginVersion: "1"}, false},
		{"fp control", DeviceInput{Fingerprint: "1234567\n8", Platform: "win", PluginVersion: "1"}, false},
		{"platform", DeviceInput{Fingerprint: "12345678", Platform: "ios", PluginVersion: "1"}, false},
		{"linux", DeviceInput{Fingerprint: "12345678", Platform: "linux", PluginVersion: "1"}, true},
		{"no version", DeviceInput{Fingerprint: "12345678", Platform: "linux"}, false},
		{"version 64", DeviceInput{Fingerprint: "12345678", Platform: "linux", PluginVersion: long(64, "1")}, true},
		{"version 65", DeviceInput{Fingerprint: "12345678", Platform: "linux", PluginVersion: long(65, "1")}, false},
		{"name 64 runes", DeviceInput{Fingerprint: "12345678", Platform: "mac", PluginVersion: "1", DeviceName: long(64, "é")}, true},
		{"name 65 runes", DeviceInput{Fingerprint: "12345678", Platform: "mac", PluginVersion: "1", DeviceName: long(65, "é")}, false},
		{"name control", DeviceInput{Fingerprint: "12345678", Platform: "mac", PluginVersion: "1", DeviceName: "Studio\tMac"}, false},
		{"name bad utf8", DeviceInput{Fingerprint: "12345678", Platform: "mac", PluginVersion: "1", DeviceName: "\xff"}, false},
	}
	for _, c := range cases {
		err := ValidateDevice(c.d)
		if (err == nil) != c.ok || (err != nil && errs.CodeOf(err) != errs.CodeValidationFailed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	cases := map[string]string{
		" Ann@Example.COM ": "Ann@example.com",
		"a.b+c@d.io":        "a.b+c@d.io",
		"Ann <a@b.io>":      "",
		"no-at":             "",
		"a@localhost":       "",
		"":                  "",
	}
	for in, want := range cases {
		got, err := NormalizeEmail(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("NormalizeEmail(%q) = %q, %v", in, got, err)
		}
	}
}
