package config

import (
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// PKI holds the flags of `samplero pki …` (the CA hierarchy's offline and server-side steps).
type PKI struct {
	// Action is init-root, new-intermediate, sign-intermediate, "bundle build", "bundle verify",
	// "bundle install", audit, status or "state set" (or one of the signing-key actions).
	Action string

	RootDir        string // init-root --dir, sign-intermediate --root-dir
	PKIDir         string // the server's PKI directory
	PassphraseFile string // "" reads the passphrase from stdin

	CommonName   string
	Organization string
	Validity     time.Duration

	CSR      string // sign-intermediate: the CSR to sign
	Out      string // sign-intermediate: the certificate; bundle build: the bundle
	Cert     string // bundle build: the intermediate certificate
	RootCert string // bundle build: the root certificate
	Bundle   string // bundle verify|install

	PermittedDNS []string
	ExcludedDNS  []string
	PermittedIPs []*net.IPNet
	ExcludedIPs  []*net.IPNet

	Force           bool
	RootFingerprint string

	ID    string // state set
	State string
	Share int

	// Keys are the flags of the signing-key actions (pki_keys.go).
	Keys PKIKeys
	// Rollout holds the flags of `pki rollout …` (pki_rollout.go).
	Rollout PKIRollout
	// RootCRL holds the flags of `pki root-crl` (pki_rootcrl.go).
	RootCRL PKIRootCRL
}

// pkiUsage lists the actions.
const pkiUsage = `Usage: samplero pki <action> [flags]

On the offline machine:
  init-root          --dir D                      create the offline root CA (ECDSA P-384, 20 years)
  sign-intermediate  --root-dir D --csr F --out C sign an intermediate's CSR with the root
  bundle build       --cert C --root-cert R --out B   pack the intermediate for the server
  bundle verify      B                            check a bundle (also on the server, before install)
  root-crl           --root-dir D --out F         sign the root's revocation list (nginx needs it)

On the server:
  new-intermediate   --pki-dir P                  new intermediate key and its CSR
  bundle install     B --pki-dir P [--force]      install a bundle's intermediate as staged
  audit              --pki-dir P                  custody checks; exit 1 on any finding
  status             --pki-dir P [--database URL] intermediates, states, shares, certificates
  state set          --pki-dir P --id I --state S [--share N]   move an intermediate (rollout step)
  rollout            start|status|approve|abort --id I   the canary rollout workflow (Temporal)

Server signing keys:
  rotate-signing-key, endorse-signing-key, install-endorsement

The root passphrase is read from the first line of stdin, or from --passphrase-file; never from a
flag value. Run "samplero pki <action> --help" for an action's flags. docs/pki-runbook.md walks
through a whole rollout.
`

// pki parses `samplero pki <action> [flags]`.
func (p *parser) pki(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(p.out, pkiUsage)
		if len(args) == 0 {
			return usagef("samplero pki needs an action")
		}
		return ErrHelp
	}
	action, rest := args[0], args[1:]
	switch action {
	case "rotate-signing-key", "endorse-signing-key", "install-endorsement":
		return p.pkiKeys(action, rest)
	case "rollout":
		return p.pkiRollout(rest)
	case "bundle", "state":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprint(p.out, pkiUsage)
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
				return ErrHelp
			}
			return usagef("samplero pki %s needs a sub-action (%s)", action, map[string]string{"bundle": "build, verify or install", "state": "set"}[action])
		}
		action, rest = action+" "+rest[0], rest[1:]
	}
	c := &p.cfg.PKI
	c.Action = action
	switch action {
	case "init-root":
		return p.pkiInitRoot(rest)
	case "sign-intermediate":
		return p.pkiSign(rest)
	case "root-crl":
		return p.pkiRootCRL(rest)
	case "bundle build":
		return p.pkiBundleBuild(rest)
	case "bundle verify":
		return p.pkiBundleVerify(rest)
	case "bundle install":
		return p.pkiBundleInstall(rest)
	case "new-intermediate":
		return p.pkiNewIntermediate(rest)
	case "audit":
		return p.pkiServerOnly("audit", "--pki-dir P", "run the custody checks; exit 1 on any finding", rest)
	case "status":
		return p.pkiStatus(rest)
	case "state set":
		return p.pkiStateSet(rest)
	}
	fmt.Fprint(p.out, pkiUsage)
	return usagef("samplero pki has no action %q", action)
}

// pkiDirFlags adds --pki-dir (default SAMPLERO_PKI_DIR) and --data (dev: DIR/pki).
func (p *parser) pkiDirFlags(fs *flag.FlagSet) *string {
	fs.StringVar(&p.cfg.PKI.PKIDir, "pki-dir", p.env("SAMPLERO_PKI_DIR", ""), "the server's PKI directory (SAMPLERO_PKI_DIR)")
	return fs.String("data", "", "use the PKI directory of `samplero dev --data DIR` (DIR/pki)")
}

// resolvePKIDir settles the PKI directory: --pki-dir when given, else DIR/pki for --data DIR, else
// SAMPLERO_PKI_DIR.
func (p *parser) resolvePKIDir(fs *flag.FlagSet, data string) error {
	c := &p.cfg.PKI
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "pki-dir" })
	if data != "" {
		abs, err := filepath.Abs(data)
		if err != nil {
			return err
		}
		p.cfg.DataDir = abs
		if !explicit {
			c.PKIDir = filepath.Join(abs, "pki")
		}
	}
	if c.PKIDir == "" {
		return usagef("samplero pki %s needs --pki-dir, --data or SAMPLERO_PKI_DIR", c.Action)
	}
	abs, err := filepath.Abs(c.PKIDir)
	if err != nil {
		return err
	}
	c.PKIDir = abs
	return nil
}

func (p *parser) passphraseFlag(fs *flag.FlagSet) {
	fs.StringVar(&p.cfg.PKI.PassphraseFile, "passphrase-file", "", "read the root passphrase from this file's first line (default: stdin)")
}

// parsePositional parses flags that may come before or after positional arguments
// ("bundle install B --pki-dir P" and "bundle install --pki-dir P B").
func (p *parser) parsePositional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := p.parse(fs, args); err != nil {
		return nil, err
	}
	return append(pos, fs.Args()...), nil
}

func noArgs(fs *flag.FlagSet, action string) error {
	if fs.NArg() > 0 {
		return usagef("samplero pki %s takes no arguments (got %q)", action, fs.Arg(0))
	}
	return nil
}

func required(action string, pairs ...string) error {
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("samplero pki %s needs %s", action, pairs[i])
		}
	}
	return nil
}

func (p *parser) pkiInitRoot(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki init-root", "--dir D [flags]\n\nCreates the offline root CA in D (missing or empty): an ECDSA P-384 key encrypted with the\npassphrase (JWE, PBES2-HS512+A256KW), a self-signed certificate with path length 1, and prints\nthe root's SHA-256 fingerprint. D is made 0700 and its files 0600.")
	fs.StringVar(&c.RootDir, "dir", "", "root directory to create (on the offline machine)")
	fs.StringVar(&c.CommonName, "cn", "Samplero Root CA", "the root's common name")
	fs.StringVar(&c.Organization, "org", "", "the root's organization")
	fs.DurationVar(&c.Validity, "validity", 175200*time.Hour, "the root's validity (default 20 years)")
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
	return required(c.Action, "--dir", c.RootDir)
}

func (p *parser) pkiSign(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki sign-intermediate", "--root-dir D --csr F --out C [flags]\n\nSigns an intermediate's CSR with the offline root: path length 0, key usage certSign and CRLSign,\nextended key usage clientAuth and serverAuth. Only the CSR's key and subject are used.\n\nName constraints (--permitted-dns and the like) are refused today: Go's TLS verifier rejects\nevery device certificate (its URN names no host) below a name-constrained intermediate.")
	fs.StringVar(&c.RootDir, "root-dir", "", "the root directory made by init-root")
	fs.StringVar(&c.CSR, "csr", "", "the intermediate's CSR (from new-intermediate)")
	fs.StringVar(&c.Out, "out", "", "where to write the intermediate certificate (must not exist)")
	fs.DurationVar(&c.Validity, "validity", 43800*time.Hour, "the intermediate's validity (default 5 years)")
	listFlag(fs, "permitted-dns", "permit only these DNS names (and subdomains) in certificates it signs; comma-separated or repeated", &c.PermittedDNS)
	listFlag(fs, "excluded-dns", "exclude these DNS names (and subdomains); comma-separated or repeated", &c.ExcludedDNS)
	netFlag(fs, "permitted-ip", "permit only these IP networks (CIDR); comma-separated or repeated", &c.PermittedIPs)
	netFlag(fs, "excluded-ip", "exclude these IP networks (CIDR); comma-separated or repeated", &c.ExcludedIPs)
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
	return required(c.Action, "--root-dir", c.RootDir, "--csr", c.CSR, "--out", c.Out)
}

func (p *parser) pkiBundleBuild(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki bundle build", "--cert C --root-cert R --out B\n\nPacks the intermediate certificate, the chain (intermediate then root), the root and a manifest of\nSHA-256 sums into a tar.gz, after checking the intermediate chains to the root.")
	fs.StringVar(&c.Cert, "cert", "", "the intermediate certificate (from sign-intermediate)")
	fs.StringVar(&c.RootCert, "root-cert", "", "the root certificate (D/root.pem)")
	fs.StringVar(&c.Out, "out", "", "the bundle to write (must not exist), e.g. intermediate.tar.gz")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, c.Action); err != nil {
		return err
	}
	return required(c.Action, "--cert", c.Cert, "--root-cert", c.RootCert, "--out", c.Out)
}

func (p *parser) pkiBundleVerify(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki bundle verify", "B [--root-fingerprint F]\n\nChecks a bundle: no private key of any kind, no symlink or path traversal, every manifest sum, the\nchain, and (when given) the root's fingerprint. Prints the sums to keep as evidence.")
	fs.StringVar(&c.RootFingerprint, "root-fingerprint", "", "the SHA-256 fingerprint the bundle's root must have (as init-root printed it)")
	pos, err := p.parsePositional(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("samplero pki bundle verify needs exactly one bundle")
	}
	c.Bundle = pos[0]
	return nil
}

func (p *parser) pkiBundleInstall(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki bundle install", "B --pki-dir P [--force]\n\nVerifies the bundle and installs its intermediate in the PKI directory as staged: published in\nca_chain and trusted, not issuing. Its key must be there (new-intermediate). The files it\nreplaces are copied to P/backups/ first.")
	data := p.pkiDirFlags(fs)
	fs.BoolVar(&c.Force, "force", false, "replace an installed certificate of the same intermediate")
	fs.StringVar(&c.RootFingerprint, "root-fingerprint", "", "the SHA-256 fingerprint the bundle's root must have")
	pos, err := p.parsePositional(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("samplero pki bundle install needs exactly one bundle")
	}
	c.Bundle = pos[0]
	return p.resolvePKIDir(fs, *data)
}

func (p *parser) pkiNewIntermediate(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki new-intermediate", "--pki-dir P [flags]\n\nCreates a new ECDSA P-256 intermediate key in P (0600) and its CSR; prints the CSR's path and the\nintermediate's id. Carry the CSR to the offline machine for sign-intermediate.")
	data := p.pkiDirFlags(fs)
	fs.StringVar(&c.CommonName, "cn", "", "the intermediate's common name (default \"Samplero Intermediate CA <date>\")")
	fs.StringVar(&c.Organization, "org", "", "the intermediate's organization")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, c.Action); err != nil {
		return err
	}
	return p.resolvePKIDir(fs, *data)
}

func (p *parser) pkiServerOnly(name, synopsis, doc string, args []string) error {
	fs := p.flags("pki "+name, synopsis+"\n\n"+doc)
	data := p.pkiDirFlags(fs)
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, p.cfg.PKI.Action); err != nil {
		return err
	}
	return p.resolvePKIDir(fs, *data)
}

func (p *parser) pkiStatus(args []string) error {
	fs := p.flags("pki status", "--pki-dir P [--database URL | --data DIR]\n\nLists every intermediate with its state, canary share and validity, and the keys waiting for a\ncertificate. With a database (--database, SAMPLERO_DATABASE_URL, or the dev data directory) it\nalso counts the device certificates each intermediate issued that are still valid.")
	data := p.pkiDirFlags(fs)
	dsn := fs.String("database", "", "database URL (default SAMPLERO_DATABASE_URL)")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, p.cfg.PKI.Action); err != nil {
		return err
	}
	if err := p.resolvePKIDir(fs, *data); err != nil {
		return err
	}
	switch {
	case *dsn != "":
		p.cfg.DatabaseURL = Secret(*dsn)
	case p.env("SAMPLERO_DATABASE_URL", "") != "":
		p.cfg.DatabaseURL = Secret(p.env("SAMPLERO_DATABASE_URL", ""))
	case p.cfg.DataDir != "":
		p.cfg.DatabaseURL = Secret("sqlite:" + filepath.Join(p.cfg.DataDir, "samplero.db"))
	}
	return nil
}

func (p *parser) pkiStateSet(args []string) error {
	c := &p.cfg.PKI
	fs := p.flags("pki state set", "--pki-dir P --id I --state canary|active|retiring|retired|rolled_back [--share N]\n\nMoves an intermediate to another state; the running server picks it up within a second.\nactive demotes the active intermediate to retiring; rolled_back of the active one brings back the\nintermediate it replaced. A canary takes --share percent of new device certificates.")
	data := p.pkiDirFlags(fs)
	fs.StringVar(&c.ID, "id", "", "the intermediate's id (int_…, as status lists it)")
	fs.StringVar(&c.State, "state", "", "canary, active, retiring, retired or rolled_back")
	fs.IntVar(&c.Share, "share", 0, "canary share in percent, 1 to 100 (default 5 for canary)")
	if err := p.parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, c.Action); err != nil {
		return err
	}
	if err := required(c.Action, "--id", c.ID, "--state", c.State); err != nil {
		return err
	}
	switch c.State {
	case "canary":
		if c.Share == 0 {
			c.Share = 5
		}
		if c.Share < 1 || c.Share > 100 {
			return usagef("--share must be 1 to 100")
		}
	case "active", "retiring", "retired", "rolled_back":
		if c.Share != 0 {
			return usagef("--share applies to --state canary only")
		}
	default:
		return usagef("--state %q is not canary, active, retiring, retired or rolled_back", c.State)
	}
	return p.resolvePKIDir(fs, *data)
}

// listFlag is a repeatable, comma-separated string flag.
func listFlag(fs *flag.FlagSet, name, usage string, dst *[]string) {
	fs.Func(name, usage, func(v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
				*dst = append(*dst, s)
			}
		}
		return nil
	})
}

// netFlag is a repeatable, comma-separated CIDR flag.
func netFlag(fs *flag.FlagSet, name, usage string, dst *[]*net.IPNet) {
	fs.Func(name, usage, func(v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			_, n, err := net.ParseCIDR(s)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR network", s)
			}
			*dst = append(*dst, n)
		}
		return nil
	})
}
