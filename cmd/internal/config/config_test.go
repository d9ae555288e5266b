package config

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var secretEnv = map[string]string{
	"SAMPLERO_DATABASE_URL":          "postgres://app:pgpass-SECRET@db:5432/samplero?sslmode=require",
	"SAMPLERO_REDIS_URL":             "redis://:redispass-SECRET@cache:6379/0",
	"SAMPLERO_SMTP_URL":              "smtp://mailer:smtppass-SECRET@mail:587",
	"SAMPLERO_PROXY_TOKEN":           "proxytoken-SECRET",
	"SAMPLERO_KEY_LOOKUP_SECRET":     "lookup-SECRET-0123456789abcdef0123456789",
	"SAMPLERO_KEY_ENCRYPTION_SECRET": base64.StdEncoding.EncodeToString([]byte("encryption-SECRET-0123456789abcdef")),
	"SAMPLERO_SIGNING_KEYS_DIR":      "/etc/samplero/keys",
	"SAMPLERO_PKI_DIR":               "/etc/samplero/pki",
	"SAMPLERO_TRUSTED_PROXIES":       "10.0.0.0/8, 192.0.2.7",
	"SENTRY_DSN":                     "https://sentrykey-SECRET@o1.ingest.sentry.io/2",
	"SENDGRID_API_KEY":               "SG.sendgrid-SECRET",
	"STRIPE_WEBHOOK_SECRET":          "whsec_stripe-SECRET",
	"STRIPE_SECRET_KEY":              "sk_test_stripe-SECRET",
	"SAMPLERO_WEBHOOK_SECRET":        "generic-webhook-SECRET",
	"SAMPLERO_LINKS_SECRET":          "links-SECRET-0123456789abcdef0123456789",
	"SAMPLERO_S3_SECRET_ACCESS_KEY":  "s3-SECRET-key",
	"SAMPLERO_ASSETS_DIR":            "/var/lib/samplero/assets",
	"SAMPLERO_WEBHOOK_ALLOWED_IPS":   "203.0.113.0/24",
}

func TestServeReadsEnvironmentAndNeverPrintsSecrets(t *testing.T) {
	var out strings.Builder
	c, err := Parse([]string{"serve", "--http", "0.0.0.0:9000"}, envOf(secretEnv), &out)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:9000" || c.DeviceAddr != "127.0.0.1:8443" {
		t.Fatalf("addresses %q %q", c.HTTPAddr, c.DeviceAddr)
	}
	if !c.RateLimits || !c.RequireMTLS {
		t.Fatal("rate limits and mTLS must default to on")
	}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[1].String() != "192.0.2.7/32" {
		t.Fatalf("proxies %v", c.TrustedProxies)
	}
	if string(c.KeyEncryptionSecret) != "encryption-SECRET-0123456789abcdef" {
		t.Fatal("encryption secret not decoded from base64")
	}
	if c.DatabaseURL.Reveal() != secretEnv["SAMPLERO_DATABASE_URL"] {
		t.Fatal("Reveal does not return the value")
	}
	js, _ := json.Marshal(c)
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", c, "dsn", c.DatabaseURL)
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), string(js), logged.String()} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("a secret is printed: %s", s)
		}
	}
	if len(c.Commerce.WebhookAllowlist) != 1 || c.Commerce.Objects.Dir != "/var/lib/samplero/assets" || c.Commerce.DownloadTTL != time.Hour {
		t.Fatalf("commerce settings: %+v", c.Commerce)
	}
	if !strings.Contains(c.String(), "database=postgres://db:5432/samplero") {
		t.Errorf("String should show where the database is: %s", c)
	}
}

func TestServeRefusesMissingSecretsAndRateLimitsOff(t *testing.T) {
	_, err := Parse([]string{"serve"}, envOf(map[string]string{}), &strings.Builder{})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "SAMPLERO_DATABASE_URL") || !strings.Contains(err.Error(), "SAMPLERO_KEY_ENCRYPTION_SECRET") {
		t.Fatalf("missing secrets: %v", err)
	}
	env := map[string]string{}
	for k, v := range secretEnv {
		env[k] = v
	}
	env["SAMPLERO_RATE_LIMITS"] = "off"
	if _, err := Parse([]string{"serve"}, envOf(env), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "only by samplero dev") {
		t.Fatalf("rate limits off under serve: %v", err)
	}
	env["SAMPLERO_RATE_LIMITS"] = "on"
	env["SAMPLERO_KEY_ENCRYPTION_SECRET"] = "not base64!"
	if _, err := Parse([]string{"serve"}, envOf(env), &strings.Builder{}); err == nil {
		t.Fatal("bad base64 accepted")
	}
}

func TestDevDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := Parse([]string{"dev", "--data", dir, "--temporal-port", "17233", "--require-mtls=false"},
		envOf(map[string]string{"SAMPLERO_RATE_LIMITS": "off"}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL.Reveal() != "sqlite:"+filepath.Join(dir, "samplero.db") {
		t.Fatalf("dev database %q", c.DatabaseURL.Reveal())
	}
	if c.Temporal.Address != "127.0.0.1:17233" || c.Temporal.UIPort != 8233 {
		t.Fatalf("temporal %+v", c.Temporal)
	}
	if c.RateLimits || c.RequireMTLS {
		t.Fatal("dev flags/env not applied")
	}
	if c.PKIDir != filepath.Join(dir, "pki") || c.SigningKeysDir != filepath.Join(dir, "keys") {
		t.Fatalf("dirs %q %q", c.PKIDir, c.SigningKeysDir)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.DeviceAddr != "127.0.0.1:8443" || c.PublicURL != "http://127.0.0.1:8080" {
		t.Fatalf("listeners %q %q %q", c.HTTPAddr, c.DeviceAddr, c.PublicURL)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	c, err := Parse([]string{"dev", "--http", "127.0.0.1:1"}, envOf(map[string]string{"SAMPLERO_HTTP_ADDR": "127.0.0.1:2", "SAMPLERO_DEVICE_ADDR": "127.0.0.1:3"}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:1" || c.DeviceAddr != "127.0.0.1:3" {
		t.Fatalf("%q %q", c.HTTPAddr, c.DeviceAddr)
	}
}

func TestSubcommands(t *testing.T) {
	c, err := Parse([]string{"migrate", "status", "--data", "/tmp/x"}, envOf(nil), &strings.Builder{})
	if err != nil || c.MigrateAction != "status" || c.DatabaseURL.Reveal() != "sqlite:/tmp/x/samplero.db" {
		t.Fatalf("migrate: %+v %v", c.MigrateAction, err)
	}
	c, err = Parse([]string{"admin", "token", "create", "--name", "ops"}, envOf(map[string]string{"SAMPLERO_DATABASE_URL": "postgres://h/db"}), &strings.Builder{})
	if err != nil || c.AdminTokenName != "ops" {
		t.Fatalf("admin: %v", err)
	}
	c, err = Parse([]string{"device", "activate", "--license-key", "VST-AAAAA-BBBBB-CCCCC-DDDDD", "--key-type", "ed25519"}, envOf(nil), &strings.Builder{})
	if err != nil || c.Device.Action != "activate" || c.Device.KeyType != "ed25519" || c.Device.LicenseKey.Reveal() == "" {
		t.Fatalf("device: %+v %v", c.Device, err)
	}
	if strings.Contains(fmt.Sprintf("%+v", c), "AAAAA") {
		t.Fatal("the license key is printed")
	}
	for _, bad := range [][]string{
		{"migrate", "sideways", "--data", "/tmp/x"},
		{"migrate", "up"},
		{"admin", "token", "delete", "--name", "x", "--data", "/tmp/x"},
		{"device", "activate"},
		{"device", "validate", "--key-type", "dsa"},
		{"worker"},
		{"nope"},
		{"dev", "--http", "nohostport"},
	} {
		if _, err := Parse(bad, envOf(nil), &strings.Builder{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"dev", "serve", "worker", "migrate", "admin", "device", "loadtest"} {
		var out strings.Builder
		_, err := Parse([]string{cmd, "--help"}, envOf(nil), &out)
		if !errors.Is(err, ErrHelp) {
			t.Errorf("%s --help: %v", cmd, err)
		}
		if !strings.Contains(out.String(), "Usage: samplero "+cmd) {
			t.Errorf("%s --help printed %q", cmd, out.String())
		}
	}
	var out strings.Builder
	if _, err := Parse([]string{"--help"}, envOf(nil), &out); !errors.Is(err, ErrHelp) || !strings.Contains(out.String(), "samplero dev") {
		t.Fatalf("top-level help: %v", err)
	}
}

// The README's configuration table lists every variable of Environment.
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Skip("README.md not found")
	}
	for _, e := range Environment {
		if !strings.Contains(string(readme), "`"+e.Name+"`") {
			t.Errorf("README.md does not document %s", e.Name)
		}
	}
}

func TestTemporalTLSConfig(t *testing.T) {
	if cfg, err := (Temporal{Address: "t:7233"}).TLSConfig(); cfg != nil || err != nil {
		t.Fatalf("no TLS settings: %v %v", cfg, err)
	}
	if _, err := (Temporal{Address: "t:7233", TLSCA: "/nonexistent/ca.pem"}).TLSConfig(); err == nil {
		t.Fatal("a missing CA file is accepted")
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not pem"), 0o600)
	if _, err := (Temporal{Address: "t:7233", TLSCA: ca}).TLSConfig(); err == nil {
		t.Fatal("a CA file without certificates is accepted")
	}
	if _, err := Parse([]string{"worker", "--outbox", "/tmp/o"}, envOf(map[string]string{"SAMPLERO_TEMPORAL_TLS_CERT": "c.pem"}), &strings.Builder{}); err == nil {
		t.Fatal("a TLS certificate without its key is accepted")
	}
}

// Commerce settings that cannot work are refused at start, with the variable named.
func TestCommerceSettingsAreValidated(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"STRIPE_API_BASE":              {"STRIPE_API_BASE": "stripe-mock:12111"},
		"SAMPLERO_OBJECT_STORE":        {"SAMPLERO_OBJECT_STORE": "ftp"},
		"SAMPLERO_S3_BUCKET":           {"SAMPLERO_OBJECT_STORE": "s3"},
		"SAMPLERO_DOWNLOAD_TTL":        {"SAMPLERO_DOWNLOAD_TTL": "5s"},
		"SAMPLERO_WEBHOOK_ALLOWED_IPS": {"SAMPLERO_WEBHOOK_ALLOWED_IPS": "10.0.0.0/8, not-an-ip"},
		"SAMPLERO_LINKS_SECRET":        {"SAMPLERO_LINKS_SECRET": "short"},
		"SAMPLERO_OPERATOR_EMAIL":      {"SAMPLERO_OPERATOR_EMAIL": "ops"},
	} {
		_, err := Parse([]string{"dev"}, envOf(env), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: %v, want an error naming %s", env, err, name)
		}
	}
	c, err := Parse([]string{"dev", "--data", "/tmp/samplero-x"}, envOf(nil), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Commerce.Objects.Kind != "local" || c.Commerce.Objects.Dir != "/tmp/samplero-x/assets" || c.Commerce.VendorName != "Samplero" {
		t.Fatalf("dev commerce defaults: %+v", c.Commerce)
	}
}
