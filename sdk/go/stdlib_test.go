package sdk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly proves the SDK depends on nothing but the standard library and itself:
// vendors must be able to drop it into any build.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/samplero/samplero/sdk/go"
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// With -test, go list also names test variants: "pkg [pkg.test]", "pkg.test", "pkg_test".
		p, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		p = strings.TrimSuffix(strings.TrimSuffix(p, ".test"), "_test")
		if p == "" {
			continue
		}
		n++
		if p != module && !strings.HasPrefix(p, module+"/") {
			t.Errorf("non-standard dependency %s", p)
		}
	}
	if n == 0 {
		t.Fatal("go list listed nothing; the check would pass vacuously")
	}
}
