// Package pkifiles holds the file formats of the offline PKI steps: the root vault (the offline
// root's certificate and its key, encrypted with a passphrase as a JWE using PBES2-HS512+A256KW
// and A256GCM from go-jose) and the bundle archive (a tar.gz that carries an intermediate from the
// offline machine to the server). The rules of what a bundle may hold are the PKI core's; this
// package reads and writes bytes safely.
package pkifiles

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// Layout of a root directory (the offline machine's; never on a server):
//
//	root.pem        the root certificate
//	root-key.jwe    the root key: PKCS#8 DER encrypted as a compact JWE (PBES2-HS512+A256KW, A256GCM)
//	issued.log      one line per intermediate the root signed
//	README          says what this is
//
// The directory is 0700 and every file 0600.
const (
	RootCertFile  = "root.pem"
	RootKeyFile   = "root-key.jwe"
	IssuedLogFile = "issued.log"
	readmeFile    = "README"

	dirMode  = 0o700
	fileMode = 0o600
)

// DefaultPBES2Count is the PBKDF2 iteration count of the root key's encryption: go-jose's default,
// and above OWASP's 210000 for PBKDF2-HMAC-SHA512. go-jose refuses more than 1000000 when
// decrypting, so a file written here always opens.
const DefaultPBES2Count = 600000

// Codes of the root vault.
const (
	CodeRootExists      = "ROOT_EXISTS"
	CodeWrongPassphrase = "ROOT_PASSPHRASE_WRONG"
	CodeNoRoot          = "ROOT_NOT_FOUND"
)

const readmeText = `This directory holds the Samplero offline root CA.

root.pem      the root certificate (public: every device and server trusts it)
root-key.jwe  the root key, encrypted with the passphrase given to "samplero pki init-root"
issued.log    every intermediate this root signed

Keep this directory on the offline machine (or on removable media kept in a safe). It must never
be copied to a server: "samplero pki audit" on a server fails when it finds a root key.
`

// RootVault is the file-based ports.RootVault.
type RootVault struct {
	count int
	clock ports.Clock
	rand  io.Reader
}

var _ ports.RootVault = (*RootVault)(nil)

// VaultOptions tune the vault; the zero value is production's.
type VaultOptions struct {
	// PBES2Count overrides DefaultPBES2Count (tests use a small one to run fast).
	PBES2Count int
	Clock      ports.Clock
	Rand       io.Reader
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// NewRootVault builds the vault.
func NewRootVault(o VaultOptions) *RootVault {
	v := &RootVault{count: o.PBES2Count, clock: o.Clock, rand: o.Rand}
	if v.count <= 0 {
		v.count = DefaultPBES2Count
	}
	if v.clock == nil {
		v.clock = wallClock{}
	}
	if v.rand == nil {
		v.rand = rand.Reader
	}
	return v
}

// Create makes the root in dir (see ports.RootVault). The files are written in a sibling
// temporary directory that is renamed into place, so a failure leaves nothing half-made.
func (v *RootVault) Create(_ context.Context, dir string, passphrase []byte, build func(crypto.Signer) (*x509.Certificate, error)) (ports.RootLocations, error) {
	if dir == "" {
		return ports.RootLocations{}, errs.Validation("a root directory is needed")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return ports.RootLocations{}, errs.E(errs.Conflict, CodeRootExists, dir+" is not empty: a root is made once, in an empty directory")
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return ports.RootLocations{}, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, "cannot read "+dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, dirMode); err != nil {
		return ports.RootLocations{}, fmt.Errorf("pkifiles: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-*")
	if err != nil {
		return ports.RootLocations{}, fmt.Errorf("pkifiles: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, dirMode); err != nil {
		return ports.RootLocations{}, fmt.Errorf("pkifiles: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), v.rand)
	if err != nil {
		return ports.RootLocations{}, fmt.Errorf("pkifiles: %w", err)
	}
	cert, err := build(key)
	if err != nil {
		return ports.RootLocations{}, err
	}
	sealed, err := v.seal(key, passphrase)
	if err != nil {
		return ports.RootLocations{}, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{RootKeyFile, sealed},
		{RootCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})},
		{IssuedLogFile, nil},
		{readmeFile, []byte(readmeText)},
	} {
		if err := writeNew(filepath.Join(tmp, f.name), f.data, fileMode); err != nil {
			return ports.RootLocations{}, fmt.Errorf("pkifiles: %w", err)
		}
	}
	// os.Rename refuses to replace a directory, even an empty one.
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
		_ = os.Remove(dir)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return ports.RootLocations{}, errs.Wrap(errs.Conflict, CodeRootExists, dir+" appeared while the root was being made", err)
	}
	return ports.RootLocations{Cert: filepath.Join(dir, RootCertFile), Key: filepath.Join(dir, RootKeyFile)}, nil
}

// seal encrypts the key's PKCS#8 DER under the passphrase.
func (v *RootVault) seal(key crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{
		Algorithm:  jose.PBES2_HS512_A256KW,
		Key:        passphrase,
		PBES2Count: v.count,
	}, (&jose.EncrypterOptions{}).WithContentType("application/pkcs8"))
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	obj, err := enc.Encrypt(der)
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	return []byte(s + "\n"), nil
}

// Open decrypts the root key of dir (see ports.RootVault).
func (v *RootVault) Open(_ context.Context, dir string, passphrase []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := readRootCert(dir)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := os.ReadFile(filepath.Join(dir, RootKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, errs.E(errs.NotFound, CodeNoRoot, "no "+RootKeyFile+" in "+dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pkifiles: %w", err)
	}
	obj, err := jose.ParseEncryptedCompact(strings.TrimSpace(string(sealed)),
		[]jose.KeyAlgorithm{jose.PBES2_HS512_A256KW}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, RootKeyFile+" is not a root key this tool wrote", err)
	}
	der, err := obj.Decrypt(passphrase)
	if err != nil {
		// A wrong passphrase and a tampered file look the same to AES-KW: both fail to unwrap.
		return nil, nil, errs.E(errs.Unauthenticated, CodeWrongPassphrase, "the passphrase does not open the root key")
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, "the root key does not parse", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errs.E(errs.Invalid, errs.CodeValidationFailed, "the root key does not match "+RootCertFile)
	}
	return cert, key, nil
}

func readRootCert(dir string) (*x509.Certificate, error) {
	data, err := os.ReadFile(filepath.Join(dir, RootCertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.E(errs.NotFound, CodeNoRoot, "no root in "+dir+" ("+RootCertFile+" missing)")
	}
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errs.E(errs.Invalid, errs.CodeValidationFailed, RootCertFile+" holds no certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, errs.CodeValidationFailed, RootCertFile+" does not parse", err)
	}
	return cert, nil
}

// RecordIssued appends a line to issued.log: time, serial, intermediate id, fingerprint, subject.
func (v *RootVault) RecordIssued(_ context.Context, dir string, cert *x509.Certificate) error {
	f, err := os.OpenFile(filepath.Join(dir, IssuedLogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("pkifiles: %w", err)
	}
	line := fmt.Sprintf("%s serial=%s id=%s sha256=%s not_after=%s subject=%q\n",
		v.clock.Now().UTC().Format(time.RFC3339), authority.CanonicalSerial(cert.SerialNumber), authority.IntermediateID(cert),
		authority.Fingerprint(cert), cert.NotAfter.UTC().Format(time.RFC3339), cert.Subject.String())
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("pkifiles: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pkifiles: %w", err)
	}
	return f.Close()
}

// writeNew creates path (which must not exist) with data and mode, synced to disk.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	// The umask may have taken bits away; never more than asked, but make it exact.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, bytes.NewReader(data)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
