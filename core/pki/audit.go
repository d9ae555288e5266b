package pki

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Audit runs the custody checks (see ports.PKI): the file checks of the PKI directory (no root key
// anywhere, no symlinks, modes, key owners), then the hierarchy's integrity: the root certificate,
// each intermediate chained to it, its key present and matching, trusted intermediates within their
// validity, at most one active, and the published chain what the states say it must be.
func (a *Admin) Audit(ctx context.Context) (ports.AuditReport, error) {
	if a.d.Dir == nil || a.d.Keys == nil {
		return ports.AuditReport{}, missing("the PKI directory")
	}
	findings, files, err := a.d.Dir.AuditFiles(ctx)
	if err != nil {
		return ports.AuditReport{}, err
	}
	report := ports.AuditReport{Findings: findings, Files: files}
	add := func(code, loc, msg string) {
		report.Findings = append(report.Findings, ports.AuditFinding{Code: code, Location: loc, Message: msg})
	}
	snap, err := a.d.Dir.Snapshot(ctx)
	if err != nil {
		return ports.AuditReport{}, err
	}
	report.Intermediates = len(snap.Intermediates)
	now := a.d.Clock.Now()
	root := snap.Root
	switch {
	case root == nil:
		add("ROOT_CERT_MISSING", "root.pem", "no root certificate is installed (bundle install installs it)")
	case !root.IsCA || root.CheckSignatureFrom(root) != nil:
		add("ROOT_CERT_INVALID", "root.pem", "the root certificate is not a self-signed CA")
		root = nil
	case now.After(root.NotAfter):
		add("ROOT_EXPIRED", "root.pem", "the root certificate expired on "+root.NotAfter.UTC().Format(time.RFC3339))
	}
	var trusted []authority.Intermediate
	active := 0
	for _, in := range snap.Intermediates {
		loc := "intermediate " + in.ID
		if in.Cert == nil {
			add("CERT_UNREADABLE", loc, in.Problem)
			continue
		}
		st, err := authority.ParseState(in.Record.State)
		if err != nil {
			add("STATE_INVALID", loc, "unknown state "+in.Record.State)
			continue
		}
		if authority.IntermediateID(in.Cert) != in.ID {
			add("CHAIN_BROKEN", loc, "the certificate is for "+authority.IntermediateID(in.Cert)+", not "+in.ID)
		}
		if root != nil {
			if err := authority.CheckIntermediate(in.Cert, root); err != nil {
				add("CHAIN_BROKEN", loc, errMessage(err))
			}
		}
		if st == authority.StateRetired {
			continue // trusted no more: its key may already be destroyed
		}
		if st == authority.StateActive {
			active++
		}
		if now.Before(in.Cert.NotBefore) || now.After(in.Cert.NotAfter) {
			add("INTERMEDIATE_EXPIRED", loc, "outside its validity ("+in.Cert.NotBefore.UTC().Format(time.RFC3339)+" to "+in.Cert.NotAfter.UTC().Format(time.RFC3339)+") while "+string(st))
		}
		key, err := a.d.Keys.Key(ctx, in.ID)
		switch {
		case errs.KindOf(err) == errs.NotFound:
			add("KEY_MISSING", loc, "no key for a "+string(st)+" intermediate")
		case err != nil:
			add("KEY_UNREADABLE", loc, errMessage(err))
		case !samePublicKey(key.Public(), in.Cert.PublicKey):
			add("KEY_MISMATCH", loc, "the key does not match the certificate")
		}
		if in2, err := authority.NewIntermediate(in.ID, in.Cert, string(st)); err == nil {
			trusted = append(trusted, in2)
		}
	}
	if active > 1 {
		add("HIERARCHY_INVALID", "state", "more than one intermediate is active")
	}
	if root != nil {
		slices.SortStableFunc(trusted, func(x, y authority.Intermediate) int {
			if d := chainOrder(x.State()) - chainOrder(y.State()); d != 0 {
				return d
			}
			return strings.Compare(x.ID(), y.ID())
		})
		var want []byte
		for _, in := range trusted {
			want = append(want, certPEM(in.Certificate())...)
		}
		want = append(want, certPEM(root)...)
		switch {
		case snap.ChainPEM == nil:
			add("CHAIN_FILE_MISSING", "ca-chain.pem", "the published chain is missing")
		case !bytes.Equal(snap.ChainPEM, want):
			add("CHAIN_FILE_STALE", "ca-chain.pem", "the published chain is not the trusted intermediates and the root")
		}
	}
	return report, nil
}
