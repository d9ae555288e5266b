package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
)

// memCAShares is a memCA that also knows the canary shares, as the local CA does.
type memCAShares struct {
	*memCA
	shares map[string]int
}

func (m *memCAShares) Shares(context.Context) (map[string]int, error) { return m.shares, m.err }

var _ ports.CAShares = (*memCAShares)(nil)

func TestIssueFollowsCanaryShare(t *testing.T) {
	ca := newMemCA(t)
	active := ca.addIntermediate(t, "active", 5*365*24*time.Hour)
	canary := ca.addIntermediate(t, "canary", 5*365*24*time.Hour)
	store := &memCAShares{memCA: ca, shares: map[string]int{canary: 30}}
	clk := &fixedClock{now: t0}
	// The shares come from the key store itself when it implements ports.CAShares.
	svc := pki.New(pki.Deps{CA: store, Clock: clk})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ctx := context.Background()

	sample := map[string][]byte{} // one certificate's DER per issuer
	issue := func(act string) string {
		t.Helper()
		got, err := svc.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: act, PublicKey: key.Public(), Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		sample[got.IssuerID] = got.DER
		return got.IssuerID
	}
	byIssuer := map[string]int{}
	first := map[string]string{}
	for i := range 400 {
		act := fmt.Sprintf("act_%d", i)
		id := issue(act)
		byIssuer[id]++
		first[act] = id
	}
	if byIssuer[canary] < 80 || byIssuer[canary] > 160 || byIssuer[active]+byIssuer[canary] != 400 {
		t.Fatalf("30 %% canary: %v", byIssuer)
	}
	// A renewal of the same activation comes from the same intermediate.
	for act, id := range first {
		if issue(act) != id {
			t.Fatalf("%s moved from %s at renewal", act, id)
		}
	}
	// Certificates of both intermediates are trusted at once.
	for id, der := range sample {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.VerifyClientCertificate(ctx, c, t0); err != nil {
			t.Fatalf("a certificate of %s does not verify: %v", id, err)
		}
	}

	// Rolled back: the canary's share no longer counts, every activation goes to the active one.
	ca.setState(canary, "rolled_back")
	for i := range 50 {
		if id := issue(fmt.Sprintf("act_%d", i)); id != active {
			t.Fatalf("after rollback an activation went to %s", id)
		}
	}

	// Without shares (a key store that has none), a canary issues nothing.
	ca.setState(canary, "canary")
	plain := pki.New(pki.Deps{CA: ca, Clock: clk})
	for i := range 50 {
		got, err := plain.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: fmt.Sprintf("act_%d", i), PublicKey: key.Public(), Validity: time.Hour})
		if err != nil || got.IssuerID != active {
			t.Fatalf("without shares: %s, %v", got.IssuerID, err)
		}
	}
	// Deps.Shares wins over the key store's own.
	explicit := pki.New(pki.Deps{CA: store, Shares: &memCAShares{memCA: ca, shares: map[string]int{canary: 100}}, Clock: clk})
	got, err := explicit.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: "act_x", PublicKey: key.Public(), Validity: time.Hour})
	if err != nil || got.IssuerID != canary {
		t.Fatalf("explicit 100 %% share: %s, %v", got.IssuerID, err)
	}
}
