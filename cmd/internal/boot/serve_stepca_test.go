package boot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/stepca/stepcatest"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// stepCAServeConfig is dev's settings on SQLite in dir/serve, run as serve with the stepca backend.
func stepCAServeConfig(t *testing.T, dir string, b config.CABackend) config.Config {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, "serve"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]string{"dev", "--data", filepath.Join(dir, "serve"), "--http", "127.0.0.1:0", "--device", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Command = "serve"
	cfg.KeyLookupSecret = config.Secret("lookup-secret-0123456789abcdef0123456789")
	cfg.KeyEncryptionSecret = config.Secret("encryption-secret-0123456789abcdef")
	cfg.Commerce.LinksSecret = config.Secret("links-secret-0123456789abcdef0123456789")
	cfg.CABackend = b
	return cfg
}

// SAMPLERO_CA_BACKEND=stepca: serve hands the step-ca issuer to the licensing core and the HTTP
// adapter, opens no local CA, presents SAMPLERO_DEVICE_TLS_CERT on the device listener and trusts
// step-ca's intermediate there; a device activated through the licensing core gets a certificate
// of step-ca's intermediate with the device profile and completes an mTLS request with it. The
// revocation lists and rollouts, which need the server's own PKI, say they are not available.
func TestServeWithStepCA(t *testing.T) {
	dir := t.TempDir()
	h := stepcatest.NewHierarchy(t, 5*365*24*time.Hour)
	ca := stepcatest.Start(t, filepath.Join(dir, "step"), h)
	url, provKey := ca.URL, ca.Prov
	rootFile := filepath.Join(dir, "step-root.pem")
	keyFile := filepath.Join(dir, "provisioner.json")
	if err := os.WriteFile(rootFile, stepcatest.PEM(h.Root), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, provKey, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCA, tlsCAKey := writeCA(t, dir, "listener-ca")
	writeLeaf(t, dir, "listener", tlsCA, tlsCAKey, x509.ExtKeyUsageServerAuth)

	ctx := context.Background()
	// The provisioner key as a file path (the inline JWK is covered by the config test).
	cfg := stepCAServeConfig(t, dir, config.CABackend{Kind: "stepca",
		StepCA:        config.StepCA{URL: url, RootFile: rootFile, Provisioner: "samplero", ProvisionerKey: config.Secret(keyFile)},
		DeviceTLSCert: filepath.Join(dir, "listener.pem"), DeviceTLSKey: filepath.Join(dir, "listener-key.pem")})
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
	if s.CA != nil || s.PKI != nil || s.Health != nil || s.StepCA == nil {
		t.Fatalf("stepca backend: CA=%v PKI=%v Health=%v StepCA=%v", s.CA != nil, s.PKI != nil, s.Health != nil, s.StepCA != nil)
	}
	if _, err := os.Stat(cfg.PKIDir); !os.IsNotExist(err) {
		t.Fatalf("serve made a local CA hierarchy in %s: %v", cfg.PKIDir, err)
	}

	// Activate a device through the licensing core: step-ca signs its certificate.
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
	issuedAt := time.Now()
	res, err := s.Licenses.Activate(ctx, ports.ActivateCommand{LicenseKey: lic.Key, Fingerprint: "device-fingerprint-stepca", Platform: license.PlatformLinux,
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
	roots.AddCert(h.Root)
	inters.AddCert(h.Inter)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains[0]) != 3 || !chains[0][1].Equal(h.Inter) {
		t.Fatalf("the device certificate does not chain to step-ca's intermediate: %v", err)
	}
	// The device profile (PROTOCOL.md section 7), made by step-ca's template.
	if leaf.Subject.CommonName != "samplero-device" || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "urn:samplero:activation:"+res.Grant.ActivationID ||
		len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || !leaf.BasicConstraintsValid || leaf.IsCA ||
		leaf.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("not the device profile: subject %v URIs %v KU %v EKU %v CA %v", leaf.Subject, leaf.URIs, leaf.KeyUsage, leaf.ExtKeyUsage, leaf.IsCA)
	}
	if want, _ := x509.MarshalPKIXPublicKey(devKey.Public()); !bytes.Equal(leaf.RawSubjectPublicKeyInfo, want) {
		t.Fatal("the certificate is not for the device key")
	}
	// The product's default validity (a year), counted from step-ca's issuance.
	if d := leaf.NotAfter.Sub(issuedAt.Add(365 * 24 * time.Hour)); d < -10*time.Second || d > 10*time.Second {
		t.Fatalf("notAfter %s, want about a year from %s", leaf.NotAfter, issuedAt)
	}
	if want := string(stepcatest.PEM(h.Inter)) + string(stepcatest.PEM(h.Root)); res.Grant.CAChainPEM != want {
		t.Fatalf("ca_chain of the grant is not step-ca's intermediate and root:\n%s", res.Grant.CAChainPEM)
	}

	// Serve, and make a request with the device's certificate over mutual TLS.
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
	get := func(cert tls.Certificate, path string) (*http.Response, []byte, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsRoots,
			// Always present it (see mtlsProbe): Go's client would otherwise withhold a certificate
			// whose issuer the server does not list.
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + l.Device.Addr().String() + path)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, body, err := get(tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: devKey}, "/v1/keys")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("device certificate from step-ca refused by the listener: %v %v", resp, err)
	}
	if got := resp.TLS.PeerCertificates[0]; got.CheckSignatureFrom(tlsCA) != nil {
		t.Fatalf("the listener presented %q, not the certificate from SAMPLERO_DEVICE_TLS_CERT", got.Subject)
	}
	var keys struct {
		CAChain string `json:"ca_chain"`
	}
	if err := json.Unmarshal(body, &keys); err != nil || keys.CAChain != res.Grant.CAChainPEM {
		t.Fatalf("/v1/keys ca_chain %q %v", keys.CAChain, err)
	}
	// A certificate of another CA (here step-ca's root signs a leaf directly, bypassing the
	// intermediate) is refused: the listener's pool is step-ca's intermediate alone.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	bypass := deviceCert(t, h.Root, h.RootKey, k, 99, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	if _, _, err := get(bypass, "/v1/keys"); err == nil {
		t.Fatal("a device certificate signed by the root itself was accepted")
	}
	expired := deviceCert(t, h.Inter, h.IntKey, k, 98, now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageClientAuth)
	if _, _, err := get(expired, "/v1/keys"); err == nil {
		t.Fatal("an expired certificate of step-ca's intermediate was accepted")
	}

	// No revocation lists of this server with step-ca: a clear 503, not a crash.
	cresp, err := s.App.Test(httptest.NewRequest(http.MethodGet, "/v1/pki/crl/"+res.Grant.CertificateSerial+".crl", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	cbody, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if cresp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(cbody), ports.CodeCRLNotConfigured) ||
		!strings.Contains(string(cbody), "not available with the step-ca backend") {
		t.Fatalf("CRL with step-ca: %d %s", cresp.StatusCode, cbody)
	}

	// A rollout's self-test and chain check (the worker's activities) fail with a clear reason.
	acts := RolloutActivities(cfg, s.Health, store)
	if err := acts.Probe.CheckChain(ctx, "any"); errs.CodeOf(err) != CodeNotWithStepCA || errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("rollout chain check with step-ca: %v", err)
	}
	if _, err := acts.MTLS.Probe(ctx, leaf.Raw, devKey); errs.CodeOf(err) != CodeNotWithStepCA {
		t.Fatalf("rollout probe with step-ca: %v", err)
	}
}

// serve refuses to start when step-ca cannot be reached or the provisioner key is wrong in form,
// and dev refuses the stepca backend as it refuses remote.
func TestStepCABackendRefusals(t *testing.T) {
	dir := t.TempDir()
	h := stepcatest.NewHierarchy(t, 5*365*24*time.Hour)
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, stepcatest.PEM(h.Root), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, pub, _ := stepcatest.ProvisionerKey(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "https://" + l.Addr().String()
	l.Close()
	ctx := context.Background()
	for i, c := range []struct {
		name string
		sc   config.StepCA
		want string
	}{
		{"unreachable", config.StepCA{URL: unreachable, RootFile: rootFile, Provisioner: "samplero", ProvisionerKey: config.Secret(priv)}, "step-ca at " + unreachable},
		{"public key", config.StepCA{URL: unreachable, RootFile: rootFile, Provisioner: "samplero", ProvisionerKey: config.Secret(pub)}, "private key"},
		{"missing key file", config.StepCA{URL: unreachable, RootFile: rootFile, Provisioner: "samplero", ProvisionerKey: config.Secret(filepath.Join(dir, "nope.json"))}, "SAMPLERO_STEPCA_PROVISIONER_KEY"},
		{"root not PEM", config.StepCA{URL: unreachable, RootFile: junk, Provisioner: "samplero", ProvisionerKey: config.Secret(priv)}, "SAMPLERO_STEPCA_ROOT"},
	} {
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg := stepCAServeConfig(t, sub, config.CABackend{Kind: "stepca", StepCA: c.sc})
		store, err := OpenStore(ctx, cfg, true)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Build(ctx, cfg, NewLogger(io.Discard), store, nil)
		store.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), `"d"`) {
			t.Errorf("%s: the error shows the key: %v", c.name, err)
		}
	}

	if err := os.Mkdir(filepath.Join(dir, "dev"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]string{"dev", "--data", filepath.Join(dir, "dev"), "--http", "127.0.0.1:0", "--device", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CABackend = config.CABackend{Kind: "stepca", StepCA: config.StepCA{URL: unreachable, RootFile: rootFile, Provisioner: "samplero", ProvisionerKey: config.Secret(priv)}}
	store, err := OpenStore(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := Build(ctx, cfg, NewLogger(io.Discard), store, nil); err == nil || !strings.Contains(err.Error(), "samplero dev keeps its own local CA") {
		t.Fatalf("dev with stepca: %v", err)
	}
}
