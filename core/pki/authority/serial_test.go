package authority_test

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"testing/iotest"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

func TestCanonicalSerial(t *testing.T) {
	// A serial whose DER encoding starts with 00: the high bit of its first byte is set, so DER
	// prepends a zero byte to keep it positive.
	var derWithZero *big.Int
	{
		der, err := asn1.Marshal(new(big.Int).SetBytes([]byte{0x8F, 0x01, 0x02}))
		if err != nil {
			t.Fatal(err)
		}
		// 02 04 00 8F 01 02: INTEGER of length 4, content 00 8F 01 02.
		if !bytes.Equal(der, []byte{0x02, 0x04, 0x00, 0x8F, 0x01, 0x02}) {
			t.Fatalf("unexpected DER %X", der)
		}
		derWithZero = new(big.Int)
		if _, err := asn1.Unmarshal(der, &derWithZero); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		in   *big.Int
		want string
	}{
		{"first byte below 0x10", new(big.Int).SetBytes([]byte{0x0A, 0x1B}), "A1B"},
		{"first byte 0x01", new(big.Int).SetBytes([]byte{0x01, 0xFF, 0x00}), "1FF00"},
		{"leading 00 byte from DER", derWithZero, "8F0102"},
		{"lower-case hex digits come out upper-case", new(big.Int).SetBytes([]byte{0xab, 0xcd}), "ABCD"},
		{"one", big.NewInt(1), "1"},
		{"nil", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := authority.CanonicalSerial(tt.in); got != tt.want {
				t.Fatalf("CanonicalSerial = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "0A1B", want: "A1B"},
		{in: "a1b", want: "A1B"},
		{in: "  00008f0102 ", want: "8F0102"},
		{in: "00:8F:01:02", want: "8F0102"},
		{in: "1", want: "1"},
		{in: "0123456789abcdefABCDEF", want: "123456789ABCDEFABCDEF"},
		{in: "00" + "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", want: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"},
		{in: "1" + "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", wantErr: true}, // 41 digits: over 20 octets
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "000", wantErr: true},
		{in: "-A1B", wantErr: true},
		{in: "0xA1B", wantErr: true},
		{in: "G1", wantErr: true},
		{in: "A1 B", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := authority.ParseSerial(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSerial(%q) = %q, want error", tt.in, got)
				}
				if errs.CodeOf(err) != errs.CodeValidationFailed {
					t.Fatalf("code = %s, want %s", errs.CodeOf(err), errs.CodeValidationFailed)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSerial(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseSerial(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseSerialRoundTripsCanonical(t *testing.T) {
	for range 200 {
		n, err := authority.NewSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c := authority.CanonicalSerial(n)
		got, err := authority.ParseSerial(c)
		if err != nil || got != c {
			t.Fatalf("ParseSerial(%q) = %q, %v", c, got, err)
		}
	}
}

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n, err := authority.NewSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 {
			t.Fatalf("serial %v not positive", n)
		}
		if n.BitLen() > 128 {
			t.Fatalf("serial has %d bits, want at most 128", n.BitLen())
		}
		s := authority.CanonicalSerial(n)
		if seen[s] {
			t.Fatalf("serial %s repeated", s)
		}
		seen[s] = true
	}
}

func TestNewSerialUsesAll128Bits(t *testing.T) {
	src := bytes.NewReader(bytes.Repeat([]byte{0xFF}, 16))
	n, err := authority.NewSerial(src)
	if err != nil {
		t.Fatal(err)
	}
	if n.BitLen() != 128 {
		t.Fatalf("BitLen = %d, want 128", n.BitLen())
	}
}

func TestNewSerialBrokenSources(t *testing.T) {
	if _, err := authority.NewSerial(bytes.NewReader(make([]byte, 64))); err == nil {
		t.Fatal("a source of zeros gave a serial")
	}
	if _, err := authority.NewSerial(iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Fatal("a failing source gave a serial")
	}
	// One zero draw followed by a good one: the retry recovers.
	src := bytes.NewReader(append(make([]byte, 16), bytes.Repeat([]byte{0x01}, 16)...))
	n, err := authority.NewSerial(src)
	if err != nil || n.Sign() <= 0 {
		t.Fatalf("NewSerial after one zero draw = %v, %v", n, err)
	}
}
