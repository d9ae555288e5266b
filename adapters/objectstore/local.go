package objectstore

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// LocalOptions configure a Local store.
type LocalOptions struct {
	// Dir holds the objects, one file per key at the key's path. Created (0700) when missing.
	Dir string
	// Secret keys the link tokens; at least 32 bytes. Links stay valid across restarts as long as
	// the secret does; changing it voids every link handed out.
	Secret []byte
	// BaseURL is where this server is reached, e.g. http://127.0.0.1:8080; links are
	// BaseURL + "/v1/files/" + token.
	BaseURL string
	// Clock decides link expiry; default the system clock.
	Clock ports.Clock
}

// Local is the filesystem object store. Every file access goes through an os.Root, so neither a
// key nor a symbolic link placed in Dir can reach a file outside it.
type Local struct {
	root   *os.Root
	base   string
	key    []byte
	signer jose.Signer
	clock  ports.Clock
	// mu serialises the short filesystem steps that must not interleave: creating a directory and
	// the temporary file in it (so Delete's cleanup of empty directories cannot remove it in
	// between), and the rename of an object together with its metadata (so concurrent Puts of one
	// key leave a matching pair). The streaming of uploads runs outside it.
	mu sync.Mutex
}

var (
	_ ports.ObjectStore = (*Local)(nil)
	_ ports.FileServer  = (*Local)(nil)
)

const (
	// linkType is the JWT "typ" of download links: a token minted for another purpose with the
	// same secret is refused.
	linkType = "samplero-download+jwt"
	// linkAudience is the audience claim of download links.
	linkAudience = "samplero:files"
	// linkKeyInfo separates the link key from any other use of the configured secret (HKDF info).
	linkKeyInfo = "samplero objectstore download links v1"
	// metaDir holds one JSON record per object (its SHA-256), at metaDir/<key>/metaFile. Keys cannot
	// start a segment with a dot, so no key reaches this tree, and metaFile never collides with the
	// directory of a longer key ("a" and "a/b" both have records).
	metaDir  = ".meta"
	metaFile = ".object.json"
	// maxTokenLength bounds the work spent on a token from the network; real ones are ~300 bytes.
	maxTokenLength = 4096
)

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// NewLocal opens (creating it when missing) the store in opts.Dir.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Dir == "" {
		return nil, errors.New("objectstore: the local store needs a directory")
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("objectstore: the link secret must be at least 32 bytes")
	}
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	key, err := hkdf.Key(sha256.New, opts.Secret, nil, linkKeyInfo, 32)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
		(&jose.SignerOptions{}).WithType(linkType))
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	l := &Local{root: root, base: base, key: key, signer: signer, clock: opts.Clock}
	l.sweepTemps(staleTempAge)
	return l, nil
}

// staleTempAge is how long a temporary file may go unmodified before a start removes it. An upload
// in progress writes to its file all the time, so only the leftovers of a killed process are that old.
const staleTempAge = 24 * time.Hour

// sweepTemps removes the temporary files of uploads that a crash interrupted. Best effort: a file
// it cannot remove is left for the next start.
func (l *Local) sweepTemps(age time.Duration) {
	cutoff := l.clock.Now().Add(-age)
	_ = fs.WalkDir(l.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			_ = l.root.Remove(p)
		}
		return nil
	})
}

func parseBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("objectstore: the base URL %q is not an http(s) URL without query", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Close releases the directory handle.
func (l *Local) Close() error { return l.root.Close() }

// metaRecord is what the store knows about an object beyond the file itself. Size and ModTimeNS
// tie it to one version of the file: a record that does not match the file (a crash between the
// two renames, a file replaced by hand) is ignored rather than trusted.
type metaRecord struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	ModTimeNS   int64  `json:"mtime_ns"`
	ContentType string `json:"content_type,omitempty"`
}

func metaPath(key string) string { return path.Join(metaDir, key, metaFile) }

func tempName(dir string) string {
	return path.Join(dir, ".tmp-"+rand.Text())
}

// Put writes the object aside (a temporary file in the target directory, hashed while written,
// fsynced), then renames it over the key, so a reader sees the old object or the new one, never
// half of one. A failed upload leaves the old object in place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (ports.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ports.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return ports.ObjectInfo{}, unavailable("the upload was cancelled", err)
	}
	dir := path.Dir(key)
	l.mu.Lock()
	tmp, f, err := l.createTemp(dir)
	l.mu.Unlock()
	if err != nil {
		return ports.ObjectInfo{}, err
	}
	defer l.root.Remove(tmp) // a no-op once renamed
	n, h, err := copyChecked(ctx, f, r, size, 0)
	if err == nil {
		err = f.Sync()
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if _, ok := errs.As(err); ok {
			return ports.ObjectInfo{}, err
		}
		return ports.ObjectInfo{}, unavailable("the object store could not write the upload", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	meta, err := json.Marshal(metaRecord{SHA256: sum, Size: n, ModTimeNS: fi.ModTime().UnixNano(), ContentType: contentType})
	if err != nil {
		return ports.ObjectInfo{}, errs.Internalf("objectstore: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.install(key, tmp, meta); err != nil {
		return ports.ObjectInfo{}, err
	}
	return ports.ObjectInfo{Key: key, SizeBytes: n, SHA256: sum}, nil
}

// createTemp makes dir (0700) and an empty 0600 temporary file in it. Called with mu held.
func (l *Local) createTemp(dir string) (string, *os.File, error) {
	if err := l.root.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fsError(err)
	}
	name := tempName(dir)
	f, err := l.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fsError(err)
	}
	return name, f, nil
}

// install renames the written file over key and writes its metadata record. Called with mu held.
func (l *Local) install(key, tmp string, meta []byte) error {
	mp := metaPath(key)
	mtmp, mf, err := l.createTemp(path.Dir(mp))
	if err != nil {
		return err
	}
	defer l.root.Remove(mtmp)
	_, err = mf.Write(meta)
	if err == nil {
		err = mf.Sync()
	}
	if cerr := mf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return unavailable("the object store could not write the upload", err)
	}
	// A key that is a directory (the prefix of other keys) fails here with EISDIR: a conflict.
	if err := l.root.Rename(tmp, key); err != nil {
		return fsError(err)
	}
	if err := l.root.Rename(mtmp, mp); err != nil {
		return fsError(err)
	}
	// The renames are durable once their directories are synced.
	if err := l.syncDir(path.Dir(key)); err != nil {
		return err
	}
	return l.syncDir(path.Dir(mp))
}

func (l *Local) syncDir(dir string) error {
	d, err := l.root.Open(dir)
	if err != nil {
		return fsError(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return unavailable("the object store could not write the upload", err)
	}
	return nil
}

// fsError maps a filesystem failure: a key whose path crosses a file where a directory should be
// (or the reverse) is a conflict of keys; anything else is the store being unavailable.
func fsError(err error) error {
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) ||
		errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		return keyConflict()
	}
	return unavailable("the object store is not available", err)
}

func keyConflict() error {
	return errs.E(errs.Conflict, CodeKeyConflict,
		"the object key collides with another key that is its prefix or extends it")
}

// Stat returns the object's size and, when its metadata record matches the file, its SHA-256.
func (l *Local) Stat(ctx context.Context, key string) (ports.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return ports.ObjectInfo{}, err
	}
	fi, err := l.root.Stat(key)
	if err != nil {
		if missing(err) {
			return ports.ObjectInfo{}, notFound()
		}
		return ports.ObjectInfo{}, unavailable("the object store is not available", err)
	}
	if !fi.Mode().IsRegular() {
		return ports.ObjectInfo{}, notFound()
	}
	info := ports.ObjectInfo{Key: key, SizeBytes: fi.Size()}
	if raw, err := l.root.ReadFile(metaPath(key)); err == nil {
		var m metaRecord
		if json.Unmarshal(raw, &m) == nil && m.Size == fi.Size() && m.ModTimeNS == fi.ModTime().UnixNano() && isSHA256Hex(m.SHA256) {
			info.SHA256 = m.SHA256
		}
	}
	return info, nil
}

func missing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func isSHA256Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && strings.ToLower(s) == s
}

// Delete removes the object and its metadata; deleting a missing object is not an error (as in
// S3). Directories left empty are removed up to Dir.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := l.root.Lstat(key)
	switch {
	case err != nil && missing(err):
		return nil
	case err != nil:
		return unavailable("the object store is not available", err)
	case fi.IsDir():
		return nil // the key is only a prefix of other keys: there is no such object
	}
	if err := l.root.Remove(key); err != nil && !missing(err) {
		return unavailable("the object store is not available", err)
	}
	if err := l.root.Remove(metaPath(key)); err != nil && !missing(err) {
		return unavailable("the object store is not available", err)
	}
	l.removeEmptyParents(path.Dir(key))
	l.removeEmptyParents(path.Dir(metaPath(key)))
	return nil
}

// removeEmptyParents removes dir and its parents while they are empty (Remove refuses a
// directory that is not). Called with mu held, so no Put is between creating a directory and
// its temporary file.
func (l *Local) removeEmptyParents(dir string) {
	for dir != "." && dir != metaDir {
		if l.root.Remove(dir) != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// linkClaims are the private claims of a download link; the key is the subject.
type linkClaims struct {
	FileName string `json:"fn"`
}

// DownloadURL signs a link to key, saved as fileName ("" = the key's last segment), valid until
// now+ttl by the store's clock (to the whole second below). The object need not exist yet; opening
// the link answers NOT_FOUND while it does not.
func (l *Local) DownloadURL(ctx context.Context, key, fileName string, ttl time.Duration) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	name, err := downloadName(key, fileName)
	if err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	now := l.clock.Now()
	token, err := jwt.Signed(l.signer).
		Claims(jwt.Claims{
			Subject:  key,
			Audience: jwt.Audience{linkAudience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		}).
		Claims(linkClaims{FileName: name}).
		Serialize()
	if err != nil {
		return "", errs.Internalf("objectstore: signing a download link: %v", err)
	}
	return l.base + "/v1/files/" + token, nil
}

// OpenSigned verifies a link token (signature, type, audience, claims; then expiry by the store's
// clock) and opens its object. The caller closes Body.
func (l *Local) OpenSigned(ctx context.Context, token string) (ports.LocalFile, error) {
	key, name, err := l.verify(token)
	if err != nil {
		return ports.LocalFile{}, err
	}
	f, err := l.root.Open(key)
	if err != nil {
		if missing(err) {
			return ports.LocalFile{}, notFound()
		}
		return ports.LocalFile{}, unavailable("the object store is not available", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return ports.LocalFile{}, unavailable("the object store is not available", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return ports.LocalFile{}, notFound()
	}
	return ports.LocalFile{Body: f, FileName: name, SizeBytes: fi.Size(), ModTime: fi.ModTime()}, nil
}

// verify returns the key and file name a valid, unexpired token names. The signature is checked
// before anything in the token is believed, expiry last: an expired forgery is invalid, not expired.
func (l *Local) verify(token string) (key, name string, err error) {
	invalid := errs.E(errs.Forbidden, CodeLinkInvalid, "this download link is not valid")
	if len(token) > maxTokenLength {
		return "", "", invalid
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].ExtraHeaders[jose.HeaderType] != linkType {
		return "", "", invalid
	}
	var std jwt.Claims
	var priv linkClaims
	if err := tok.Claims(l.key, &std, &priv); err != nil {
		return "", "", invalid
	}
	if !std.Audience.Contains(linkAudience) || std.Expiry == nil || checkKey(std.Subject) != nil {
		return "", "", invalid
	}
	if _, err := downloadName(std.Subject, priv.FileName); err != nil || priv.FileName == "" {
		return "", "", invalid
	}
	if !l.clock.Now().Before(std.Expiry.Time()) {
		return "", "", errs.E(errs.Forbidden, CodeLinkExpired, "this download link has expired; ask for a new one")
	}
	return std.Subject, priv.FileName, nil
}
