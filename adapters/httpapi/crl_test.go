package httpapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
)

// crlIssuer is the harness's issuer with a revocation list publisher beside it, as pki.Service is.
type crlIssuer struct {
	*testIssuer
	mu    sync.Mutex
	lists map[string]ports.CRL
	asked []string
}

func (i *crlIssuer) CRL(_ context.Context, id string) (ports.CRL, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.asked = append(i.asked, id)
	l, ok := i.lists[id]
	if !ok {
		return ports.CRL{}, errs.E(errs.NotFound, ports.CodeCRLNotFound, "no trusted intermediate has this id")
	}
	return l, nil
}

func get(t *testing.T, h *harness, path string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, body
}

func TestCRLRoute(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x07} // any bytes: the adapter passes the list through
	iss := &crlIssuer{lists: map[string]ports.CRL{"int-abc": {
		IssuerID: "int-abc", DER: der, Number: big.NewInt(0x1f), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour), Revoked: 1,
	}}}
	h := newHarness(t, func(d *Deps) {
		iss.testIssuer = d.Issuer.(*testIssuer)
		d.Issuer = iss
	})

	status, hdr, body := get(t, h, "/v1/pki/crl/int-abc.crl")
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/pkix-crl" || string(body) != string(der) {
		t.Fatalf("DER: %d %q %x", status, hdr.Get("Content-Type"), body)
	}
	if hdr.Get("Last-Modified") != t0.Format(http.TimeFormat) || hdr.Get("Expires") != t0.Add(time.Hour).Format(http.TimeFormat) ||
		hdr.Get("Cache-Control") != crlMaxAge || hdr.Get("ETag") != `"1f-crl"` {
		t.Fatalf("headers %v", hdr)
	}
	if iss.asked[0] != "int-abc" {
		t.Fatalf("asked for %q", iss.asked)
	}

	status, hdr, body = get(t, h, "/v1/pki/crl/int-abc.pem")
	b, rest := pem.Decode(body)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/x-pem-file" || b == nil || b.Type != "X509 CRL" ||
		string(b.Bytes) != string(der) || len(rest) != 0 {
		t.Fatalf("PEM: %d %q %s", status, hdr.Get("Content-Type"), body)
	}

	// A refresh job that already holds this list gets 304 and no body.
	status, _, body = get(t, h, "/v1/pki/crl/int-abc.pem", "If-None-Match", `"1e-pem", W/"1f-pem"`)
	if status != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("If-None-Match: %d %q", status, body)
	}
	if status, _, _ = get(t, h, "/v1/pki/crl/int-abc.pem", "If-None-Match", `"1f-crl"`); status != http.StatusOK {
		t.Fatalf("another encoding's tag: %d", status)
	}

	for _, path := range []string{"/v1/pki/crl/int-unknown.crl", "/v1/pki/crl/int-abc.der", "/v1/pki/crl/int-abc", "/v1/pki/crl/.crl"} {
		status, hdr, body := get(t, h, path)
		h.problem(response{status: status, header: hdr, body: body}, http.StatusNotFound, ports.CodeCRLNotFound)
	}

	// An issuer without revocation lists.
	plain := newHarness(t)
	status, hdr, body = get(t, plain, "/v1/pki/crl/int-abc.crl")
	plain.problem(response{status: status, header: hdr, body: body}, http.StatusServiceUnavailable, ports.CodeCRLNotConfigured)
}

// oneCA is a ports.CAKeyStore with a single active intermediate that may sign lists.
type oneCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (c oneCA) Intermediates(context.Context) ([]ports.CAIntermediate, error) {
	return []ports.CAIntermediate{{ID: "int-one", Cert: c.cert, State: "active"}}, nil
}
func (c oneCA) Root(context.Context) (*x509.Certificate, error) { return c.cert, nil }
func (c oneCA) Signer(context.Context, string) (crypto.Signer, error) {
	return c.key, nil
}

type oneRevoked []ports.RevokedCertificate

func (r oneRevoked) RevokedByIssuer(_ context.Context, _ string, now time.Time) ([]ports.RevokedCertificate, error) {
	return r, nil
}

// TestCRLRouteOnThePKIService serves the real service's list and checks it as a proxy would: it
// parses, verifies with the intermediate and names the revoked serial.
func TestCRLRouteOnThePKIService(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "CRL test intermediate"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	cert, err := x509.ParseCertificate(crlMust(x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)))
	if err != nil {
		t.Fatal(err)
	}
	revoked := oneRevoked{{Serial: "A1B", RevokedAt: t0.Add(-time.Minute), NotAfter: t0.Add(time.Hour), Reason: "deactivated"}}
	h := newHarness(t, func(d *Deps) {
		d.Issuer = pki.New(pki.Deps{CA: oneCA{cert: cert, key: key}, Clock: d.Clock, Revocations: revoked})
	})
	status, _, body := get(t, h, "/v1/pki/crl/int-one.crl")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	rl, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(cert); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(big.NewInt(0xA1B)) != 0 {
		t.Fatalf("entries %+v", rl.RevokedCertificateEntries)
	}
	status, hdr, body := get(t, h, "/v1/pki/crl/int-two.crl")
	h.problem(response{status: status, header: hdr, body: body}, http.StatusNotFound, ports.CodeCRLNotFound)
}

func crlMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
