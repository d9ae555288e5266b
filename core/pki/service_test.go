package pki_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// memCA is an in-memory CAKeyStore: a P-384 root and any number of intermediates.
type memCA struct {
	root    *x509.Certificate
	rootKey crypto.Signer
	ints    []ports.CAIntermediate
	keys    map[string]crypto.Signer
	err     error // returned by every call when set
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newMemCA(t *testing.T) *memCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.AddDate(20, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &memCA{root: mustCert(t, tmpl, tmpl, key.Public(), key), rootKey: key, keys: map[string]crypto.Signer{}}
}

// addIntermediate adds an intermediate valid from t0-1h for life, in state, and returns its id.
func (m *memCA) addIntermediate(t *testing.T, state string, life time.Duration) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(len(m.ints) + 2)), Subject: pkix.Name{CommonName: "Test Intermediate " + state},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(-time.Hour + life),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	cert := mustCert(t, tmpl, m.root, key.Public(), m.rootKey)
	id := authority.IntermediateID(cert)
	m.ints = append(m.ints, ports.CAIntermediate{ID: id, Cert: cert, State: state})
	m.keys[id] = key
	return id
}

func (m *memCA) setState(id, state string) {
	for i := range m.ints {
		if m.ints[i].ID == id {
			m.ints[i].State = state
		}
	}
}

func (m *memCA) cert(id string) *x509.Certificate {
	for _, in := range m.ints {
		if in.ID == id {
			return in.Cert
		}
	}
	return nil
}

func (m *memCA) Intermediates(context.Context) ([]ports.CAIntermediate, error) {
	return slices.Clone(m.ints), m.err
}
func (m *memCA) Root(context.Context) (*x509.Certificate, error) { return m.root, m.err }
func (m *memCA) Signer(_ context.Context, id string) (crypto.Signer, error) {
	if m.err != nil {
		return nil, m.err
	}
	k, ok := m.keys[id]
	if !ok {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate")
	}
	return k, nil
}

var _ ports.CAKeyStore = (*memCA)(nil)

func newService(t *testing.T) (*pki.Service, *memCA, *fixedClock, string) {
	ca := newMemCA(t)
	id := ca.addIntermediate(t, "active", 5*365*24*time.Hour)
	clk := &fixedClock{now: t0}
	return pki.New(pki.Deps{CA: ca, Clock: clk}), ca, clk, id
}

func deviceKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"ECDSA P-256": p256, "Ed25519": ed, "RSA 2048": r}
}

func parseChain(t *testing.T, chainPEM string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			t.Fatalf("block %s in chain", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("trailing data in chain: %q", rest)
	}
	return out
}

var (
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstr    = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
)

func TestIssueDeviceCertificate(t *testing.T) {
	svc, ca, _, intID := newService(t)
	ctx := context.Background()
	chainPEM, err := svc.CAChainPEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chain := parseChain(t, chainPEM)
	if len(chain) != 2 || !chain[0].Equal(ca.cert(intID)) || !chain[1].Equal(ca.root) {
		t.Fatalf("chain is not intermediate then root: %d certs", len(chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(chain[1])
	inters := x509.NewCertPool()
	inters.AddCert(chain[0])

	for name, key := range deviceKeys(t) {
		t.Run(name, func(t *testing.T) {
			validity := 365 * 24 * time.Hour
			got, err := svc.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{
				ActivationID: "act_7Qx2", PublicKey: key.Public(), Validity: validity,
			})
			if err != nil {
				t.Fatal(err)
			}
			blk, rest := pem.Decode([]byte(got.PEM))
			if blk == nil || blk.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 || string(blk.Bytes) != string(got.DER) {
				t.Fatal("PEM is not the leaf alone, or differs from DER")
			}
			cert, err := x509.ParseCertificate(got.DER)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("does not verify against ca_chain: %v", err)
			}
			if err := svc.VerifyClientCertificate(ctx, cert, t0); err != nil {
				t.Fatalf("VerifyClientCertificate: %v", err)
			}
			pool, err := svc.ClientCAPool(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("does not verify against ClientCAPool: %v", err)
			}

			// Serial: at least 64 bits, canonical.
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() < 64 {
				// 128 random bits: fewer than 64 significant bits has probability 2^-64.
				t.Fatalf("serial %v has %d bits", cert.SerialNumber, cert.SerialNumber.BitLen())
			}
			if got.Serial != authority.CanonicalSerial(cert.SerialNumber) || got.Serial != strings.ToUpper(got.Serial) || strings.HasPrefix(got.Serial, "0") {
				t.Fatalf("serial %q not canonical", got.Serial)
			}

			// The profile, exactly.
			if !samePub(cert.PublicKey, key.Public()) {
				t.Fatal("public key is not the device's")
			}
			wantSubject, _ := asn1.Marshal(pkix.Name{CommonName: "samplero-device"}.ToRDNSequence())
			if string(cert.RawSubject) != string(wantSubject) {
				t.Fatalf("subject %v, want CN=samplero-device only", cert.Subject)
			}
			if string(cert.RawIssuer) != string(ca.cert(intID).RawSubject) || got.IssuerID != intID {
				t.Fatalf("issuer %v / %q", cert.Issuer, got.IssuerID)
			}
			if !cert.NotBefore.Equal(t0.Add(-5*time.Minute)) || !cert.NotAfter.Equal(t0.Add(validity)) {
				t.Fatalf("validity %v .. %v", cert.NotBefore, cert.NotAfter)
			}
			if !got.NotBefore.Equal(cert.NotBefore) || !got.NotAfter.Equal(cert.NotAfter) || got.NotAfter.Location() != time.UTC {
				t.Fatalf("returned validity %v .. %v", got.NotBefore, got.NotAfter)
			}
			if !cert.BasicConstraintsValid || cert.IsCA {
				t.Fatal("not CA:false")
			}
			if cert.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Fatalf("key usage %v", cert.KeyUsage)
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(cert.UnknownExtKeyUsage) != 0 {
				t.Fatalf("ext key usage %v", cert.ExtKeyUsage)
			}
			if len(cert.URIs) != 1 || cert.URIs[0].String() != "urn:samplero:activation:act_7Qx2" ||
				len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 {
				t.Fatalf("SANs: %v %v %v %v", cert.URIs, cert.DNSNames, cert.IPAddresses, cert.EmailAddresses)
			}
			var oids []string
			for _, e := range cert.Extensions {
				oids = append(oids, e.Id.String())
			}
			slices.Sort(oids)
			want := []string{oidKeyUsage.String(), oidExtKeyUsage.String(), oidBasicConstr.String(), oidSubjectAltName.String(), oidAuthorityKeyID.String()}
			slices.Sort(want)
			if !slices.Equal(oids, want) {
				t.Fatalf("extensions %v, want %v", oids, want)
			}
			if id, ok := authority.ActivationIDOf(cert); !ok || id != "act_7Qx2" {
				t.Fatalf("ActivationIDOf = %q %v", id, ok)
			}
		})
	}
}

func samePub(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func TestIssueRefusesDisallowedKeys(t *testing.T) {
	svc, _, _, _ := newService(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, err := svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_1", PublicKey: p384.Public(), Validity: time.Hour,
	})
	if errs.CodeOf(err) != authority.CodeInvalidCSR {
		t.Fatalf("P-384: %v", err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, req := range map[string]ports.DeviceCertificateRequest{
		"bad activation id": {ActivationID: "act 1", PublicKey: p256.Public(), Validity: time.Hour},
		"no validity":       {ActivationID: "act_1", PublicKey: p256.Public()},
	} {
		if _, err := svc.IssueDeviceCertificate(context.Background(), req); errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestIssueClampsToIntermediateLifetime(t *testing.T) {
	ca := newMemCA(t)
	id := ca.addIntermediate(t, "active", 30*24*time.Hour)
	svc := pki.New(pki.Deps{CA: ca, Clock: &fixedClock{now: t0}})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	got, err := svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_1", PublicKey: key.Public(), Validity: 365 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.NotAfter.Equal(ca.cert(id).NotAfter) {
		t.Fatalf("NotAfter %v, want the intermediate's %v", got.NotAfter, ca.cert(id).NotAfter)
	}
}

func TestIssueNeedsAnActiveValidIntermediate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := ports.DeviceCertificateRequest{ActivationID: "act_1", PublicKey: key.Public(), Validity: time.Hour}

	ca := newMemCA(t)
	ca.addIntermediate(t, "staged", 24*time.Hour)
	ca.addIntermediate(t, "retired", 24*time.Hour)
	svc := pki.New(pki.Deps{CA: ca, Clock: &fixedClock{now: t0}})
	if _, err := svc.IssueDeviceCertificate(context.Background(), req); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("no active intermediate: %v", err)
	}

	ca = newMemCA(t)
	ca.addIntermediate(t, "active", 24*time.Hour)
	svc = pki.New(pki.Deps{CA: ca, Clock: &fixedClock{now: t0.Add(48 * time.Hour)}})
	if _, err := svc.IssueDeviceCertificate(context.Background(), req); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("expired intermediate: %v", err)
	}
}

func TestIssueChecksSignerMatchesCertificate(t *testing.T) {
	svc, ca, _, id := newService(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca.keys[id] = other
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err := svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_1", PublicKey: key.Public(), Validity: time.Hour,
	})
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("mismatched signer: %v", err)
	}
}

func TestStoreFailureIsUnavailable(t *testing.T) {
	svc, ca, _, _ := newService(t)
	ca.err = errors.New("disk on fire")
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err := svc.IssueDeviceCertificate(ctx, ports.DeviceCertificateRequest{ActivationID: "act_1", PublicKey: key.Public(), Validity: time.Hour})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("issue: %v", err)
	}
	if _, err := svc.CAChainPEM(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("chain: %v", err)
	}
	if _, err := svc.ClientCAPool(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("pool: %v", err)
	}
	if _, err := svc.RollingBack(ctx, "x"); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("rolling back: %v", err)
	}
}

func TestChainAndPoolFollowStates(t *testing.T) {
	svc, ca, _, active := newService(t)
	ctx := context.Background()
	retiring := ca.addIntermediate(t, "retiring", 24*time.Hour)
	staged := ca.addIntermediate(t, "staged", 24*time.Hour)
	rolledBack := ca.addIntermediate(t, "rolled_back", 24*time.Hour)
	retired := ca.addIntermediate(t, "retired", 24*time.Hour)

	chain := parseChain(t, must(svc.CAChainPEM(ctx)))
	want := []*x509.Certificate{ca.cert(active), ca.cert(staged), ca.cert(retiring), ca.cert(rolledBack), ca.root}
	if len(chain) != len(want) {
		t.Fatalf("chain has %d certs, want %d", len(chain), len(want))
	}
	for i := range want {
		if !chain[i].Equal(want[i]) {
			t.Fatalf("chain[%d] = %s, want %s", i, chain[i].Subject.CommonName, want[i].Subject.CommonName)
		}
	}
	for _, c := range chain {
		if c.Equal(ca.cert(retired)) {
			t.Fatal("retired intermediate in the chain")
		}
	}

	// RollingBack follows the state.
	for id, want := range map[string]bool{active: false, rolledBack: true, retiring: false, "int_unknown": false} {
		got, err := svc.RollingBack(ctx, id)
		if err != nil || got != want {
			t.Errorf("RollingBack(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}

// issueFrom signs a device certificate with intermediate id by making it, for a moment, the only
// active one.
func issueFrom(t *testing.T, svc *pki.Service, ca *memCA, id string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	saved := slices.Clone(ca.ints)
	for i := range ca.ints {
		if ca.ints[i].State == "active" {
			ca.ints[i].State = "retiring"
		}
	}
	ca.setState(id, "active")
	got, err := svc.IssueDeviceCertificate(context.Background(), ports.DeviceCertificateRequest{
		ActivationID: "act_1", PublicKey: key.Public(), Validity: 24 * time.Hour,
	})
	ca.ints = saved
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(got.DER)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestVerifyClientCertificate(t *testing.T) {
	svc, ca, _, active := newService(t)
	ctx := context.Background()
	retired := ca.addIntermediate(t, "retired", 5*365*24*time.Hour)
	rolledBack := ca.addIntermediate(t, "rolled_back", 5*365*24*time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	good := issueFrom(t, svc, ca, active, key)
	if err := svc.VerifyClientCertificate(ctx, good, t0); err != nil {
		t.Fatalf("good: %v", err)
	}
	// Certificates of a rolled-back intermediate keep working until they are replaced.
	if err := svc.VerifyClientCertificate(ctx, issueFrom(t, svc, ca, rolledBack, key), t0); err != nil {
		t.Fatalf("rolled back: %v", err)
	}

	untrusted := func(name string, cert *x509.Certificate, now time.Time) {
		t.Helper()
		err := svc.VerifyClientCertificate(ctx, cert, now)
		if errs.CodeOf(err) != pki.CodeCertificateUntrusted || errs.KindOf(err) != errs.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
	untrusted("retired intermediate", issueFrom(t, svc, ca, retired, key), t0)
	untrusted("expired", good, good.NotAfter.Add(time.Second))
	untrusted("not yet valid", good, good.NotBefore.Add(-time.Second))

	// Signed by the active intermediate, but for server authentication only.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "samplero-device"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	untrusted("serverAuth only", mustCert(t, tmpl, ca.cert(active), key.Public(), ca.keys[active]), t0)

	// Signed by the root directly.
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	untrusted("signed by the root", mustCert(t, tmpl, ca.root, key.Public(), ca.rootKey), t0)

	// Self-signed.
	untrusted("self-signed", mustCert(t, tmpl, tmpl, key.Public(), key), t0)

	// An intermediate presented as a client certificate.
	untrusted("a CA certificate", ca.cert(active), t0)

	if err := svc.VerifyClientCertificate(ctx, nil, t0); errs.KindOf(err) != errs.Invalid {
		t.Errorf("nil: %v", err)
	}
}

// TestClientCAPoolInTLS runs real handshakes with the pool as the listener's ClientCAs: a device
// certificate of a trusted intermediate passes, one of a retired intermediate fails even when the
// client sends that intermediate along.
func TestClientCAPoolInTLS(t *testing.T) {
	svc, ca, clk, active := newService(t)
	retired := ca.addIntermediate(t, "retired", 5*365*24*time.Hour)
	pool, err := svc.ClientCAPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "server"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), DNSNames: []string{"device.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	serverCert := mustCert(t, stmpl, stmpl, serverKey.Public(), serverKey)
	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(serverCert)

	handshake := func(chain [][]byte, key crypto.Signer) error {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		srv := tls.Server(s, &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{serverCert.Raw}, PrivateKey: serverKey}},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    pool,
			Time:         clk.Now,
		})
		cli := tls.Client(c, &tls.Config{
			ServerName:   "device.test",
			RootCAs:      serverRoots,
			Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: key}},
			Time:         clk.Now,
		})
		errc := make(chan error, 1)
		go func() { errc <- cli.Handshake() }()
		serr := srv.Handshake()
		if serr != nil {
			s.Close()
		}
		cerr := <-errc
		if serr != nil {
			return serr
		}
		if cerr != nil {
			return cerr
		}
		if n := len(srv.ConnectionState().PeerCertificates); n == 0 {
			return errors.New("no peer certificate")
		}
		return nil
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := issueFrom(t, svc, ca, active, key)
	if err := handshake([][]byte{good.Raw}, key); err != nil {
		t.Fatalf("trusted device certificate: %v", err)
	}
	bad := issueFrom(t, svc, ca, retired, key)
	if err := handshake([][]byte{bad.Raw, ca.cert(retired).Raw}, key); err == nil {
		t.Fatal("a certificate of a retired intermediate passed the handshake")
	}
}
