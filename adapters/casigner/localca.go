// Package casigner holds the CA backends behind ports.CAKeyStore. LocalCA is the file-based CA that
// `samplero dev` uses by default: its keys live in files beside the data, never in a database.
package casigner

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Layout of the PKI directory (DIR/pki under `samplero dev --data DIR`):
//
//	root/root-key.pem                 root key, 0600 (dev only: in production the root stays offline)
//	root/README                       says so
//	root.pem                          root certificate
//	intermediates/<id>/cert.pem       an intermediate's certificate; <id> is authority.IntermediateID
//	intermediates/<id>/key.pem        its key, 0600
//	intermediates/<id>/state          its authority.State
//	ca-chain.pem                      every trusted intermediate, then the root (what devices get)
//	server.pem, server-key.pem        the device listener's TLS certificate chain and key
//
// Directories are 0700.
const (
	rootDir          = "root"
	rootKeyFile      = "root/root-key.pem"
	rootReadme       = "root/README"
	rootCertFile     = "root.pem"
	intermediatesDir = "intermediates"
	chainFile        = "ca-chain.pem"
	serverCertFile   = "server.pem"
	serverKeyFile    = "server-key.pem"
)

const (
	rootValidity         = 20 * 365 * 24 * time.Hour
	intermediateValidity = 5 * 365 * 24 * time.Hour
	serverValidity       = 365 * 24 * time.Hour
	// serverRenewBefore: a server certificate with less left than this is replaced at start.
	serverRenewBefore = 30 * 24 * time.Hour
	// caBackdate lets clients whose clock runs a little behind accept a hierarchy made just now.
	caBackdate = time.Hour
)

const rootReadmeText = `This directory holds the private key of the Samplero root CA made by "samplero dev".

DEV ONLY. In production the root key stays offline (an air-gapped machine or an HSM) and is used
only to sign intermediates and server-key endorsements; it never sits on a server.
`

// LocalCA is a CA hierarchy kept in files: a root and its intermediates. It implements
// ports.CAKeyStore; the root key is never loaded after the hierarchy is created.
type LocalCA struct {
	dir   string
	clock ports.Clock
	rand  io.Reader

	root *x509.Certificate
	ints []localIntermediate

	mu sync.Mutex // serialises ServerTLSCertificate
}

type localIntermediate struct {
	id    string
	cert  *x509.Certificate
	key   crypto.Signer
	state authority.State
}

var _ ports.CAKeyStore = (*LocalCA)(nil)

// EnsureLocalCA opens the CA hierarchy in dir (the PKI directory itself, e.g. DIR/pki), creating it
// on first use: an ECDSA P-384 root valid 20 years (path length 1) and one active ECDSA P-256
// intermediate valid 5 years (path length 0). Later calls load what exists, so certificates issued
// before a restart keep verifying. The hierarchy is built in a temporary directory and renamed
// into place, so two processes starting at once end up sharing one hierarchy.
func EnsureLocalCA(dir string, clock ports.Clock) (*LocalCA, error) {
	ca := &LocalCA{dir: dir, clock: clock, rand: rand.Reader}
	ok, err := exists(filepath.Join(dir, rootCertFile))
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	if !ok {
		if err := ca.create(); err != nil {
			return nil, err
		}
	}
	if err := ca.load(); err != nil {
		return nil, err
	}
	return ca, nil
}

// create builds a new hierarchy in a sibling temporary directory and renames it to dir, which
// must be missing or empty. If another process got there first the rename fails and its hierarchy
// is used.
func (ca *LocalCA) create() error {
	parent := filepath.Dir(ca.dir)
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(ca.dir)+".new-*")
	if err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, dirMode); err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	if err := ca.build(tmp); err != nil {
		return fmt.Errorf("casigner: create CA: %w", err)
	}
	// os.Rename refuses to replace a directory, even an empty one: remove an empty one first
	// (os.Remove never removes a directory with anything in it).
	if entries, err := os.ReadDir(ca.dir); err == nil && len(entries) == 0 {
		_ = os.Remove(ca.dir)
	}
	if err := os.Rename(tmp, ca.dir); err != nil {
		if ok, _ := exists(filepath.Join(ca.dir, rootCertFile)); ok {
			return nil // another process created it meanwhile
		}
		return fmt.Errorf("casigner: %s exists but holds no CA (root.pem missing): %w", ca.dir, err)
	}
	return nil
}

// build writes a fresh root and intermediate into dir.
func (ca *LocalCA) build(dir string) error {
	now := ca.clock.Now().UTC().Truncate(time.Second)

	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), ca.rand)
	if err != nil {
		return err
	}
	rootSerial, err := authority.NewSerial(ca.rand)
	if err != nil {
		return err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{Organization: []string{"Samplero (dev)"}, CommonName: "Samplero Dev Root CA"},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(rootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(ca.rand, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	inter, interKey, err := newIntermediate(ca.rand, root, rootKey, now)
	if err != nil {
		return err
	}

	rootKeyPEM, err := encodeKey(rootKey)
	if err != nil {
		return err
	}
	interKeyPEM, err := encodeKey(interKey)
	if err != nil {
		return err
	}
	id := authority.IntermediateID(inter)
	interDir := filepath.Join(dir, intermediatesDir, id)
	for _, d := range []string{filepath.Join(dir, rootDir), filepath.Join(dir, intermediatesDir), interDir} {
		if err := os.Mkdir(d, dirMode); err != nil {
			return err
		}
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(dir, rootKeyFile), rootKeyPEM, keyMode},
		{filepath.Join(dir, rootReadme), []byte(rootReadmeText), certMode},
		{filepath.Join(interDir, "key.pem"), interKeyPEM, keyMode},
		{filepath.Join(interDir, "cert.pem"), encodeCerts(inter), certMode},
		{filepath.Join(interDir, "state"), []byte(string(authority.StateActive) + "\n"), certMode},
		{filepath.Join(dir, chainFile), encodeCerts(inter, root), certMode},
		// root.pem last: its presence is what marks the hierarchy complete.
		{filepath.Join(dir, rootCertFile), encodeCerts(root), certMode},
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// newIntermediate signs a new ECDSA P-256 intermediate valid 5 years, path length 0, restricted to
// client and server authentication (the only certificates it signs).
func newIntermediate(r io.Reader, root *x509.Certificate, rootKey crypto.Signer, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), r)
	if err != nil {
		return nil, nil, err
	}
	serial, err := authority.NewSerial(r)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Samplero (dev)"}, CommonName: "Samplero Dev Intermediate CA " + now.Format("2006-01-02")},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(intermediateValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(r, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// load reads the root certificate and every intermediate, checks them, and brings ca-chain.pem in
// line with the intermediates' states.
func (ca *LocalCA) load() error {
	roots, err := readCerts(filepath.Join(ca.dir, rootCertFile))
	if err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	root := roots[0]
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return fmt.Errorf("casigner: %s is not a self-signed CA certificate", rootCertFile)
	}
	entries, err := os.ReadDir(filepath.Join(ca.dir, intermediatesDir))
	if err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	var ints []localIntermediate
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		in, err := loadIntermediate(filepath.Join(ca.dir, intermediatesDir, e.Name()), root)
		if err != nil {
			return fmt.Errorf("casigner: intermediate %s: %w", e.Name(), err)
		}
		if in.id != e.Name() {
			return fmt.Errorf("casigner: intermediate directory %s holds the key of %s", e.Name(), in.id)
		}
		ints = append(ints, in)
	}
	if len(ints) == 0 {
		return fmt.Errorf("casigner: %s has no intermediate", ca.dir)
	}
	ca.root, ca.ints = root, ints

	chain := encodeCerts(append(ca.trustedCerts(), root)...)
	if old, err := os.ReadFile(filepath.Join(ca.dir, chainFile)); err != nil || !bytes.Equal(old, chain) {
		if err := writeFileAtomic(filepath.Join(ca.dir, chainFile), chain, certMode); err != nil {
			return fmt.Errorf("casigner: %w", err)
		}
	}
	return nil
}

func loadIntermediate(dir string, root *x509.Certificate) (localIntermediate, error) {
	certs, err := readCerts(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return localIntermediate{}, err
	}
	cert := certs[0]
	if err := cert.CheckSignatureFrom(root); err != nil {
		return localIntermediate{}, fmt.Errorf("not signed by the root: %w", err)
	}
	key, err := readKey(filepath.Join(dir, "key.pem"))
	if err != nil {
		return localIntermediate{}, err
	}
	if !keyMatches(key, cert.PublicKey) {
		return localIntermediate{}, errors.New("key.pem does not match cert.pem")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "state"))
	if err != nil {
		return localIntermediate{}, err
	}
	state, err := authority.ParseState(strings.TrimSpace(string(raw)))
	if err != nil {
		return localIntermediate{}, fmt.Errorf("state %q: %w", strings.TrimSpace(string(raw)), err)
	}
	return localIntermediate{id: authority.IntermediateID(cert), cert: cert, key: key, state: state}, nil
}

// trustedCerts lists the certificates of the intermediates still trusted, active ones first.
func (ca *LocalCA) trustedCerts() []*x509.Certificate {
	var active, others []*x509.Certificate
	for _, in := range ca.ints {
		switch {
		case in.state == authority.StateActive:
			active = append(active, in.cert)
		case in.state.Trusted():
			others = append(others, in.cert)
		}
	}
	return append(active, others...)
}

// Dir is the PKI directory.
func (ca *LocalCA) Dir() string { return ca.dir }

// ChainPath is the path of ca-chain.pem: what a client (or a TLS proxy) trusts.
func (ca *LocalCA) ChainPath() string { return filepath.Join(ca.dir, chainFile) }

// Intermediates lists every intermediate in the directory, with its state.
func (ca *LocalCA) Intermediates(context.Context) ([]ports.CAIntermediate, error) {
	out := make([]ports.CAIntermediate, 0, len(ca.ints))
	for _, in := range ca.ints {
		out = append(out, ports.CAIntermediate{ID: in.id, Cert: in.cert, State: string(in.state)})
	}
	return out, nil
}

// Root returns the root certificate.
func (ca *LocalCA) Root(context.Context) (*x509.Certificate, error) { return ca.root, nil }

// Signer returns the key of intermediate id; errs.NotFound for an unknown id.
func (ca *LocalCA) Signer(_ context.Context, id string) (crypto.Signer, error) {
	i := slices.IndexFunc(ca.ints, func(in localIntermediate) bool { return in.id == id })
	if i < 0 {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate CA")
	}
	return ca.ints[i].key, nil
}
