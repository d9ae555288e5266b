package samplero

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Storage keeps the device's state between runs. Load returns an error wrapping os.ErrNotExist
// when name was never saved. Saving empty data clears an entry: the client reads an empty entry
// as absent. Implementations must make Save atomic (a reader sees the old or the new data, never
// a mix), since a torn key or lease would lock the device out.
type Storage interface {
	Load(name string) ([]byte, error)
	Save(name string, data []byte) error
}

// Names of the entries the client keeps in Storage.
const (
	StoreDeviceKey    = "device-key.pem"   // PKCS#8 PEM of the device key
	StoreCertificate  = "certificate.pem"  // the device certificate (leaf)
	StoreCAChain      = "ca-chain.pem"     // intermediates and root from the last issuance
	StoreLease        = "lease.jwt"        // the newest lease
	StoreActivationID = "activation-id"    // act_… of this device
	StoreClaimID      = "claim-id"         // clm_… of a pending owner approval
	StoreKeyList      = "server-keys.json" // the newest verified GET /v1/keys body
	StoreNewestSeen   = "newest-seen"      // unix seconds: newest lease iat, server created or check time seen
)

type fileStorage struct{ dir string }

// FileStorage stores each entry as a file of mode 0600 in dir (created 0700 on first save),
// replacing files by an atomic rename.
func FileStorage(dir string) Storage { return &fileStorage{dir: dir} }

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".tmp-") {
		return fmt.Errorf("samplero: invalid storage name %q", name)
	}
	return nil
}

func (s *fileStorage) Load(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(s.dir, name))
}

func (s *fileStorage) Save(name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	// Sync before the rename so that a crash leaves the old or the new file, not an empty one.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(s.dir, name)); err != nil {
		return err
	}
	ok = true
	return nil
}

type memoryStorage struct {
	mu   sync.Mutex
	data map[string][]byte
}

// NewMemoryStorage returns a Storage that keeps everything in memory (tests, or hosts that persist
// the state themselves).
func NewMemoryStorage() Storage { return &memoryStorage{data: map[string][]byte{}} }

func (m *memoryStorage) Load(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.data[name]
	if !ok {
		return nil, &fs.PathError{Op: "load", Path: name, Err: os.ErrNotExist}
	}
	return append([]byte(nil), d...), nil
}

func (m *memoryStorage) Save(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[name] = append([]byte(nil), data...)
	return nil
}

// load reads an entry, mapping "absent" and "empty" both to (nil, nil).
func load(s Storage, name string) ([]byte, error) {
	d, err := s.Load(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("samplero: load %s: %w", name, err)
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}
