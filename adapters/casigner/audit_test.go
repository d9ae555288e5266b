package casigner_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/core/pki/authority"
	"github.com/samplero/samplero/ports"
)

// prodDir builds a production-like PKI directory (root certificate and one installed, active
// intermediate with its key; no root key) and returns it with the dev root key that signed it.
func prodDir(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	dev := pkiDir(t)
	devCA, err := casigner.EnsureLocalCA(dev, newClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := devCA.Root(ctx)
	dir := filepath.Join(t.TempDir(), "pki")
	inter := newIntermediate(t, dir, root, devRootKey(t, dev), t0, 24*time.Hour)
	d := casigner.NewDirectory(dir, newClock(t0))
	if _, err := d.Install(ctx, ports.InstallRequest{ID: authority.IntermediateID(inter), Root: root, Intermediate: inter}); err != nil {
		t.Fatal(err)
	}
	setState(t, d, authority.IntermediateID(inter), "active", 0)
	return dir, dev
}

func auditCodes(t *testing.T, dir string) []string {
	t.Helper()
	findings, files, err := casigner.NewDirectory(dir, newClock(t0)).AuditFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no file looked at")
	}
	var codes []string
	for _, f := range findings {
		codes = append(codes, f.Code+" "+f.Location)
	}
	slices.Sort(codes)
	return codes
}

func TestAuditFiles(t *testing.T) {
	dir, dev := prodDir(t)
	if got := auditCodes(t, dir); len(got) != 0 {
		t.Fatalf("a clean production directory has findings: %v", got)
	}
	// `samplero dev`'s own directory keeps the root key: the audit says so.
	// One finding for it, however many ways it gives itself away (name, content, place).
	if got := auditCodes(t, dev); !slices.Equal(got, []string{"ROOT_KEY_PRESENT root/root-key.pem"}) {
		t.Fatalf("dev directory: %v", got)
	}

	stray, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	strayDER, _ := x509.MarshalPKCS8PrivateKey(stray)
	strayPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: strayDER})

	// env is one fresh directory per case.
	type env struct{ dir, dev, id string }
	tests := []struct {
		name   string
		break_ func(e env)
		want   func(e env) string
	}{
		{"root key copied in under an innocent name", func(e env) {
			data, _ := os.ReadFile(filepath.Join(e.dev, "root", "root-key.pem"))
			os.WriteFile(filepath.Join(e.dir, "backup.pem"), data, 0o600)
		}, func(env) string { return "ROOT_KEY_PRESENT backup.pem" }},
		{"a file named like a root key", func(e env) {
			os.WriteFile(filepath.Join(e.dir, "old-root-ca.key"), []byte("gone"), 0o600)
		}, func(env) string { return "ROOT_KEY_PRESENT old-root-ca.key" }},
		{"an encrypted root key", func(e env) {
			os.WriteFile(filepath.Join(e.dir, "root-key.jwe"), []byte("eyJ.a.b.c.d"), 0o600)
		}, func(env) string { return "ROOT_KEY_PRESENT root-key.jwe" }},
		{"a private key where none belongs", func(e env) {
			os.WriteFile(filepath.Join(e.dir, "intermediates", e.id, "spare.pem"), strayPEM, 0o600)
		}, func(e env) string { return "STRAY_PRIVATE_KEY intermediates/" + e.id + "/spare.pem" }},
		{"an intermediate key readable by others", func(e env) {
			os.Chmod(filepath.Join(e.dir, "intermediates", e.id, "key.pem"), 0o640)
		}, func(e env) string { return "KEY_MODE intermediates/" + e.id + "/key.pem" }},
		{"an open directory", func(e env) {
			os.Chmod(filepath.Join(e.dir, "intermediates"), 0o755)
		}, func(env) string { return "DIR_MODE intermediates" }},
		{"a world-writable certificate", func(e env) {
			os.Chmod(filepath.Join(e.dir, "root.pem"), 0o666)
		}, func(env) string { return "FILE_MODE root.pem" }},
		{"a symlink", func(e env) {
			os.Symlink("/etc/passwd", filepath.Join(e.dir, "link.pem"))
		}, func(env) string { return "SYMLINK link.pem" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, dev := prodDir(t)
			snap, _ := casigner.NewDirectory(dir, newClock(t0)).Snapshot(context.Background())
			e := env{dir: dir, dev: dev, id: snap.Intermediates[0].ID}
			tt.break_(e)
			// The case's own finding, by name, whatever else it triggers.
			if got, want := auditCodes(t, dir), tt.want(e); !slices.Contains(got, want) {
				t.Fatalf("findings %v, want %q", got, want)
			}
		})
	}
}

func TestAuditFilesKeyOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	dir, _ := prodDir(t)
	snap, _ := casigner.NewDirectory(dir, newClock(t0)).Snapshot(context.Background())
	key := filepath.Join(dir, "intermediates", snap.Intermediates[0].ID, "key.pem")
	if err := os.Chown(key, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if got := auditCodes(t, dir); !slices.Contains(got, "KEY_OWNER intermediates/"+snap.Intermediates[0].ID+"/key.pem") {
		t.Fatalf("findings %v", got)
	}
}
