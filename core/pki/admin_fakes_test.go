package pki_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// In-memory fakes of the administration's driven ports. They keep the contracts the ports
// document (conflicts, not-found, atomic updates) so that the use cases are tested without files.

type memRoot struct {
	cert   *x509.Certificate
	key    crypto.Signer
	pass   string
	issued []*x509.Certificate
}

type memVault struct {
	mu    sync.Mutex
	roots map[string]*memRoot
}

func newMemVault() *memVault { return &memVault{roots: map[string]*memRoot{}} }

func (v *memVault) Create(_ context.Context, dir string, pass []byte, build func(crypto.Signer) (*x509.Certificate, error)) (ports.RootLocations, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.roots[dir] != nil {
		return ports.RootLocations{}, errs.E(errs.Conflict, "ROOT_EXISTS", "exists")
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return ports.RootLocations{}, err
	}
	cert, err := build(key)
	if err != nil {
		return ports.RootLocations{}, err
	}
	v.roots[dir] = &memRoot{cert: cert, key: key, pass: string(pass)}
	return ports.RootLocations{Cert: dir + "/root.pem", Key: dir + "/root-key.jwe"}, nil
}

func (v *memVault) Open(_ context.Context, dir string, pass []byte) (*x509.Certificate, crypto.Signer, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := v.roots[dir]
	if r == nil {
		return nil, nil, errs.E(errs.NotFound, "ROOT_NOT_FOUND", "none")
	}
	if string(pass) != r.pass {
		return nil, nil, errs.E(errs.Unauthenticated, "ROOT_PASSPHRASE_WRONG", "wrong")
	}
	return r.cert, r.key, nil
}

func (v *memVault) RecordIssued(_ context.Context, dir string, cert *x509.Certificate) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.roots[dir].issued = append(v.roots[dir].issued, cert)
	return nil
}

type memBundles struct {
	mu    sync.Mutex
	files map[string][]ports.BundleFile
}

func newMemBundles() *memBundles { return &memBundles{files: map[string][]ports.BundleFile{}} }

func (b *memBundles) Write(_ context.Context, path string, files []ports.BundleFile) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.files[path]; ok {
		return errs.E(errs.Conflict, errs.CodeConflict, "exists")
	}
	b.files[path] = cloneFiles(files)
	return nil
}

func (b *memBundles) Read(_ context.Context, path string) ([]ports.BundleFile, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.files[path]
	if !ok {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "none")
	}
	return cloneFiles(f), nil
}

func cloneFiles(fs []ports.BundleFile) []ports.BundleFile {
	out := make([]ports.BundleFile, len(fs))
	for i, f := range fs {
		out[i] = ports.BundleFile{Name: f.Name, Data: slices.Clone(f.Data)}
	}
	return out
}

type memKeys struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]crypto.Signer{}} }

func (k *memKeys) NewKey(context.Context) (string, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, err
	}
	id, err := authority.KeyID(key.Public())
	if err != nil {
		return "", nil, err
	}
	k.mu.Lock()
	k.keys[id] = key
	k.mu.Unlock()
	return id, key, nil
}

func (k *memKeys) Key(_ context.Context, ref string) (crypto.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[ref]
	if !ok {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no key")
	}
	return key, nil
}

// memDir is a PKI directory in memory. chainFollows makes it publish the chain on every update as
// the real directory does; tests turn it off (or edit chain) to make it stale.
type memDir struct {
	updMu    sync.Mutex // the state file's lock: one update at a time
	mu       sync.Mutex
	root     *x509.Certificate
	certs    map[string]*x509.Certificate
	records  map[string]ports.IntermediateRecord
	history  []ports.StateChange
	csrs     map[string][]byte
	chain    []byte
	findings []ports.AuditFinding
	updates  int
}

func newMemDir() *memDir {
	return &memDir{certs: map[string]*x509.Certificate{}, records: map[string]ports.IntermediateRecord{}, csrs: map[string][]byte{}}
}

func (d *memDir) ids() []string {
	var ids []string
	for id := range d.certs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (d *memDir) Snapshot(context.Context) (ports.PKISnapshot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := ports.PKISnapshot{Root: d.root, ChainPEM: slices.Clone(d.chain)}
	for _, id := range d.ids() {
		s.Intermediates = append(s.Intermediates, ports.InstalledCert{ID: id, Cert: d.certs[id], Record: d.record(id)})
	}
	for id, csr := range d.csrs {
		if d.certs[id] == nil {
			s.Pending = append(s.Pending, ports.PendingIntermediate{ID: id, CSRLocation: "mem:" + id, CSRPEM: csr})
		}
	}
	return s, nil
}

func (d *memDir) record(id string) ports.IntermediateRecord {
	r, ok := d.records[id]
	if !ok {
		r = ports.IntermediateRecord{ID: id, State: "staged"}
	}
	return r
}

// UpdateStates serialises updates with updMu, the state file's lock; fn runs without d.mu held,
// so that it may read a Snapshot as the real directory allows.
func (d *memDir) UpdateStates(_ context.Context, fn func(*ports.HierarchyStates) error) error {
	d.updMu.Lock()
	defer d.updMu.Unlock()
	d.mu.Lock()
	st := d.states()
	d.mu.Unlock()
	if err := fn(st); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.store(st)
	return nil
}

func (d *memDir) states() *ports.HierarchyStates {
	st := &ports.HierarchyStates{History: slices.Clone(d.history)}
	for _, id := range d.ids() {
		st.Intermediates = append(st.Intermediates, d.record(id))
	}
	return st
}

func (d *memDir) store(st *ports.HierarchyStates) {
	for _, r := range st.Intermediates {
		d.records[r.ID] = r
	}
	d.history = st.History
	d.updates++
	d.publish()
}

// publish writes the chain the way the real directory does: trusted intermediates by chain order
// then id, then the root.
func (d *memDir) publish() {
	if d.root == nil {
		return
	}
	var ids []string
	for _, id := range d.ids() {
		if authority.State(d.record(id).State).Trusted() {
			ids = append(ids, id)
		}
	}
	slices.SortStableFunc(ids, func(a, b string) int {
		return authority.ChainOrder(authority.State(d.record(a).State)) - authority.ChainOrder(authority.State(d.record(b).State))
	})
	d.chain = nil
	for _, id := range ids {
		d.chain = append(d.chain, pemCert(d.certs[id])...)
	}
	d.chain = append(d.chain, pemCert(d.root)...)
}

func (d *memDir) SaveCSR(_ context.Context, id string, csr []byte) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.csrs[id] = csr
	return "mem:" + id + "/csr.pem", nil
}

func (d *memDir) Install(_ context.Context, req ports.InstallRequest) (ports.InstallResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.root != nil && !d.root.Equal(req.Root) {
		return ports.InstallResult{}, errs.E(errs.Conflict, "ROOT_MISMATCH", "other root")
	}
	res := ports.InstallResult{CertLocation: "mem:" + req.ID + "/cert.pem"}
	if old := d.certs[req.ID]; old != nil {
		if old.Equal(req.Intermediate) {
			res.AlreadyInstalled = true
			res.State = d.record(req.ID).State
			return res, nil
		}
		if !req.Force {
			return ports.InstallResult{}, errs.E(errs.Conflict, "INTERMEDIATE_INSTALLED", "installed")
		}
		res.BackupLocation = "mem:backup"
	}
	if d.root == nil {
		d.root, res.RootInstalled = req.Root, true
	}
	d.certs[req.ID] = req.Intermediate
	st := d.states()
	st.History = append(st.History, ports.StateChange{ID: req.ID, To: d.record(req.ID).State, Note: req.Note})
	d.store(st)
	res.State = d.record(req.ID).State
	return res, nil
}

func (d *memDir) AuditFiles(context.Context) ([]ports.AuditFinding, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.findings), 3, nil
}

type memCounter struct {
	counts map[string]int
	err    error
}

func (c memCounter) CountValidByIssuer(context.Context, time.Time) (map[string]int, error) {
	return c.counts, c.err
}

var (
	_ ports.RootVault                = (*memVault)(nil)
	_ ports.BundleArchive            = (*memBundles)(nil)
	_ ports.KeyStore                 = (*memKeys)(nil)
	_ ports.PKIDirectory             = (*memDir)(nil)
	_ ports.IssuedCertificateCounter = memCounter{}
)
