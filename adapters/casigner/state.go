package casigner

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// stateFile is PKI_DIR/state.json: every intermediate's state and canary share, and the history of
// changes. It is the one file a rollout step writes, always whole and atomically (a temporary file
// renamed over it), so a reader sees the old hierarchy or the new one. A running server notices a
// new state.json by its stamp (see LocalCA) and reloads.
const stateFileName = "state.json"

// legacyStateFile is the per-intermediate state file of PKI directories made before state.json;
// it is read for an intermediate state.json does not mention, and removed when state.json is
// next written.
const legacyStateFile = "state"

// maxHistory bounds the history kept in state.json; older entries are dropped first.
const maxHistory = 1000

const stateFormat = 1

type stateDoc struct {
	Format        int            `json:"format"`
	Intermediates []stateEntry   `json:"intermediates"`
	History       []historyEntry `json:"history,omitempty"`
}

type stateEntry struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Share    int       `json:"share,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Replaces string    `json:"replaces,omitempty"`
}

type historyEntry struct {
	At    time.Time `json:"at"`
	ID    string    `json:"id"`
	From  string    `json:"from,omitempty"`
	To    string    `json:"to"`
	Share int       `json:"share,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// readStateDoc reads state.json; a missing file is an empty document (ok false).
func readStateDoc(dir string) (stateDoc, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return stateDoc{Format: stateFormat}, false, nil
	}
	if err != nil {
		return stateDoc{}, false, err
	}
	var doc stateDoc
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return stateDoc{}, false, fmt.Errorf("%s: %w", stateFileName, err)
	}
	if doc.Format != stateFormat {
		return stateDoc{}, false, fmt.Errorf("%s: unknown format %d", stateFileName, doc.Format)
	}
	seen := map[string]bool{}
	for _, e := range doc.Intermediates {
		if seen[e.ID] {
			return stateDoc{}, false, fmt.Errorf("%s: intermediate %s listed twice", stateFileName, e.ID)
		}
		seen[e.ID] = true
		if _, err := authority.ParseState(e.State); err != nil {
			return stateDoc{}, false, fmt.Errorf("%s: intermediate %s: state %q: %w", stateFileName, e.ID, e.State, err)
		}
		if e.Share < 0 || e.Share > authority.MaxShare {
			return stateDoc{}, false, fmt.Errorf("%s: intermediate %s: share %d", stateFileName, e.ID, e.Share)
		}
	}
	return doc, true, nil
}

func writeStateDoc(dir string, doc stateDoc) error {
	doc.Format = stateFormat
	slices.SortFunc(doc.Intermediates, func(a, b stateEntry) int { return strings.Compare(a.ID, b.ID) })
	if len(doc.History) > maxHistory {
		doc.History = doc.History[len(doc.History)-maxHistory:]
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, stateFileName), append(data, '\n'), certMode)
}

func (d stateDoc) entry(id string) (stateEntry, bool) {
	i := slices.IndexFunc(d.Intermediates, func(e stateEntry) bool { return e.ID == id })
	if i < 0 {
		return stateEntry{}, false
	}
	return d.Intermediates[i], true
}

// stateOf is the state of intermediate id: state.json's entry, else the legacy state file in its
// directory, else staged (installed, published, not issuing: the safe default for a certificate
// that appeared without a state, e.g. a crash between writing it and writing state.json).
func stateOf(doc stateDoc, interDir, id string) (stateEntry, error) {
	if e, ok := doc.entry(id); ok {
		return e, nil
	}
	raw, err := os.ReadFile(filepath.Join(interDir, legacyStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return stateEntry{ID: id, State: string(authority.StateStaged)}, nil
	}
	if err != nil {
		return stateEntry{}, err
	}
	st, err := authority.ParseState(strings.TrimSpace(string(raw)))
	if err != nil {
		return stateEntry{}, fmt.Errorf("state %q: %w", strings.TrimSpace(string(raw)), err)
	}
	return stateEntry{ID: id, State: string(st)}, nil
}

func toRecord(e stateEntry) ports.IntermediateRecord {
	return ports.IntermediateRecord{ID: e.ID, State: e.State, Share: e.Share, Since: e.Since, Replaces: e.Replaces}
}

func fromRecord(r ports.IntermediateRecord) stateEntry {
	return stateEntry{ID: r.ID, State: r.State, Share: r.Share, Since: r.Since.UTC(), Replaces: r.Replaces}
}

// chainMember is what the published chain is made of.
type chainMember struct {
	id    string
	cert  *x509.Certificate
	state authority.State
}

// trustedInChainOrder is the trusted members ordered by authority.ChainOrder, then id.
func trustedInChainOrder(members []chainMember) []chainMember {
	ms := slices.DeleteFunc(slices.Clone(members), func(m chainMember) bool { return !m.state.Trusted() })
	slices.SortStableFunc(ms, func(a, b chainMember) int {
		if d := authority.ChainOrder(a.state) - authority.ChainOrder(b.state); d != 0 {
			return d
		}
		return strings.Compare(a.id, b.id)
	})
	return ms
}

// chainPEM is every trusted intermediate in chain order, then the root: the same bytes as the PKI
// service's CAChainPEM for the same hierarchy.
func chainPEM(root *x509.Certificate, members []chainMember) []byte {
	var certs []*x509.Certificate
	for _, m := range trustedInChainOrder(members) {
		certs = append(certs, m.cert)
	}
	return encodeCerts(append(certs, root)...)
}

// publishChain writes ca-chain.pem when it differs from what it should be.
func publishChain(dir string, root *x509.Certificate, members []chainMember) error {
	chain := chainPEM(root, members)
	if old, err := os.ReadFile(filepath.Join(dir, chainFile)); err == nil && bytes.Equal(old, chain) {
		return nil
	}
	return writeFileAtomic(filepath.Join(dir, chainFile), chain, certMode)
}
