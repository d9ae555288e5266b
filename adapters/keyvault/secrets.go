package keyvault

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Secret files under DIR/secrets (for `samplero dev`; production passes the secrets in from its
// own secret store). Each holds 32 random bytes as standard base64 and a newline, so the value can be
// copied into an environment variable as is.
const (
	secretsDir        = "secrets"
	lookupSecretFile  = "key-lookup"
	encryptSecretFile = "key-encryption"
)

// LoadOrCreateSecrets returns the lookup and encryption secrets kept in dir/secrets, creating each
// (32 bytes from crypto/rand, file 0600, directory 0700) the first time. A file is never replaced:
// losing a secret would make every stored license key unreadable or unfindable.
func LoadOrCreateSecrets(dir string) (lookup, enc []byte, err error) {
	sdir := filepath.Join(dir, secretsDir)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("keyvault: %w", err)
	}
	if lookup, err = loadOrCreate(filepath.Join(sdir, lookupSecretFile)); err != nil {
		return nil, nil, err
	}
	if enc, err = loadOrCreate(filepath.Join(sdir, encryptSecretFile)); err != nil {
		return nil, nil, err
	}
	return lookup, enc, nil
}

// loadOrCreate reads the secret at path, or creates it. The new file is written under a temporary
// name and hard-linked into place, which fails if path exists: of two processes starting at once,
// one creates the secret and both read it.
func loadOrCreate(path string) ([]byte, error) {
	if s, err := readSecret(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	secret := make([]byte, MinSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(secret) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("keyvault: %w", werr)
	}
	// os.CreateTemp makes the file 0600 already.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return readSecret(path)
}

func readSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("keyvault: %s is not base64: %w", path, err)
	}
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("keyvault: %s holds %d bytes, want at least %d", path, len(s), MinSecretLen)
	}
	return s, nil
}

// LoadOrCreateSecret reads, or creates, one more named secret in DIR/secrets the same way (dev's
// signing secret of order links, for example).
func LoadOrCreateSecret(dir, name string) ([]byte, error) {
	if name == "" || name != filepath.Base(name) || name == lookupSecretFile || name == encryptSecretFile {
		return nil, fmt.Errorf("keyvault: %q is not a name for a new secret", name)
	}
	sdir := filepath.Join(dir, secretsDir)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return loadOrCreate(filepath.Join(sdir, name))
}
