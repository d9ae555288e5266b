package boot

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/adapters/pkifiles"
	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// devRootKeyFile is where `samplero dev` keeps its root key, under the PKI directory (the local
// CA's layout: adapters/casigner). In production there is no such file: the root is offline.
const devRootKeyFile = "root/root-key.pem"

// openServerKeys opens the signing keys for a serving process: endorsements are checked against
// the CA's root, retired keys stay published for the longest grace period of the catalog, and
// under `samplero dev` every key is endorsed by the local root at start.
func openServerKeys(ctx context.Context, cfg config.Config, ca *casigner.LocalCA, products ports.ProductRepo, log *slog.Logger) (*serverkeys.Keys, error) {
	root, err := ca.Root(ctx)
	if err != nil {
		return nil, err
	}
	klog := log.With("component", "serverkeys")
	keys, err := serverkeys.Open(cfg.SigningKeysDir, issuerName, systemClock{},
		serverkeys.WithRoot(root), serverkeys.WithLogger(klog), serverkeys.WithLeaseHorizon(leaseHorizon(products)))
	if err != nil {
		return nil, fmt.Errorf("server keys in %s: %w", cfg.SigningKeysDir, err)
	}
	if cfg.Command != "dev" {
		return keys, nil
	}
	rootKey, err := skReadKey(filepath.Join(cfg.PKIDir, devRootKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		klog.Warn("no dev root key: server keys are not endorsed", "path", filepath.Join(cfg.PKIDir, devRootKeyFile))
		return keys, nil
	}
	if err != nil {
		return nil, err
	}
	done, err := serverkeys.EndorseAll(cfg.SigningKeysDir, rootKey, root, systemClock{})
	if err != nil {
		return nil, fmt.Errorf("endorsing the server keys with the dev root: %w", err)
	}
	if len(done) > 0 {
		klog.Info("server keys endorsed by the dev root", "kids", done)
		if err := keys.Reload(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// leaseHorizon is the longest lease a product policy can give: its grace period (a lease's exp is
// at most its last heartbeat plus the grace period). Retired keys stay published that long.
func leaseHorizon(products ports.ProductRepo) func(context.Context) (time.Duration, error) {
	return func(ctx context.Context) (time.Duration, error) {
		list, err := products.List(ctx)
		if err != nil {
			return 0, err
		}
		var longest time.Duration
		for _, p := range list {
			longest = max(longest, p.Policy.GracePeriod)
		}
		return longest, nil
	}
}

// pkiKeys runs `samplero pki rotate-signing-key|endorse-signing-key|install-endorsement`.
func pkiKeys(ctx context.Context, cfg config.Config, stdin io.Reader, stdout, _ io.Writer) error {
	k := cfg.PKI.Keys
	clock := systemClock{}
	switch cfg.PKI.Action {
	case "rotate-signing-key":
		return rotateSigningKey(k, clock, stdout)
	case "endorse-signing-key":
		return endorseSigningKey(ctx, k, clock, stdin, stdout)
	case "install-endorsement":
		return installEndorsement(k, clock, stdout)
	}
	return fmt.Errorf("samplero pki %s is not a signing-key action", cfg.PKI.Action)
}

func rotateSigningKey(k config.PKIKeys, clock ports.Clock, stdout io.Writer) error {
	var c serverkeys.KeyClaims
	var err error
	if k.KID != "" {
		if c, err = serverkeys.ClaimsFor(k.KeysDir, k.KID); err != nil {
			return err
		}
	} else {
		nb := k.NotBefore
		if nb.IsZero() {
			nb = clock.Now().UTC().Truncate(time.Second).Add(config.DefaultSigningKeyLead)
		}
		if c, err = serverkeys.CreateNext(k.KeysDir, nb, k.Validity, clock); err != nil {
			return err
		}
	}
	out := k.Out
	if out == "" {
		out = "signing-key-" + c.KID + ".request.json"
	}
	if err := skWriteNew(out, c.Request(), 0o644); err != nil {
		return fmt.Errorf("writing the endorsement request: %w", err)
	}
	if k.KID == "" {
		fmt.Fprintf(stdout, "next signing key %s added to %s\n", c.KID, k.KeysDir)
	} else {
		fmt.Fprintf(stdout, "signing key %s of %s\n", c.KID, k.KeysDir)
	}
	fmt.Fprintf(stdout, "  public key  %s\n  not_before  %s\n  not_after   %s\nendorsement request written to %s\n",
		base64.StdEncoding.EncodeToString(c.PublicKey), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), out)
	if states, err := serverkeys.State(k.KeysDir, nil, clock.Now()); err == nil {
		fmt.Fprintln(stdout, "keys now:")
		for _, s := range states {
			fmt.Fprintf(stdout, "  %s  %-7s  %s .. %s  endorsed=%t\n", s.KID, s.Status, s.NotBefore.Format(time.RFC3339), s.NotAfter.Format(time.RFC3339), s.Endorsed)
		}
	}
	fmt.Fprintf(stdout, "next steps:\n"+
		"  on the offline machine: samplero pki endorse-signing-key --root-dir ROOT --in %s --out %s.endorsement\n"+
		"  back here:              samplero pki install-endorsement --keys-dir %s --in %s.endorsement\n"+
		"Running servers publish the key as next within a second and switch to it at not_before; while the\n"+
		"active key is endorsed, the switch waits for this key's endorsement.\n",
		filepath.Base(out), c.KID, k.KeysDir, c.KID)
	return nil
}

func endorseSigningKey(ctx context.Context, k config.PKIKeys, clock ports.Clock, stdin io.Reader, stdout io.Writer) error {
	data, err := os.ReadFile(k.In)
	if err != nil {
		return err
	}
	c, err := serverkeys.ParseRequest(data)
	if err != nil {
		return err
	}
	if now := clock.Now(); !c.NotAfter.After(now) {
		return fmt.Errorf("key %s: its window ended %s (this machine's clock says %s)", c.KID, c.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	cert, key, err := skOpenRoot(ctx, k, stdin)
	if err != nil {
		return err
	}
	e, err := serverkeys.Endorse(key, cert, c)
	if err != nil {
		return err
	}
	if err := skWriteNew(k.Out, []byte(e+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing the endorsement: %w", err)
	}
	fmt.Fprintf(stdout, "endorsed signing key %s\n  public key  %s\n  not_before  %s\n  not_after   %s\n  root        %s (SHA-256 %s)\nendorsement written to %s\n",
		c.KID, base64.StdEncoding.EncodeToString(c.PublicKey), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339),
		cert.Subject.CommonName, authority.Fingerprint(cert), k.Out)
	return nil
}

// skOpenRoot opens the root of k.RootDir: init-root's (key encrypted, passphrase from a file or
// stdin), or the dev PKI directory's (key in clear, DEV ONLY).
func skOpenRoot(ctx context.Context, k config.PKIKeys, stdin io.Reader) (*x509.Certificate, crypto.Signer, error) {
	if _, err := os.Stat(filepath.Join(k.RootDir, pkifiles.RootKeyFile)); err == nil {
		pass, err := skPassphrase(k.PassphraseFile, stdin)
		if err != nil {
			return nil, nil, err
		}
		return pkifiles.NewRootVault(pkifiles.VaultOptions{}).Open(ctx, k.RootDir, pass)
	}
	key, err := skReadKey(filepath.Join(k.RootDir, devRootKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s holds no root key (%s from init-root, or %s of samplero dev)", k.RootDir, pkifiles.RootKeyFile, devRootKeyFile)
	}
	if err != nil {
		return nil, nil, err
	}
	cert, err := skReadCert(filepath.Join(k.RootDir, "root.pem"))
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// skPassphrase reads the passphrase from file (its first line) or, without one, the first
// line of stdin. It is never a flag value, which would show in the process list and the history.
func skPassphrase(file string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("no passphrase: give --passphrase-file or write it on stdin")
	}
	return []byte(line), nil
}

func installEndorsement(k config.PKIKeys, clock ports.Clock, stdout io.Writer) error {
	data, err := os.ReadFile(k.In)
	if err != nil {
		return err
	}
	root, err := skReadCert(k.RootCert)
	if err != nil {
		return err
	}
	kid, changed, err := serverkeys.Install(k.KeysDir, strings.TrimSpace(string(data)), root, clock)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(stdout, "the endorsement of signing key %s was already installed in %s\n", kid, k.KeysDir)
		return nil
	}
	fmt.Fprintf(stdout, "endorsement of signing key %s installed in %s (root SHA-256 %s)\nRunning servers publish it within a second.\n",
		kid, k.KeysDir, authority.Fingerprint(root))
	return nil
}

func skReadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(b.Bytes)
}

// skReadKey reads an unencrypted PKCS#8 ECDSA key (the dev root's).
func skReadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s holds no PKCS#8 PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: the root key is %T, want ECDSA", path, k)
	}
	return ec, nil
}

// skWriteNew writes a file that must not exist yet: a request or endorsement never silently
// replaces another.
func skWriteNew(path string, data []byte, mode os.FileMode) error {
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
