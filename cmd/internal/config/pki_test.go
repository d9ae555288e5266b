package config

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parsePKI(t *testing.T, env map[string]string, args ...string) (Config, string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg, err := Parse(append([]string{"pki"}, args...), envOf(env), &out)
	return cfg, out.String(), err
}

func TestPKIParse(t *testing.T) {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c Config)
	}{
		{"init-root", nil, []string{"init-root", "--dir", "/media/root", "--org", "Vendor", "--passphrase-file", "/tmp/p"}, func(t *testing.T, c Config) {
			p := c.PKI
			if p.Action != "init-root" || p.RootDir != "/media/root" || p.Organization != "Vendor" || p.PassphraseFile != "/tmp/p" ||
				p.CommonName != "Samplero Root CA" || p.Validity != 175200*time.Hour {
				t.Fatalf("%+v", p)
			}
		}},
		{"sign-intermediate with constraints flags", nil, []string{"sign-intermediate", "--root-dir", "r", "--csr", "c.pem", "--out", "o.pem",
			"--permitted-dns", "Example.com, .corp.test", "--permitted-dns", "localhost", "--excluded-ip", "10.0.0.0/8"}, func(t *testing.T, c Config) {
			p := c.PKI
			if p.Validity != 43800*time.Hour || strings.Join(p.PermittedDNS, ",") != "example.com,.corp.test,localhost" || len(p.ExcludedIPs) != 1 || p.ExcludedIPs[0].String() != "10.0.0.0/8" {
				t.Fatalf("%+v", p)
			}
		}},
		{"bundle build", nil, []string{"bundle", "build", "--cert", "i.pem", "--root-cert", "r.pem", "--out", "b.tar.gz"}, func(t *testing.T, c Config) {
			if c.PKI.Action != "bundle build" || c.PKI.Cert != "i.pem" || c.PKI.RootCert != "r.pem" || c.PKI.Out != "b.tar.gz" {
				t.Fatalf("%+v", c.PKI)
			}
		}},
		{"bundle verify, bundle first", nil, []string{"bundle", "verify", "b.tar.gz", "--root-fingerprint", "AB:CD"}, func(t *testing.T, c Config) {
			if c.PKI.Action != "bundle verify" || c.PKI.Bundle != "b.tar.gz" || c.PKI.RootFingerprint != "AB:CD" {
				t.Fatalf("%+v", c.PKI)
			}
		}},
		{"bundle install, flags first, PKI dir from the environment", map[string]string{"SAMPLERO_PKI_DIR": "/srv/pki"}, []string{"bundle", "install", "--force", "b.tar.gz"}, func(t *testing.T, c Config) {
			if c.PKI.Action != "bundle install" || c.PKI.Bundle != "b.tar.gz" || !c.PKI.Force || c.PKI.PKIDir != "/srv/pki" {
				t.Fatalf("%+v", c.PKI)
			}
		}},
		{"--pki-dir wins over the environment", map[string]string{"SAMPLERO_PKI_DIR": "/srv/pki"}, []string{"new-intermediate", "--pki-dir", "/other"}, func(t *testing.T, c Config) {
			if c.PKI.PKIDir != "/other" {
				t.Fatalf("%+v", c.PKI)
			}
		}},
		{"--data means DIR/pki", map[string]string{"SAMPLERO_PKI_DIR": "/srv/pki"}, []string{"audit", "--data", "dev-data"}, func(t *testing.T, c Config) {
			if c.PKI.PKIDir != filepath.Join(abs("dev-data"), "pki") {
				t.Fatalf("%+v", c.PKI)
			}
		}},
		{"status with the dev database", nil, []string{"status", "--data", "dev-data"}, func(t *testing.T, c Config) {
			if c.DatabaseURL.Reveal() != "sqlite:"+filepath.Join(abs("dev-data"), "samplero.db") {
				t.Fatalf("database %q", c.DatabaseURL.Reveal())
			}
		}},
		{"status with --database", map[string]string{"SAMPLERO_DATABASE_URL": "postgres://env"}, []string{"status", "--pki-dir", "p", "--database", "postgres://flag"}, func(t *testing.T, c Config) {
			if c.DatabaseURL.Reveal() != "postgres://flag" || c.PKI.PKIDir != abs("p") {
				t.Fatalf("database %q dir %q", c.DatabaseURL.Reveal(), c.PKI.PKIDir)
			}
		}},
		{"status without a database", nil, []string{"status", "--pki-dir", "p"}, func(t *testing.T, c Config) {
			if c.DatabaseURL.Set() {
				t.Fatal("a database appeared")
			}
		}},
		{"state set canary defaults to 5 %", nil, []string{"state", "set", "--pki-dir", "p", "--id", "int_1", "--state", "canary"}, func(t *testing.T, c Config) {
			if c.PKI.Action != "state set" || c.PKI.Share != 5 || c.PKI.State != "canary" || c.PKI.ID != "int_1" {
				t.Fatalf("%+v", c.PKI)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parsePKI(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestPKIParseErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no action":                  {},
		"unknown action":             {"frobnicate"},
		"bundle without sub-action":  {"bundle"},
		"unknown bundle sub-action":  {"bundle", "explode"},
		"init-root without --dir":    {"init-root"},
		"passphrase as a flag":       {"init-root", "--dir", "d", "--passphrase", "secret"},
		"sign without --csr":         {"sign-intermediate", "--root-dir", "r", "--out", "o"},
		"bad CIDR":                   {"sign-intermediate", "--root-dir", "r", "--csr", "c", "--out", "o", "--permitted-ip", "10.0.0.1"},
		"verify without a bundle":    {"bundle", "verify"},
		"verify two bundles":         {"bundle", "verify", "a", "b"},
		"install without a PKI dir":  {"bundle", "install", "b.tar.gz"},
		"audit with an argument":     {"audit", "--pki-dir", "p", "extra"},
		"state set unknown state":    {"state", "set", "--pki-dir", "p", "--id", "i", "--state", "live"},
		"state set share for active": {"state", "set", "--pki-dir", "p", "--id", "i", "--state", "active", "--share", "5"},
		"state set share too large":  {"state", "set", "--pki-dir", "p", "--id", "i", "--state", "canary", "--share", "101"},
		"state set without id":       {"state", "set", "--pki-dir", "p", "--state", "retired"},
		"zero validity":              {"init-root", "--dir", "d", "--validity", "0s"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := parsePKI(t, nil, args...)
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error", err)
			}
		})
	}
}

// Every action has a --help that explains it and lists its flags.
func TestPKIHelp(t *testing.T) {
	_, out, err := parsePKI(t, nil, "--help")
	if !errors.Is(err, ErrHelp) || !strings.Contains(out, "init-root") || !strings.Contains(out, "state set") {
		t.Fatalf("pki --help: %v\n%s", err, out)
	}
	for _, action := range [][]string{
		{"init-root"}, {"sign-intermediate"}, {"bundle", "build"}, {"bundle", "verify"}, {"bundle", "install"},
		{"new-intermediate"}, {"audit"}, {"status"}, {"state", "set"},
	} {
		_, out, err := parsePKI(t, nil, append(action, "--help")...)
		if !errors.Is(err, ErrHelp) || !strings.Contains(out, "Usage: samplero pki "+strings.Join(action, " ")) || !strings.Contains(out, "Flags:") {
			t.Errorf("%v --help: %v\n%s", action, err, out)
		}
	}
}

// The signing-key actions go to their own parser (pki_keys.go).
func TestPKIKeysDispatch(t *testing.T) {
	for _, action := range []string{"rotate-signing-key", "endorse-signing-key", "install-endorsement"} {
		c, _, err := parsePKI(t, nil, action, "--help")
		if err == nil && c.PKI.Action != action {
			t.Errorf("%s parsed as %q", action, c.PKI.Action)
		}
		var ue *UsageError
		if errors.As(err, &ue) && strings.Contains(ue.Msg, "has no action") {
			t.Errorf("%s not dispatched: %v", action, err)
		}
	}
}
