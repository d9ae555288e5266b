package emailtmpl

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// docsDir holds every template rendered with the sample data, for people to look at.
const docsDir = "../../docs/emails"

// TestDocsEmailsAreCurrent fails when docs/emails/ differs from what the templates render now.
// SAMPLERO_UPDATE_EMAIL_DOCS=1 go test ./adapters/emailtmpl rewrites the files.
func TestDocsEmailsAreCurrent(t *testing.T) {
	r, err := New(sampleOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	var readme strings.Builder
	readme.WriteString(`# E-mails

Every e-mail template of ` + "`adapters/emailtmpl`" + `, rendered with the sample data of
` + "`adapters/emailtmpl/samples_test.go`" + ` (vendor "Acme Audio", default colours). Each has an HTML part
(` + "`<template>.html`" + `, open it in a browser) and a plain-text part (` + "`<template>.txt`" + `).

Generated: ` + "`SAMPLERO_UPDATE_EMAIL_DOCS=1 go test ./adapters/emailtmpl`" + ` rewrites these files, and
` + "`go test ./adapters/emailtmpl`" + ` fails while they are stale.

| Template | Subject | Files |
|---|---|---|
`)
	data := sampleData()
	for _, name := range Templates() {
		subject, text, html, err := r.Render(name, data[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want[name+".html"] = []byte(html)
		want[name+".txt"] = []byte(text)
		fmt.Fprintf(&readme, "| `%s` | %s | [html](%s.html), [text](%s.txt) |\n", name, strings.ReplaceAll(subject, "|", `\|`), name, name)
	}
	want["README.md"] = []byte(readme.String())

	if os.Getenv("SAMPLERO_UPDATE_EMAIL_DOCS") == "1" {
		if err := os.MkdirAll(docsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(docsDir, "*"))
		for _, f := range old {
			if _, keep := want[filepath.Base(f)]; !keep {
				if err := os.Remove(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(docsDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	const fix = "run SAMPLERO_UPDATE_EMAIL_DOCS=1 go test ./adapters/emailtmpl"
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(docsDir, name))
		if err != nil {
			t.Errorf("docs/emails/%s: %v (%s)", name, err, fix)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("docs/emails/%s is stale (%s)", name, fix)
		}
	}
	files, _ := filepath.Glob(filepath.Join(docsDir, "*"))
	for _, f := range files {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("docs/emails/%s belongs to no template (%s)", filepath.Base(f), fix)
		}
	}
}
