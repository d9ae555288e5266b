package portstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// RunObjectStoreContract checks what every ports.ObjectStore must do: newStore returns a fresh,
// empty store for each subtest; fetch GETs a download link as a browser would (no credentials of
// any kind) and returns the answer's status, body and header.
//
// Beyond the port's comments, the contract pins down what the commerce service relies on: Put
// returns (and Stat repeats) the exact size and SHA-256; a failed or cancelled upload leaves the
// previous object untouched; bad keys, file names and TTLs are errs.Invalid; Delete of a missing
// object succeeds; a link answers the exact bytes with Content-Disposition: attachment naming the
// file (non-ASCII names survive); a link to a missing object answers 404.
func RunObjectStoreContract(t *testing.T, newStore func(t *testing.T) ports.ObjectStore,
	fetch func(t *testing.T, url string) (status int, body []byte, header http.Header)) {
	ctx := context.Background()
	const key = "products/synth-a/1.2.0/win/SynthA-1.2.0.zip"

	t.Run("put returns size and sha256, stat repeats them", func(t *testing.T) {
		s := newStore(t)
		data := objData(1, 300<<10)
		info, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "application/zip")
		objNoErr(t, err)
		want := ports.ObjectInfo{Key: key, SizeBytes: int64(len(data)), SHA256: objSum(data)}
		objSame(t, "Put's info", want, info)
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		objSame(t, "Stat's info", want, got)
	})

	t.Run("unknown size is measured", func(t *testing.T) {
		s := newStore(t)
		data := objData(2, 70_001)
		// A reader that is not a *bytes.Reader, so no store can learn the size by type assertion.
		info, err := s.Put(ctx, key, io.MultiReader(bytes.NewReader(data[:100]), bytes.NewReader(data[100:])), -1, "")
		objNoErr(t, err)
		objSame(t, "Put's info", ports.ObjectInfo{Key: key, SizeBytes: int64(len(data)), SHA256: objSum(data)}, info)
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		objSame(t, "Stat's size", int64(len(data)), got.SizeBytes)
	})

	t.Run("empty object", func(t *testing.T) {
		s := newStore(t)
		info, err := s.Put(ctx, "empty/file.txt", strings.NewReader(""), 0, "text/plain")
		objNoErr(t, err)
		objSame(t, "Put's info", ports.ObjectInfo{Key: "empty/file.txt", SizeBytes: 0, SHA256: objSum(nil)}, info)
		u, err := s.DownloadURL(ctx, "empty/file.txt", "", time.Hour)
		objNoErr(t, err)
		status, body, _ := fetch(t, u)
		objSame(t, "status", http.StatusOK, status)
		objSame(t, "body length", 0, len(body))
	})

	t.Run("missing object is NOT_FOUND", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Stat(ctx, "no/such/object.zip")
		objWantKind(t, err, errs.NotFound)
		objSame(t, "code", errs.CodeNotFound, errs.CodeOf(err))
	})

	t.Run("overwrite replaces the object and what links serve", func(t *testing.T) {
		s := newStore(t)
		first, second := objData(3, 50_000), objData(4, 20_000)
		_, err := s.Put(ctx, key, bytes.NewReader(first), int64(len(first)), "")
		objNoErr(t, err)
		link, err := s.DownloadURL(ctx, key, "", time.Hour)
		objNoErr(t, err)
		_, err = s.Put(ctx, key, bytes.NewReader(second), int64(len(second)), "")
		objNoErr(t, err)
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		objSame(t, "Stat after overwrite", ports.ObjectInfo{Key: key, SizeBytes: int64(len(second)), SHA256: objSum(second)}, got)
		// A link names the key, not a version of it: the one handed out before serves the new bytes.
		status, body, _ := fetch(t, link)
		objSame(t, "status", http.StatusOK, status)
		objSame(t, "body", objSum(second), objSum(body))
	})

	t.Run("delete removes, deleting again succeeds, links then answer 404", func(t *testing.T) {
		s := newStore(t)
		data := objData(5, 1000)
		_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "")
		objNoErr(t, err)
		link, err := s.DownloadURL(ctx, key, "", time.Hour)
		objNoErr(t, err)
		objNoErr(t, s.Delete(ctx, key))
		_, err = s.Stat(ctx, key)
		objWantKind(t, err, errs.NotFound)
		objNoErr(t, s.Delete(ctx, key))
		objNoErr(t, s.Delete(ctx, "never/was/here.bin"))
		status, _, _ := fetch(t, link)
		objSame(t, "status of a link to a deleted object", http.StatusNotFound, status)
	})

	t.Run("keys are independent", func(t *testing.T) {
		s := newStore(t)
		a, b := objData(6, 1234), objData(7, 4321)
		_, err := s.Put(ctx, "k/one.bin", bytes.NewReader(a), int64(len(a)), "")
		objNoErr(t, err)
		_, err = s.Put(ctx, "k/two.bin", bytes.NewReader(b), int64(len(b)), "")
		objNoErr(t, err)
		objNoErr(t, s.Delete(ctx, "k/one.bin"))
		got, err := s.Stat(ctx, "k/two.bin")
		objNoErr(t, err)
		objSame(t, "the other key", objSum(b), got.SHA256)
	})

	t.Run("a wrong declared size stores nothing and keeps the old object", func(t *testing.T) {
		s := newStore(t)
		old := objData(8, 5000)
		_, err := s.Put(ctx, key, bytes.NewReader(old), int64(len(old)), "")
		objNoErr(t, err)
		short := objData(9, 100)
		_, err = s.Put(ctx, key, bytes.NewReader(short), 101, "")
		objWantKind(t, err, errs.Invalid)
		_, err = s.Put(ctx, key, bytes.NewReader(short), 99, "")
		objWantKind(t, err, errs.Invalid)
		_, err = s.Put(ctx, "fresh/key.bin", bytes.NewReader(short), 1, "")
		objWantKind(t, err, errs.Invalid)
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		objSame(t, "the old object", ports.ObjectInfo{Key: key, SizeBytes: int64(len(old)), SHA256: objSum(old)}, got)
		_, err = s.Stat(ctx, "fresh/key.bin")
		objWantKind(t, err, errs.NotFound)
	})

	t.Run("a failing or cancelled upload stores nothing", func(t *testing.T) {
		s := newStore(t)
		old := objData(10, 3000)
		_, err := s.Put(ctx, key, bytes.NewReader(old), int64(len(old)), "")
		objNoErr(t, err)
		broken := io.MultiReader(bytes.NewReader(objData(11, 4096)), objFailingReader{})
		_, err = s.Put(ctx, key, broken, -1, "")
		if err == nil {
			t.Fatal("Put of a reader that fails succeeded")
		}
		if errs.KindOf(err) == errs.Internal {
			t.Fatalf("a failing upload is not an internal error: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.Put(cctx, "cancelled/key.bin", bytes.NewReader(old), int64(len(old)), "")
		if err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		objSame(t, "the old object", objSum(old), got.SHA256)
		_, err = s.Stat(ctx, "cancelled/key.bin")
		objWantKind(t, err, errs.NotFound)
	})

	t.Run("bad keys are refused everywhere", func(t *testing.T) {
		s := newStore(t)
		bad := []string{
			"", "../escape", "a/../../escape", "a/..", "..", "/abs/path", `a\b`, `..\escape`, "a//b", "a/",
			" a", "a b", "a/.hidden", ".hidden", "a/./b", "ä.zip", "a?b", "a#b", "a%2F..%2Fb", "a\x00b",
			strings.Repeat("k", 513),
		}
		for _, k := range bad {
			_, err := s.Put(ctx, k, strings.NewReader("x"), 1, "")
			objWantKind(t, err, errs.Invalid)
			_, err = s.Stat(ctx, k)
			objWantKind(t, err, errs.Invalid)
			objWantKind(t, s.Delete(ctx, k), errs.Invalid)
			_, err = s.DownloadURL(ctx, k, "f.zip", time.Hour)
			objWantKind(t, err, errs.Invalid)
		}
		// 512 characters in segments short enough for any filesystem (a store may limit segments to 255).
		long := strings.Repeat("k", 255) + "/" + strings.Repeat("l", 254) + "/" + "m"
		if len(long) != 512 {
			t.Fatalf("test key is %d characters", len(long))
		}
		_, err := s.Put(ctx, long, strings.NewReader("x"), 1, "")
		objNoErr(t, err)
		_, err = s.Put(ctx, "Ok_key-1.2/v1.0.0/File_name-x.tar.gz", strings.NewReader("x"), 1, "")
		objNoErr(t, err)
	})

	t.Run("link serves the bytes as an attachment with the file name", func(t *testing.T) {
		s := newStore(t)
		data := objData(12, 200_000)
		_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "application/zip")
		objNoErr(t, err)
		for _, name := range []string{
			"SynthA-1.2.0.zip",
			`Synth A 1.2 (Win) – Ünïcödé "Edition" 100%.zip`,
			"ドラム パック.zip",
		} {
			u, err := s.DownloadURL(ctx, key, name, time.Hour)
			objNoErr(t, err)
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				t.Fatalf("link %q is not an absolute http(s) URL", u)
			}
			status, body, header := fetch(t, u)
			objSame(t, "status", http.StatusOK, status)
			objSame(t, "body", objSum(data), objSum(body))
			objSame(t, "file name", name, objAttachmentName(t, header))
		}
	})

	t.Run("link file name defaults to the key's last segment", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Put(ctx, key, strings.NewReader("abc"), 3, "")
		objNoErr(t, err)
		u, err := s.DownloadURL(ctx, key, "", time.Hour)
		objNoErr(t, err)
		status, body, header := fetch(t, u)
		objSame(t, "status", http.StatusOK, status)
		objSame(t, "body", "abc", string(body))
		objSame(t, "file name", "SynthA-1.2.0.zip", objAttachmentName(t, header))
	})

	t.Run("link to a missing object answers 404", func(t *testing.T) {
		s := newStore(t)
		u, err := s.DownloadURL(ctx, "not/uploaded/yet.zip", "yet.zip", time.Hour)
		objNoErr(t, err)
		status, _, _ := fetch(t, u)
		objSame(t, "status", http.StatusNotFound, status)
	})

	t.Run("bad link ttl or file name is refused", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Put(ctx, key, strings.NewReader("abc"), 3, "")
		objNoErr(t, err)
		for _, ttl := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
			_, err := s.DownloadURL(ctx, key, "f.zip", ttl)
			objWantKind(t, err, errs.Invalid)
		}
		for _, name := range []string{"a/b.zip", `a\b.zip`, "bad\nname.zip", "bad\rname", ".", "..", "   ", strings.Repeat("n", 256), "\xff.zip"} {
			_, err := s.DownloadURL(ctx, key, name, time.Hour)
			objWantKind(t, err, errs.Invalid)
		}
		_, err = s.DownloadURL(ctx, key, "f.zip", 7*24*time.Hour)
		objNoErr(t, err)
	})

	t.Run("concurrent puts of one key leave one whole object", func(t *testing.T) {
		s := newStore(t)
		const n = 6
		sums := map[string]int64{}
		var wg sync.WaitGroup
		errc := make(chan error, n)
		for i := range n {
			data := objData(uint64(100+i), 10_000+i*3_000)
			sums[objSum(data)] = int64(len(data))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "")
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			objNoErr(t, err)
		}
		got, err := s.Stat(ctx, key)
		objNoErr(t, err)
		size, ok := sums[got.SHA256]
		if !ok || size != got.SizeBytes {
			t.Fatalf("Stat after concurrent puts is %+v, which is none of the uploads", got)
		}
		u, err := s.DownloadURL(ctx, key, "", time.Hour)
		objNoErr(t, err)
		_, body, _ := fetch(t, u)
		objSame(t, "served object", got.SHA256, objSum(body))
	})
}

// objData is n deterministic pseudo-random bytes: incompressible, and different per seed.
func objData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func objSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type objFailingReader struct{}

func (objFailingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

// objAttachmentName parses Content-Disposition as a browser would and returns the file name
// (mime.ParseMediaType decodes RFC 8187 filename* and prefers it over filename).
func objAttachmentName(t *testing.T, h http.Header) string {
	t.Helper()
	cd := h.Get("Content-Disposition")
	disp, params, err := mime.ParseMediaType(cd)
	if err != nil {
		t.Fatalf("Content-Disposition %q does not parse: %v", cd, err)
	}
	if disp != "attachment" {
		t.Fatalf("Content-Disposition %q is not an attachment", cd)
	}
	return params["filename"]
}

func objNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func objWantKind(t *testing.T, err error, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got nil", kind)
	}
	if got := errs.KindOf(err); got != kind {
		t.Fatalf("want a %s error, got %s (%v)", kind, got, err)
	}
}

func objSame[T comparable](t *testing.T, what string, want, got T) {
	t.Helper()
	if want != got {
		t.Fatalf("%s differs\nwant %s\n got %s", what, fmt.Sprint(want), fmt.Sprint(got))
	}
}
