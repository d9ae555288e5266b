package casigner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Codes of the PKI directory.
const (
	CodeNoPKIDir          = "PKI_DIR_NOT_FOUND"
	CodeRootMismatch      = "ROOT_MISMATCH"
	CodeAlreadyInstalled  = "INTERMEDIATE_INSTALLED"
	CodeKeyMissing        = "INTERMEDIATE_KEY_MISSING"
	CodeStateFileRejected = "STATE_FILE_INVALID"
)

// Directory is the server's PKI directory as `samplero pki` sees it (ports.PKIDirectory): the
// same layout LocalCA serves from, read and written by the administration steps. It works on a
// directory that has no root yet (before the first bundle), which LocalCA cannot.
type Directory struct {
	dir   string
	clock ports.Clock
}

var _ ports.PKIDirectory = (*Directory)(nil)

// NewDirectory opens the PKI directory dir.
func NewDirectory(dir string, clock ports.Clock) *Directory {
	return &Directory{dir: dir, clock: clock}
}

func (d *Directory) path(parts ...string) string {
	return filepath.Join(append([]string{d.dir}, parts...)...)
}

func (d *Directory) mustExist() error {
	st, err := os.Stat(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return errs.E(errs.NotFound, CodeNoPKIDir, "the PKI directory "+d.dir+" does not exist")
	}
	if err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	if !st.IsDir() {
		return errs.E(errs.Invalid, CodeNoPKIDir, d.dir+" is not a directory")
	}
	return nil
}

// readRoot reads root.pem; nil when none is installed.
func (d *Directory) readRoot() (*x509.Certificate, error) {
	certs, err := readCerts(d.path(rootCertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	return certs[0], nil
}

// scan lists the intermediate directories: installed certificates (with their state) and keys
// waiting for one.
func (d *Directory) scan(doc stateDoc) ([]ports.InstalledCert, []ports.PendingIntermediate, error) {
	entries, err := os.ReadDir(d.path(intermediatesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("casigner: %w", err)
	}
	var installed []ports.InstalledCert
	var pending []ports.PendingIntermediate
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		id := e.Name()
		interDir := d.path(intermediatesDir, id)
		ok, err := exists(filepath.Join(interDir, "cert.pem"))
		if err != nil {
			return nil, nil, fmt.Errorf("casigner: %w", err)
		}
		if !ok {
			p := ports.PendingIntermediate{ID: id}
			if st, err := os.Stat(filepath.Join(interDir, "key.pem")); err == nil {
				p.CreatedAt = st.ModTime().UTC()
			}
			if csr, err := os.ReadFile(filepath.Join(interDir, "csr.pem")); err == nil {
				p.CSRLocation, p.CSRPEM = filepath.Join(interDir, "csr.pem"), csr
			}
			pending = append(pending, p)
			continue
		}
		in := ports.InstalledCert{ID: id}
		entry, err := stateOf(doc, interDir, id)
		if err != nil {
			in.Problem = err.Error()
			entry = stateEntry{ID: id, State: string(authority.StateStaged)}
		}
		in.Record = toRecord(entry)
		certs, err := readCerts(filepath.Join(interDir, "cert.pem"))
		if err != nil {
			in.Problem = err.Error()
		} else {
			in.Cert = certs[0]
		}
		installed = append(installed, in)
	}
	return installed, pending, nil
}

// Snapshot reads the directory (see ports.PKIDirectory).
func (d *Directory) Snapshot(context.Context) (ports.PKISnapshot, error) {
	if err := d.mustExist(); err != nil {
		return ports.PKISnapshot{}, err
	}
	root, err := d.readRoot()
	if err != nil {
		return ports.PKISnapshot{}, err
	}
	doc, _, err := readStateDoc(d.dir)
	if err != nil {
		return ports.PKISnapshot{}, errs.Wrap(errs.Invalid, CodeStateFileRejected, "the state file does not read", err)
	}
	installed, pending, err := d.scan(doc)
	if err != nil {
		return ports.PKISnapshot{}, err
	}
	snap := ports.PKISnapshot{Root: root, Intermediates: installed, Pending: pending}
	if chain, err := os.ReadFile(d.path(chainFile)); err == nil {
		snap.ChainPEM = chain
	} else if !errors.Is(err, os.ErrNotExist) {
		return ports.PKISnapshot{}, fmt.Errorf("casigner: %w", err)
	}
	return snap, nil
}

// UpdateStates changes the state file under the directory lock (see ports.PKIDirectory).
func (d *Directory) UpdateStates(_ context.Context, fn func(*ports.HierarchyStates) error) error {
	if err := d.mustExist(); err != nil {
		return err
	}
	unlock, err := lockDir(d.dir)
	if err != nil {
		return fmt.Errorf("casigner: lock %s: %w", d.dir, err)
	}
	defer unlock()
	return d.updateLocked(fn)
}

func (d *Directory) updateLocked(fn func(*ports.HierarchyStates) error) error {
	doc, _, err := readStateDoc(d.dir)
	if err != nil {
		return errs.Wrap(errs.Invalid, CodeStateFileRejected, "the state file does not read", err)
	}
	installed, _, err := d.scan(doc)
	if err != nil {
		return err
	}
	st := &ports.HierarchyStates{}
	for _, in := range installed {
		st.Intermediates = append(st.Intermediates, in.Record)
	}
	for _, h := range doc.History {
		st.History = append(st.History, ports.StateChange{At: h.At, ID: h.ID, From: h.From, To: h.To, Share: h.Share, Note: h.Note})
	}
	before := len(st.Intermediates)
	if err := fn(st); err != nil {
		return err
	}
	if len(st.Intermediates) != before {
		return errs.Internalf("casigner: a state update added or removed intermediates")
	}
	next := stateDoc{Format: stateFormat}
	members := make([]chainMember, 0, len(installed))
	for i, r := range st.Intermediates {
		if r.ID != installed[i].ID {
			return errs.Internalf("casigner: a state update reordered intermediates")
		}
		if _, err := authority.ParseState(r.State); err != nil {
			return err
		}
		next.Intermediates = append(next.Intermediates, fromRecord(r))
		if installed[i].Cert != nil {
			members = append(members, chainMember{id: r.ID, cert: installed[i].Cert, state: authority.State(r.State)})
		}
	}
	for _, h := range st.History {
		next.History = append(next.History, historyEntry{At: h.At.UTC(), ID: h.ID, From: h.From, To: h.To, Share: h.Share, Note: h.Note})
	}
	if err := writeStateDoc(d.dir, next); err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	// state.json now speaks for every intermediate: the legacy files would only mislead a reader.
	for _, in := range installed {
		_ = os.Remove(d.path(intermediatesDir, in.ID, legacyStateFile))
	}
	root, err := d.readRoot()
	if err != nil {
		return err
	}
	if root != nil {
		if err := publishChain(d.dir, root, members); err != nil {
			return fmt.Errorf("casigner: %w", err)
		}
	}
	return nil
}

// SaveCSR writes intermediates/<id>/csr.pem (see ports.PKIDirectory).
func (d *Directory) SaveCSR(_ context.Context, id string, csrPEM []byte) (string, error) {
	if !validRef(id) {
		return "", errs.Internalf("casigner: intermediate id %q", id)
	}
	p := d.path(intermediatesDir, id, "csr.pem")
	if err := writeFileAtomic(p, csrPEM, certMode); err != nil {
		return "", fmt.Errorf("casigner: %w", err)
	}
	return p, nil
}

// Install installs an intermediate certificate (see ports.PKIDirectory). Under the directory lock:
// the root is written when none is installed, the files about to change are copied to
// backups/<stamp>-<id>/, the certificate is written, then state.json (staged for a new
// intermediate) and the chain.
func (d *Directory) Install(_ context.Context, req ports.InstallRequest) (ports.InstallResult, error) {
	if err := d.mustExist(); err != nil {
		return ports.InstallResult{}, err
	}
	if !validRef(req.ID) || authority.IntermediateID(req.Intermediate) != req.ID {
		return ports.InstallResult{}, errs.Internalf("casigner: install of %q with a certificate for %s", req.ID, authority.IntermediateID(req.Intermediate))
	}
	unlock, err := lockDir(d.dir)
	if err != nil {
		return ports.InstallResult{}, fmt.Errorf("casigner: lock %s: %w", d.dir, err)
	}
	defer unlock()

	res := ports.InstallResult{CertLocation: d.path(intermediatesDir, req.ID, "cert.pem")}
	root, err := d.readRoot()
	if err != nil {
		return ports.InstallResult{}, err
	}
	if root != nil && !root.Equal(req.Root) {
		return ports.InstallResult{}, errs.E(errs.Conflict, CodeRootMismatch, "the installed root.pem is another root")
	}
	if ok, err := exists(d.path(intermediatesDir, req.ID, "key.pem")); err != nil {
		return ports.InstallResult{}, fmt.Errorf("casigner: %w", err)
	} else if !ok {
		return ports.InstallResult{}, errs.E(errs.Conflict, CodeKeyMissing, "no key for intermediate "+req.ID+" in "+d.dir)
	}
	var old *x509.Certificate
	if certs, err := readCerts(res.CertLocation); err == nil {
		old = certs[0]
	} else if !errors.Is(err, os.ErrNotExist) && !req.Force {
		return ports.InstallResult{}, errs.Wrap(errs.Conflict, CodeAlreadyInstalled, "the installed certificate of "+req.ID+" does not read; use --force to replace it", err)
	}
	doc, _, err := readStateDoc(d.dir)
	if err != nil {
		return ports.InstallResult{}, errs.Wrap(errs.Invalid, CodeStateFileRejected, "the state file does not read", err)
	}
	if old != nil && old.Equal(req.Intermediate) {
		res.AlreadyInstalled = true
	} else {
		if old != nil && !req.Force {
			return ports.InstallResult{}, errs.E(errs.Conflict, CodeAlreadyInstalled, "intermediate "+req.ID+" already has another certificate; use --force")
		}
		if res.BackupLocation, err = d.backup(req.ID); err != nil {
			return ports.InstallResult{}, err
		}
		if err := writeFileAtomic(res.CertLocation, encodeCerts(req.Intermediate), certMode); err != nil {
			return ports.InstallResult{}, fmt.Errorf("casigner: %w", err)
		}
	}
	if root == nil {
		if err := writeFileAtomic(d.path(rootCertFile), encodeCerts(req.Root), certMode); err != nil {
			return ports.InstallResult{}, fmt.Errorf("casigner: %w", err)
		}
		res.RootInstalled = true
	}
	_, known := doc.entry(req.ID)
	err = d.updateLocked(func(st *ports.HierarchyStates) error {
		i := slices.IndexFunc(st.Intermediates, func(r ports.IntermediateRecord) bool { return r.ID == req.ID })
		if i < 0 {
			return errs.Internalf("casigner: the installed intermediate %s is not in the directory", req.ID)
		}
		res.State = st.Intermediates[i].State
		if known && res.AlreadyInstalled {
			return nil
		}
		if !known {
			st.Intermediates[i].Since = d.clock.Now().UTC()
		}
		st.History = append(st.History, ports.StateChange{At: d.clock.Now().UTC(), ID: req.ID, To: st.Intermediates[i].State, Note: req.Note})
		return nil
	})
	if err != nil {
		return ports.InstallResult{}, err
	}
	return res, nil
}

// backup copies state.json, ca-chain.pem, root.pem and the intermediate's cert.pem (those that
// exist) to backups/<stamp>-<id>/, and returns that directory ("" when there was nothing to keep).
// Restoring is copying them back; the runbook shows how.
func (d *Directory) backup(id string) (string, error) {
	files := []string{stateFileName, chainFile, rootCertFile, filepath.Join(intermediatesDir, id, "cert.pem")}
	var have []string
	for _, f := range files {
		if ok, err := exists(d.path(f)); err != nil {
			return "", fmt.Errorf("casigner: %w", err)
		} else if ok {
			have = append(have, f)
		}
	}
	if len(have) == 0 {
		return "", nil
	}
	if err := os.MkdirAll(d.path(backupsDir), dirMode); err != nil {
		return "", fmt.Errorf("casigner: %w", err)
	}
	stamp := d.clock.Now().UTC().Format("20060102T150405Z")
	dst, err := os.MkdirTemp(d.path(backupsDir), stamp+"-"+id+"-")
	if err != nil {
		return "", fmt.Errorf("casigner: %w", err)
	}
	if err := os.Chmod(dst, dirMode); err != nil {
		return "", fmt.Errorf("casigner: %w", err)
	}
	for _, f := range have {
		data, err := os.ReadFile(d.path(f))
		if err != nil {
			return "", fmt.Errorf("casigner: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(dst, filepath.Base(f)), data, certMode); err != nil {
			return "", fmt.Errorf("casigner: %w", err)
		}
	}
	return dst, nil
}
