package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const (
	sTok = "signer-token-0123456789abcdef0123456789"
	sSec = "signer-hmac-0123456789abcdef0123456789a"
)

func signerEnv(extra map[string]string) map[string]string {
	env := map[string]string{"SAMPLERO_SIGNER_TOKEN": sTok, "SAMPLERO_SIGNER_HMAC_SECRET": sSec}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func parseSigner(env map[string]string, args ...string) (Config, string, error) {
	var out bytes.Buffer
	cfg, err := Parse(append([]string{"signer"}, args...), envOf(env), &out)
	return cfg, out.String(), err
}

func TestSignerParse(t *testing.T) {
	cfg, _, err := parseSigner(signerEnv(nil), "--listen", "0.0.0.0:9443", "--pki-dir", "/srv/pki",
		"--tls-cert", "s.pem", "--tls-key", "s-key.pem", "--client-ca", "clients.pem")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Signer
	if s.Listen != "0.0.0.0:9443" || s.PKIDir != "/srv/pki" || s.TLSCert != "s.pem" || s.TLSKey != "s-key.pem" ||
		s.ClientCA != "clients.pem" || s.Token.Reveal() != sTok || s.HMACSecret.Reveal() != sSec {
		t.Fatalf("%+v", s)
	}
	// Secrets never print.
	if strings.Contains(cfg.String()+strings.Join([]string{s.Token.String(), s.HMACSecret.String()}, ""), "0123456789") {
		t.Fatal("a signer secret printed")
	}
	cfg, _, err = parseSigner(signerEnv(map[string]string{"SAMPLERO_PKI_DIR": "/env/pki", "SAMPLERO_SIGNER_LISTEN": "127.0.0.1:0"}))
	if err != nil || cfg.Signer.PKIDir != "/env/pki" || cfg.Signer.Listen != "127.0.0.1:0" || cfg.Signer.TLSCert != "" {
		t.Fatalf("defaults from the environment: %+v %v", cfg.Signer, err)
	}
}

func TestSignerParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no pki dir", signerEnv(nil), nil, "--pki-dir"},
		{"no token", map[string]string{"SAMPLERO_SIGNER_HMAC_SECRET": sSec}, []string{"--pki-dir", "p"}, "SAMPLERO_SIGNER_TOKEN"},
		{"short secret", signerEnv(map[string]string{"SAMPLERO_SIGNER_HMAC_SECRET": "short"}), []string{"--pki-dir", "p"}, "at least 32"},
		{"same token and secret", signerEnv(map[string]string{"SAMPLERO_SIGNER_HMAC_SECRET": sTok}), []string{"--pki-dir", "p"}, "must differ"},
		{"plain HTTP off loopback", signerEnv(nil), []string{"--pki-dir", "p", "--listen", "0.0.0.0:9443"}, "loopback"},
		{"cert without key", signerEnv(nil), []string{"--pki-dir", "p", "--tls-cert", "c"}, "go together"},
		{"client CA without TLS", signerEnv(nil), []string{"--pki-dir", "p", "--client-ca", "c"}, "--client-ca needs"},
		{"bad listen", signerEnv(nil), []string{"--pki-dir", "p", "--listen", "nope"}, "host:port"},
		{"argument", signerEnv(nil), []string{"--pki-dir", "p", "extra"}, "no arguments"},
	} {
		_, _, err := parseSigner(tc.env, tc.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error with %q", tc.name, err, tc.want)
		}
	}
	if _, out, err := parseSigner(nil, "--help"); !errors.Is(err, ErrHelp) || !strings.Contains(out, "POST /v1/sign") || !strings.Contains(out, "-client-ca") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
}

func TestCABackendParse(t *testing.T) {
	serveEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	// dev needs nothing else, so it isolates the CA backend settings.
	cfg, _, err := func() (Config, string, error) {
		var out bytes.Buffer
		c, err := Parse([]string{"dev"}, envOf(serveEnv(nil)), &out)
		return c, out.String(), err
	}()
	if err != nil || cfg.CABackend.Kind != "local" {
		t.Fatalf("default: %+v %v", cfg.CABackend, err)
	}
	remote := signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "https://signer.internal:9443/",
		"SAMPLERO_SIGNER_CA": "ca.pem", "SAMPLERO_SIGNER_CLIENT_CERT": "c.pem", "SAMPLERO_SIGNER_CLIENT_KEY": "k.pem"})
	var out bytes.Buffer
	cfg, err = Parse([]string{"dev"}, envOf(remote), &out)
	b := cfg.CABackend
	if err != nil || b.Kind != "remote" || b.URL != "https://signer.internal:9443" || b.CAFile != "ca.pem" || b.ClientCert != "c.pem" ||
		b.ClientKey != "k.pem" || b.Token.Reveal() != sTok || b.HMACSecret.Reveal() != sSec {
		t.Fatalf("remote: %+v %v", b, err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unknown backend", map[string]string{"SAMPLERO_CA_BACKEND": "hsm"}, "not local, remote or stepca"},
		{"no URL", signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote"}), "SAMPLERO_SIGNER_URL"},
		{"plain http off loopback", signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "http://signer.internal:9443"}), "loopback"},
		{"no secrets", map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "https://s:1"}, "SAMPLERO_SIGNER_TOKEN"},
		{"cert without key", signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "https://s:1", "SAMPLERO_SIGNER_CLIENT_CERT": "c"}), "go together"},
	} {
		_, err := Parse([]string{"dev"}, envOf(tc.env), &out)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := Parse([]string{"dev"}, envOf(signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "http://127.0.0.1:9443"})), &out); err != nil {
		t.Fatalf("plain http to loopback: %v", err)
	}
}

// serve with the remote backend needs the device listener's certificate from files (no CA key on
// the host to make one); the worker, which listens to no device, does not.
func TestCABackendDeviceTLS(t *testing.T) {
	env := func(extra map[string]string) map[string]string {
		m := signerEnv(map[string]string{"SAMPLERO_CA_BACKEND": "remote", "SAMPLERO_SIGNER_URL": "https://signer.internal:9443"})
		for k, v := range secretEnv {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	var out bytes.Buffer
	_, err := Parse([]string{"serve"}, envOf(env(nil)), &out)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "SAMPLERO_DEVICE_TLS_CERT") {
		t.Fatalf("serve remote without a device certificate: %v", err)
	}
	_, err = Parse([]string{"serve"}, envOf(env(map[string]string{"SAMPLERO_DEVICE_TLS_CERT": "dev.pem"})), &out)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("device cert without key: %v", err)
	}
	cfg, err := Parse([]string{"serve"}, envOf(env(map[string]string{"SAMPLERO_DEVICE_TLS_CERT": "dev.pem", "SAMPLERO_DEVICE_TLS_KEY": "dev-key.pem"})), &out)
	if err != nil || cfg.CABackend.DeviceTLSCert != "dev.pem" || cfg.CABackend.DeviceTLSKey != "dev-key.pem" {
		t.Fatalf("serve remote with a device certificate: %+v %v", cfg.CABackend, err)
	}
	if _, err := Parse([]string{"worker"}, envOf(env(map[string]string{"SAMPLERO_PUBLIC_URL": "https://licenses.example.com"})), &out); err != nil {
		t.Fatalf("worker remote needs no device certificate: %v", err)
	}
	// local: optional, and read when given.
	local := map[string]string{"SAMPLERO_DEVICE_TLS_CERT": "d.pem", "SAMPLERO_DEVICE_TLS_KEY": "k.pem"}
	if cfg, err := Parse([]string{"dev"}, envOf(local), &out); err != nil || cfg.CABackend.DeviceTLSCert != "d.pem" {
		t.Fatalf("local with a device certificate: %+v %v", cfg.CABackend, err)
	}
}

// SAMPLERO_CA_BACKEND=stepca reads step-ca's URL, root, provisioner and its key; every one is
// required, the URL must be https without a path, serve needs the device listener's certificate
// and the key never shows in the configuration's text.
func TestCABackendStepCA(t *testing.T) {
	const jwk = `{"kty":"EC","crv":"P-256","d":"SECRET-D"}`
	env := func(drop string, extra map[string]string) map[string]string {
		m := map[string]string{"SAMPLERO_CA_BACKEND": "stepca", "SAMPLERO_STEPCA_URL": "https://127.0.0.1:9000/",
			"SAMPLERO_STEPCA_ROOT": "root.pem", "SAMPLERO_STEPCA_PROVISIONER": "samplero", "SAMPLERO_STEPCA_PROVISIONER_KEY": jwk}
		delete(m, drop)
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	var out bytes.Buffer
	cfg, err := Parse([]string{"dev"}, envOf(env("", nil)), &out)
	s := cfg.CABackend.StepCA
	if err != nil || cfg.CABackend.Kind != "stepca" || s.URL != "https://127.0.0.1:9000" || s.RootFile != "root.pem" ||
		s.Provisioner != "samplero" || s.ProvisionerKey.Reveal() != jwk || !s.ProvisionerKeyInline() {
		t.Fatalf("stepca: %+v %v", cfg.CABackend, err)
	}
	if strings.Contains(cfg.String(), "SECRET-D") || strings.Contains(fmt.Sprintf("%+v %#v", cfg, cfg), "SECRET-D") {
		t.Fatal("the provisioner key shows in the configuration's text")
	}
	if cfg, err := Parse([]string{"dev"}, envOf(env("", map[string]string{"SAMPLERO_STEPCA_PROVISIONER_KEY": "/etc/samplero/provisioner.json"})), &out); err != nil || cfg.CABackend.StepCA.ProvisionerKeyInline() {
		t.Fatalf("key file: %+v %v", cfg.CABackend.StepCA, err)
	}
	if cfg, err := Parse([]string{"dev"}, envOf(env("", map[string]string{"SAMPLERO_STEPCA_PROVISIONER_KEY": "-----BEGIN EC PRIVATE KEY-----\n..."})), &out); err != nil || !cfg.CABackend.StepCA.ProvisionerKeyInline() {
		t.Fatalf("PEM key: %+v %v", cfg.CABackend.StepCA, err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no URL", env("SAMPLERO_STEPCA_URL", nil), "SAMPLERO_STEPCA_URL"},
		{"no root", env("SAMPLERO_STEPCA_ROOT", nil), "SAMPLERO_STEPCA_ROOT"},
		{"no provisioner", env("SAMPLERO_STEPCA_PROVISIONER", nil), "SAMPLERO_STEPCA_PROVISIONER"},
		{"no key", env("SAMPLERO_STEPCA_PROVISIONER_KEY", nil), "SAMPLERO_STEPCA_PROVISIONER_KEY"},
		{"http", env("", map[string]string{"SAMPLERO_STEPCA_URL": "http://127.0.0.1:9000"}), "not an https URL"},
		{"path", env("", map[string]string{"SAMPLERO_STEPCA_URL": "https://ca.internal:9000/1.0"}), "not an https URL"},
	} {
		_, err := Parse([]string{"dev"}, envOf(tc.env), &out)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error with %q", tc.name, err, tc.want)
		}
	}
	// serve: the device listener's certificate is required, as with remote.
	serve := env("", nil)
	for k, v := range secretEnv {
		serve[k] = v
	}
	_, err = Parse([]string{"serve"}, envOf(serve), &out)
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "SAMPLERO_CA_BACKEND=stepca needs SAMPLERO_DEVICE_TLS_CERT") {
		t.Fatalf("serve stepca without a device certificate: %v", err)
	}
	serve["SAMPLERO_DEVICE_TLS_CERT"], serve["SAMPLERO_DEVICE_TLS_KEY"] = "d.pem", "k.pem"
	if cfg, err := Parse([]string{"serve"}, envOf(serve), &out); err != nil || cfg.CABackend.StepCA.Provisioner != "samplero" {
		t.Fatalf("serve stepca: %+v %v", cfg.CABackend, err)
	}
}
