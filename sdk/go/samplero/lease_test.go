package samplero_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/samplero"
)

// TestVerifyLeaseMUSTs violates each rule of PROTOCOL.md section 4 in turn.
func TestVerifyLeaseMUSTs(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Unix(1764417600, 0)
	iat := now.Add(-time.Hour).Unix()
	baseHdr := func() map[string]any {
		return map[string]any{"alg": "EdDSA", "typ": "samplero-lease+jwt", "kid": "srv-1"}
	}
	baseCl := func() map[string]any {
		return map[string]any{
			"iss": testIssuer, "sub": "act_1", "lic": "lic_1", "prd": testProduct, "ent": []string{testProduct, "fx-pack"},
			"fpr": testFpr, "cnf": map[string]string{"kid": "thumb-1"}, "iat": iat, "nbf": iat,
			"hbt": iat + 86400, "exp": iat + 7*86400, "lexp": iat + 30*86400, "st": "active",
		}
	}
	check := samplero.LeaseCheck{
		Keys: map[string]ed25519.PublicKey{"srv-1": pub}, Issuer: testIssuer, Fingerprint: testFpr,
		Thumbprint: "thumb-1", Product: testProduct, Now: now, NewestSeen: now.Add(-time.Minute),
	}
	good := mintLease(key, baseHdr(), baseCl())
	l, err := samplero.VerifyLease(good, check)
	if err != nil {
		t.Fatal(err)
	}
	if l.ActivationID != "act_1" || l.LicenseID != "lic_1" || l.KeyID != "srv-1" || l.ExpiresAt.Unix() != iat+7*86400 ||
		l.LicenseExpiresAt == nil || l.LicenseExpiresAt.Unix() != iat+30*86400 || l.HeartbeatDue.Unix() != iat+86400 || len(l.Entitlements) != 2 {
		t.Fatalf("lease %+v", l)
	}

	cases := []struct {
		name  string
		hdr   func(map[string]any)
		cl    func(map[string]any)
		key   ed25519.PrivateKey
		check func(*samplero.LeaseCheck)
		raw   func(string) string
		want  error
	}{
		{name: "alg none", hdr: func(h map[string]any) { h["alg"] = "none" }, want: samplero.ErrLeaseAlg},
		{name: "alg HS256", hdr: func(h map[string]any) { h["alg"] = "HS256" }, want: samplero.ErrLeaseAlg},
		{name: "alg Ed25519 spelled differently", hdr: func(h map[string]any) { h["alg"] = "Ed25519" }, want: samplero.ErrLeaseAlg},
		{name: "alg missing", hdr: func(h map[string]any) { delete(h, "alg") }, want: samplero.ErrLeaseAlg},
		{name: "typ", hdr: func(h map[string]any) { h["typ"] = "JWT" }, want: samplero.ErrLeaseType},
		{name: "kid unknown", hdr: func(h map[string]any) { h["kid"] = "srv-2" }, want: samplero.ErrLeaseUnknownKey},
		{name: "crit", hdr: func(h map[string]any) { h["crit"] = []string{"x"} }, want: samplero.ErrLeaseMalformed},
		{name: "signature", key: otherKey, want: samplero.ErrLeaseSignature},
		{name: "payload altered", raw: func(s string) string {
			p := strings.Split(s, ".")
			alt := strings.Split(mintLease(key, baseHdr(), func() map[string]any { c := baseCl(); c["exp"] = iat + 70*86400; return c }()), ".")
			return p[0] + "." + alt[1] + "." + p[2]
		}, want: samplero.ErrLeaseSignature},
		{name: "iss", cl: func(c map[string]any) { c["iss"] = "https://evil.test" }, want: samplero.ErrLeaseIssuer},
		{name: "fpr", cl: func(c map[string]any) { c["fpr"] = "another-device-0002" }, want: samplero.ErrLeaseFingerprint},
		{name: "cnf", cl: func(c map[string]any) { c["cnf"] = map[string]string{"kid": "thumb-2"} }, want: samplero.ErrLeaseKey},
		{name: "cnf missing", cl: func(c map[string]any) { delete(c, "cnf") }, want: samplero.ErrLeaseKey},
		{name: "product not entitled", cl: func(c map[string]any) { c["ent"] = []string{"fx-pack"} }, want: samplero.ErrLeaseProduct},
		{name: "status suspended", cl: func(c map[string]any) { c["st"] = "suspended" }, want: samplero.ErrLeaseStatus},
		{name: "expired", cl: func(c map[string]any) { c["exp"] = now.Unix() }, want: samplero.ErrLeaseExpired},
		{name: "not yet valid", cl: func(c map[string]any) { c["nbf"] = now.Unix() + 1 }, want: samplero.ErrLeaseNotYetValid},
		{name: "clock rollback", check: func(c *samplero.LeaseCheck) { c.NewestSeen = now.Add(time.Second) }, want: samplero.ErrClockRollback},
		{name: "exp missing", cl: func(c map[string]any) { delete(c, "exp") }, want: samplero.ErrLeaseMalformed},
		{name: "not a JWS", raw: func(string) string { return "abc.def" }, want: samplero.ErrLeaseMalformed},
		{name: "header not base64", raw: func(s string) string { return "!!" + s }, want: samplero.ErrLeaseMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, c := baseHdr(), baseCl()
			if tc.hdr != nil {
				tc.hdr(h)
			}
			if tc.cl != nil {
				tc.cl(c)
			}
			k := key
			if tc.key != nil {
				k = tc.key
			}
			tok := mintLease(k, h, c)
			if tc.raw != nil {
				tok = tc.raw(tok)
			}
			chk := check
			if tc.check != nil {
				tc.check(&chk)
			}
			if _, err := samplero.VerifyLease(tok, chk); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Skew tolerates a lagging clock for nbf and rollback, never for exp.
	chk := check
	chk.Skew = 5 * time.Minute
	chk.NewestSeen = now.Add(time.Minute)
	if _, err := samplero.VerifyLease(good, chk); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	chk.Now = time.Unix(iat+7*86400, 0)
	chk.NewestSeen = time.Time{}
	if _, err := samplero.VerifyLease(good, chk); !errors.Is(err, samplero.ErrLeaseExpired) {
		t.Fatalf("skew applied to exp: %v", err)
	}
	// Missing settings are an error, not a pass.
	if _, err := samplero.VerifyLease(good, samplero.LeaseCheck{Keys: check.Keys, Now: now}); err == nil {
		t.Fatal("lease accepted without issuer/fingerprint/product")
	}
}

func TestCheckOfflineClockRollback(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	f := newFakeServer(t, clock)
	c := newClient(t, f, samplero.NewMemoryStorage(), nil)
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
	clock.Add(48 * time.Hour)
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatal(err)
	}
	// Setting the clock back by more than MaxSkew past a time already seen is detected, even
	// though the lease itself would still be inside nbf..exp.
	clock.Add(-24 * time.Hour)
	if _, err := c.CheckOffline(""); !errors.Is(err, samplero.ErrClockRollback) {
		t.Fatalf("got %v", err)
	}
	clock.Add(24 * time.Hour)
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatal(err)
	}
	// Offline validity ends at exp.
	clock.Add(6 * 24 * time.Hour)
	if _, err := c.CheckOffline(""); !errors.Is(err, samplero.ErrLeaseExpired) {
		t.Fatalf("got %v", err)
	}
}
