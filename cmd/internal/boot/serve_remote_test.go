package boot

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// deviceCert signs a device-like client certificate for key from the intermediate (cert, signer)
// with the given dates and extended key usage.
func deviceCert(t *testing.T, inter *x509.Certificate, signer crypto.Signer, key crypto.Signer, serial int64, nb, na time.Time, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprintf("device-%d", serial)},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}, inter, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SAMPLERO_CA_BACKEND=remote: serve's PKI issues through the signer (the serve host holds no CA
// key and makes no hierarchy), its device listener presents the certificate from
// SAMPLERO_DEVICE_TLS_CERT, accepts the signer-issued device certificate in the handshake, and
// counts a refused certificate of the signer's intermediate in the rollout figures.
func TestServeWithRemoteSigner(t *testing.T) {
	dir := t.TempDir()
	signerPKI := filepath.Join(dir, "signer-pki")
	signerCA, err := casigner.EnsureLocalCA(signerPKI, systemClock{})
	if err != nil {
		t.Fatal(err)
	}
	addr := startSigner(t, config.Signer{Listen: "127.0.0.1:0", PKIDir: signerPKI, Token: e2eSignerToken, HMACSecret: e2eSignerSecret})
	ctx := context.Background()
	ints, err := signerCA.Intermediates(ctx)
	if err != nil || len(ints) != 1 {
		t.Fatalf("signer intermediates: %v %v", ints, err)
	}
	inter := ints[0]
	root, _ := signerCA.Root(ctx)

	// The device listener's certificate comes from an unrelated CA (a public or company CA in
	// production), by files.
	tlsCA, tlsCAKey := writeCA(t, dir, "listener-ca")
	writeLeaf(t, dir, "listener", tlsCA, tlsCAKey, x509.ExtKeyUsageServerAuth)

	if err := os.Mkdir(filepath.Join(dir, "serve"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]string{"dev", "--data", filepath.Join(dir, "serve"), "--http", "127.0.0.1:0", "--device", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// dev's settings on SQLite, run as serve: dev itself refuses the remote backend (below).
	cfg.Command = "serve"
	cfg.KeyLookupSecret = config.Secret("lookup-secret-0123456789abcdef0123456789")
	cfg.KeyEncryptionSecret = config.Secret("encryption-secret-0123456789abcdef")
	cfg.Commerce.LinksSecret = config.Secret("links-secret-0123456789abcdef0123456789")
	cfg.CABackend = config.CABackend{Kind: "remote", URL: "http://" + addr, Token: e2eSignerToken, HMACSecret: e2eSignerSecret,
		DeviceTLSCert: filepath.Join(dir, "listener.pem"), DeviceTLSKey: filepath.Join(dir, "listener-key.pem")}
	store, err := OpenStore(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := Build(ctx, cfg, NewLogger(io.Discard), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if s.CA != nil {
		t.Fatal("serve opened a local CA with the remote backend")
	}
	if _, err := os.Stat(cfg.PKIDir); !os.IsNotExist(err) {
		t.Fatalf("serve made a local CA hierarchy in %s: %v", cfg.PKIDir, err)
	}

	// Activate a device through the licensing core: its certificate is the signer's.
	if _, err := s.Licenses.PutProduct(ctx, ports.ProductSpec{Slug: "synth", Name: "Synth", Type: license.TypePlugin, PriceCents: 100, Currency: "EUR",
		Policy: ports.PolicySpec{MaxActivations: 5, FirstActivation: "instant"}}); err != nil {
		t.Fatal(err)
	}
	lic, err := s.Licenses.CreateLicense(ctx, ports.CreateLicenseCommand{Product: "synth"})
	if err != nil {
		t.Fatal(err)
	}
	devKey, _ := samplero.GenerateKey(samplero.KeyP256)
	csr, _ := samplero.CreateCSR(devKey)
	thumb, _ := httpsig.Thumbprint(devKey.Public())
	id, err := s.Licenses.ResolveCSR(ctx, csr, thumb)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Licenses.Activate(ctx, ports.ActivateCommand{LicenseKey: lic.Key, Fingerprint: "device-fingerprint-remote", Platform: license.PlatformLinux,
		PluginVersion: "1.0.0", CSRPEM: csr, RequestAddr: "127.0.0.1", Identity: id})
	if err != nil || res.Grant == nil {
		t.Fatalf("activate: %+v %v", res, err)
	}
	b, _ := pem.Decode([]byte(res.Grant.CertificatePEM))
	if b == nil {
		t.Fatalf("no certificate in the grant: %q", res.Grant.CertificatePEM)
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter.Cert)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || !chains[0][1].Equal(inter.Cert) {
		t.Fatalf("the device certificate does not chain to the signer's intermediate %s: %v", inter.ID, err)
	}

	// Serve, and connect with the device's certificate.
	sctx, cancel := context.WithCancel(ctx)
	l, err := s.Listen(sctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tlsRoots := x509.NewCertPool()
	tlsRoots.AddCert(tlsCA)
	get := func(cert tls.Certificate) (*tls.ConnectionState, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsRoots,
			// Always present it (see mtlsProbe): Go's client would otherwise withhold a certificate
			// whose issuer the server does not list.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + l.Device.Addr().String() + "/v1/keys")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.TLS, nil
	}
	st, err := get(tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: devKey})
	if err != nil {
		t.Fatalf("device certificate from the signer refused by the listener: %v", err)
	}
	if got := st.PeerCertificates[0]; got.CheckSignatureFrom(tlsCA) != nil {
		t.Fatalf("the listener presented %q, not the certificate from SAMPLERO_DEVICE_TLS_CERT", got.Subject)
	}

	// An expired certificate of the signer's intermediate is refused and counted against it.
	isigner, err := signerCA.Signer(ctx, inter.ID)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	expired := deviceCert(t, inter.Cert, isigner, k, 77, now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageClientAuth)
	if _, err := get(expired); err == nil {
		t.Fatal("expired device certificate accepted")
	}
	f, err := store.RolloutEvents().Figures(ctx, inter.ID, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f.ValidationFailures != 1 {
		t.Fatalf("validation failures of %s: %d, want 1 (%+v)", inter.ID, f.ValidationFailures, f)
	}
}

// dev keeps its own local CA: the remote backend is refused there rather than half-used.
func TestDevRefusesRemoteBackend(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]string{"dev", "--data", dir, "--http", "127.0.0.1:0", "--device", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CABackend = config.CABackend{Kind: "remote", URL: "http://127.0.0.1:1", Token: e2eSignerToken, HMACSecret: e2eSignerSecret}
	store, err := OpenStore(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := Build(context.Background(), cfg, NewLogger(io.Discard), store, nil); err == nil || !strings.Contains(err.Error(), "samplero dev keeps its own local CA") {
		t.Fatalf("dev with remote: %v", err)
	}
}

// Handshake refusals on the device listener count as validation failures of the intermediate that
// signed the refused certificate; certificates no intermediate signed (even one that names an
// intermediate as its issuer) are not attributed, accepted ones are not recorded, and one
// certificate counts once per window.
func TestHandshakeRefusalsRecorded(t *testing.T) {
	clock := portstest.NewFakeClock(time.Now())
	ca, err := casigner.EnsureLocalCA(filepath.Join(t.TempDir(), "pki"), clock)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc := pki.New(pki.Deps{CA: ca, Clock: clock})
	events := portstest.NewMemRolloutEvents(nil)
	health := pki.NewHealth(svc, events)
	serverCert, err := ca.ServerTLSCertificate([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, _ := svc.CAChainPEM(ctx)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(chainPEM))
	refusals := &handshakeRefusals{intermediates: ca.Intermediates, record: health.RecordValidationFailure, now: clock.Now, window: time.Minute}
	tlsCfg, err := deviceTLSConfigRecording(serverCert, &clientCAs{load: svc.ClientCAPool, refresh: time.Second, now: clock.Now}, refusals.refused)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.Time = clock.Now
	ints, _ := ca.Intermediates(ctx)
	inter := ints[0]
	isigner, err := ca.Signer(ctx, inter.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	valid := deviceCert(t, inter.Cert, isigner, key, 1, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	expired := deviceCert(t, inter.Cert, isigner, key, 2, now.Add(-2*time.Hour), now.Add(-time.Hour), x509.ExtKeyUsageClientAuth)
	serverUse := deviceCert(t, inter.Cert, isigner, key, 3, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	// A forgery: the intermediate's name and key id, another key's signature.
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fakeInter := *inter.Cert
	fakeInter.PublicKey = forger.Public()
	forged := deviceCert(t, &fakeInter, forger, key, 4, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	otherCA, otherKey := writeCA(t, t.TempDir(), "other")
	garbage := deviceCert(t, otherCA, otherKey, key, 5, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)

	failures := func() []ports.RolloutEvent {
		var out []ports.RolloutEvent
		for _, ev := range events.Events() {
			if ev.Kind == ports.RolloutEventValidationFailure {
				out = append(out, ev)
			}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		cert   *tls.Certificate
		accept bool
		count  int
	}{
		{"no certificate", nil, true, 0},
		{"valid", &valid, true, 0},
		{"garbage", &garbage, false, 0},
		{"forged issuer", &forged, false, 0},
		{"expired", &expired, false, 1},
		{"expired again within the window", &expired, false, 1},
		{"server usage", &serverUse, false, 2},
	} {
		err := presenting(t, tlsCfg, roots, c.cert)
		if (err == nil) != c.accept {
			t.Fatalf("%s: handshake %v, want accepted=%v", c.name, err, c.accept)
		}
		if got := failures(); len(got) != c.count {
			t.Fatalf("%s: %d validation failures recorded, want %d: %+v", c.name, len(got), c.count, got)
		}
	}
	for _, ev := range failures() {
		if ev.IntermediateID != inter.ID || !strings.HasPrefix(ev.Detail, "TLS handshake refused certificate ") {
			t.Fatalf("event %+v", ev)
		}
	}
	if d := failures()[0].Detail; !strings.HasSuffix(d, "expired or not yet valid") {
		t.Fatalf("detail %q", d)
	}
	if d := failures()[1].Detail; !strings.HasSuffix(d, "not for client authentication") {
		t.Fatalf("detail %q", d)
	}
	// After the window the same certificate counts again.
	clock.Advance(2 * time.Minute)
	if err := presenting(t, tlsCfg, roots, &expired); err == nil {
		t.Fatal("expired accepted")
	}
	if got := failures(); len(got) != 3 {
		t.Fatalf("after the window: %d failures, want 3", len(got))
	}
	// The figures the rollout reads count them.
	f, err := events.Figures(ctx, inter.ID, now.Add(-time.Minute))
	if err != nil || f.ValidationFailures != 3 {
		t.Fatalf("figures %+v %v", f, err)
	}
	var cve *tls.CertificateVerificationError
	if err := presenting(t, tlsCfg, roots, &garbage); !errors.As(err, &cve) {
		t.Fatalf("refusal error %T %v, want a CertificateVerificationError", err, err)
	}
}

// presenting is handshake (pki_test.go) with a client that always presents cert (when not nil):
// Go's client withholds a certificate whose issuer the server does not list, which would turn a
// refusal into an anonymous connection.
func presenting(t *testing.T, cfg *tls.Config, roots *x509.CertPool, cert *tls.Certificate) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		errc <- conn.(*tls.Conn).Handshake()
	}()
	ccfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Time: cfg.Time,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		}}
	conn, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
	if err == nil {
		defer conn.Close()
	}
	if serr := <-errc; serr != nil {
		return serr
	}
	return err
}
