package config

import (
	"flag"
	"path/filepath"
	"strings"
	"time"
)

// PKIKeys holds the flags of the server signing-key steps of `samplero pki`:
// rotate-signing-key (server host), endorse-signing-key (offline machine) and
// install-endorsement (server host).
type PKIKeys struct {
	// KeysDir is the server's signing-key directory (rotate-signing-key, install-endorsement).
	KeysDir string
	// NotBefore is when the next key takes over; zero means DefaultSigningKeyLead from now.
	NotBefore time.Time
	// Validity is not_after - not_before of the next key.
	Validity time.Duration
	// KID, for rotate-signing-key, writes the request of this existing key instead of making one
	// (the first key, made before the root existed).
	KID string
	// In and Out are the request or endorsement files read and written.
	In  string
	Out string
	// RootDir is the offline root's directory (endorse-signing-key): init-root's, or under
	// `samplero dev` the PKI directory DIR/pki, whose root key is on the machine.
	RootDir string
	// PassphraseFile holds the root key's passphrase; empty reads it from stdin.
	PassphraseFile string
	// RootCert is the root certificate endorsements are checked against (install-endorsement).
	RootCert string
}

// Defaults of rotate-signing-key.
const (
	// DefaultSigningKeyLead leaves a week to endorse the key offline and for clients to fetch
	// the list that announces it.
	DefaultSigningKeyLead     = 7 * 24 * time.Hour
	DefaultSigningKeyValidity = 2 * 365 * 24 * time.Hour
)

// pkiKeys parses `samplero pki rotate-signing-key|endorse-signing-key|install-endorsement`.
func (p *parser) pkiKeys(action string, args []string) error {
	p.cfg.PKI.Action = action
	k := &p.cfg.PKI.Keys
	keysDirFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&k.KeysDir, "keys-dir", p.env("SAMPLERO_SIGNING_KEYS_DIR", ""), "the server's signing-key directory (SAMPLERO_SIGNING_KEYS_DIR)")
	}
	switch action {
	case "rotate-signing-key":
		fs := p.flags("pki rotate-signing-key", "--keys-dir K [--not-before RFC3339] [--out request.json]\n\n"+
			"On the server host: adds the next signing key to K and writes its endorsement request for the\n"+
			"offline root. Running servers publish the key as next within a second and switch to it at\n"+
			"--not-before (once its endorsement is installed, when the active key has one).")
		keysDirFlag(fs)
		var nb string
		fs.StringVar(&nb, "not-before", "", "when the new key takes over, RFC 3339 (default: a week from now)")
		fs.DurationVar(&k.Validity, "validity", DefaultSigningKeyValidity, "not_after - not_before of the new key")
		fs.StringVar(&k.Out, "out", "", "endorsement request file to write (default ./signing-key-<kid>.request.json)")
		fs.StringVar(&k.KID, "kid", "", "write the request of this existing key instead of making a new one")
		if err := p.parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("samplero pki rotate-signing-key takes no arguments")
		}
		if nb != "" {
			t, err := time.Parse(time.RFC3339, nb)
			if err != nil {
				return usagef("--not-before %q is not an RFC 3339 time (2026-12-06T12:00:00Z)", nb)
			}
			if t.Nanosecond() != 0 {
				return usagef("--not-before must be a whole second")
			}
			k.NotBefore = t.UTC()
		}
		if k.KID != "" && nb != "" {
			return usagef("--kid writes the request of an existing key: --not-before does not apply")
		}
		if k.Validity < time.Hour || k.Validity%time.Second != 0 {
			return usagef("--validity must be whole seconds, at least 1h")
		}
	case "endorse-signing-key":
		fs := p.flags("pki endorse-signing-key", "--root-dir D --in request.json --out endorsement [--passphrase-file F]\n\n"+
			"On the offline machine: the root signs the server key named by the request. The passphrase of the\n"+
			"root key is read from --passphrase-file or from stdin (never a flag value).")
		fs.StringVar(&k.RootDir, "root-dir", "", "the root's directory (init-root's; under samplero dev: DIR/pki)")
		fs.StringVar(&k.In, "in", "", "the endorsement request (from rotate-signing-key)")
		fs.StringVar(&k.Out, "out", "", "the endorsement file to write")
		fs.StringVar(&k.PassphraseFile, "passphrase-file", "", "file holding the root key's passphrase (default: read stdin)")
		if err := p.parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("samplero pki endorse-signing-key takes no arguments")
		}
		if k.RootDir == "" || k.In == "" || k.Out == "" {
			return usagef("samplero pki endorse-signing-key needs --root-dir, --in and --out")
		}
	case "install-endorsement":
		fs := p.flags("pki install-endorsement", "--keys-dir K --in endorsement [--root-cert root.pem]\n\n"+
			"On the server host: checks the endorsement against the root certificate and installs it beside its\n"+
			"key. Running servers publish it within a second.")
		keysDirFlag(fs)
		fs.StringVar(&k.In, "in", "", "the endorsement file (from endorse-signing-key)")
		defRoot := ""
		if dir := p.env("SAMPLERO_PKI_DIR", ""); dir != "" {
			defRoot = filepath.Join(dir, "root.pem")
		}
		fs.StringVar(&k.RootCert, "root-cert", defRoot, "the root certificate (default SAMPLERO_PKI_DIR/root.pem)")
		if err := p.parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usagef("samplero pki install-endorsement takes no arguments")
		}
		if k.In == "" || k.RootCert == "" {
			return usagef("samplero pki install-endorsement needs --in and --root-cert (or SAMPLERO_PKI_DIR)")
		}
	default:
		return usagef("samplero pki %s is not a signing-key action", action)
	}
	if action != "endorse-signing-key" && strings.TrimSpace(k.KeysDir) == "" {
		return usagef("samplero pki %s needs --keys-dir or SAMPLERO_SIGNING_KEYS_DIR", action)
	}
	return nil
}
