package objectstore

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

const (
	testBucket    = "samplero-assets"
	testRegion    = "eu-central-1"
	testAccessKey = "AKIASAMPLEROTEST0001"
	testSecretKey = "s3cr3t/Samplero+Test+Key+0123456789abcdef"
)

// s3Env is a real S3-compatible HTTP server on loopback (gofakes3 with its in-memory backend) and
// a store pointed at it.
//
// gofakes3 checks neither signatures nor the expiry of presigned URLs, so the server here puts a
// check in front of it for presigned GETs: it recomputes the SigV4 query signature with the SDK's
// signer from the known credentials (it must match), and refuses the link from X-Amz-Date +
// X-Amz-Expires on by the test's clock. Requests signed in headers (the store's own API calls) go
// straight to gofakes3.
type s3Env struct {
	store     *S3
	srv       *httptest.Server
	clock     *portstest.FakeClock
	onRequest func(*http.Request) // set before the first request, to look at what the store sends
	presigned atomic.Int64        // requests that carried a query signature
	verified  atomic.Int64        // of which the signature and expiry checked out
}

func newS3Env(t *testing.T, edit ...func(*S3Options)) *s3Env {
	t.Helper()
	env := &s3Env{clock: portstest.NewFakeClock(t0)}
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	env.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if env.onRequest != nil {
			env.onRequest(r)
		}
		if r.URL.Query().Has("X-Amz-Signature") {
			env.presigned.Add(1)
			if code, err := env.checkPresigned(r); err != nil {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, err)
				return
			}
			env.verified.Add(1)
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(env.srv.Close)
	opts := S3Options{
		Endpoint: env.srv.URL, Region: testRegion, Bucket: testBucket,
		AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, PathStyle: true, Clock: env.clock,
	}
	for _, e := range edit {
		e(&opts)
	}
	st, err := NewS3(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	env.store = st
	return env
}

// checkPresigned verifies a presigned URL as S3 does: signature over the request, then expiry.
func (env *s3Env) checkPresigned(r *http.Request) (string, error) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" || q.Get("X-Amz-SignedHeaders") != "host" {
		return "AuthorizationQueryParametersError", errors.New("unexpected algorithm or signed headers")
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return "AuthorizationQueryParametersError", errors.New("bad X-Amz-Date")
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires < 1 || expires > 604800 {
		return "AuthorizationQueryParametersError", errors.New("bad X-Amz-Expires")
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[0] != testAccessKey || scope[1] != date.Format("20060102") || scope[3] != "s3" || scope[4] != "aws4_request" {
		return "InvalidAccessKeyId", errors.New("unknown credential scope")
	}
	unsigned := url.Values{}
	for k, vs := range q {
		switch k {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token":
		default:
			unsigned[k] = vs
		}
	}
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: unsigned.Encode()}
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return "InvalidRequest", err
	}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey}
	signed, _, err := signer.PresignHTTP(r.Context(), creds, req, "UNSIGNED-PAYLOAD", "s3", scope[2], date)
	if err != nil {
		return "InvalidRequest", err
	}
	su, err := url.Parse(signed)
	if err != nil {
		return "InvalidRequest", err
	}
	if !hmac.Equal([]byte(su.Query().Get("X-Amz-Signature")), []byte(q.Get("X-Amz-Signature"))) {
		return "SignatureDoesNotMatch", errors.New("the signature does not match")
	}
	if now := env.clock.Now(); now.Before(date) || !now.Before(date.Add(time.Duration(expires)*time.Second)) {
		return "AccessDenied", errors.New("request has expired")
	}
	return "", nil
}

func TestS3Contract(t *testing.T) {
	var envs []*s3Env
	portstest.RunObjectStoreContract(t, func(t *testing.T) ports.ObjectStore {
		env := newS3Env(t)
		envs = append(envs, env)
		return env.store
	}, httpFetch)
	// The links fetched above went through the signature check, not around it, and all passed.
	var presigned, verified int64
	for _, env := range envs {
		presigned += env.presigned.Load()
		verified += env.verified.Load()
	}
	if presigned == 0 || verified != presigned {
		t.Fatalf("%d presigned GETs, %d verified", presigned, verified)
	}
	t.Logf("%d presigned GETs verified", verified)
}

func TestS3PresignedURL(t *testing.T) {
	env := newS3Env(t)
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", "the product")
	mustPut(t, env.store, "p/b.zip", "another product")
	ttl := 25 * time.Minute
	link, err := env.store.DownloadURL(ctx, "p/a.zip", "Ä b.zip", ttl)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for name, want := range map[string]string{
		"X-Amz-Expires":                strconv.Itoa(int(ttl / time.Second)),
		"X-Amz-Date":                   t0.Format("20060102T150405Z"), // signed at the store's clock
		"X-Amz-Algorithm":              "AWS4-HMAC-SHA256",
		"X-Amz-Credential":             testAccessKey + "/" + t0.Format("20060102") + "/" + testRegion + "/s3/aws4_request",
		"response-content-disposition": `attachment; filename="_ b.zip"; filename*=UTF-8''%C3%84%20b.zip`,
	} {
		if got := q.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if sig := q.Get("X-Amz-Signature"); len(sig) != 64 || strings.Trim(sig, "0123456789abcdef") != "" {
		t.Errorf("X-Amz-Signature = %q, want 64 hex digits", sig)
	}
	if u.Path != "/"+testBucket+"/p/a.zip" || strings.Contains(link, testSecretKey) {
		t.Errorf("link %q", link)
	}

	status, body, header := httpFetch(t, link)
	if status != http.StatusOK || string(body) != "the product" {
		t.Fatalf("GET of the link: %d %q", status, body)
	}
	if cd := header.Get("Content-Disposition"); cd != q.Get("response-content-disposition") {
		t.Fatalf("Content-Disposition %q", cd)
	}

	edit := func(f func(u *url.URL, q url.Values)) string {
		c := *u
		cq := c.Query()
		f(&c, cq)
		c.RawQuery = cq.Encode()
		return c.String()
	}
	for name, bad := range map[string]string{
		"other key":        edit(func(u *url.URL, _ url.Values) { u.Path = "/" + testBucket + "/p/b.zip" }),
		"longer life":      edit(func(_ *url.URL, q url.Values) { q.Set("X-Amz-Expires", "604800") }),
		"other file name":  edit(func(_ *url.URL, q url.Values) { q.Set("response-content-disposition", `attachment; filename="x.exe"`) }),
		"signature erased": edit(func(_ *url.URL, q url.Values) { q.Set("X-Amz-Signature", strings.Repeat("0", 64)) }),
	} {
		if status, _, _ := httpFetch(t, bad); status != http.StatusForbidden {
			t.Errorf("%s: the tampered link answered %d", name, status)
		}
	}

	env.clock.Advance(ttl - time.Second)
	if status, _, _ := httpFetch(t, link); status != http.StatusOK {
		t.Fatalf("a second before expiry: %d", status)
	}
	env.clock.Advance(time.Second)
	if status, _, _ := httpFetch(t, link); status != http.StatusForbidden {
		t.Fatalf("at expiry: %d", status)
	}
}

func TestS3PutSendsItsChecksumAndStatReadsItBack(t *testing.T) {
	env := newS3Env(t)
	var mu sync.Mutex
	var put http.Header
	env.onRequest = func(r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			put = r.Header.Clone()
			put.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
			mu.Unlock()
		}
	}
	info, err := env.store.Put(context.Background(), "p/a.zip", strings.NewReader("abc"), 3, "")
	if err != nil {
		t.Fatal(err)
	}
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	mu.Lock()
	// S3 refuses a body whose SHA-256 differs from x-amz-checksum-sha256 (gofakes3 does not check);
	// the body is sent plain with its length, not as aws-chunked, which not every server reads.
	for name, want := range map[string]string{
		"X-Amz-Checksum-Sha256": "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
		"X-Amz-Meta-Sha256":     abc,
		"Content-Length":        "3",
		"Content-Type":          "application/octet-stream",
		"Content-Encoding":      "",
	} {
		if got := put.Get(name); got != want {
			t.Errorf("PutObject %s = %q, want %q", name, got, want)
		}
	}
	mu.Unlock()
	got, err := env.store.Stat(context.Background(), "p/a.zip")
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != abc || got.SHA256 != abc || got.SizeBytes != 3 {
		t.Fatalf("Put %+v, Stat %+v", info, got)
	}
}

// TestS3StatReadsS3sOwnChecksum covers objects uploaded by other means (no metadata of ours): a
// full-object SHA-256 checksum is used, a composite (multipart) one is not a hash of the object.
func TestS3StatReadsS3sOwnChecksum(t *testing.T) {
	var checksumType atomic.Value
	checksumType.Store("FULL_OBJECT")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/"+testBucket+"/p/a.zip" {
			if r.Header.Get("X-Amz-Checksum-Mode") != "ENABLED" {
				t.Errorf("HeadObject without x-amz-checksum-mode")
			}
			w.Header().Set("Content-Length", "3")
			w.Header().Set("X-Amz-Checksum-Sha256", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
			w.Header().Set("X-Amz-Checksum-Type", checksumType.Load().(string))
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	st, err := NewS3(context.Background(), S3Options{Endpoint: srv.URL, Region: testRegion, Bucket: testBucket,
		AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Stat(context.Background(), "p/a.zip")
	if err != nil || info.SHA256 != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || info.SizeBytes != 3 {
		t.Fatalf("full-object checksum: %+v %v", info, err)
	}
	checksumType.Store("COMPOSITE")
	info, err = st.Stat(context.Background(), "p/a.zip")
	if err != nil || info.SHA256 != "" {
		t.Fatalf("composite checksum: %+v %v", info, err)
	}
}

func TestS3SpoolsAndCleansUp(t *testing.T) {
	spool := t.TempDir()
	env := newS3Env(t, func(o *S3Options) { o.SpoolDir = spool })
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", strings.Repeat("x", 100_000))
	if _, err := env.store.Put(ctx, "p/b.zip", strings.NewReader("short"), 10, ""); errs.CodeOf(err) != CodeSizeMismatch {
		t.Fatalf("short upload: %v", err)
	}
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("spool files left: %v", entries)
	}
}

// hugeReader claims to be endless; Put must refuse a declared size over the limit without reading.
type hugeReader struct{ read bool }

func (h *hugeReader) Read(p []byte) (int, error) { h.read = true; return len(p), nil }

func TestS3RefusesObjectsOverTheSinglePutLimit(t *testing.T) {
	env := newS3Env(t)
	r := &hugeReader{}
	_, err := env.store.Put(context.Background(), "p/huge.bin", r, MaxS3ObjectSize+1, "")
	wantCode(t, err, errs.TooLarge, CodeTooLarge)
	if r.read {
		t.Fatal("Put read an upload whose declared size is over the limit")
	}
}

func TestS3FailuresAreUnavailableWithoutSecrets(t *testing.T) {
	env := newS3Env(t, func(o *S3Options) { o.MaxAttempts = 1 })
	ctx := context.Background()
	env.srv.Close() // S3 is gone
	_, putErr := env.store.Put(ctx, "p/a.zip", strings.NewReader("abc"), 3, "")
	_, statErr := env.store.Stat(ctx, "p/a.zip")
	delErr := env.store.Delete(ctx, "p/a.zip")
	for name, err := range map[string]error{"Put": putErr, "Stat": statErr, "Delete": delErr} {
		wantCode(t, err, errs.Unavailable, CodeUnavailable)
		e, _ := errs.As(err)
		if strings.Contains(err.Error(), testSecretKey) || strings.Contains(e.Message, testAccessKey) || strings.Contains(e.Message, "127.0.0.1") {
			t.Errorf("%s: the error says too much: %v", name, err)
		}
	}
	// Presigning needs no server: links can still be made (and will work once S3 is back).
	if _, err := env.store.DownloadURL(ctx, "p/a.zip", "", time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestS3AccessDeniedIsUnavailable(t *testing.T) {
	// A server that refuses every call, as S3 does for wrong credentials.
	deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
	}))
	defer deny.Close()
	_, err := NewS3(context.Background(), S3Options{Endpoint: deny.URL, Region: testRegion, Bucket: testBucket,
		AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, PathStyle: true, MaxAttempts: 1})
	wantCode(t, err, errs.Unavailable, CodeUnavailable)
	if strings.Contains(err.Error(), testSecretKey) {
		t.Fatalf("the error carries the secret: %v", err)
	}
}

func TestNewS3RefusesBadOptions(t *testing.T) {
	env := newS3Env(t)
	good := S3Options{Endpoint: env.srv.URL, Region: testRegion, Bucket: testBucket, AccessKeyID: testAccessKey,
		SecretAccessKey: testSecretKey, PathStyle: true, MaxAttempts: 1}
	for name, edit := range map[string]func(*S3Options){
		"no region":      func(o *S3Options) { o.Region = "" },
		"no bucket":      func(o *S3Options) { o.Bucket = "" },
		"no key id":      func(o *S3Options) { o.AccessKeyID = "" },
		"no secret":      func(o *S3Options) { o.SecretAccessKey = "" },
		"bad endpoint":   func(o *S3Options) { o.Endpoint = "127.0.0.1:9000" },
		"missing bucket": func(o *S3Options) { o.Bucket = "no-such-bucket" },
	} {
		opts := good
		edit(&opts)
		if _, err := NewS3(context.Background(), opts); err == nil {
			t.Errorf("%s: NewS3 accepted %+v", name, opts)
		} else if strings.Contains(err.Error(), testSecretKey) {
			t.Errorf("%s: the error carries the secret: %v", name, err)
		}
	}
	if _, err := NewS3(context.Background(), good); err != nil {
		t.Fatalf("good options: %v", err)
	}
}
