package casigner

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// FileKeyStore is the file-based ports.KeyStore: each intermediate key is
// PKI_DIR/intermediates/<id>/key.pem (PKCS#8, 0600) in a 0700 directory, where <id> is the
// intermediate id derived from the public key. A PKCS#11 or KMS store would keep the same refs
// and hand out signers that call into the device.
type FileKeyStore struct {
	dir  string
	rand io.Reader
}

var _ ports.KeyStore = (*FileKeyStore)(nil)

// NewFileKeyStore opens the key store of the PKI directory dir.
func NewFileKeyStore(dir string) *FileKeyStore { return &FileKeyStore{dir: dir, rand: rand.Reader} }

// validRef accepts the refs this store makes ("int_" and 16 hex digits), so that a ref can never
// name a path outside the store.
func validRef(ref string) bool {
	if len(ref) != len("int_")+16 || ref[:4] != "int_" {
		return false
	}
	for _, c := range ref[4:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *FileKeyStore) keyPath(ref string) string {
	return filepath.Join(s.dir, intermediatesDir, ref, "key.pem")
}

// NewKey creates an ECDSA P-256 key under intermediates/<id>/key.pem (see ports.KeyStore).
func (s *FileKeyStore) NewKey(context.Context) (string, crypto.Signer, error) {
	if err := ensureDir(s.dir); err != nil {
		return "", nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), s.rand)
	if err != nil {
		return "", nil, fmt.Errorf("casigner: %w", err)
	}
	id, err := authority.KeyID(key.Public())
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, intermediatesDir), dirMode); err != nil {
		return "", nil, fmt.Errorf("casigner: %w", err)
	}
	if err := os.Mkdir(filepath.Join(s.dir, intermediatesDir, id), dirMode); err != nil {
		return "", nil, fmt.Errorf("casigner: %w", err)
	}
	pemKey, err := encodeKey(key)
	if err != nil {
		return "", nil, fmt.Errorf("casigner: %w", err)
	}
	if err := writeFileAtomic(s.keyPath(id), pemKey, keyMode); err != nil {
		return "", nil, fmt.Errorf("casigner: %w", err)
	}
	return id, key, nil
}

// Key opens intermediate ref's key; errs.NotFound when there is none.
func (s *FileKeyStore) Key(_ context.Context, ref string) (crypto.Signer, error) {
	if !validRef(ref) {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no such intermediate key")
	}
	key, err := readKey(s.keyPath(ref))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no key for intermediate "+ref)
	}
	if err != nil {
		return nil, fmt.Errorf("casigner: %w", err)
	}
	return key, nil
}

// ensureDir creates the PKI directory (0700) when it is missing.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("casigner: %w", err)
	}
	return nil
}
