package config

import (
	"regexp"
	"strings"
	"time"
)

// PKIRootCRL holds the flags of `samplero pki root-crl` (the offline root's revocation list).
// The root directory, --out, --validity and --passphrase-file go to PKI's RootDir, Out, Validity
// and PassphraseFile, as for sign-intermediate.
type PKIRootCRL struct {
	// RevokeIntermediates are the intermediate ids (int_ and 16 hex digits) to add to the root's
	// list in this run. Those revoked by earlier runs stay on it without being named again.
	RevokeIntermediates []string
}

// DefaultRootCRLValidity is nextUpdate - thisUpdate of the root's list: a year, since signing it
// takes the root key out of the safe (docs/crl.md says to re-sign well before it runs out).
const DefaultRootCRLValidity = 8760 * time.Hour

var intermediateIDRE = regexp.MustCompile(`^int_[0-9a-f]{16}$`)

// pkiRootCRL parses `samplero pki root-crl --root-dir D --out F [flags]`.
func (p *parser) pkiRootCRL(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki root-crl", "--root-dir D --out root.crl.pem [--validity 8760h] [--revoke-intermediate ID …]\n\n"+
		"On the offline machine: signs the root's X.509 v2 revocation list with the root key. nginx checks a\n"+
		"list for every certificate of the chain, the root included (docs/crl.md). The list names every\n"+
		"intermediate revoked with --revoke-intermediate, in this run or an earlier one (kept in\n"+
		"D/crl-revoked.log); its CRL number is one more than the last (kept in D/crl-number). --out is\n"+
		"written in PEM, mode 0644, replacing an older list.")
	fs.StringVar(&c.RootDir, "root-dir", "", "the root directory made by init-root")
	fs.StringVar(&c.Out, "out", "", "where to write the list (PEM), e.g. root.crl.pem")
	fs.DurationVar(&c.Validity, "validity", DefaultRootCRLValidity, "how long the list is valid (nextUpdate - thisUpdate)")
	fs.Func("revoke-intermediate", "revoke this intermediate (its id, as status lists it; comma-separated or repeated)", func(v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.ToLower(strings.TrimSpace(s)); s == "" {
				continue
			}
			if !intermediateIDRE.MatchString(s) {
				return usagef("%q is not an intermediate id (int_ and 16 hex digits)", s)
			}
			c.RootCRL.RevokeIntermediates = append(c.RootCRL.RevokeIntermediates, s)
		}
		return nil
	})
	p.passphraseFlag(fs)
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, c.Action); err != nil {
		return err
	}
	if c.Validity <= 0 {
		return usagef("--validity must be positive")
	}
	return required(c.Action, "--root-dir", c.RootDir, "--out", c.Out)
}
