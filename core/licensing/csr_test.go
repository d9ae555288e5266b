package licensing

import (
	"bytes"
	"context"
	"encoding/pem"
	"sync"
	"testing"

	"github.com/samplero/samplero/ports"
)

// csrRecorder is the test CA that also remembers the CSR of every request, for the issuer
// backends (step-ca) that sign the device's request instead of a bare public key.
type csrRecorder struct {
	*testCA
	mu   sync.Mutex
	csrs [][]byte
}

func (r *csrRecorder) IssueDeviceCertificate(ctx context.Context, req ports.DeviceCertificateRequest) (ports.IssuedCertificate, error) {
	r.mu.Lock()
	r.csrs = append(r.csrs, req.CSR)
	r.mu.Unlock()
	return r.testCA.IssueDeviceCertificate(ctx, req)
}

func (r *csrRecorder) last(t *testing.T) []byte {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.csrs) == 0 {
		t.Fatal("no certificate was issued")
	}
	return r.csrs[len(r.csrs)-1]
}

func derOf(t *testing.T, csrPEM string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil {
		t.Fatal("bad test CSR")
	}
	return b.Bytes
}

func TestIssueRequestsCarryTheDeviceCSR(t *testing.T) {
	f := newFixture(t)
	rec := &csrRecorder{testCA: f.ca}
	f.svc.d.Issuer = rec
	f.product("synth", nil)
	lic := f.license("synth", nil)
	d := newDev(t, "fp-csr-passthrough")

	g := f.mustGrant(lic.Key, d)
	if got := rec.last(t); !bytes.Equal(got, derOf(t, d.csr)) {
		t.Fatalf("activation passed CSR %x, want the device's", got)
	}

	// Renewal with a new key passes the new request, not the one of the activation.
	nd := d.rekey(t)
	if _, err := f.svc.Renew(f.ctx, ports.RenewCommand{Identity: f.mustCertID(g.CertificateSerial, d, ports.OpRenew), CSRPEM: nd.csr}); err != nil {
		t.Fatal(err)
	}
	if got := rec.last(t); !bytes.Equal(got, derOf(t, nd.csr)) {
		t.Fatalf("renewal passed CSR %x, want the new key's", got)
	}
	if len(rec.csrs) != 2 {
		t.Fatalf("%d certificates issued, want 2", len(rec.csrs))
	}
}
