package pkifiles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// Limits of a bundle: a few certificates and a manifest fit in kilobytes. The limits keep a
// hostile archive (a gzip bomb, thousands of entries) from exhausting the machine that verifies it.
const (
	maxBundleFile    = 1 << 20 // the .tar.gz itself
	maxBundleEntry   = 256 << 10
	maxBundleTotal   = 1 << 20
	maxBundleEntries = 16
)

// CodeBundleRejected matches the PKI core's code for a bundle that fails verification.
const CodeBundleRejected = "BUNDLE_REJECTED"

func rejected(msg string) error {
	return errs.E(errs.Invalid, CodeBundleRejected, "bundle rejected: "+msg)
}

// Bundles is the tar.gz ports.BundleArchive.
type Bundles struct {
	clock ports.Clock
}

var _ ports.BundleArchive = (*Bundles)(nil)

// NewBundles builds the archive reader and writer; clock stamps the entries (nil: wall clock).
func NewBundles(clock ports.Clock) *Bundles {
	if clock == nil {
		clock = wallClock{}
	}
	return &Bundles{clock: clock}
}

// Write writes files as a gzip-compressed tar with flat names, mode 0644 and one timestamp.
// It refuses an existing path; on failure it leaves nothing.
func (b *Bundles) Write(_ context.Context, p string, files []ports.BundleFile) (err error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := b.clock.Now().UTC().Truncate(time.Second)
	for _, f := range files {
		if !flatName(f.Name) {
			return errs.Internalf("pkifiles: bundle file name %q", f.Name)
		}
		hdr := &tar.Header{Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("pkifiles: %w", err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("pkifiles: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pkifiles: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pkifiles: %w", err)
	}
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return errs.E(errs.Conflict, errs.CodeConflict, p+" exists: choose another --out or remove it")
	}
	if err != nil {
		return fmt.Errorf("pkifiles: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(p)
		}
	}()
	if _, err = out.Write(buf.Bytes()); err != nil {
		out.Close()
		return fmt.Errorf("pkifiles: %w", err)
	}
	if err = out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("pkifiles: %w", err)
	}
	if err = out.Close(); err != nil {
		return fmt.Errorf("pkifiles: %w", err)
	}
	return nil
}

// flatName accepts a plain file name: no directory part, no "..", nothing absolute, no
// backslash (a Windows separator), no control characters.
func flatName(n string) bool {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\") || path.Clean(n) != n {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Read returns the files of the bundle at p (see ports.BundleArchive). The bundle itself must be
// a regular file, not a symlink to one.
func (b *Bundles) Read(_ context.Context, p string) ([]ports.BundleFile, error) {
	st, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errs.E(errs.NotFound, errs.CodeNotFound, "no bundle at "+p)
	}
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, rejected(p + " is not a regular file")
	}
	if st.Size() > maxBundleFile {
		return nil, rejected("the archive is larger than a bundle can be")
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("pkifiles: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, rejected("not a gzip file")
	}
	tr := tar.NewReader(zr)
	var out []ports.BundleFile
	seen := map[string]bool{}
	total := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, rejected("not a tar archive")
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeSymlink:
			return nil, rejected(hdr.Name + " is a symlink")
		case tar.TypeLink:
			return nil, rejected(hdr.Name + " is a hard link")
		case tar.TypeDir:
			return nil, rejected(hdr.Name + " is a directory; a bundle is flat")
		default:
			return nil, rejected(fmt.Sprintf("%s is not a regular file (type %q)", hdr.Name, hdr.Typeflag))
		}
		if !flatName(hdr.Name) {
			return nil, rejected(fmt.Sprintf("the name %q is not a plain file name (path traversal?)", hdr.Name))
		}
		if seen[hdr.Name] {
			return nil, rejected(hdr.Name + " appears twice")
		}
		seen[hdr.Name] = true
		if len(seen) > maxBundleEntries {
			return nil, rejected("too many files")
		}
		if hdr.Size < 0 || hdr.Size > maxBundleEntry || total+int(hdr.Size) > maxBundleTotal {
			return nil, rejected(hdr.Name + " is larger than a bundle file can be")
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size+1))
		if err != nil || int64(len(data)) != hdr.Size {
			return nil, rejected(hdr.Name + " is truncated")
		}
		total += len(data)
		out = append(out, ports.BundleFile{Name: hdr.Name, Data: data})
	}
	return out, nil
}
