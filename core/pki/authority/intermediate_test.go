package authority_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

func caCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             now,
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestParseState(t *testing.T) {
	for _, s := range []string{"staged", "canary", "active", "retiring", "retired", "rolled_back"} {
		st, err := authority.ParseState(s)
		if err != nil || string(st) != s {
			t.Fatalf("ParseState(%q) = %q, %v", s, st, err)
		}
	}
	for _, s := range []string{"", "Active", "rolledback", "unknown"} {
		if _, err := authority.ParseState(s); err == nil {
			t.Fatalf("ParseState(%q) succeeded", s)
		}
	}
}

func TestStatePredicates(t *testing.T) {
	tests := []struct {
		s              authority.State
		trusted, issue bool
	}{
		{authority.StateStaged, true, false},
		{authority.StateCanary, true, true},
		{authority.StateActive, true, true},
		{authority.StateRetiring, true, false},
		{authority.StateRolledBack, true, false},
		{authority.StateRetired, false, false},
	}
	for _, tt := range tests {
		if tt.s.Trusted() != tt.trusted || tt.s.Issues() != tt.issue {
			t.Errorf("%s: Trusted=%v Issues=%v, want %v %v", tt.s, tt.s.Trusted(), tt.s.Issues(), tt.trusted, tt.issue)
		}
	}
}

func TestNewIntermediate(t *testing.T) {
	cert := caCert(t)
	in, err := authority.NewIntermediate("int_1", cert, "active")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID() != "int_1" || in.State() != authority.StateActive || in.Certificate() != cert {
		t.Fatalf("got %+v", in)
	}
	if !in.ValidAt(cert.NotBefore) || !in.ValidAt(cert.NotAfter) || in.ValidAt(cert.NotAfter.Add(time.Second)) || in.ValidAt(cert.NotBefore.Add(-time.Second)) {
		t.Fatal("ValidAt does not follow the certificate's validity")
	}

	leaf := *cert
	leaf.IsCA = false
	noSign := *cert
	noSign.KeyUsage = x509.KeyUsageDigitalSignature
	for name, tc := range map[string]struct {
		id    string
		cert  *x509.Certificate
		state string
	}{
		"empty id":      {"", cert, "active"},
		"nil cert":      {"int_1", nil, "active"},
		"not a CA":      {"int_1", &leaf, "active"},
		"no cert sign":  {"int_1", &noSign, "active"},
		"unknown state": {"int_1", cert, "live"},
	} {
		if _, err := authority.NewIntermediate(tc.id, tc.cert, tc.state); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTransitions(t *testing.T) {
	cert := caCert(t)
	// The happy rollout: staged, canary, active, retiring, retired.
	in, _ := authority.NewIntermediate("int_1", cert, "staged")
	for _, to := range []authority.State{authority.StateCanary, authority.StateActive, authority.StateRetiring, authority.StateRetired} {
		if err := in.Transition(to); err != nil {
			t.Fatalf("-> %s: %v", to, err)
		}
	}
	// Nothing leaves retired.
	for _, to := range []authority.State{authority.StateStaged, authority.StateCanary, authority.StateActive, authority.StateRetiring, authority.StateRolledBack} {
		err := in.Transition(to)
		if errs.CodeOf(err) != authority.CodeIllegalTransition || errs.KindOf(err) != errs.Conflict {
			t.Fatalf("retired -> %s: %v", to, err)
		}
		if in.State() != authority.StateRetired {
			t.Fatalf("state changed to %s by a refused transition", in.State())
		}
	}
	// A canary rolled back goes on to retired only.
	in, _ = authority.NewIntermediate("int_2", cert, "canary")
	if err := in.Transition(authority.StateRolledBack); err != nil {
		t.Fatal(err)
	}
	if err := in.Transition(authority.StateActive); err == nil {
		t.Fatal("rolled_back -> active allowed")
	}
	if err := in.Transition(authority.StateRetired); err != nil {
		t.Fatal(err)
	}
	// The intermediate a rollback falls back to returns from retiring to active.
	in, _ = authority.NewIntermediate("int_3", cert, "retiring")
	if err := in.Transition(authority.StateActive); err != nil {
		t.Fatal(err)
	}
	// A staged intermediate cannot skip to retiring.
	in, _ = authority.NewIntermediate("int_4", cert, "staged")
	if err := in.Transition(authority.StateRetiring); err == nil {
		t.Fatal("staged -> retiring allowed")
	}
}

func TestIntermediateID(t *testing.T) {
	a, b := caCert(t), caCert(t)
	idA := authority.IntermediateID(a)
	if !strings.HasPrefix(idA, "int_") || len(idA) != len("int_")+16 {
		t.Fatalf("id %q", idA)
	}
	if idA != authority.IntermediateID(a) {
		t.Fatal("id not stable")
	}
	if idA == authority.IntermediateID(b) {
		t.Fatal("two keys, one id")
	}
}

func TestSelectIssuer(t *testing.T) {
	mk := func(id, state string) authority.Intermediate {
		in, err := authority.NewIntermediate(id, caCert(t), state)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	got, err := authority.SelectIssuer([]authority.Intermediate{
		mk("old", "retiring"), mk("new", "active"), mk("next", "staged"), mk("gone", "retired"), mk("bad", "rolled_back"),
	}, "act_1")
	if err != nil || got.ID() != "new" {
		t.Fatalf("SelectIssuer = %q, %v", got.ID(), err)
	}
	_, err = authority.SelectIssuer([]authority.Intermediate{mk("next", "staged"), mk("gone", "retired")}, "act_1")
	if errs.KindOf(err) != errs.Unavailable || errs.CodeOf(err) != authority.CodeNoActiveIntermediate {
		t.Fatalf("no active: %v", err)
	}
	_, err = authority.SelectIssuer([]authority.Intermediate{mk("a", "active"), mk("b", "active")}, "act_1")
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("two active: %v", err)
	}
}
