// Package objectstore keeps product assets and hands out expiring download links
// (ports.ObjectStore), twice:
//
//   - Local keeps the files under a directory and signs its own links (an HS256 JWT naming the key,
//     the file name and the expiry); this server serves them through ports.FileServer. The `dev`
//     default.
//   - S3 keeps them in an S3-compatible bucket and hands out presigned GetObject URLs.
//
// Both accept the same object keys and file names and refuse the same bad input, so the commerce
// service can move from one to the other without noticing.
package objectstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/samplero/samplero/core/errs"
)

// Stable error codes of the object stores.
const (
	CodeInvalidKey      = "INVALID_OBJECT_KEY"
	CodeInvalidFileName = "INVALID_FILE_NAME"
	CodeInvalidTTL      = "INVALID_LINK_TTL"
	CodeSizeMismatch    = "OBJECT_SIZE_MISMATCH"
	CodeTooLarge        = "OBJECT_TOO_LARGE"
	CodeKeyConflict     = "OBJECT_KEY_CONFLICT"
	CodeUploadRead      = "UPLOAD_READ_FAILED"
	CodeLinkInvalid     = "DOWNLOAD_LINK_INVALID"
	CodeLinkExpired     = "DOWNLOAD_LINK_EXPIRED"
	CodeUnavailable     = "OBJECT_STORE_UNAVAILABLE"
)

const (
	// MaxKeyLength is the longest object key, in bytes.
	MaxKeyLength = 512
	// MaxLinkTTL is the longest a download link may live: the limit of SigV4 presigned URLs,
	// applied to both stores so that a configuration valid for one is valid for the other.
	MaxLinkTTL = 7 * 24 * time.Hour
	// maxFileNameBytes is the longest file name most filesystems accept; it bounds download file
	// names and each segment of a key (the local store makes every segment a file or directory).
	maxFileNameBytes = 255
	maxSegmentBytes  = maxFileNameBytes
)

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9/_.-]*$`)

// checkKey refuses keys that could name anything but one file below the store's root: the local
// store maps keys to paths, so "..", absolute paths, backslashes, empty segments and segments
// that start with a dot (hidden files, and the store's own ".meta" tree and ".tmp-" files) are
// refused for both stores alike.
func checkKey(key string) error {
	ok := len(key) <= MaxKeyLength && keyPattern.MatchString(key) && !strings.Contains(key, "..")
	if ok {
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || strings.HasPrefix(seg, ".") || len(seg) > maxSegmentBytes {
				ok = false
				break
			}
		}
	}
	if !ok {
		return errs.E(errs.Invalid, CodeInvalidKey, fmt.Sprintf(
			"an object key is 1 to %d characters of letters, digits and / _ . -, starts with a letter or digit, "+
				"and has no \"..\", no empty segment, no segment starting with a dot and none longer than %d",
			MaxKeyLength, maxSegmentBytes))
	}
	return nil
}

// downloadName is the name a link saves its object as: fileName, or the key's last segment when
// fileName is "". A name is one UTF-8 path element without control characters.
func downloadName(key, fileName string) (string, error) {
	if fileName == "" {
		return path.Base(key), nil
	}
	bad := len(fileName) > maxFileNameBytes || !utf8.ValidString(fileName) ||
		fileName == "." || fileName == ".." || strings.ContainsAny(fileName, `/\`) ||
		strings.TrimSpace(fileName) == ""
	for _, r := range fileName {
		if unicode.IsControl(r) {
			bad = true
		}
	}
	if bad {
		return "", errs.E(errs.Invalid, CodeInvalidFileName, fmt.Sprintf(
			"a download file name is 1 to %d bytes of UTF-8 without control characters, slashes or backslashes", maxFileNameBytes))
	}
	return fileName, nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Second || ttl > MaxLinkTTL {
		return errs.E(errs.Invalid, CodeInvalidTTL, "a download link lives from 1 second to 7 days")
	}
	return nil
}

// ContentDisposition is the Content-Disposition of a download saved as fileName (RFC 6266): an
// ASCII filename for old clients and, when the name is not plain ASCII, the exact name as
// filename* (RFC 8187, UTF-8 percent-encoded), which current browsers prefer.
func ContentDisposition(fileName string) string {
	var fallback strings.Builder
	for _, r := range fileName {
		// Quotes and backslashes are replaced rather than escaped: RFC 6266 section 4.3 warns that
		// user agents disagree on backslash escapes, and some decode %XX in filename.
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			r = '_'
		}
		fallback.WriteRune(r)
	}
	v := `attachment; filename="` + fallback.String() + `"`
	if fallback.String() != fileName {
		v += "; filename*=UTF-8''" + extValue(fileName)
	}
	return v
}

// extValue percent-encodes s as an RFC 8187 value: every byte but attr-char is %XX.
func extValue(s string) string {
	const attrChar = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(attrChar, c) >= 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// readTracker remembers the error of the reader it wraps, so that a failed copy can tell the
// caller's broken upload (its reader) from the store's broken disk (the writer). It also stops at
// the first read after ctx is done, so a cancelled upload stops streaming.
type readTracker struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	if err := t.ctx.Err(); err != nil {
		t.err = err
		return 0, err
	}
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// copyChecked streams r into dst while hashing it. With size ≥ 0 the upload must be exactly size
// bytes; limit > 0 caps it (errs.TooLarge). It reads at most one byte past what it accepts, so a
// too-long upload is refused without reading it whole.
func copyChecked(ctx context.Context, dst io.Writer, r io.Reader, size, limit int64) (int64, hash.Hash, error) {
	if limit > 0 && size > limit {
		return 0, nil, tooLarge(limit)
	}
	t := &readTracker{ctx: ctx, r: r}
	var src io.Reader = t
	switch {
	case size >= 0:
		src = io.LimitReader(t, size+1)
	case limit > 0:
		src = io.LimitReader(t, limit+1)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return n, nil, errs.Wrap(errs.Unavailable, CodeUnavailable, "the upload was cancelled", ctx.Err())
		case t.err != nil:
			if _, ok := errs.As(t.err); ok {
				return n, nil, t.err // the caller's own limit (e.g. a request body cap) speaks for itself
			}
			return n, nil, errs.Wrap(errs.Invalid, CodeUploadRead, "the upload could not be read to its end", t.err)
		default:
			return n, nil, errs.Wrap(errs.Unavailable, CodeUnavailable, "the object store could not write the upload", err)
		}
	}
	if size >= 0 && n != size {
		return n, nil, errs.E(errs.Invalid, CodeSizeMismatch,
			fmt.Sprintf("the upload does not have its declared size of %d bytes", size))
	}
	if limit > 0 && n > limit {
		return n, nil, tooLarge(limit)
	}
	return n, h, nil
}

func tooLarge(limit int64) error {
	return errs.E(errs.TooLarge, CodeTooLarge, fmt.Sprintf("an object is at most %d bytes", limit))
}

func unavailable(message string, cause error) error {
	return errs.Wrap(errs.Unavailable, CodeUnavailable, message, cause)
}

func notFound() error {
	return errs.E(errs.NotFound, errs.CodeNotFound, "no such object")
}
