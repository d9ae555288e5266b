package order

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
)

func wantErr(t *testing.T, err error, code string, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s (%s), got success", code, kind)
	}
	if errs.CodeOf(err) != code || errs.KindOf(err) != kind {
		t.Fatalf("want %s (%s), got %s (%s): %v", code, kind, errs.CodeOf(err), errs.KindOf(err), err)
	}
}

func TestReference(t *testing.T) {
	for n, want := range map[int64]string{1: "LS-000001", 123: "LS-000123", 999999: "LS-999999", 1234567: "LS-1234567"} {
		if got := Reference(n); got != want {
			t.Errorf("Reference(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestNewIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range []struct {
		mint   func() string
		prefix string
	}{{NewOrderID, "ord_"}, {NewEntitlementID, "ent_"}, {NewDownloadID, "dl_"}} {
		for range 100 {
			id := c.mint()
			if !strings.HasPrefix(id, c.prefix) || len(id) != len(c.prefix)+26 || strings.ToLower(id) != id {
				t.Fatalf("id %q: want %s + 26 lower-case characters", id, c.prefix)
			}
			if seen[id] {
				t.Fatalf("id %q minted twice", id)
			}
			seen[id] = true
		}
	}
}

func lines(specs ...any) []Line {
	var out []Line
	for i := 0; i < len(specs); i += 2 {
		out = append(out, Line{Product: specs[i].(string), Quantity: specs[i+1].(int)})
	}
	return out
}

func TestValidateLines(t *testing.T) {
	many := func(n int) []Line {
		var out []Line
		for i := range n {
			out = append(out, Line{Product: "p" + strings.Repeat("x", i), Quantity: 1})
		}
		return out
	}
	cases := []struct {
		name  string
		lines []Line
		code  string
	}{
		{"one line", lines("synth", 1), ""},
		{"quantity 100", lines("synth", 100), ""},
		{"fifty lines", many(50), ""},
		{"no lines", nil, CodeInvalidOrder},
		{"fifty-one lines", many(51), CodeInvalidOrder},
		{"quantity 0", lines("synth", 0), CodeInvalidQuantity},
		{"negative quantity", lines("synth", -1), CodeInvalidQuantity},
		{"quantity 101", lines("synth", 101), CodeInvalidQuantity},
		{"product twice", lines("synth", 1, "drums", 1, "synth", 2), CodeInvalidOrder},
		{"no product", lines("", 1), CodeInvalidOrder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateLines(c.lines)
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, c.code, errs.Invalid)
		})
	}
}

func TestTotals(t *testing.T) {
	o := Order{Lines: []Line{{Product: "a", Quantity: 3, UnitPriceCents: 4900}, {Product: "b", Quantity: 1, UnitPriceCents: 1900}}}
	if err := SetTotals(&o, 1000); err != nil {
		t.Fatal(err)
	}
	if o.SubtotalCents != 16600 || o.DiscountCents != 1000 || o.TotalCents != 15600 {
		t.Fatalf("totals %d - %d = %d, want 16600 - 1000 = 15600", o.SubtotalCents, o.DiscountCents, o.TotalCents)
	}
	if err := SetTotals(&o, 16600); err != nil || o.TotalCents != 0 {
		t.Fatalf("a discount of the whole subtotal: total %d, err %v", o.TotalCents, err)
	}
	// A discount above the subtotal or below zero is a bug of the caller, not an input error.
	for _, d := range []int64{16601, -1} {
		if err := SetTotals(&o, d); errs.KindOf(err) != errs.Internal {
			t.Fatalf("discount %d: want an internal error, got %v", d, err)
		}
	}
	huge := []Line{{Product: "a", Quantity: 100, UnitPriceCents: math.MaxInt64 / 50}}
	if _, err := Subtotal(huge); errs.CodeOf(err) != CodeAmountTooLarge {
		t.Fatalf("line overflow: %v", err)
	}
	sum := []Line{{Product: "a", Quantity: 1, UnitPriceCents: math.MaxInt64 - 1}, {Product: "b", Quantity: 1, UnitPriceCents: 2}}
	if _, err := Subtotal(sum); errs.CodeOf(err) != CodeAmountTooLarge {
		t.Fatalf("sum overflow: %v", err)
	}
	if _, ok := LineTotal(Line{Quantity: 2, UnitPriceCents: -1}); ok {
		t.Fatal("a negative price must not total")
	}
}

func TestTransitions(t *testing.T) {
	all := []Status{StatusPending, StatusPaid, StatusFulfilled, StatusRefunded, StatusDisputed, StatusFailed}
	allowed := map[[2]Status]bool{
		{StatusPending, StatusPaid}: true, {StatusPending, StatusFailed}: true,
		{StatusPaid, StatusFulfilled}: true, {StatusPaid, StatusRefunded}: true, {StatusPaid, StatusDisputed}: true, {StatusPaid, StatusFailed}: true,
		{StatusFulfilled, StatusRefunded}: true, {StatusFulfilled, StatusDisputed}: true,
		{StatusFailed, StatusPaid}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := CanTransition(from, to); got != allowed[[2]Status{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
	codes := []struct {
		from, to Status
		code     string
	}{
		{StatusRefunded, StatusPaid, CodeOrderRevoked},
		{StatusDisputed, StatusRefunded, CodeOrderRevoked},
		{StatusPending, StatusRefunded, CodeOrderNotRefundable},
		{StatusFailed, StatusDisputed, CodeOrderNotRefundable},
		{StatusFulfilled, StatusPaid, CodeOrderNotPayable},
		{StatusPending, StatusFulfilled, CodeOrderNotPayable},
		{StatusFulfilled, StatusFailed, CodeInvalidTransition},
		{StatusPaid, StatusPending, CodeInvalidTransition},
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, c := range codes {
		o := Order{Status: c.from}
		wantErr(t, Transition(&o, c.to, now), c.code, errs.Conflict)
		if o.Status != c.from {
			t.Fatalf("a refused transition changed the status to %s", o.Status)
		}
	}

	o := Order{Status: StatusPending}
	if err := Transition(&o, StatusPaid, now); err != nil || o.PaidAt == nil || !o.PaidAt.Equal(now) || !o.UpdatedAt.Equal(now) {
		t.Fatalf("pending → paid: %v %+v", err, o)
	}
	later := now.Add(time.Hour)
	if err := Transition(&o, StatusFulfilled, later); err != nil || !o.FulfilledAt.Equal(later) || !o.PaidAt.Equal(now) {
		t.Fatalf("paid → fulfilled: %v %+v", err, o)
	}
	if err := Transition(&o, StatusDisputed, later); err != nil || o.RefundedAt == nil || o.Status != StatusDisputed {
		t.Fatalf("fulfilled → disputed: %v %+v", err, o)
	}
	if !IsRevoked(o.Status) || IsPaid(o.Status) || !IsPaid(StatusFulfilled) || IsPaid(StatusPending) {
		t.Fatal("IsPaid/IsRevoked disagree with the states")
	}
}

func TestParseStatus(t *testing.T) {
	if st, err := ParseStatus(" Paid "); err != nil || st != StatusPaid {
		t.Fatalf("got %q %v", st, err)
	}
	wantErr(t, func() error { _, err := ParseStatus("shipped"); return err }(), errs.CodeValidationFailed, errs.Invalid)
}

func TestParseProductsSpec(t *testing.T) {
	ok := []struct {
		spec string
		want []Line
	}{
		{"synth:2,drums:1", lines("synth", 2, "drums", 1)},
		{" synth : 2 , drums ", lines("synth", 2, "drums", 1)},
		{"Synth-One:3", lines("synth-one", 3)},
	}
	for _, c := range ok {
		got, err := ParseProductsSpec(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%q: got %+v", c.spec, got)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%q: line %d = %+v, want %+v", c.spec, i, got[i], c.want[i])
			}
		}
	}
	bad := []struct{ spec, code string }{
		{"", CodeInvalidOrder},
		{"  ", CodeInvalidOrder},
		{"synth:0", CodeInvalidQuantity},
		{"synth:101", CodeInvalidQuantity},
		{"synth:two", CodeInvalidQuantity},
		{"synth:1,synth:2", CodeInvalidOrder},
		{"synth:1,,drums:1", CodeInvalidOrder},
		{"bad slug:1", CodeInvalidOrder},
		{"-synth:1", CodeInvalidOrder},
		{"../etc:1", CodeInvalidOrder},
		{strings.Repeat("a:1,", 51) + "b:1", CodeInvalidOrder},
	}
	for _, c := range bad {
		_, err := ParseProductsSpec(c.spec)
		if errs.CodeOf(err) != c.code || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%q: want %s, got %v", c.spec, c.code, err)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got, err := NormalizeEmail("  Buyer.Name+tag@Example.COM "); err != nil || got != "buyer.name+tag@example.com" {
		t.Fatalf("got %q %v", got, err)
	}
	for _, in := range []string{
		"", "   ", "no-at-sign", "a@b", "@example.com", "a@", "Name <a@example.com>", "a b@example.com",
		"a@example.com.", "a@exa\u00e9mple.com", "a@exa\nmple.com", strings.Repeat("a", 250) + "@example.com",
	} {
		if _, err := NormalizeEmail(in); errs.CodeOf(err) != CodeInvalidEmail || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%q: want INVALID_EMAIL, got %v", in, err)
		}
	}
}
