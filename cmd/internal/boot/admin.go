package boot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/samplero/samplero/cmd/internal/config"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// CreateAdminToken makes a new admin API token and stores only its SHA-256. The token itself is
// returned once and never again.
func CreateAdminToken(ctx context.Context, repo ports.AdminTokenRepo, name string) (string, error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := "sat_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	err := repo.Insert(ctx, ports.AdminToken{
		ID:        license.NewID("adm_"),
		Name:      name,
		Hash:      sum[:],
		CreatedAt: systemClock{}.Now().UTC(),
	})
	if err != nil {
		return "", fmt.Errorf("storing the admin token: %w", err)
	}
	return token, nil
}

// writeSecretFile replaces path with data, mode 0600, through a rename so a reader never sees
// half a token.
func writeSecretFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// AdminTokenCreate is `samplero admin token create --name N`: it prints the new token on out.
func AdminTokenCreate(ctx context.Context, cfg config.Config, out io.Writer) error {
	store, err := OpenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	token, err := CreateAdminToken(ctx, store.AdminTokens(), cfg.AdminTokenName)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, token)
	return nil
}

// Migrate is `samplero migrate up|down|status`.
func Migrate(ctx context.Context, cfg config.Config, out io.Writer) error {
	store, err := OpenStore(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer store.Close()
	m := store.Migrator()
	switch cfg.MigrateAction {
	case "up":
		err = m.Up(ctx)
	case "down":
		err = m.Down(ctx)
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", cfg.MigrateAction, err)
	}
	status, err := m.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, status)
	return nil
}
