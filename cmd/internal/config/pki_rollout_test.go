package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPKIRolloutParse(t *testing.T) {
	cfg, _, err := parsePKI(t, map[string]string{"SAMPLERO_TEMPORAL_ADDRESS": "temporal:7233"}, "rollout", "start", "--data", "dev", "--id", "int_2",
		"--share", "50", "--soak", "2h", "--check-every", "5s", "--max-validation-failures", "3", "--auto-promote")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.PKI.Rollout
	abs, _ := filepath.Abs("dev")
	if cfg.PKI.Action != "rollout start" || r.ID != "int_2" || r.Share != 50 || r.Soak != 2*time.Hour || r.CheckEvery != 5*time.Second ||
		r.MaxValidationFailures != 3 || !r.AutoPromote || cfg.PKI.PKIDir != filepath.Join(abs, "pki") || cfg.Temporal.Address != "temporal:7233" {
		t.Fatalf("%+v %+v %+v", cfg.PKI, r, cfg.Temporal)
	}

	cfg, _, err = parsePKI(t, nil, "rollout", "start", "--id", "int_2", "--previous", "int_1")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.PKI.Rollout; r.Share != DefaultRolloutShare || r.Soak != DefaultRolloutSoak || r.CheckEvery != DefaultRolloutCheckEvery ||
		r.Previous != "int_1" || cfg.Temporal.Address != "127.0.0.1:7233" {
		t.Fatalf("defaults: %+v", r)
	}

	for _, args := range [][]string{{"status", "--id", "i"}, {"approve", "--id", "i", "--by", "bob"}, {"abort", "--id", "i", "--reason", "r"}} {
		cfg, _, err := parsePKI(t, nil, append([]string{"rollout"}, args...)...)
		if err != nil || cfg.PKI.Action != "rollout "+args[0] || cfg.PKI.Rollout.ID != "i" {
			t.Fatalf("%v: %+v %v", args, cfg.PKI, err)
		}
	}
	cfg, _, err = parsePKI(t, nil, "rollout", "dev-sign-intermediate", "--data", "dev", "--csr", "c.pem", "--out", "o.pem")
	if err != nil || cfg.PKI.CSR != "c.pem" || cfg.PKI.Out != "o.pem" || cfg.PKI.PKIDir != filepath.Join(abs, "pki") {
		t.Fatalf("dev-sign: %+v %v", cfg.PKI, err)
	}
}

func TestPKIRolloutParseErrors(t *testing.T) {
	for _, args := range [][]string{
		{"rollout"},
		{"rollout", "promote", "--id", "i"},
		{"rollout", "status"},
		{"rollout", "start", "--id", "i"}, // no PKI directory to find the active one
		{"rollout", "start", "--id", "i", "--previous", "p", "--share", "0"},
		{"rollout", "start", "--id", "i", "--previous", "p", "--check-every", "0s"},
		{"rollout", "start", "--id", "i", "--previous", "i"},
		{"rollout", "start", "--id", "i", "--previous", "p", "--max-chain-failures", "-1"},
		{"rollout", "dev-sign-intermediate", "--data", "d", "--csr", "c.pem"},
		{"rollout", "status", "--id", "i", "extra"},
	} {
		_, _, err := parsePKI(t, nil, args...)
		if err == nil || errors.Is(err, ErrHelp) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	_, out, err := parsePKI(t, nil, "rollout", "--help")
	if !errors.Is(err, ErrHelp) || !strings.Contains(out, "dev-sign-intermediate") {
		t.Fatalf("help: %v\n%s", err, out)
	}
}
