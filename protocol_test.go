package samplero

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/serverkeys"
	"github.com/samplero/samplero/ports"
	sdk "github.com/samplero/samplero/sdk/go/samplero"
)

const additionsHeading = "## Additions\n"

// docs/protocol.md is the shared, fixed contract followed by the project's additions. When the
// shared original sits beside the repository (as it does where the project is developed), the
// copy must start with it byte for byte; whatever follows is one "## Additions" section.
func TestProtocolCopyMatchesShared(t *testing.T) {
	copied, err := os.ReadFile("docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	fixed, additions := splitAdditions(t, copied)
	if additions != "" && strings.Count("\n"+additions, "\n## ") != 1 {
		t.Fatal(`docs/protocol.md: after "## Additions", use ### sections only (one top-level section of additions)`)
	}
	shared, err := os.ReadFile("../shared/PROTOCOL.md")
	if os.IsNotExist(err) {
		t.Skip("../shared/PROTOCOL.md is not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, fixed) {
		t.Fatal(`docs/protocol.md does not start with ../shared/PROTOCOL.md byte for byte: copy it again and keep only the "## Additions" section after it`)
	}
}

// splitAdditions cuts docs/protocol.md into the fixed text and the additions section ("" when
// there is none). The fixed text ends with its own newline; blank lines may separate the two.
func splitAdditions(t *testing.T, doc []byte) (fixed []byte, additions string) {
	t.Helper()
	i := bytes.Index(doc, []byte("\n"+additionsHeading))
	if i < 0 {
		return doc, ""
	}
	fixed = bytes.TrimRight(doc[:i+1], "\n")
	fixed = append(fixed[:len(fixed):len(fixed)], '\n')
	return fixed, string(doc[i+1:])
}

// The endorsement bytes written in docs/protocol.md (A.1) are the ones the server makes, and the
// test vector (A.2) verifies with both the server's and the SDK's verifier, and with nothing else.
func TestProtocolEndorsementVector(t *testing.T) {
	doc, err := os.ReadFile("docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, additions := splitAdditions(t, doc)
	if !strings.Contains(additions, "`header` is exactly these 48 bytes: `"+serverkeys.EndorsementHeader+"`") ||
		serverkeys.EndorsementHeader != sdk.EndorsementHeader || len(serverkeys.EndorsementHeader) != 48 {
		t.Fatal("A.1 does not state the header the code uses")
	}
	vector := additions[strings.Index(additions, "### A.2"):]
	blocks := fencedBlocks(vector)
	if len(blocks) != 4 {
		t.Fatalf("A.2 has %d code blocks, want 4 (root, entry, header+payload, signature)", len(blocks))
	}
	b, _ := pem.Decode([]byte(blocks[0]))
	if b == nil {
		t.Fatal("A.2: no root PEM")
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var entry sdk.ServerKey
	if err := json.Unmarshal([]byte(blocks[1]), &entry); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(blocks[2]), "\n")
	parts := strings.Split(entry.Endorsement, ".")
	if len(lines) != 2 || len(parts) != 3 || strings.TrimSpace(blocks[3]) != parts[2] {
		t.Fatal("A.2: the header, payload and signature blocks do not match the entry")
	}
	enc := base64.RawURLEncoding.EncodeToString
	if lines[0] != serverkeys.EndorsementHeader || parts[0] != enc([]byte(lines[0])) || parts[1] != enc([]byte(lines[1])) {
		t.Fatal("A.2: the header and payload lines are not the endorsement's")
	}

	// The server's side: the payload it builds for this key is the documented one, and its
	// verifier accepts the vector.
	pub, _ := base64.StdEncoding.DecodeString(entry.PublicKey)
	claims := serverkeys.ClaimsOf(ports.ServerKey{KID: entry.KID, PublicKey: pub, NotBefore: entry.NotBefore, NotAfter: *entry.NotAfter})
	if string(claims.Payload()) != lines[1] {
		t.Fatalf("server payload\n%s\ndocumented\n%s", claims.Payload(), lines[1])
	}
	if err := serverkeys.VerifyEndorsement(root, entry.Endorsement, claims); err != nil {
		t.Fatalf("server verifier: %v", err)
	}
	// The SDK's side, inside and after the window, and with one byte changed anywhere.
	roots := []*x509.Certificate{root}
	if err := sdk.VerifyEndorsement(roots, entry, time.Date(2028, 12, 5, 12, 4, 59, 0, time.UTC)); err != nil {
		t.Fatalf("SDK verifier: %v", err)
	}
	if err := sdk.VerifyEndorsement(roots, entry, time.Date(2028, 12, 5, 12, 5, 0, 0, time.UTC)); err == nil {
		t.Fatal("SDK accepted the vector after its window")
	}
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range entry.Endorsement {
		bad := entry
		e := []byte(entry.Endorsement)
		if e[i] == 'A' {
			e[i] = 'B'
		} else {
			e[i] = 'A'
		}
		bad.Endorsement = string(e)
		if sdk.VerifyEndorsement(roots, bad, now) == nil {
			t.Fatalf("SDK accepted the endorsement with byte %d changed", i)
		}
	}
	later := entry
	na := entry.NotAfter.Add(time.Second)
	later.NotAfter = &na
	if sdk.VerifyEndorsement(roots, later, now) == nil {
		t.Fatal("SDK accepted the endorsement for another not_after")
	}
}

// fencedBlocks returns the contents of the ``` blocks of a Markdown text.
func fencedBlocks(md string) []string {
	var out []string
	parts := strings.Split(md, "```")
	for i := 1; i < len(parts); i += 2 {
		block := parts[i]
		if nl := strings.IndexByte(block, '\n'); nl >= 0 {
			block = block[nl+1:] // drop the info string (pem, json)
		}
		out = append(out, block)
	}
	return out
}
