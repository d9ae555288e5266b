package boot

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/adapters/stepca"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// ---- a real step-ca on loopback (the helpers of adapters/stepca's test, another package) ----

// scaHierarchy is step-ca's root and intermediate, made with crypto/x509 as an operator's offline
// root would.
type scaHierarchy struct {
	rootKey, intKey *ecdsa.PrivateKey
	root, inter     *x509.Certificate
}

func scaNewHierarchy(t *testing.T) scaHierarchy {
	t.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootT := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "step-ca Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root := scaCert(t, rootT, rootT, &rootKey.PublicKey, rootKey)
	intKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intT := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "step-ca Test Intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	inter := scaCert(t, intT, root, &intKey.PublicKey, rootKey)
	return scaHierarchy{rootKey: rootKey, intKey: intKey, root: root, inter: inter}
}

func scaCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
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

func scaPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// scaProvisionerKey is a JWK provisioner's key pair: the private JWK for serve, the public JWK for
// ca.json (kid: the RFC 7638 thumbprint, as step-ca's tooling makes it).
func scaProvisionerKey(t *testing.T) (private []byte, public json.RawMessage) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tp, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	if private, err = (&jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}).MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	if public, err = (&jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}).MarshalJSON(); err != nil {
		t.Fatal(err)
	}
	return private, public
}

func stepCABinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("step-ca"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	if p := filepath.Join(gopath, "bin", "step-ca"); fileExists(p) {
		return p
	}
	// .ci/run installs it, so under SAMPLERO_REQUIRE_SERVICES a missing binary is a failure.
	const install = "CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@v0.30.2"
	if os.Getenv("SAMPLERO_REQUIRE_SERVICES") != "" {
		t.Fatalf("step-ca is not installed (%s)", install)
	}
	t.Skipf("step-ca is not installed (%s); see docs/stepca.md", install)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// startStepCA writes h, a JWK provisioner with the device template and a hand-written ca.json into
// dir, starts step-ca on a free loopback port and waits for /health. It returns step-ca's URL
// and the provisioner's private JWK.
func startStepCA(t *testing.T, dir string, h scaHierarchy) (url string, provKey []byte) {
	t.Helper()
	bin := stepCABinary(t)
	intKeyDER, err := x509.MarshalECPrivateKey(h.intKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, pub := scaProvisionerKey(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := map[string]any{
		"root":     write("root_ca.crt", scaPEM(h.root)),
		"crt":      write("intermediate_ca.crt", scaPEM(h.inter)),
		"key":      write("intermediate_ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: intKeyDER})),
		"address":  addr,
		"dnsNames": []string{"127.0.0.1"},
		"logger":   map[string]any{"format": "text"},
		"authority": map[string]any{
			"backdate": "5m",
			"provisioners": []any{map[string]any{
				"type": "JWK",
				"name": "samplero",
				"key":  pub,
				"claims": map[string]any{
					"minTLSCertDuration":     "5m",
					"maxTLSCertDuration":     "17520h",
					"defaultTLSCertDuration": "8760h",
				},
				"options": map[string]any{"x509": map[string]any{"templateFile": write("samplero-device.tpl", []byte(stepca.DeviceTemplate))}},
			}},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3},
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, write("ca.json", raw))
	cmd.Env = append(os.Environ(), "STEPPATH="+dir, "HOME="+dir)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("step-ca output:\n%s", out.String())
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(h.root)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	url = "https://" + addr
	// Polling a real process's startup: there is no clock to fake here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, priv
			}
		}
		select {
		case <-done:
			t.Fatalf("step-ca exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca did not answer /health in 30 s: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

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
	h := scaNewHierarchy(t)
	if err := os.Mkdir(filepath.Join(dir, "step"), 0o700); err != nil {
		t.Fatal(err)
	}
	url, provKey := startStepCA(t, filepath.Join(dir, "step"), h)
	rootFile := filepath.Join(dir, "step-root.pem")
	keyFile := filepath.Join(dir, "provisioner.json")
	if err := os.WriteFile(rootFile, scaPEM(h.root), 0o600); err != nil {
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
	roots.AddCert(h.root)
	inters.AddCert(h.inter)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil || len(chains[0]) != 3 || !chains[0][1].Equal(h.inter) {
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
	if want := string(scaPEM(h.inter)) + string(scaPEM(h.root)); res.Grant.CAChainPEM != want {
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
	bypass := deviceCert(t, h.root, h.rootKey, k, 99, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	if _, _, err := get(bypass, "/v1/keys"); err == nil {
		t.Fatal("a device certificate signed by the root itself was accepted")
	}
	expired := deviceCert(t, h.inter, h.intKey, k, 98, now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageClientAuth)
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
	h := scaNewHierarchy(t)
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, scaPEM(h.root), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, pub := scaProvisionerKey(t)
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
