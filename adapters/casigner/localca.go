// Package casigner holds the CA backends behind ports.CAKeyStore. LocalCA is the file-based CA that
// `samplero dev` uses by default: its keys live in files beside the data, never in a database.
package casigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
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

// Layout of the PKI directory (DIR/pki under `samplero dev --data DIR`, SAMPLERO_PKI_DIR in
// production):
//
//	root/root-key.pem                 root key, 0600 (dev only: in production the root stays offline,
//	                                  and `samplero pki audit` fails when it finds one)
//	root/README                       says so
//	root.pem                          root certificate
//	intermediates/<id>/key.pem        an intermediate's key, 0600 (FileKeyStore); <id> is authority.KeyID
//	intermediates/<id>/csr.pem        its CSR (`samplero pki new-intermediate`)
//	intermediates/<id>/cert.pem       its certificate; a directory without one is a key waiting for it
//	state.json                        every intermediate's state and canary share, and the history
//	ca-chain.pem                      every trusted intermediate, then the root (what devices get)
//	backups/<stamp>-<id>/             what `samplero pki bundle install` replaced
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
	backupsDir       = "backups"
	serverCertFile   = "server.pem"
	serverKeyFile    = "server-key.pem"
)

const (
	rootValidity         = authority.RootValidity
	intermediateValidity = authority.IntermediateValidity
	serverValidity       = 365 * 24 * time.Hour
	// serverRenewBefore: a server certificate with less left than this is replaced at start.
	serverRenewBefore = 30 * 24 * time.Hour
	// caBackdate lets clients whose clock runs a little behind accept a hierarchy made just now.
	caBackdate = authority.CABackdate
	// reloadEvery bounds how often the state file is looked at: at most one stat per second on
	// the issuance path, and a rollout step takes effect within a second.
	reloadEvery = time.Second
)

const rootReadmeText = `This directory holds the private key of the Samplero root CA made by "samplero dev".

DEV ONLY. In production the root key stays offline (an air-gapped machine or an HSM) and is used
only to sign intermediates and server-key endorsements; it never sits on a server.
`

// LocalCA is a CA hierarchy kept in files: a root and its intermediates, several of them trusted at
// once. It implements ports.CAKeyStore and ports.CAShares; the root key is never loaded after the
// hierarchy is created. It re-reads the directory when state.json changes (checked at most once a
// second, by the injected clock), so a rollout step takes effect without a restart; a directory
// that fails to load keeps the last good hierarchy in service (see ReloadError).
type LocalCA struct {
	dir   string
	clock ports.Clock
	rand  io.Reader
	keys  *FileKeyStore

	mu        sync.Mutex // guards the fields below
	snap      *hierarchy
	checked   time.Time   // clock time of the last look at state.json
	stamp     os.FileInfo // state.json as last loaded; nil when it did not exist
	reloadErr error

	srvMu sync.Mutex // serialises ServerTLSCertificate
}

// hierarchy is one loaded state of the directory; never changed once built.
type hierarchy struct {
	root *x509.Certificate
	ints []localIntermediate
}

type localIntermediate struct {
	id    string
	cert  *x509.Certificate
	key   crypto.Signer // nil for a retired intermediate whose key was destroyed
	state authority.State
	share int
}

var (
	_ ports.CAKeyStore = (*LocalCA)(nil)
	_ ports.CAShares   = (*LocalCA)(nil)
)

// EnsureLocalCA opens the CA hierarchy in dir (the PKI directory itself, e.g. DIR/pki), creating it
// on first use: an ECDSA P-384 root valid 20 years (path length 1) and one active ECDSA P-256
// intermediate valid 5 years (path length 0). Later calls load what exists, so certificates issued
// before a restart keep verifying. The hierarchy is built in a temporary directory and renamed
// into place, so two processes starting at once end up sharing one hierarchy.
func EnsureLocalCA(dir string, clock ports.Clock) (*LocalCA, error) {
	ca := &LocalCA{dir: dir, clock: clock, rand: rand.Reader, keys: NewFileKeyStore(dir)}
	ok, err := exists(filepath.Join(dir, rootCertFile))
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	if !ok {
		if err := ca.create(); err != nil {
			return nil, err
		}
	}
	stamp, err := statState(dir)
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	h, err := ca.load()
	if err != nil {
		return nil, err
	}
	ca.snap, ca.stamp, ca.checked = h, stamp, clock.Now()
	return ca, nil
}

// statState stats state.json; nil when it does not exist.
func statState(dir string) (os.FileInfo, error) {
	fi, err := os.Stat(filepath.Join(dir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

// sameStamp reports whether state.json is the file last loaded: same inode (every write is a
// rename of a new file), same size and modification time.
func sameStamp(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// current returns the hierarchy in service, reloading it first when state.json changed and the
// last look is at least a second old.
func (ca *LocalCA) current() *hierarchy {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := ca.clock.Now()
	if d := now.Sub(ca.checked); d >= 0 && d < reloadEvery {
		return ca.snap
	}
	ca.checked = now
	stamp, err := statState(ca.dir)
	if err != nil {
		ca.reloadErr = err
		return ca.snap
	}
	if sameStamp(stamp, ca.stamp) {
		return ca.snap
	}
	h, err := ca.load()
	// The stamp moves on either way: a broken state.json is tried again when it changes again,
	// not on every call.
	ca.stamp = stamp
	if err != nil {
		ca.reloadErr = err
		return ca.snap
	}
	ca.snap, ca.reloadErr = h, nil
	return h
}

// ReloadError is the error of the last reload that failed (nil once one succeeds): the hierarchy
// in service is then the one loaded before it.
func (ca *LocalCA) ReloadError() error {
	ca.current()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.reloadErr
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
	stateJSON, err := json.MarshalIndent(stateDoc{
		Format:        stateFormat,
		Intermediates: []stateEntry{{ID: id, State: string(authority.StateActive), Since: now}},
		History:       []historyEntry{{At: now, ID: id, To: string(authority.StateActive), Note: "created by samplero dev"}},
	}, "", "  ")
	if err != nil {
		return err
	}
	stateJSON = append(stateJSON, '\n')
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
		{filepath.Join(dir, stateFileName), stateJSON, certMode},
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

// load reads the root certificate, every intermediate that has a certificate (a directory with
// only a key and a CSR waits for its bundle) and the state file, checks them, and brings
// ca-chain.pem in line with the states.
func (ca *LocalCA) load() (*hierarchy, error) {
	roots, err := readCerts(filepath.Join(ca.dir, rootCertFile))
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	root := roots[0]
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("casigner: %s is not a self-signed CA certificate", rootCertFile)
	}
	doc, _, err := readStateDoc(ca.dir)
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(ca.dir, intermediatesDir))
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	var ints []localIntermediate
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		interDir := filepath.Join(ca.dir, intermediatesDir, e.Name())
		if ok, err := exists(filepath.Join(interDir, "cert.pem")); err != nil {
			return nil, fmt.Errorf("casigner: %w", err)
		} else if !ok {
			continue // a new key waiting for its certificate
		}
		in, err := ca.loadIntermediate(interDir, e.Name(), root, doc)
		if err != nil {
			return nil, fmt.Errorf("casigner: intermediate %s: %w", e.Name(), err)
		}
		ints = append(ints, in)
	}
	if len(ints) == 0 {
		return nil, fmt.Errorf("casigner: %s has no intermediate", ca.dir)
	}
	h := &hierarchy{root: root, ints: ints}
	if err := publishChain(ca.dir, root, h.members()); err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	return h, nil
}

func (ca *LocalCA) loadIntermediate(dir, name string, root *x509.Certificate, doc stateDoc) (localIntermediate, error) {
	certs, err := readCerts(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return localIntermediate{}, err
	}
	cert := certs[0]
	if err := cert.CheckSignatureFrom(root); err != nil {
		return localIntermediate{}, fmt.Errorf("not signed by the root: %w", err)
	}
	id := authority.IntermediateID(cert)
	if id != name {
		return localIntermediate{}, fmt.Errorf("intermediate directory %s holds the certificate of %s", name, id)
	}
	entry, err := stateOf(doc, dir, id)
	if err != nil {
		return localIntermediate{}, err
	}
	state := authority.State(entry.State)
	key, err := readKey(filepath.Join(dir, "key.pem"))
	switch {
	case errors.Is(err, os.ErrNotExist) && state == authority.StateRetired:
		key = nil // destroyed after retirement: nothing signs with it any more
	case err != nil:
		return localIntermediate{}, err
	case !keyMatches(key, cert.PublicKey):
		return localIntermediate{}, errors.New("key.pem does not match cert.pem")
	}
	share := 0
	if state == authority.StateCanary {
		share = entry.Share
	}
	return localIntermediate{id: id, cert: cert, key: key, state: state, share: share}, nil
}

func (h *hierarchy) members() []chainMember {
	out := make([]chainMember, 0, len(h.ints))
	for _, in := range h.ints {
		out = append(out, chainMember{id: in.id, cert: in.cert, state: in.state})
	}
	return out
}

// trustedCerts lists the certificates of the intermediates still trusted, in chain order.
func (h *hierarchy) trustedCerts() []*x509.Certificate {
	var out []*x509.Certificate
	for _, m := range trustedInChainOrder(h.members()) {
		out = append(out, m.cert)
	}
	return out
}

// Dir is the PKI directory.
func (ca *LocalCA) Dir() string { return ca.dir }

// ChainPath is the path of ca-chain.pem: what a client (or a TLS proxy) trusts.
func (ca *LocalCA) ChainPath() string { return filepath.Join(ca.dir, chainFile) }

// Intermediates lists every intermediate in the directory, with its state, ordered by id.
func (ca *LocalCA) Intermediates(context.Context) ([]ports.CAIntermediate, error) {
	h := ca.current()
	out := make([]ports.CAIntermediate, 0, len(h.ints))
	for _, in := range h.ints {
		out = append(out, ports.CAIntermediate{ID: in.id, Cert: in.cert, State: string(in.state)})
	}
	return out, nil
}

// Shares returns the canary intermediates' shares (ports.CAShares).
func (ca *LocalCA) Shares(context.Context) (map[string]int, error) {
	h := ca.current()
	out := map[string]int{}
	for _, in := range h.ints {
		if in.share > 0 {
			out[in.id] = in.share
		}
	}
	return out, nil
}

// Root returns the root certificate.
func (ca *LocalCA) Root(context.Context) (*x509.Certificate, error) { return ca.current().root, nil }

// Signer returns the key of intermediate id; errs.NotFound for an unknown id or one whose key is
// gone.
func (ca *LocalCA) Signer(_ context.Context, id string) (crypto.Signer, error) {
	h := ca.current()
	i := slices.IndexFunc(h.ints, func(in localIntermediate) bool { return in.id == id })
	if i < 0 || h.ints[i].key == nil {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate CA")
	}
	return h.ints[i].key, nil
}
