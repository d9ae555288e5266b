package httpapi

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"

	"github.com/gofiber/fiber/v2"

	"github.com/samplero/samplero/sdk/go/httpsig"
)

// serve runs app on ln until the test ends.
func serve(t *testing.T, app *fiber.App, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	t.Cleanup(func() {
		_ = app.Shutdown()
		<-done
	})
}

// post sends a signed device request through a real client.
func (h *harness) post(t *testing.T, client *http.Client, base, path string, body []byte) (response, error) {
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sh, err := httpsig.SignRequest(http.MethodPost, path, body, httpsig.RequestParams{Created: h.clock.Now().Unix(), Nonce: httpsig.NewNonce()}, h.dev)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sh {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, path: path, nonce: httpsig.NonceOf(sh.Get("Signature-Input"))}, nil
}

// TestMutualTLSListener runs the app behind a real TLS listener that asks for client certificates
// (verify-if-given, the client CA pool): the certificate of the connection is used, and the
// answer is at trust level 4; without one, MTLS_REQUIRED.
func TestMutualTLSListener(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.TrustedProxies = nil; d.Config.ProxyToken = "" })
	// The handshake checks dates against the real clock: give the device a certificate valid now.
	now := time.Now()
	devCert := issueAt(t, h.ca, h.dev.Public(), big.NewInt(0x0A1B), now.Add(-time.Hour), now.Add(time.Hour))

	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, h.ca.cert, &srvKey.PublicKey, h.ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    h.ca.pool,
		MinVersion:   tls.VersionTLS12,
	})
	serve(t, h.app, tlsLn)
	base := "https://" + ln.Addr().String()

	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: h.ca.pool, Certificates: certs, ServerName: "localhost",
		}}}
	}
	withCert := client(tls.Certificate{Certificate: [][]byte{devCert.Raw}, PrivateKey: h.dev})
	res, err := h.post(t, withCert, base, "/v1/validate", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	m := h.json(res, 200)
	h.verify(res)
	if m["trust_level"] != 4.0 || h.lic.lastIdentity.CertificateSerial != "A1B" {
		t.Fatalf("body %v identity %+v", m, h.lic.lastIdentity)
	}

	res, err = h.post(t, client(), base, "/v1/validate", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	h.problem(res, 403, "MTLS_REQUIRED")
	h.verify(res)

	// X-Client-Cert is ignored without proxy configuration, even on the TLS listener.
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/validate", nil)
	sh, _ := httpsig.SignRequest(http.MethodPost, "/v1/validate", nil, httpsig.RequestParams{Created: h.clock.Now().Unix(), Nonce: httpsig.NewNonce()}, h.dev)
	for k, v := range sh {
		req.Header[k] = v
	}
	req.Header.Set(headerClientCert, certHeader(devCert))
	raw, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw.Body.Close()
	if raw.StatusCode != 403 {
		t.Fatalf("X-Client-Cert without proxy config: status %d", raw.StatusCode)
	}
}

// TestBodyAboveFiberLimit: a body Fiber itself refuses (by its Content-Length, before reading it)
// still gets the signed BODY_TOO_LARGE problem. A raw connection sends only the headers, so the
// answer can be read however early the server sends it.
func TestBodyAboveFiberLimit(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.BodyLimit = httpsig.MaxBodyBytes * 2 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, h.app, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := make([]byte, httpsig.MaxBodyBytes*3)
	sh, err := httpsig.SignRequest(http.MethodPost, "/v1/validate", body, httpsig.RequestParams{Created: h.clock.Now().Unix(), Nonce: httpsig.NewNonce()}, h.dev)
	if err != nil {
		t.Fatal(err)
	}
	req := "POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	for k, v := range sh {
		req += k + ": " + v[0] + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	raw, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(raw.Body)
	res := response{status: raw.StatusCode, header: raw.Header, body: b, path: "/v1/validate", nonce: httpsig.NonceOf(sh.Get("Signature-Input"))}
	h.problem(res, 413, "BODY_TOO_LARGE")
	h.verify(res)
	h.noUseCase()
}

func issueAt(t *testing.T, ca *testCA, pub any, serial *big.Int, notBefore, notAfter time.Time) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "samplero-device"}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}
