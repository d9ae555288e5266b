package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/ports"
)

// ErrAuditFindings is returned by `samplero pki audit` when it found anything: the process exits 1
// after the findings are printed.
var ErrAuditFindings = errors.New("the PKI audit found custody problems")

// PKI runs `samplero pki …`: it builds the PKI administration (core/pki.Admin behind ports.PKI)
// with the file adapters the action needs, calls it, and prints what it did.
func PKI(ctx context.Context, cfg config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	c := cfg.PKI
	switch c.Action {
	case "rotate-signing-key", "endorse-signing-key", "install-endorsement":
		return pkiKeys(ctx, cfg, stdin, stdout, stderr)
	case "rollout start", "rollout status", "rollout approve", "rollout abort", "rollout dev-sign-intermediate":
		return pkiRollout(ctx, cfg, stdout)
	case "root-crl":
		return pkiRootCRL(ctx, c, systemRootCRLDeps(), stdin, stdout, stderr)
	}
	clock := systemClock{}
	deps := pki.AdminDeps{
		Roots:   pkifiles.NewRootVault(pkifiles.VaultOptions{Clock: clock}),
		Bundles: pkifiles.NewBundles(clock),
		Clock:   clock,
	}
	if c.PKIDir != "" {
		deps.Dir = casigner.NewDirectory(c.PKIDir, clock)
		deps.Keys = casigner.NewFileKeyStore(c.PKIDir)
	}
	var port ports.PKI = pki.NewAdmin(deps)

	switch c.Action {
	case "init-root":
		return pkiInitRoot(ctx, port, c, stdin, stdout, stderr)
	case "sign-intermediate":
		return pkiSign(ctx, port, c, stdin, stdout, stderr)
	case "bundle build":
		return pkiBundleBuild(ctx, port, c, stdout)
	case "bundle verify":
		info, err := port.VerifyBundle(ctx, ports.VerifyBundleRequest{Path: c.Bundle, RootFingerprint: c.RootFingerprint})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Bundle %s verified: no private key, no symlink, every sum right, the chain verifies.\n", c.Bundle)
		printBundle(stdout, info)
		return nil
	case "bundle install":
		return pkiBundleInstall(ctx, port, c, stdout)
	case "new-intermediate":
		return pkiNewIntermediate(ctx, port, c, stdout)
	case "audit":
		return pkiAudit(ctx, port, c, stdout)
	case "status":
		return pkiStatus(ctx, cfg, deps, stdout)
	case "state set":
		return pkiStateSet(ctx, port, c, stdout)
	}
	return fmt.Errorf("samplero pki %s is not an action", c.Action)
}

func pkiInitRoot(ctx context.Context, port ports.PKI, c config.PKI, stdin io.Reader, stdout, stderr io.Writer) error {
	pass, err := readPassphrase(c.PassphraseFile, stdin, stderr, true)
	if err != nil {
		return err
	}
	defer clear(pass)
	info, err := port.InitRoot(ctx, ports.InitRootRequest{
		Dir: c.RootDir, Passphrase: pass, CommonName: c.CommonName, Organization: c.Organization, Validity: c.Validity,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Root CA created in %s\n", c.RootDir)
	w := table(stdout)
	fmt.Fprintf(w, "  certificate\t%s\n", info.CertLocation)
	fmt.Fprintf(w, "  key\t%s (ECDSA P-384, encrypted: JWE PBES2-HS512+A256KW)\n", info.KeyLocation)
	fmt.Fprintf(w, "  subject\t%s\n", info.Subject)
	fmt.Fprintf(w, "  valid\t%s to %s\n", stamp(info.NotBefore), stamp(info.NotAfter))
	fmt.Fprintf(w, "  SHA-256 fingerprint\t%s\n", info.FingerprintSHA256)
	w.Flush()
	fmt.Fprintln(stdout, "Write the fingerprint down apart from this machine: bundle verify and bundle install check it with --root-fingerprint.")
	return nil
}

func pkiSign(ctx context.Context, port ports.PKI, c config.PKI, stdin io.Reader, stdout, stderr io.Writer) error {
	csr, err := os.ReadFile(c.CSR)
	if err != nil {
		return fmt.Errorf("reading the CSR: %w", err)
	}
	if _, err := os.Lstat(c.Out); err == nil {
		return fmt.Errorf("%s exists: choose another --out", c.Out)
	}
	pass, err := readPassphrase(c.PassphraseFile, stdin, stderr, false)
	if err != nil {
		return err
	}
	defer clear(pass)
	signed, err := port.SignIntermediate(ctx, ports.SignIntermediateRequest{
		RootDir: c.RootDir, Passphrase: pass, CSRPEM: csr, Validity: c.Validity,
		Constraints: ports.NameConstraints{PermittedDNS: c.PermittedDNS, ExcludedDNS: c.ExcludedDNS, PermittedIPs: c.PermittedIPs, ExcludedIPs: c.ExcludedIPs},
	})
	if err != nil {
		return err
	}
	if err := writeNewFile(c.Out, signed.CertPEM, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Intermediate %s signed: %s\n", signed.ID, c.Out)
	w := table(stdout)
	fmt.Fprintf(w, "  subject\t%s\n", signed.Subject)
	fmt.Fprintf(w, "  valid\t%s to %s\n", stamp(signed.NotBefore), stamp(signed.NotAfter))
	fmt.Fprintf(w, "  SHA-256 fingerprint\t%s\n", signed.FingerprintSHA256)
	if len(c.PermittedDNS)+len(c.ExcludedDNS)+len(c.PermittedIPs)+len(c.ExcludedIPs) > 0 {
		fmt.Fprintf(w, "  name constraints\tpermitted DNS %v, excluded DNS %v, permitted IP %v, excluded IP %v\n", c.PermittedDNS, c.ExcludedDNS, c.PermittedIPs, c.ExcludedIPs)
	}
	w.Flush()
	fmt.Fprintf(stdout, "Next: samplero pki bundle build --cert %s --root-cert %s/root.pem --out %s.tar.gz\n", c.Out, c.RootDir, signed.ID)
	return nil
}

func pkiBundleBuild(ctx context.Context, port ports.PKI, c config.PKI, stdout io.Writer) error {
	inter, err := os.ReadFile(c.Cert)
	if err != nil {
		return fmt.Errorf("reading the intermediate certificate: %w", err)
	}
	root, err := os.ReadFile(c.RootCert)
	if err != nil {
		return fmt.Errorf("reading the root certificate: %w", err)
	}
	info, err := port.BuildBundle(ctx, ports.BuildBundleRequest{IntermediatePEM: inter, RootPEM: root, Out: c.Out})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Bundle written: %s (no key in it: the intermediate's key never left the server)\n", c.Out)
	printBundle(stdout, info)
	return nil
}

func printBundle(out io.Writer, info ports.BundleInfo) {
	w := table(out)
	fmt.Fprintf(w, "  intermediate\t%s  %s\n", info.IntermediateID, info.IntermediateSubject)
	fmt.Fprintf(w, "  valid\t%s to %s\n", stamp(info.NotBefore), stamp(info.NotAfter))
	fmt.Fprintf(w, "  intermediate SHA-256 fingerprint\t%s\n", info.IntermediateFingerprint)
	fmt.Fprintf(w, "  root SHA-256 fingerprint\t%s\n", info.RootFingerprint)
	for _, f := range info.Files {
		fmt.Fprintf(w, "  sha256 %s\t%s\n", f.Name, f.SHA256)
	}
	w.Flush()
}

func pkiBundleInstall(ctx context.Context, port ports.PKI, c config.PKI, stdout io.Writer) error {
	res, err := port.InstallBundle(ctx, ports.InstallBundleRequest{Path: c.Bundle, Force: c.Force, RootFingerprint: c.RootFingerprint})
	if err != nil {
		return err
	}
	if res.AlreadyInstalled {
		fmt.Fprintf(stdout, "Intermediate %s is already installed with this certificate (state %s): nothing changed.\n", res.ID, res.State)
		return nil
	}
	fmt.Fprintf(stdout, "Intermediate %s installed in %s, state %s.\n", res.ID, c.PKIDir, res.State)
	w := table(stdout)
	fmt.Fprintf(w, "  certificate\t%s\n", res.CertLocation)
	if res.RootInstalled {
		fmt.Fprintf(w, "  root\tinstalled (%s)\n", res.Bundle.RootFingerprint)
	}
	if res.BackupLocation != "" {
		fmt.Fprintf(w, "  previous state kept in\t%s\n", res.BackupLocation)
	}
	w.Flush()
	printBundle(stdout, res.Bundle)
	fmt.Fprintln(stdout, "A staged intermediate is published in ca_chain and trusted, and issues nothing yet.")
	fmt.Fprintf(stdout, "To undo: samplero pki state set --pki-dir %s --id %s --state retired\n", c.PKIDir, res.ID)
	return nil
}

func pkiNewIntermediate(ctx context.Context, port ports.PKI, c config.PKI, stdout io.Writer) error {
	p, err := port.NewIntermediate(ctx, ports.NewIntermediateRequest{CommonName: c.CommonName, Organization: c.Organization})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "New intermediate key %s in %s (ECDSA P-256, mode 0600).\n", p.ID, c.PKIDir)
	fmt.Fprintf(stdout, "CSR: %s\n", p.CSRLocation)
	fmt.Fprintln(stdout, "Carry the CSR (never the key) to the offline machine and run samplero pki sign-intermediate there.")
	return nil
}

func pkiAudit(ctx context.Context, port ports.PKI, c config.PKI, stdout io.Writer) error {
	r, err := port.Audit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Audit of %s: %d files, %d intermediates.\n", c.PKIDir, r.Files, r.Intermediates)
	if len(r.Findings) == 0 {
		fmt.Fprintln(stdout, "OK: no root key, modes and owners right, every intermediate chains to the root with its key, ca-chain.pem current.")
		return nil
	}
	w := table(stdout)
	for _, f := range r.Findings {
		fmt.Fprintf(w, "FINDING %s\t%s\t%s\n", f.Code, f.Location, f.Message)
	}
	w.Flush()
	return fmt.Errorf("%w: %d finding(s)", ErrAuditFindings, len(r.Findings))
}

func pkiStatus(ctx context.Context, cfg config.Config, deps pki.AdminDeps, stdout io.Writer) error {
	countsNote := "n/a (no database given: --database, SAMPLERO_DATABASE_URL or --data)"
	if cfg.DatabaseURL.Set() {
		store, err := OpenStore(ctx, cfg, false)
		if err != nil {
			countsNote = "n/a (" + err.Error() + ")"
		} else {
			defer store.Close()
			deps.Counter = certCounter{db: store.DB()}
		}
	}
	st, err := pki.NewAdmin(deps).Status(ctx)
	if err != nil {
		return err
	}
	if st.CountsError != "" {
		countsNote = "n/a (" + st.CountsError + ")"
	}
	fmt.Fprintf(stdout, "PKI directory %s\n", cfg.PKI.PKIDir)
	if st.Root != nil {
		fmt.Fprintf(stdout, "Root  %s  valid until %s  SHA-256 %s\n", st.Root.Subject, stamp(st.Root.NotAfter), st.Root.FingerprintSHA256)
	} else {
		fmt.Fprintln(stdout, "Root  none installed yet (bundle install installs it)")
	}
	w := table(stdout)
	fmt.Fprintln(w, "ID\tSTATE\tSHARE\tSINCE\tNOT BEFORE\tNOT AFTER\tVALID CERTS\tSUBJECT")
	for _, in := range st.Intermediates {
		share := "-"
		if in.State == "canary" {
			share = fmt.Sprintf("%d%%", in.Share)
		}
		certs := "n/a"
		if st.CountsAvailable {
			certs = fmt.Sprint(in.IssuedValid)
		}
		subject := in.Subject
		if in.Problem != "" {
			subject = "PROBLEM: " + in.Problem
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.State, share, stamp(in.Since), stamp(in.NotBefore), stamp(in.NotAfter), certs, subject)
	}
	w.Flush()
	if len(st.Intermediates) == 0 {
		fmt.Fprintln(stdout, "(no intermediate installed)")
	}
	if !st.CountsAvailable {
		fmt.Fprintln(stdout, "Valid certificates: "+countsNote)
	}
	if len(st.Pending) > 0 {
		fmt.Fprintln(stdout, "Keys waiting for a certificate:")
		for _, p := range st.Pending {
			fmt.Fprintf(stdout, "  %s  created %s  CSR %s\n", p.ID, stamp(p.CreatedAt), p.CSRLocation)
		}
	}
	return nil
}

func pkiStateSet(ctx context.Context, port ports.PKI, c config.PKI, stdout io.Writer) error {
	res, err := port.SetIntermediateState(ctx, ports.SetIntermediateStateRequest{ID: c.ID, State: c.State, Share: c.Share})
	if err != nil {
		return err
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(stdout, "Intermediate %s is already %s: nothing changed.\n", c.ID, c.State)
		return nil
	}
	for _, ch := range res.Changes {
		line := fmt.Sprintf("%s: %s -> %s", ch.ID, ch.From, ch.To)
		if ch.To == "canary" {
			line += fmt.Sprintf(" (%d%% of new device certificates)", ch.Share)
		}
		if ch.Note != "" {
			line += " (" + ch.Note + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintln(stdout, "Written to state.json; a running server applies it within a second.")
	return nil
}

// certCounter counts valid device certificates per intermediate straight from the certificates
// table. (It belongs in pgstore's CertificateRepo; it lives here until that port grows a count.)
type certCounter struct{ db bun.IDB }

func (c certCounter) CountValidByIssuer(ctx context.Context, now time.Time) (map[string]int, error) {
	var rows []struct {
		IssuerID string `bun:"issuer_id"`
		N        int    `bun:"n"`
	}
	t := now.UTC().Truncate(time.Microsecond)
	err := c.db.NewSelect().TableExpr("certificates").ColumnExpr("issuer_id, COUNT(*) AS n").
		Where("status <> ?", "revoked").
		Where("not_after > ?", t).
		Where("(status = ? OR overlap_until > ?)", "current", t).
		GroupExpr("issuer_id").Scan(ctx, &rows)
	if err != nil {
		// Status prints the message; the cause (a schema not migrated, a database down) is for logs.
		return nil, errs.Wrap(errs.Unavailable, errs.CodeUnavailable, "the certificates table could not be read", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.IssuerID] = r.N
	}
	return out, nil
}

var _ ports.IssuedCertificateCounter = certCounter{}

// readPassphrase reads the root passphrase: the first line of file, or of stdin. On a terminal it
// prompts on stderr without echo (twice when confirm), so the passphrase never shows on screen or
// in the shell's history.
func readPassphrase(file string, stdin io.Reader, stderr io.Writer, confirm bool) ([]byte, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		defer f.Close()
		return firstLine(f, "the passphrase file")
	}
	if tty, ok := stdin.(*os.File); ok && isTerminal(tty) {
		fmt.Fprint(stderr, "Root passphrase: ")
		p, err := readNoEcho(tty)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		if confirm {
			fmt.Fprint(stderr, "Again: ")
			q, err := readNoEcho(tty)
			fmt.Fprintln(stderr)
			if err != nil {
				return nil, err
			}
			if string(p) != string(q) {
				return nil, errors.New("the passphrases differ")
			}
		}
		return p, nil
	}
	return firstLine(stdin, "stdin")
}

func firstLine(r io.Reader, what string) ([]byte, error) {
	line, err := bufio.NewReaderSize(r, 4096).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the passphrase from %s: %w", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("no passphrase on %s (give it on the first line, or use --passphrase-file)", what)
	}
	return []byte(line), nil
}

func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func table(out io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(out, 0, 4, 2, ' ', 0) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
