package license

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestGenerateKeyShapeAndNormalizeRoundTrip(t *testing.T) {
	for _, prefix := range []string{PrefixPlugin, PrefixSamplePack, PrefixOther} {
		k, err := GenerateKey(prefix, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 23 || !strings.HasPrefix(k, prefix) {
			t.Fatalf("bad key %q", k)
		}
		for _, c := range k[3:] {
			if !strings.ContainsRune(KeyAlphabet, c) {
				t.Fatalf("key %q has %q outside the alphabet", k, c)
			}
		}
		f := FormatKey(k)
		if len(f) != 27 || strings.Count(f, "-") != 4 || f[3] != '-' || f[9] != '-' {
			t.Fatalf("bad format %q", f)
		}
		got, ok := NormalizeKey("  " + strings.ToLower(f) + " ")
		if !ok || got != k {
			t.Fatalf("NormalizeKey(%q) = %q, %v; want %q", f, got, ok, k)
		}
	}
	if _, err := GenerateKey("XYZ", rand.Reader); err == nil {
		t.Fatal("unknown prefix accepted")
	}
}

// countingReader yields a fixed byte sequence, to check the mapping and the rejection.
type countingReader struct{ b []byte }

func (r *countingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("exhausted")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestGenerateKeyDeterministicMappingAndErrors(t *testing.T) {
	src := make([]byte, 20)
	for i := range src {
		src[i] = byte(i) // 0..19 → A..V minus I, O
	}
	k, err := GenerateKey("LIC", &countingReader{b: src})
	if err != nil {
		t.Fatal(err)
	}
	if want := "LIC" + KeyAlphabet[:20]; k != want {
		t.Fatalf("got %q want %q", k, want)
	}
	if _, err := GenerateKey("LIC", &countingReader{b: src[:5]}); err == nil {
		t.Fatal("short randomness accepted")
	}
}

func TestGenerateKeyIsRoughlyUniform(t *testing.T) {
	counts := map[rune]int{}
	for i := 0; i < 2000; i++ {
		k, err := GenerateKey("VST", rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range k[3:] {
			counts[c]++
		}
	}
	// 40,000 draws over 32 symbols: 1250 expected each; a 25% band is > 8 sigma.
	if len(counts) != 32 {
		t.Fatalf("only %d symbols seen", len(counts))
	}
	for c, n := range counts {
		if n < 937 || n > 1563 {
			t.Fatalf("symbol %q drawn %d times", c, n)
		}
	}
}

func TestNormalizeKey(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"VST-ABCDE-FGHJK-LMNPQ-RSTUV", "VSTABCDEFGHJKLMNPQRSTUV", true},
		{"vst abcde fghjk lmnpq rstuv", "VSTABCDEFGHJKLMNPQRSTUV", true},
		{"\tDIGABCDEFGHJKLMNPQRSTUV\n", "DIGABCDEFGHJKLMNPQRSTUV", true},
		{"LIC-2345-6789A-BCDEF-GHJKL-M", "LIC23456789ABCDEFGHJKLM", true},
		{"XYZ-ABCDE-FGHJK-LMNPQ-RSTUV", "", false},  // unknown prefix
		{"VST-ABCDE-FGHJK-LMNPQ-RSTU", "", false},   // 19 characters
		{"VST-ABCDE-FGHJK-LMNPQ-RSTUVW", "", false}, // 21 characters
		{"VST-ABCDE-FGHJK-LMNPQ-RSTU0", "", false},  // 0 not in the alphabet
		{"VST-ABCDE-FGHJK-LMNPQ-RSTUI", "", false},  // I not in the alphabet
		{"VST-ABCDE-FGHJK-LMNPQ-RSTU1", "", false},
		{"VST-ABCDE-FGHJK-LMNPQ-RSTUÄ", "", false},
		{"VST_ABCDEFGHJKLMNPQRSTUV", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, ok := NormalizeKey(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeKey(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestPrefixForProductType(t *testing.T) {
	for typ, want := range map[string]string{"plugin": "VST", "sample_pack": "DIG", "bundle": "LIC", "": "LIC"} {
		if got := PrefixForProductType(typ); got != want {
			t.Errorf("%q → %q want %q", typ, got, want)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID(IDPrefixActivation)
		if len(id) != 4+26 || !strings.HasPrefix(id, "act_") || strings.ToLower(id) != id || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}
