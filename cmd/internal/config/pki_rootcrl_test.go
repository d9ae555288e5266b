package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPKIRootCRLParse(t *testing.T) {
	cfg, _, err := parsePKI(t, nil, "root-crl", "--root-dir", "/media/root", "--out", "root.crl.pem")
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.PKI
	if p.Action != "root-crl" || p.RootDir != "/media/root" || p.Out != "root.crl.pem" || p.Validity != 8760*time.Hour ||
		len(p.RootCRL.RevokeIntermediates) != 0 || p.PassphraseFile != "" {
		t.Fatalf("%+v", p)
	}
	cfg, _, err = parsePKI(t, nil, "root-crl", "--root-dir", "r", "--out", "o", "--validity", "720h", "--passphrase-file", "/tmp/p",
		"--revoke-intermediate", "INT_0123456789ABCDEF, int_fedcba9876543210", "--revoke-intermediate", "int_00000000000000aa")
	if err != nil {
		t.Fatal(err)
	}
	p = cfg.PKI
	if p.Validity != 720*time.Hour || p.PassphraseFile != "/tmp/p" ||
		strings.Join(p.RootCRL.RevokeIntermediates, ",") != "int_0123456789abcdef,int_fedcba9876543210,int_00000000000000aa" {
		t.Fatalf("%+v", p)
	}
}

func TestPKIRootCRLParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"root-crl", "--out", "o"}, "--root-dir"},
		{[]string{"root-crl", "--root-dir", "r"}, "--out"},
		{[]string{"root-crl", "--root-dir", "r", "--out", "o", "--validity", "0s"}, "--validity must be positive"},
		{[]string{"root-crl", "--root-dir", "r", "--out", "o", "--revoke-intermediate", "int_123"}, "not an intermediate id"},
		{[]string{"root-crl", "--root-dir", "r", "--out", "o", "extra"}, "takes no arguments"},
	} {
		_, _, err := parsePKI(t, nil, tc.args...)
		var u *UsageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	_, out, err := parsePKI(t, nil, "root-crl", "--help")
	if !errors.Is(err, ErrHelp) || !strings.Contains(out, "Usage: samplero pki root-crl") || !strings.Contains(out, "-revoke-intermediate") {
		t.Fatalf("root-crl --help: %v\n%s", err, out)
	}
	if _, out, _ := parsePKI(t, nil, "--help"); !strings.Contains(out, "root-crl") {
		t.Fatalf("pki --help does not list root-crl:\n%s", out)
	}
}
