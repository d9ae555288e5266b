package samplero_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/sdk/go/httpsig"
	"github.com/samplero/samplero/sdk/go/samplero"
)

// offlineRoot is the vendor's offline root: ECDSA P-384, self-signed.
type offlineRoot struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newOfflineRoot(t *testing.T, name string) offlineRoot {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(2300000000, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return offlineRoot{key: key, cert: cert}
}

// serverKid is the server's kid rule (any base64url string works for the client).
func serverKid(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// endorse writes an endorsement the way docs/protocol.md describes it, with the standard library.
func (r offlineRoot) endorse(t *testing.T, kid string, pub ed25519.PublicKey, nb, na string) string {
	t.Helper()
	payload := `{"kid":"` + kid + `","public_key":"` + base64.StdEncoding.EncodeToString(pub) + `","not_before":"` + nb + `","not_after":"` + na + `"}`
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"ES384","typ":"samplero-key-endorsement"}`)) + "." + enc.EncodeToString([]byte(payload))
	digest := sha512.Sum384([]byte(input))
	rr, ss, err := ecdsa.Sign(rand.Reader, r.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 96)
	rr.FillBytes(sig[:48])
	ss.FillBytes(sig[48:])
	return input + "." + enc.EncodeToString(sig)
}

// srvKey is a server key and its entry in GET /v1/keys.
type srvKey struct {
	kid         string
	priv        ed25519.PrivateKey
	pub         ed25519.PublicKey
	nb, na      string
	status      string
	endorsement string
}

func newSrvKey(nb, na string) srvKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return srvKey{kid: serverKid(pub), priv: priv, pub: pub, nb: nb, na: na}
}

func (k srvKey) with(status, endorsement string) srvKey {
	k.status, k.endorsement = status, endorsement
	return k
}

func (k srvKey) entry() samplero.ServerKey {
	nb, _ := time.Parse(time.RFC3339, k.nb)
	na, _ := time.Parse(time.RFC3339, k.na)
	return samplero.ServerKey{KID: k.kid, Alg: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(k.pub), NotBefore: nb, NotAfter: &na, Status: k.status, Endorsement: k.endorsement}
}

func endorsedList(keys ...srvKey) []byte {
	var ks []map[string]any
	for _, k := range keys {
		var e any
		if k.endorsement != "" {
			e = k.endorsement
		}
		ks = append(ks, map[string]any{
			"kid": k.kid, "alg": "ed25519", "public_key": base64.StdEncoding.EncodeToString(k.pub),
			"not_before": k.nb, "not_after": k.na, "status": k.status, "endorsement": e,
		})
	}
	b, _ := json.Marshal(map[string]any{"issuer": testIssuer, "keys": ks, "ca_chain": ""})
	return b
}

func TestVerifyEndorsement(t *testing.T) {
	root := newOfflineRoot(t, "root")
	now := time.Unix(1764417600, 0) // 2025-11-29T12:00:00Z
	k := newSrvKey("2025-11-01T00:00:00Z", "2027-11-01T00:00:00Z")
	k = k.with("active", root.endorse(t, k.kid, k.pub, k.nb, k.na))
	roots := []*x509.Certificate{root.cert}

	if err := samplero.VerifyEndorsement(roots, k.entry(), now); err != nil {
		t.Fatalf("valid: %v", err)
	}
	// A next key, published ahead of its window, is fine.
	if err := samplero.VerifyEndorsement(roots, k.entry(), time.Unix(1700000000, 0)); err != nil {
		t.Fatalf("before the window: %v", err)
	}

	// Tampered: a later not_after under the same endorsement; another key under it; a flipped bit.
	longer := k
	longer.na = "2030-11-01T00:00:00Z"
	if err := samplero.VerifyEndorsement(roots, longer.entry(), now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("longer window: %v", err)
	}
	swapped := newSrvKey(k.nb, k.na).with("active", k.endorsement)
	if err := samplero.VerifyEndorsement(roots, swapped.entry(), now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("another key: %v", err)
	}
	parts := strings.Split(k.endorsement, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[95] ^= 1
	flipped := k.with("active", parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig))
	if err := samplero.VerifyEndorsement(roots, flipped.entry(), now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("flipped bit: %v", err)
	}
	// A fractional not_before in the list changes the bytes: refused.
	frac := k.entry()
	frac.NotBefore = frac.NotBefore.Add(500 * time.Millisecond)
	if err := samplero.VerifyEndorsement(roots, frac, now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("fractional time: %v", err)
	}

	// Wrong root; an intermediate of the right root is no root at all.
	other := newOfflineRoot(t, "other")
	if err := samplero.VerifyEndorsement([]*x509.Certificate{other.cert}, k.entry(), now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("wrong root: %v", err)
	}
	ikey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	itmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "int"}, NotBefore: root.cert.NotBefore, NotAfter: root.cert.NotAfter, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ider, _ := x509.CreateCertificate(rand.Reader, itmpl, root.cert, ikey.Public(), root.key)
	inter, _ := x509.ParseCertificate(ider)
	byInter := k.with("active", offlineRoot{key: ikey, cert: inter}.endorse(t, k.kid, k.pub, k.nb, k.na))
	if err := samplero.VerifyEndorsement([]*x509.Certificate{inter, root.cert}, byInter.entry(), now); !errors.Is(err, samplero.ErrEndorsementInvalid) {
		t.Fatalf("endorsed by an intermediate: %v", err)
	}

	// Expired window (beyond the skew), and none at all.
	if err := samplero.VerifyEndorsement(roots, k.entry(), time.Date(2027, 11, 1, 0, 4, 0, 0, time.UTC)); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
	if err := samplero.VerifyEndorsement(roots, k.entry(), time.Date(2027, 11, 1, 0, 5, 0, 0, time.UTC)); !errors.Is(err, samplero.ErrEndorsementExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := samplero.VerifyEndorsement(roots, k.with("active", "").entry(), now); !errors.Is(err, samplero.ErrEndorsementMissing) {
		t.Fatalf("missing: %v", err)
	}

	// RootCertificates keeps the root of a chain and leaves the intermediate out.
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.cert.Raw})...)
	got, err := samplero.RootCertificates(chain)
	if err != nil || len(got) != 1 || !got[0].Equal(root.cert) {
		t.Fatalf("RootCertificates: %v %v", got, err)
	}
	if _, err := samplero.RootCertificates(chain[:len(chain)/2]); err == nil {
		t.Fatal("RootCertificates without a root")
	}
	if _, err := samplero.New(samplero.Config{BaseURL: "https://x.test", EndorsementRoots: []*x509.Certificate{inter}}); err == nil {
		t.Fatal("New accepted an intermediate as an endorsement root")
	}
}

// rootOnlyClient pins the TLS chain and the offline root, and no server key.
func rootOnlyClient(t *testing.T, f *fakeServer, root offlineRoot, mod func(*samplero.Config)) *samplero.Client {
	return newClient(t, f, samplero.NewMemoryStorage(), func(cfg *samplero.Config) {
		cfg.TrustedKeys = nil
		cfg.EndorsementRoots = []*x509.Certificate{root.cert}
		if mod != nil {
			mod(cfg)
		}
	})
}

func TestClientFollowsEndorsedRotation(t *testing.T) {
	ctx := context.Background()
	clock := newClock() // 2025-11-29T12:00:00Z
	f := newFakeServer(t, clock)
	root := newOfflineRoot(t, "vendor root")
	a := newSrvKey("2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
	a.priv = f.key
	a.pub = f.key.Public().(ed25519.PublicKey)
	a.kid = serverKid(a.pub)
	a.endorsement = root.endorse(t, a.kid, a.pub, a.nb, a.na)
	f.setSigner(a.kid, a.priv, endorsedList(a.with("active", a.endorsement)))

	// The first list is accepted because the root endorses its signer: no trust on first use,
	// not even the pinned TLS chain is needed for it.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.rootCAs()}}
	c0 := rootOnlyClient(t, f, root, func(cfg *samplero.Config) { cfg.HTTPClient = &http.Client{Transport: tr} })
	if _, err := c0.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	c := rootOnlyClient(t, f, root, nil)
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}

	// The server rotated to b while this client was away: its first answer is signed by a key
	// the client has never seen. The client fetches the list, finds b endorsed, and goes on.
	b := newSrvKey("2025-11-29T00:00:00Z", "2027-11-29T00:00:00Z")
	b.endorsement = root.endorse(t, b.kid, b.pub, b.nb, b.na)
	f.setSigner(b.kid, b.priv, endorsedList(b.with("active", b.endorsement), a.with("retired", a.endorsement)))
	before := len(f.requests)
	if _, err := c.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after an endorsed rotation: %v", err)
	}
	if got := strings.Join(f.requests[before:], " "); got != "/v1/heartbeat /v1/keys" {
		t.Fatalf("requests %s", got)
	}
	if _, err := c.CheckOffline(""); err != nil {
		t.Fatalf("lease signed by b: %v", err)
	}

	// An unendorsed c, even in a list b signs, is never trusted: its answers are refused.
	cKey := newSrvKey("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z")
	f.setSigner(b.kid, b.priv, endorsedList(b.with("active", b.endorsement), cKey.with("next", "")))
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	f.setSigner(cKey.kid, cKey.priv, endorsedList(cKey.with("active", ""), b.with("retired", b.endorsement)))
	if _, err := c.Validate(ctx); !errors.Is(err, httpsig.ErrUnknownServerKey) {
		t.Fatalf("unendorsed key: %v", err)
	}
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("list signed by an unendorsed key: %v", err)
	}

	// Endorsed by another root, or with a window that has ended: refused too.
	other := newOfflineRoot(t, "other root")
	d := newSrvKey("2025-11-29T00:00:00Z", "2027-11-29T00:00:00Z")
	f.setSigner(d.kid, d.priv, endorsedList(d.with("active", other.endorse(t, d.kid, d.pub, d.nb, d.na))))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("another root: %v", err)
	}
	e := newSrvKey("2024-01-01T00:00:00Z", "2025-11-01T00:00:00Z")
	f.setSigner(e.kid, e.priv, endorsedList(e.with("active", root.endorse(t, e.kid, e.pub, e.nb, e.na))))
	if _, err := c.FetchKeys(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("expired window: %v", err)
	}

	// b itself stops being trusted once its window ends.
	f.setSigner(b.kid, b.priv, endorsedList(b.with("active", b.endorsement)))
	if _, err := c.Validate(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * 365 * 24 * time.Hour)
	if _, err := c.Validate(ctx); !errors.Is(err, samplero.ErrKeyListUntrusted) {
		t.Fatalf("answer by a key past its window: %v", err)
	}
}

func TestPinnedKeyNeedsNoEndorsement(t *testing.T) {
	// A key the vendor built in stays trusted with EndorsementRoots set, endorsement or not.
	ctx := context.Background()
	f := newFakeServer(t, newClock())
	root := newOfflineRoot(t, "vendor root")
	c := newClient(t, f, samplero.NewMemoryStorage(), func(cfg *samplero.Config) { cfg.EndorsementRoots = []*x509.Certificate{root.cert} })
	if _, err := c.FetchKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Activate(ctx, testLicenseKey); err != nil {
		t.Fatal(err)
	}
}
