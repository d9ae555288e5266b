package objectstore

import (
	"mime"
	"strings"
	"testing"

	"github.com/samplero/samplero/core/errs"
)

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"SynthA-1.2.0.zip", `attachment; filename="SynthA-1.2.0.zip"`},
		{"Synth A (Win).zip", `attachment; filename="Synth A (Win).zip"`},
		{`a"b.zip`, `attachment; filename="a_b.zip"; filename*=UTF-8''a%22b.zip`},
		{`a\b`, `attachment; filename="a_b"; filename*=UTF-8''a%5Cb`},
		{"100%.zip", `attachment; filename="100_.zip"; filename*=UTF-8''100%25.zip`},
		{"Ä b.zip", `attachment; filename="_ b.zip"; filename*=UTF-8''%C3%84%20b.zip`},
		{"a;b=c.zip", `attachment; filename="a;b=c.zip"`},
	} {
		if got := ContentDisposition(c.name); got != c.want {
			t.Errorf("ContentDisposition(%q) = %s, want %s", c.name, got, c.want)
		}
		// Whatever the name, a parser as strict as Go's gets it back exactly.
		disp, params, err := mime.ParseMediaType(ContentDisposition(c.name))
		if err != nil || disp != "attachment" || params["filename"] != c.name {
			t.Errorf("%q parses back as %s %q (%v)", c.name, disp, params["filename"], err)
		}
	}
}

func TestCheckKey(t *testing.T) {
	good := []string{"a", "A0", "products/synth-a/1.2.0/win/SynthA_1.2.0.zip", "a.b", "a/b.c/d", strings.Repeat("s", 255)}
	bad := []string{
		"", "-a", "_a", ".a", "a/.b", "a/..b", "a..b", "a/", "a//b", "/a", `a\b`, "a b", "a+b", "a:b", "é",
		strings.Repeat("s", 256), strings.Repeat("s/", 256) + "s",
	}
	for _, k := range good {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q) = %v", k, err)
		}
	}
	for _, k := range bad {
		if err := checkKey(k); errs.CodeOf(err) != CodeInvalidKey {
			t.Errorf("checkKey(%q) = %v, want %s", k, err, CodeInvalidKey)
		}
	}
}

func TestDownloadName(t *testing.T) {
	if n, err := downloadName("p/v1/Synth.zip", ""); err != nil || n != "Synth.zip" {
		t.Fatalf("default name: %q %v", n, err)
	}
	for _, n := range []string{"a/b", "\x7f", "a\tb", "\u0085x", strings.Repeat("é", 128)} {
		if _, err := downloadName("k", n); errs.CodeOf(err) != CodeInvalidFileName {
			t.Errorf("downloadName(%q) = %v", n, err)
		}
	}
	if n, err := downloadName("k", strings.Repeat("é", 127)); err != nil || n == "" {
		t.Errorf("254-byte name refused: %v", err)
	}
}
