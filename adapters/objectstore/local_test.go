package objectstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

var (
	t0     = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef-test-secret")
)

// serveFiles is GET /v1/files/{token} as the HTTP adapter serves it, reduced to what the tests
// need: the real route lives in adapters/httpapi.
func serveFiles(files ports.FileServer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/files/{token}", func(w http.ResponseWriter, r *http.Request) {
		f, err := files.OpenSigned(r.Context(), r.PathValue("token"))
		if err != nil {
			status := http.StatusInternalServerError
			switch errs.KindOf(err) {
			case errs.Forbidden:
				status = http.StatusForbidden
			case errs.NotFound:
				status = http.StatusNotFound
			}
			w.Header().Set("X-Error-Code", errs.CodeOf(err))
			w.WriteHeader(status)
			return
		}
		defer f.Body.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", ContentDisposition(f.FileName))
		http.ServeContent(w, r, "", f.ModTime, f.Body)
	})
	return mux
}

type localEnv struct {
	store *Local
	dir   string
	clock *portstest.FakeClock
	srv   *httptest.Server
}

// newLocalEnv starts a file server on loopback and a store whose links point at it.
func newLocalEnv(t *testing.T) *localEnv {
	t.Helper()
	env := &localEnv{dir: filepath.Join(t.TempDir(), "assets"), clock: portstest.NewFakeClock(t0)}
	var handler http.Handler = http.NotFoundHandler()
	env.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(env.srv.Close)
	st, err := NewLocal(LocalOptions{Dir: env.dir, Secret: secret, BaseURL: env.srv.URL + "/", Clock: env.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env.store = st
	handler = serveFiles(st)
	return env
}

func httpFetch(t *testing.T, u string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", u, err)
	}
	return resp.StatusCode, body, resp.Header
}

func TestLocalContract(t *testing.T) {
	portstest.RunObjectStoreContract(t, func(t *testing.T) ports.ObjectStore { return newLocalEnv(t).store }, httpFetch)
}

func mustPut(t *testing.T, s ports.ObjectStore, key, content string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, strings.NewReader(content), int64(len(content)), ""); err != nil {
		t.Fatal(err)
	}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	_, token, ok := strings.Cut(link, "/v1/files/")
	if !ok || token == "" {
		t.Fatalf("link %q has no token", link)
	}
	return token
}

func wantCode(t *testing.T, err error, kind errs.Kind, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s, got nil", kind, code)
	}
	if errs.KindOf(err) != kind || errs.CodeOf(err) != code {
		t.Fatalf("want %s %s, got %s %s (%v)", kind, code, errs.KindOf(err), errs.CodeOf(err), err)
	}
}

func TestLocalLinkExpiresByTheClock(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", "payload")
	link, err := env.store.DownloadURL(ctx, "p/a.zip", "A.zip", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, env.srv.URL+"/v1/files/") {
		t.Fatalf("link %q is not under the base URL (its trailing slash trimmed)", link)
	}
	token := tokenOf(t, link)

	env.clock.Advance(time.Hour - time.Second)
	f, err := env.store.OpenSigned(ctx, token)
	if err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	body, _ := io.ReadAll(f.Body)
	f.Body.Close()
	if string(body) != "payload" || f.FileName != "A.zip" || f.SizeBytes != 7 {
		t.Fatalf("opened %q as %q, %d bytes", body, f.FileName, f.SizeBytes)
	}

	env.clock.Advance(time.Second) // exactly now+ttl: "until now+ttl; after that the link is refused"
	_, err = env.store.OpenSigned(ctx, token)
	wantCode(t, err, errs.Forbidden, CodeLinkExpired)
	status, _, header := httpFetch(t, link)
	if status != http.StatusForbidden || header.Get("X-Error-Code") != CodeLinkExpired {
		t.Fatalf("expired link over HTTP: %d %s", status, header.Get("X-Error-Code"))
	}

	// A clock set back (skew) makes the link usable again: expiry is judged by the store's clock only.
	env.clock.Set(t0.Add(30 * time.Minute))
	if _, err := env.store.OpenSigned(ctx, token); err != nil {
		t.Fatalf("link within its lifetime: %v", err)
	}
}

// splitToken returns the three parts of a compact JWS.
func splitToken(t *testing.T, token string) (header, payload, sig string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", token)
	}
	return parts[0], parts[1], parts[2]
}

// rewritePayload changes the claims of a token and keeps its header and signature.
func rewritePayload(t *testing.T, token string, edit func(map[string]any)) string {
	t.Helper()
	h, p, s := splitToken(t, token)
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	raw, _ = json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + s
}

// signWith mints a token with the store's own key but chosen header type and claims, to show each
// check of verify is there (and not only the signature).
func signWith(t *testing.T, key []byte, alg jose.SignatureAlgorithm, typ string, claims ...any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(signer)
	for _, c := range claims {
		b = b.Claims(c)
	}
	token, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestLocalRefusesTamperedAndForeignTokens(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", "the product")
	mustPut(t, env.store, "p/b.zip", "another product")
	link, err := env.store.DownloadURL(ctx, "p/a.zip", "A.zip", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := tokenOf(t, link)
	if _, err := env.store.OpenSigned(ctx, good); err != nil {
		t.Fatalf("the untouched token: %v", err)
	}
	h, p, s := splitToken(t, good)
	flip := func(s string) string { // change the last-but-one character, which always changes decoded bits
		b := []byte(s)
		i := len(b) - 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	exp := jwt.NewNumericDate(t0.Add(time.Hour))
	std := func(sub string, aud jwt.Audience, exp *jwt.NumericDate) jwt.Claims {
		return jwt.Claims{Subject: sub, Audience: aud, IssuedAt: jwt.NewNumericDate(t0), Expiry: exp}
	}
	otherKey := bytes.Repeat([]byte{7}, 32)
	expired := func() string {
		l, err := env.store.DownloadURL(ctx, "p/a.zip", "A.zip", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return tokenOf(t, l)
	}()

	cases := map[string]string{
		"signature changed":               h + "." + p + "." + flip(s),
		"another key, same signature":     rewritePayload(t, good, func(c map[string]any) { c["sub"] = "p/b.zip" }),
		"expiry extended, same signature": rewritePayload(t, good, func(c map[string]any) { c["exp"] = float64(t0.Add(240 * time.Hour).Unix()) }),
		"file name changed":               rewritePayload(t, good, func(c map[string]any) { c["fn"] = "evil.exe" }),
		"header changed":                  flip(h) + "." + p + "." + s,
		"alg none": base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"samplero-download+jwt"}`)) + "." +
			p + ".",
		"signed with another secret": signWith(t, otherKey, jose.HS256, linkType, std("p/a.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "A.zip"}),
		"HS512 with the store key":   signWith(t, append(append([]byte{}, env.store.key...), env.store.key...), jose.HS512, linkType, std("p/a.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "A.zip"}),
		"no type":                    signWith(t, env.store.key, jose.HS256, "", std("p/a.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "A.zip"}),
		"other type":                 signWith(t, env.store.key, jose.HS256, "JWT", std("p/a.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "A.zip"}),
		"other audience":             signWith(t, env.store.key, jose.HS256, linkType, std("p/a.zip", jwt.Audience{"samplero:admin"}, exp), linkClaims{FileName: "A.zip"}),
		"no expiry":                  signWith(t, env.store.key, jose.HS256, linkType, std("p/a.zip", jwt.Audience{linkAudience}, nil), linkClaims{FileName: "A.zip"}),
		"traversal subject":          signWith(t, env.store.key, jose.HS256, linkType, std("../p/a.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "A.zip"}),
		"no file name":               signWith(t, env.store.key, jose.HS256, linkType, std("p/a.zip", jwt.Audience{linkAudience}, exp)),
		"expired and tampered":       rewritePayload(t, expired, func(c map[string]any) { c["sub"] = "p/b.zip" }),
		"empty":                      "",
		"garbage":                    "not-a-token",
		"too long":                   strings.Repeat("a", maxTokenLength+1),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := env.store.OpenSigned(ctx, token)
			wantCode(t, err, errs.Forbidden, CodeLinkInvalid)
			if name != "empty" {
				status, _, header := httpFetch(t, env.srv.URL+"/v1/files/"+token)
				if status != http.StatusForbidden || header.Get("X-Error-Code") != CodeLinkInvalid {
					t.Fatalf("over HTTP: %d %s", status, header.Get("X-Error-Code"))
				}
			}
		})
	}

	// A token the store's key signs with every claim right is accepted: the cases above fail for
	// the one thing each changes.
	ok := signWith(t, env.store.key, jose.HS256, linkType, std("p/b.zip", jwt.Audience{linkAudience}, exp), linkClaims{FileName: "B.zip"})
	f, err := env.store.OpenSigned(ctx, ok)
	if err != nil {
		t.Fatalf("a well-formed token: %v", err)
	}
	body, _ := io.ReadAll(f.Body)
	f.Body.Close()
	if string(body) != "another product" || f.FileName != "B.zip" {
		t.Fatalf("opened %q as %q", body, f.FileName)
	}
}

func TestLocalLinksSurviveRestartButNotANewSecret(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", "bytes")
	link, err := env.store.DownloadURL(ctx, "p/a.zip", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, link)

	again, err := NewLocal(LocalOptions{Dir: env.dir, Secret: secret, BaseURL: env.srv.URL, Clock: env.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	f, err := again.OpenSigned(ctx, token)
	if err != nil {
		t.Fatalf("same secret after a restart: %v", err)
	}
	f.Body.Close()
	if f.FileName != "a.zip" {
		t.Fatalf("file name %q, want the key's last segment", f.FileName)
	}

	rotated, err := NewLocal(LocalOptions{Dir: env.dir, Secret: bytes.Repeat([]byte("z"), 32), BaseURL: env.srv.URL, Clock: env.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer rotated.Close()
	_, err = rotated.OpenSigned(ctx, token)
	wantCode(t, err, errs.Forbidden, CodeLinkInvalid)
}

func TestLocalLinkClaims(t *testing.T) {
	env := newLocalEnv(t)
	link, err := env.store.DownloadURL(context.Background(), "p/a.zip", "A.zip", 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(tokenOf(t, link), []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatal(err)
	}
	var std jwt.Claims
	var priv linkClaims
	if err := tok.Claims(env.store.key, &std, &priv); err != nil {
		t.Fatal(err)
	}
	if std.Subject != "p/a.zip" || priv.FileName != "A.zip" || !std.Expiry.Time().Equal(t0.Add(90*time.Minute)) ||
		!std.IssuedAt.Time().Equal(t0) || tok.Headers[0].Algorithm != string(jose.HS256) {
		t.Fatalf("claims %+v %+v, header %+v", std, priv, tok.Headers[0])
	}
	// The configured secret is not the signing key (HKDF separates it from other uses).
	if err := tok.Claims(secret, &std); err == nil {
		t.Fatal("the raw secret verifies link tokens; it should only derive their key")
	}
}

func TestLocalKeysCannotLeaveTheDirectory(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	parent := filepath.Dir(env.dir)
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("do not serve"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../outside/x.bin", "../escape.bin", "/tmp/abs.bin", `..\outside\x.bin`, "a/../../escape.bin"} {
		_, err := env.store.Put(ctx, key, strings.NewReader("x"), 1, "")
		wantCode(t, err, errs.Invalid, CodeInvalidKey)
	}
	// Symbolic links planted in the directory do not lead out of it (os.Root refuses them).
	if err := os.Symlink(outside, filepath.Join(env.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(env.dir, "abs.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/secret.txt", filepath.Join(env.dir, "rel.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Put(ctx, "link/x.bin", strings.NewReader("x"), 1, ""); err == nil {
		t.Fatal("Put through a symlink to outside the directory succeeded")
	}
	for _, key := range []string{"link/secret.txt", "abs.txt", "rel.txt"} {
		if info, err := env.store.Stat(ctx, key); err == nil {
			t.Fatalf("Stat(%q) reached outside the directory: %+v", key, info)
		}
		link, err := env.store.DownloadURL(ctx, key, "s.txt", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if f, err := env.store.OpenSigned(ctx, tokenOf(t, link)); err == nil {
			f.Body.Close()
			t.Fatalf("OpenSigned(%q) opened a file outside the directory", key)
		}
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("something was written outside the directory: %v", entries)
	}
	parentEntries, _ := os.ReadDir(parent)
	for _, e := range parentEntries {
		if e.Name() != "assets" && e.Name() != "outside" {
			t.Fatalf("something was written beside the directory: %s", e.Name())
		}
	}
}

func TestLocalFileModesAndNoLeftovers(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "a/b/c.bin", "content")
	// A failed upload leaves no temporary file behind either.
	if _, err := env.store.Put(ctx, "a/b/d.bin", strings.NewReader("short"), 99, ""); err == nil {
		t.Fatal("a short upload was accepted")
	}
	var files int
	err := filepath.WalkDir(env.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(env.dir, p)
		switch {
		case rel == ".":
		case strings.HasPrefix(d.Name(), ".tmp-"):
			t.Errorf("temporary file left: %s", rel)
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			t.Errorf("directory %s has mode %v, want 0700", rel, fi.Mode().Perm())
		case !d.IsDir() && fi.Mode().Perm() != 0o600:
			t.Errorf("file %s has mode %v, want 0600", rel, fi.Mode().Perm())
		case !d.IsDir():
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 { // the object and its metadata record
		t.Fatalf("%d files, want 2", files)
	}
	if fi, err := os.Stat(env.dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the store directory: %v %v", fi.Mode(), err)
	}
}

func TestLocalPrefixKeysConflict(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "a/b", "inner")
	_, err := env.store.Put(ctx, "a", strings.NewReader("outer"), 5, "")
	wantCode(t, err, errs.Conflict, CodeKeyConflict)
	if err := env.store.Delete(ctx, "a"); err != nil { // "a" is a directory, not an object
		t.Fatal(err)
	}
	if _, err := env.store.Stat(ctx, "a"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Stat of a prefix: %v", err)
	}
	if _, err := env.store.Stat(ctx, "a/b"); err != nil {
		t.Fatalf("deleting the prefix touched the object under it: %v", err)
	}
	// Once "a/b" is gone its empty directories go too, and "a" is free.
	if err := env.store.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, env.store, "a", "outer")
	_, err = env.store.Put(ctx, "a/c", strings.NewReader("x"), 1, "")
	wantCode(t, err, errs.Conflict, CodeKeyConflict)
	// "a" and "a.json/x" live side by side, metadata records included.
	mustPut(t, env.store, "a.json/x", "x")
	for _, k := range []string{"a", "a.json/x"} {
		if info, err := env.store.Stat(ctx, k); err != nil || info.SHA256 == "" {
			t.Fatalf("Stat(%q) = %+v, %v", k, info, err)
		}
	}
}

func TestLocalIgnoresMetadataThatDoesNotMatchTheFile(t *testing.T) {
	env := newLocalEnv(t)
	ctx := context.Background()
	mustPut(t, env.store, "p/a.zip", "original")
	info, err := env.store.Stat(ctx, "p/a.zip")
	if err != nil || info.SHA256 == "" {
		t.Fatalf("Stat: %+v %v", info, err)
	}
	// As after a crash between the object's rename and its record's, or a file replaced by hand:
	// same size, new content, new modification time.
	path := filepath.Join(env.dir, "p", "a.zip")
	if err := os.WriteFile(path, []byte("replaced"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	info, err = env.store.Stat(ctx, "p/a.zip")
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != "" || info.SizeBytes != 8 {
		t.Fatalf("Stat trusted a stale record: %+v", info)
	}
}

func TestLocalPassesTheReadersOwnErrorThrough(t *testing.T) {
	env := newLocalEnv(t)
	capped := errs.E(errs.TooLarge, "BODY_TOO_LARGE", "the upload is too large")
	r := io.MultiReader(strings.NewReader("some bytes"), errReader{capped})
	_, err := env.store.Put(context.Background(), "p/a.zip", r, -1, "")
	wantCode(t, err, errs.TooLarge, "BODY_TOO_LARGE")
	_, err = env.store.Put(context.Background(), "p/a.zip", io.MultiReader(strings.NewReader("x"), errReader{io.ErrUnexpectedEOF}), -1, "")
	wantCode(t, err, errs.Invalid, CodeUploadRead)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestNewLocalRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	for name, opts := range map[string]LocalOptions{
		"no dir":          {Secret: secret, BaseURL: "http://127.0.0.1:8080"},
		"short secret":    {Dir: dir, Secret: []byte("too short"), BaseURL: "http://127.0.0.1:8080"},
		"no base URL":     {Dir: dir, Secret: secret},
		"ftp base URL":    {Dir: dir, Secret: secret, BaseURL: "ftp://127.0.0.1"},
		"no host":         {Dir: dir, Secret: secret, BaseURL: "http://"},
		"query":           {Dir: dir, Secret: secret, BaseURL: "http://127.0.0.1:8080/?a=b"},
		"credentials":     {Dir: dir, Secret: secret, BaseURL: "http://user:pw@127.0.0.1:8080"},
		"relative":        {Dir: dir, Secret: secret, BaseURL: "/v1"},
		"dir is a file":   {Dir: filepath.Join(dir, "file"), Secret: secret, BaseURL: "http://127.0.0.1:8080"},
		"unparsable URL":  {Dir: dir, Secret: secret, BaseURL: "http://[::1"},
		"fragment in URL": {Dir: dir, Secret: secret, BaseURL: "http://127.0.0.1:8080/#x"},
	} {
		if name == "dir is a file" {
			if err := os.WriteFile(opts.Dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if st, err := NewLocal(opts); err == nil {
			st.Close()
			t.Errorf("%s: NewLocal accepted %+v", name, opts)
		}
	}
	st, err := NewLocal(LocalOptions{Dir: filepath.Join(dir, "x"), Secret: secret, BaseURL: "https://shop.example/samplero/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	link, err := st.DownloadURL(context.Background(), "k", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, "https://shop.example/samplero/v1/files/ey") {
		t.Fatalf("link %q does not keep the base URL's path", link)
	}
}

func TestLocalStartRemovesStaleTemporaryFiles(t *testing.T) {
	env := newLocalEnv(t)
	mustPut(t, env.store, "p/a.zip", "kept")
	stale := filepath.Join(env.dir, "p", ".tmp-STALE")
	fresh := filepath.Join(env.dir, "p", ".tmp-FRESH")
	for _, f := range []string{stale, fresh} {
		if err := os.WriteFile(f, []byte("half an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// By the store's clock: one untouched for a day and a second, one written a minute ago.
	if err := os.Chtimes(stale, t0, t0.Add(-staleTempAge-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(fresh, t0, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	again, err := NewLocal(LocalOptions{Dir: env.dir, Secret: secret, BaseURL: env.srv.URL, Clock: env.clock})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the stale temporary file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("a fresh temporary file (an upload in progress) was removed: %v", err)
	}
	if info, err := again.Stat(context.Background(), "p/a.zip"); err != nil || info.SHA256 == "" {
		t.Fatalf("the object: %+v %v", info, err)
	}
}
