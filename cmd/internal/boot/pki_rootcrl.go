package boot

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Files of `samplero pki root-crl`, next to the root in its directory (0600, like the others).
const (
	// rootCRLNumberFile holds the last cRLNumber the root signed, in decimal. The number must grow
	// with every list (RFC 5280 5.2.3) and the offline machine's clock cannot be trusted to, so it
	// is a counter kept with the root rather than a time.
	rootCRLNumberFile = "crl-number"
	// rootRevokedFile lists the intermediate certificates the root revoked, one per line. A
	// revocation is for good: every later list names them again with their first revocation time,
	// so a yearly re-signing cannot drop one because the operator did not type its id again.
	rootRevokedFile = "crl-revoked.log"
)

// Codes of root-crl.
const (
	CodeRootCRLUnknownIntermediate = "ROOT_CRL_UNKNOWN_INTERMEDIATE"
	CodeRootCRLState               = "ROOT_CRL_STATE_INVALID"
)

// rootCRLDeps are what pkiRootCRL needs from outside; PKI gives it the real ones, tests a fake clock.
type rootCRLDeps struct {
	vault ports.RootVault
	clock ports.Clock
	rand  io.Reader
}

// systemRootCRLDeps are production's: the root vault as init-root wrote it, the wall clock and
// crypto/rand.
func systemRootCRLDeps() rootCRLDeps {
	return rootCRLDeps{vault: pkifiles.NewRootVault(pkifiles.VaultOptions{}), clock: systemClock{}, rand: rand.Reader}
}

// issuedCert is a line of the root's issued.log (or of crl-revoked.log): one intermediate
// certificate the root signed.
type issuedCert struct {
	at       time.Time // issued.log: signing time; crl-revoked.log: revocation time
	serial   string    // canonical upper-case hex
	id       string
	notAfter time.Time
}

// pkiRootCRL runs `samplero pki root-crl`: it opens the root vault with the passphrase, adds the
// intermediates named by --revoke-intermediate to the root's revocations, signs the list with the
// next CRL number and writes it in PEM.
func pkiRootCRL(ctx context.Context, c config.PKI, d rootCRLDeps, stdin io.Reader, stdout, stderr io.Writer) error {
	pass, err := readPassphrase(c.PassphraseFile, stdin, stderr, false)
	if err != nil {
		return err
	}
	defer clear(pass)
	// Opening the key first: a wrong passphrase changes nothing in the root directory.
	root, key, err := d.vault.Open(ctx, c.RootDir, pass)
	if err != nil {
		return err
	}
	now := d.clock.Now().UTC()

	issued, err := readCertLog(filepath.Join(c.RootDir, pkifiles.IssuedLogFile), false)
	if err != nil {
		return err
	}
	revoked, err := readCertLog(filepath.Join(c.RootDir, rootRevokedFile), true)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range revoked {
		known[r.serial] = true
	}
	var added []issuedCert
	for _, id := range c.RootCRL.RevokeIntermediates {
		found := false
		for _, in := range issued {
			if in.id != id {
				continue
			}
			// Every certificate of that id: the root may have signed the same key more than once.
			found = true
			if !known[in.serial] {
				known[in.serial] = true
				added = append(added, issuedCert{at: now, serial: in.serial, id: in.id, notAfter: in.notAfter})
			}
		}
		if !found {
			return errs.E(errs.NotFound, CodeRootCRLUnknownIntermediate,
				fmt.Sprintf("%s is not in %s: this root never signed that intermediate", id, pkifiles.IssuedLogFile))
		}
	}
	all := append(append([]issuedCert(nil), revoked...), added...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })

	last, err := readCRLNumber(filepath.Join(c.RootDir, rootCRLNumberFile))
	if err != nil {
		return err
	}
	number := new(big.Int).Add(last, big.NewInt(1))
	entries := make([]ports.RevokedCertificate, 0, len(all))
	for _, r := range all {
		entries = append(entries, ports.RevokedCertificate{Serial: r.serial, RevokedAt: r.at, NotAfter: r.notAfter})
	}
	crl, err := pki.SignCRL(d.rand, root, key, entries, number, now, c.Validity)
	if err != nil {
		return err
	}
	// A list that does not verify must never reach an edge: every device would be locked out.
	parsed, err := x509.ParseRevocationList(crl.DER)
	if err != nil {
		return errs.Internalf("root-crl: the signed list does not parse: %v", err)
	}
	if err := parsed.CheckSignatureFrom(root); err != nil {
		return errs.Internalf("root-crl: the signed list does not verify with the root: %v", err)
	}

	// The number and the revocations are recorded before the list is written: a number is never
	// handed out twice, even when writing --out fails (a gap in the numbers is harmless).
	if err := replaceFile(filepath.Join(c.RootDir, rootCRLNumberFile), []byte(number.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("recording the CRL number: %w", err)
	}
	if len(added) > 0 {
		var b strings.Builder
		for _, r := range all {
			fmt.Fprintf(&b, "%s serial=%s id=%s not_after=%s\n", r.at.Format(time.RFC3339), r.serial, r.id, r.notAfter.Format(time.RFC3339))
		}
		if err := replaceFile(filepath.Join(c.RootDir, rootRevokedFile), []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("recording the revocations: %w", err)
		}
	}
	if err := replaceFile(c.Out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.DER}), 0o644); err != nil {
		return fmt.Errorf("writing the list: %w", err)
	}

	fmt.Fprintf(stdout, "Root revocation list written: %s\n", c.Out)
	w := table(stdout)
	fmt.Fprintf(w, "  issuer\t%s\n", root.Subject)
	fmt.Fprintf(w, "  CRL number\t%s\n", crl.Number)
	fmt.Fprintf(w, "  this update\t%s\n", stamp(crl.ThisUpdate))
	fmt.Fprintf(w, "  next update\t%s\n", stamp(crl.NextUpdate))
	if len(all) == 0 {
		fmt.Fprintf(w, "  revoked intermediates\tnone\n")
	}
	for _, r := range all {
		fmt.Fprintf(w, "  revoked\t%s serial %s since %s\n", r.id, r.serial, stamp(r.at))
	}
	w.Flush()
	if crl.NextUpdate.After(root.NotAfter) {
		fmt.Fprintf(stdout, "Note: the list outlives the root (%s).\n", stamp(root.NotAfter))
	}
	fmt.Fprintf(stdout, "Copy it to each nginx edge as root.crl.pem (ROOT_CRL of deploy/nginx/refresh-crl.sh) and sign the next one before %s.\n", stamp(crl.NextUpdate))
	return nil
}

// readCertLog reads issued.log or crl-revoked.log: "<RFC 3339 time> serial=… id=… … not_after=…".
// A missing file is empty when optional.
func readCertLog(path string, optional bool) ([]issuedCert, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, CodeRootCRLState, "cannot read "+path, err)
	}
	defer f.Close()
	var out []issuedCert
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		bad := func(why string) error {
			return errs.E(errs.Invalid, CodeRootCRLState, fmt.Sprintf("%s line %d: %s", path, n, why))
		}
		// The subject, last and quoted in issued.log, may hold blanks: only the fields before it
		// are split.
		fields := strings.SplitN(line, " ", 6)
		var c issuedCert
		if c.at, err = time.Parse(time.RFC3339, fields[0]); err != nil {
			return nil, bad("no time first")
		}
		for _, kv := range fields[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "serial":
				if c.serial, err = authority.ParseSerial(v); err != nil {
					return nil, bad("the serial is not hexadecimal")
				}
			case "id":
				c.id = v
			case "not_after":
				if c.notAfter, err = time.Parse(time.RFC3339, v); err != nil {
					return nil, bad("not_after is not an RFC 3339 time")
				}
			}
		}
		if c.serial == "" || c.id == "" {
			return nil, bad("no serial or id")
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, errs.Wrap(errs.Invalid, CodeRootCRLState, "cannot read "+path, err)
	}
	return out, nil
}

// readCRLNumber reads the last CRL number; 0 when the root never signed a list. A file that does
// not hold a number stops the command: starting again from 1 would make the numbers go back.
func readCRLNumber(path string) (*big.Int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return new(big.Int), nil
	}
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, CodeRootCRLState, "cannot read "+path, err)
	}
	n, ok := new(big.Int).SetString(strings.TrimSpace(string(data)), 10)
	if !ok || n.Sign() < 0 {
		return nil, errs.E(errs.Invalid, CodeRootCRLState, path+" does not hold a CRL number: restore it (the next list must have a greater number than the last one an edge saw)")
	}
	return n, nil
}

// replaceFile writes path atomically: a temporary file beside it, synced, then renamed over it.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
