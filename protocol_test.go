package samplero

import (
	"bytes"
	"os"
	"testing"
)

// docs/protocol.md is a copy of the shared, fixed contract. When the shared original sits beside the
// repository (as it does where the project is developed), the copy must match it byte for byte.
func TestProtocolCopyMatchesShared(t *testing.T) {
	shared, err := os.ReadFile("../shared/PROTOCOL.md")
	if os.IsNotExist(err) {
		t.Skip("../shared/PROTOCOL.md is not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile("docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, copied) {
		t.Fatal("docs/protocol.md differs from ../shared/PROTOCOL.md: copy it again (cp ../shared/PROTOCOL.md docs/protocol.md)")
	}
}
