package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

const assetPath = "/v1/admin/products/synth/versions/ver_1/asset"

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// onlyReader hides every method but Read, so that httptest.NewRequest cannot learn the length and
// the request goes out chunked.
type onlyReader struct{ io.Reader }

func (h *commerceHarness) upload(body io.Reader, length int64, query string, token string) response {
	h.t.Helper()
	res, _ := h.uploadClosing(body, length, query, token)
	return res
}

// uploadClosing also reports whether the answer ends the connection.
func (h *commerceHarness) uploadClosing(body io.Reader, length int64, query string, token string) (response, bool) {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPut, assetPath+query, body)
	req.ContentLength = length
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, path: assetPath}, res.Close
}

// live serves the app on a loopback listener (app.Test cannot send a chunked body) and returns its
// base URL.
func (h *commerceHarness) live(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, h.app, ln)
	return "http://" + ln.Addr().String()
}

// send makes a request through a real client; a body of unknown length goes out chunked.
func (h *commerceHarness) send(t *testing.T, method, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// The asset upload takes a body far above BodyLimit and hands every byte to UploadAsset.
func TestAssetUpload(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.BodyLimit = 64 << 10 })
	asset := randomBytes(t, 1<<20)
	res, closing := h.uploadClosing(bytes.NewReader(asset), int64(len(asset)), "?filename=Synth%201.0.dmg", h.adminToken)
	m := h.json(res, 200)
	if closing {
		t.Fatal("a fully read upload ends the connection")
	}
	args := h.com.last("UploadAsset")
	if args[0] != "synth" || args[1] != "ver_1" || args[2] != "Synth 1.0.dmg" || args[3] != int64(len(asset)) {
		t.Fatalf("args = %v", args)
	}
	if h.com.uploadSum != sumHex(asset) || m["sha256"] != sumHex(asset) || m["file_size_bytes"] != float64(len(asset)) {
		t.Fatalf("the port read %d bytes (sum %s), answer %v", len(h.com.uploaded), h.com.uploadSum, m)
	}
	if m["storage_key"] == nil {
		t.Fatalf("admins see the storage key: %v", m)
	}

	// Other routes keep BodyLimit.
	big := `{"items":[{"product":"` + strings.Repeat("x", 70<<10) + `"}],"email":"a@example.com"}`
	h.problem(h.post("/v1/checkout", big), 413, "BODY_TOO_LARGE")
}

func TestAssetUploadRefusals(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.MaxAssetBytes = 1000 })
	res, closing := h.uploadClosing(bytes.NewReader(make([]byte, 1001)), 1001, "", h.adminToken)
	h.problem(res, 413, "BODY_TOO_LARGE")
	if !closing {
		t.Fatal("an answer that leaves the body unread must end the connection")
	}
	h.json(h.upload(bytes.NewReader(make([]byte, 1000)), 1000, "", h.adminToken), 200)
	// A body without a length cannot be checked against the limit before it is read.
	base := h.live(t)
	h.problem(h.send(t, http.MethodPut, base+assetPath, onlyReader{bytes.NewReader(make([]byte, 10))},
		map[string]string{"Authorization": "Bearer " + h.adminToken}), 400, "LENGTH_REQUIRED")
	h.problem(h.upload(bytes.NewReader(nil), 0, "", h.adminToken), 400, "VALIDATION_FAILED")
	h.problem(h.upload(bytes.NewReader([]byte("x")), 1, "?filename="+strings.Repeat("a", 1100), h.adminToken), 400, "VALIDATION_FAILED")
	h.problem(h.upload(bytes.NewReader([]byte("x")), 1, "", ""), 401, "UNAUTHORIZED")
	if n := h.com.count("UploadAsset"); n != 1 {
		t.Fatalf("UploadAsset called %d times, want 1", n)
	}
	// The port refuses without reading the body: the connection ends with the answer.
	h.com.fail("UploadAsset", errs.NotFound, "VERSION_NOT_FOUND")
	h.com.skipRead = true
	res, closing = h.uploadClosing(bytes.NewReader(make([]byte, 500)), 500, "", h.adminToken)
	h.problem(res, 404, "VERSION_NOT_FOUND")
	if !closing {
		t.Fatal("an upload left unread must end the connection")
	}
}

// The upload reaches the port while the client is still sending: the server does not collect the
// body first. The client holds back the second half until UploadAsset has read the first bytes.
func TestAssetUploadStreams(t *testing.T) {
	h := newCommerceHarness(t)
	started := make(chan struct{})
	var once atomic.Bool
	h.com.onRead = func() {
		if once.CompareAndSwap(false, true) {
			close(started)
		}
	}
	base := h.live(t)

	asset := randomBytes(t, 4<<20)
	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(asset[:len(asset)/2]); err != nil {
			return
		}
		select {
		case <-started:
			_, _ = pw.Write(asset[len(asset)/2:])
			_ = pw.Close()
		case <-time.After(10 * time.Second):
			_ = pw.CloseWithError(errors.New("the server did not start reading before the whole body was sent"))
		}
	}()
	req, _ := http.NewRequest(http.MethodPut, base+assetPath+"?filename=big.zip", pr)
	req.ContentLength = int64(len(asset))
	req.Header.Set("Authorization", "Bearer "+h.adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	if h.com.uploadSum != sumHex(asset) {
		t.Fatalf("the port read %d of %d bytes", len(h.com.uploaded), len(asset))
	}
}

// A chunked body is read up to BodyLimit and no further; exactly the limit passes.
func TestChunkedBodyLimit(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.BodyLimit = 4096 })
	base := h.live(t)
	send := func(body string) response {
		return h.send(t, http.MethodPost, base+"/v1/checkout", onlyReader{strings.NewReader(body)}, nil)
	}
	pad := func(n int) string {
		s := `{"items":[{"product":"synth"}],"email":"a@example.com"}`
		return s + strings.Repeat(" ", n-len(s))
	}
	h.json(send(pad(4096)), 201)
	h.problem(send(pad(4097)), 413, "BODY_TOO_LARGE")
}

// A body declared above BodyLimit on a real connection is refused at once, before it is sent (the
// client here sends only the headers), with the connection closed.
func TestDeclaredBodyAboveLimitRefusedEarly(t *testing.T) {
	h := newCommerceHarness(t, func(d *Deps) { d.Config.BodyLimit = 4096 })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, h.app, ln)
	for range 2 { // twice: a refusal leaves nothing behind for the next request
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = conn.Write([]byte("POST /v1/checkout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"))
		raw, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(raw.Body)
		conn.Close()
		h.problem(response{status: raw.StatusCode, header: raw.Header, body: b}, 413, "BODY_TOO_LARGE")
		if !raw.Close {
			t.Fatal("the connection stays open after a refused body")
		}
	}
	// A good request is then served normally.
	res, err := http.Post("http://"+ln.Addr().String()+"/v1/checkout", "application/json",
		strings.NewReader(`{"items":[{"product":"synth"}],"email":"a@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if n := h.com.count("Checkout"); n != 1 {
		t.Fatalf("Checkout called %d times", n)
	}
}

// --- GET /v1/files/{token} ---

type memFile struct {
	*bytes.Reader
	closed *atomic.Int32
}

func (m memFile) Close() error { m.closed.Add(1); return nil }

type fakeFiles struct {
	data   []byte
	closed atomic.Int32
	token  string
}

func (f *fakeFiles) OpenSigned(_ context.Context, token string) (ports.LocalFile, error) {
	switch token {
	case f.token:
		return ports.LocalFile{Body: memFile{Reader: bytes.NewReader(f.data), closed: &f.closed}, FileName: "Synth 1.0 (mac) é.dmg",
			SizeBytes: int64(len(f.data)), ModTime: t0}, nil
	case "expired":
		return ports.LocalFile{}, errs.E(errs.Forbidden, "DOWNLOAD_LINK_EXPIRED", "expired")
	case "gone":
		return ports.LocalFile{}, errs.E(errs.NotFound, errs.CodeNotFound, "no such object")
	}
	return ports.LocalFile{}, errs.E(errs.Forbidden, "DOWNLOAD_LINK_INVALID", "bad token")
}

func TestServeFile(t *testing.T) {
	files := &fakeFiles{data: randomBytes(t, 3<<20+17), token: "good.token"}
	h := newCommerceHarness(t, func(d *Deps) { d.Files = files })

	res := h.get("/v1/files/good.token")
	if res.status != 200 || !bytes.Equal(res.body, files.data) {
		t.Fatalf("status %d, %d bytes (want %d)", res.status, len(res.body), len(files.data))
	}
	for k, want := range map[string]string{
		"Content-Length":         strconv.Itoa(len(files.data)),
		"Content-Type":           "application/octet-stream",
		"Accept-Ranges":          "bytes",
		"Content-Disposition":    `attachment; filename*=utf-8''Synth%201.0%20%28mac%29%20%C3%A9.dmg`,
		"Cache-Control":          "private, no-store",
		"X-Content-Type-Options": "nosniff",
		"Last-Modified":          "Sun, 29 Nov 2026 12:00:00 GMT",
	} {
		if got := res.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if files.closed.Load() != 1 {
		t.Fatalf("file closed %d times", files.closed.Load())
	}

	ranged := func(rng string) response {
		return h.call(http.MethodGet, "/v1/files/good.token", "", map[string]string{"Range": rng})
	}
	res = ranged("bytes=100-199")
	if res.status != 206 || !bytes.Equal(res.body, files.data[100:200]) || res.header.Get("Content-Range") != "bytes 100-199/"+strconv.Itoa(len(files.data)) {
		t.Fatalf("range: %d %q %d bytes", res.status, res.header.Get("Content-Range"), len(res.body))
	}
	res = ranged("bytes=-10")
	if res.status != 206 || !bytes.Equal(res.body, files.data[len(files.data)-10:]) {
		t.Fatalf("suffix range: %d", res.status)
	}
	res = ranged("bytes=3145700-")
	if res.status != 206 || !bytes.Equal(res.body, files.data[3145700:]) {
		t.Fatalf("open range: %d", res.status)
	}
	res = ranged("bytes=0-1,5-6") // several ranges: the whole file
	if res.status != 200 || len(res.body) != len(files.data) {
		t.Fatalf("multi range: %d", res.status)
	}
	res = ranged("bytes=99999999-")
	h.problem(res, 416, "RANGE_NOT_SATISFIABLE")
	if res.header.Get("Content-Range") != "bytes */"+strconv.Itoa(len(files.data)) {
		t.Fatalf("416 Content-Range %q", res.header.Get("Content-Range"))
	}
	res = h.call(http.MethodHead, "/v1/files/good.token", "", nil)
	if res.status != 200 || len(res.body) != 0 || res.header.Get("Content-Length") != strconv.Itoa(len(files.data)) {
		t.Fatalf("HEAD: %d, %d bytes, length %q", res.status, len(res.body), res.header.Get("Content-Length"))
	}
	if opened, closed := 7, files.closed.Load(); closed != int32(opened) {
		t.Fatalf("%d files opened, %d closed", opened, closed)
	}

	h.problem(h.get("/v1/files/forged"), 403, "DOWNLOAD_LINK_INVALID")
	h.problem(h.get("/v1/files/expired"), 403, "DOWNLOAD_LINK_EXPIRED")
	h.problem(h.get("/v1/files/gone"), 404, "NOT_FOUND")

	// Without a file server (S3 links point elsewhere) the route answers 404.
	h = newCommerceHarness(t)
	h.problem(h.get("/v1/files/good.token"), 404, "NOT_FOUND")
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h               string
		start, n        int64
		ok, satisfiable bool
	}{
		{"bytes=0-9", 0, 10, true, true},
		{"bytes=5-", 5, 95, true, true},
		{"bytes=90-200", 90, 10, true, true},
		{"bytes=-5", 95, 5, true, true},
		{"bytes=-500", 0, 100, true, true},
		{"bytes=100-", 0, 0, false, false},
		{"bytes=-0", 0, 0, false, false},
		{"bytes=9-3", 0, 0, false, true},
		{"items=0-1", 0, 0, false, true},
		{"bytes=a-b", 0, 0, false, true},
		{"bytes=0-1,3-4", 0, 0, false, true},
	} {
		s, n, ok, sat := parseRange(tc.h, 100)
		if s != tc.start || n != tc.n || ok != tc.ok || sat != tc.satisfiable {
			t.Errorf("%q: %d %d %v %v", tc.h, s, n, ok, sat)
		}
	}
}

// Routes cmd mounts later (the web pages' forms) read their bodies as before: bodyLimit has put
// them in memory, chunked or not.
func TestLaterRoutesReadFormBodies(t *testing.T) {
	h := newCommerceHarness(t)
	h.app.Post("/claims/form-echo", func(c *fiber.Ctx) error { return c.SendString(c.FormValue("token") + "/" + c.FormValue("decision")) })
	form := "token=tok_123&decision=approve"
	req := httptest.NewRequest(http.MethodPost, "/claims/form-echo", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := h.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(b) != "tok_123/approve" {
		t.Fatalf("%d %q", res.StatusCode, b)
	}
	base := h.live(t)
	got := h.send(t, http.MethodPost, base+"/claims/form-echo", onlyReader{strings.NewReader(form)},
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if got.status != 200 || string(got.body) != "tok_123/approve" {
		t.Fatalf("chunked: %d %q", got.status, got.body)
	}
}

// Uploads and downloads get deadlines long enough for their size; other requests keep the
// server's, and a declared body above BodyLimit gets a read deadline already past.
func TestTransferDeadlines(t *testing.T) {
	a := &api{cfg: Config{BodyLimit: 1 << 20}}
	cfg := func(method, uri string, length int) fasthttp.RequestConfig {
		var h fasthttp.RequestHeader
		h.SetMethod(method)
		h.SetRequestURI(uri)
		h.SetContentLength(length)
		return a.headerReceived(&h)
	}
	if c := cfg("PUT", assetPath+"?filename=x", 3<<30); c.ReadTimeout != transferTimeout || c.WriteTimeout != 0 {
		t.Fatalf("upload: %+v", c)
	}
	if c := cfg("GET", "/v1/files/tok.en", 0); c.WriteTimeout != transferTimeout || c.ReadTimeout != 0 {
		t.Fatalf("download: %+v", c)
	}
	if c := cfg("POST", "/v1/checkout", 100); c != (fasthttp.RequestConfig{}) {
		t.Fatalf("checkout: %+v", c)
	}
	if c := cfg("PUT", "/v1/admin/products/synth/versions/ver_1/other", 2<<20); c.ReadTimeout != time.Nanosecond {
		t.Fatalf("oversize: %+v", c)
	}
}
