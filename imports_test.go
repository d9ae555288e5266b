package samplero

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// This file enforces ARCHITECTURE.md's table "Who may import whom". Every package of the module is
// given a kind from its path; each kind has a list of what it may import directly, and a list of
// what it must never reach, checked over every (transitive) dependency. The "other contexts" rule
// is checked on direct imports only, because ports may carry another context's aggregate types and
// a core service reaches them through ports.

// frameworks are the import-path prefixes of the frameworks that stay at the edge.
var frameworks = map[string]string{
	"github.com/gofiber/fiber":       "fiber",
	"github.com/uptrace/bun":         "bun",
	"go.temporal.io/":                "temporal",
	"github.com/stripe/stripe-go":    "stripe",
	"github.com/sendgrid/":           "sendgrid",
	"github.com/getsentry/sentry-go": "sentry",
	"github.com/redis/go-redis":      "redis",
	"github.com/prometheus/":         "prometheus",
	"github.com/go-jose/go-jose":     "go-jose",
}

// coreContexts are the bounded contexts whose top package is a core service and whose subpackages
// are aggregates.
var coreContexts = map[string]bool{"licensing": true, "commerce": true, "pki": true, "customers": true}

type pkgKind int

const (
	kindExternal  pkgKind = iota // outside the module: stdlib or a third-party module
	kindErrs                     // core/errs
	kindAggregate                // core/<context>/<aggregate>…
	kindCore                     // core/<context>
	kindPorts                    // ports, ports/…
	kindWorkflow                 // workflows/…
	kindAdapter                  // adapters/…
	kindCmd                      // cmd/…
	kindSDK                      // the nested SDK module
	kindData                     // migrations/…: embedded SQL, importable by adapters and cmd
	kindRoot                     // the module root (this package): tests only
	kindUnknown                  // any other directory of the module: flagged, so the table stays complete
)

// unit is a package as the rules see it.
type unit struct {
	kind    pkgKind
	context string // the core context of errs/aggregate/core packages
	group   string // the adapter or workflow name (adapters/<group>/…)
}

// listedPackage is the part of `go list -json` output the checker reads.
type listedPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
}

type importChecker struct {
	module string // the main module's path
	sdk    string // the SDK module's path
	pkgs   map[string]listedPackage
}

func (c *importChecker) classify(path string) unit {
	if p, ok := c.pkgs[path]; ok && p.Standard {
		return unit{kind: kindExternal}
	}
	if path == c.sdk || strings.HasPrefix(path, c.sdk+"/") {
		return unit{kind: kindSDK}
	}
	if path == c.module {
		return unit{kind: kindRoot}
	}
	rel, ok := strings.CutPrefix(path, c.module+"/")
	if !ok {
		return unit{kind: kindExternal}
	}
	parts := strings.Split(rel, "/")
	switch parts[0] {
	case "core":
		switch {
		case len(parts) >= 2 && parts[1] == "errs":
			return unit{kind: kindErrs}
		case len(parts) == 2 && coreContexts[parts[1]]:
			return unit{kind: kindCore, context: parts[1]}
		case len(parts) >= 3 && coreContexts[parts[1]]:
			return unit{kind: kindAggregate, context: parts[1]}
		}
	case "ports":
		return unit{kind: kindPorts}
	case "workflows":
		if len(parts) >= 2 {
			return unit{kind: kindWorkflow, group: parts[1]}
		}
	case "adapters":
		if len(parts) >= 2 {
			return unit{kind: kindAdapter, group: parts[1]}
		}
	case "cmd":
		return unit{kind: kindCmd}
	case "migrations":
		return unit{kind: kindData}
	}
	return unit{kind: kindUnknown}
}

func (c *importChecker) isStd(path string) bool {
	if p, ok := c.pkgs[path]; ok {
		return p.Standard
	}
	// A package go list did not report: the standard library has no dot in its first element.
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func frameworkOf(path string) string {
	for prefix, name := range frameworks {
		if strings.HasPrefix(path, prefix) {
			return name
		}
	}
	return ""
}

// directRule says whether from may import to directly, and if not, why.
func (c *importChecker) directRule(from unit, to string) string {
	if c.isStd(to) {
		return ""
	}
	t := c.classify(to)
	fw := frameworkOf(to)
	switch from.kind {
	case kindErrs, kindData:
		return "may import the standard library only"
	case kindSDK:
		if t.kind == kindSDK {
			return ""
		}
		return "the SDK may import the standard library only"
	case kindAggregate:
		switch {
		case t.kind == kindErrs:
			return ""
		case t.kind == kindAggregate && t.context == from.context:
			return ""
		case t.kind == kindAggregate || t.kind == kindCore:
			return "an aggregate may not import another context"
		}
		return "an aggregate may import the standard library, core/errs and its own context's aggregates only"
	case kindPorts:
		switch t.kind {
		case kindErrs, kindAggregate, kindPorts:
			return ""
		}
		return "ports may import the standard library, core/errs and aggregates only"
	case kindCore:
		switch {
		case t.kind == kindErrs, t.kind == kindPorts:
			return ""
		case t.kind == kindAggregate && t.context == from.context:
			return ""
		case t.kind == kindAggregate || t.kind == kindCore:
			return "a core service may not import another context (ask through a port)"
		}
		return "a core service may import the standard library, core/errs, its own aggregates and ports only"
	case kindWorkflow:
		switch {
		case t.kind == kindErrs, t.kind == kindAggregate, t.kind == kindPorts, t.kind == kindWorkflow:
			return ""
		case fw == "temporal":
			return ""
		}
		return "a workflow may import the Temporal SDK, ports, core/errs and aggregates only"
	case kindAdapter:
		switch t.kind {
		case kindErrs, kindAggregate, kindPorts, kindSDK:
			return ""
		case kindExternal:
			return "" // the adapter's own SDK, whatever it is
		case kindAdapter:
			if t.group == from.group {
				return ""
			}
			return "an adapter may not import another adapter"
		case kindWorkflow:
			if from.group == "temporalclient" {
				return ""
			}
			return "only temporalclient may import workflows (their messages)"
		case kindData:
			return ""
		}
		return "an adapter may import its SDK, ports, core/errs and aggregates only"
	case kindUnknown:
		return "the package is in no row of ARCHITECTURE.md's import table"
	}
	return "" // cmd, the root, external packages
}

// transitiveRule says whether from may depend on dep at any distance (frameworks and adapters).
func (c *importChecker) transitiveRule(from unit, dep string) string {
	if c.isStd(dep) {
		return ""
	}
	t := c.classify(dep)
	fw := frameworkOf(dep)
	switch from.kind {
	case kindErrs, kindAggregate, kindPorts, kindCore, kindData:
		if fw != "" {
			return "depends on the framework " + fw
		}
		if t.kind == kindAdapter || t.kind == kindWorkflow || t.kind == kindCmd {
			return "depends on " + dep
		}
	case kindWorkflow:
		if fw != "" && fw != "temporal" {
			return "depends on the framework " + fw
		}
		if t.kind == kindAdapter || t.kind == kindCore || t.kind == kindCmd {
			return "depends on " + dep
		}
	case kindAdapter:
		if t.kind == kindAdapter && t.group != from.group {
			return "depends on another adapter"
		}
		if t.kind == kindCore || t.kind == kindCmd {
			return "depends on " + dep
		}
	case kindSDK:
		if t.kind != kindSDK {
			return "the SDK depends on a non-standard package"
		}
	}
	return ""
}

type violation struct {
	From, To, Why string
}

func (v violation) String() string { return v.From + " -> " + v.To + ": " + v.Why }

func (c *importChecker) check() []violation {
	var out []violation
	seen := map[violation]bool{}
	add := func(v violation) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for path, p := range c.pkgs {
		from := c.classify(path)
		if from.kind == kindExternal || from.kind == kindCmd || from.kind == kindRoot {
			continue
		}
		for _, imp := range p.Imports {
			if why := c.directRule(from, imp); why != "" {
				add(violation{path, imp, why})
			}
		}
		for _, dep := range p.Deps {
			if why := c.transitiveRule(from, dep); why != "" {
				add(violation{path, dep, why})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// loadPackages runs `go list -e -deps -json` in dir. Packages that fail to build are still listed
// (-e): a broken package is the compiler's business, not this test's.
func loadPackages(t *testing.T, dir string, patterns ...string) map[string]listedPackage {
	t.Helper()
	args := append([]string{"list", "-C", dir, "-e", "-deps", "-json=ImportPath,Standard,Imports,Deps"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func modulePath(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-C", dir, "-m").Output()
	if err != nil {
		t.Fatalf("go list -m in %s: %v", dir, err)
	}
	return strings.TrimSpace(string(out))
}

func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the whole module")
	}
	module := modulePath(t, ".")
	pkgs := loadPackages(t, ".", "./...")
	// The SDK is a nested module: list it from its own directory so its rule is checked too.
	for path, p := range loadPackages(t, "sdk/go", "./...") {
		pkgs[path] = p
	}
	c := &importChecker{module: module, sdk: module + "/sdk/go", pkgs: pkgs}
	if _, ok := pkgs[module+"/ports"]; !ok {
		t.Fatalf("go list did not report %s/ports: the checker would see nothing", module)
	}
	for _, v := range c.check() {
		t.Errorf("import rule broken: %s", v)
	}
}

// The fixture is a tiny module of its own (with a fake Fiber through a replace directive, so it
// needs no network) that breaks one rule of each kind. The checker must report exactly those.
func TestImportRulesFixture(t *testing.T) {
	dir := "testdata/importfixture"
	module := modulePath(t, dir)
	c := &importChecker{module: module, sdk: module + "/sdk/go", pkgs: loadPackages(t, dir, "./...")}
	var got []string
	for _, v := range c.check() {
		got = append(got, v.String())
	}
	m := module + "/"
	want := []string{
		// adapters/web imports adapters/pgstore directly: both the direct and the transitive rule.
		m + "adapters/web -> " + m + "adapters/pgstore: an adapter may not import another adapter",
		m + "adapters/web -> " + m + "adapters/pgstore: depends on another adapter",
		// core/licensing imports the adapter directly, and reaches Fiber through it.
		m + "core/licensing -> " + m + "adapters/pgstore: a core service may import the standard library, core/errs, its own aggregates and ports only",
		m + "core/licensing -> " + m + "adapters/pgstore: depends on " + m + "adapters/pgstore",
		m + "core/licensing -> github.com/gofiber/fiber/v2: depends on the framework fiber",
		// An aggregate importing another context's aggregate (direct rule only).
		m + "core/licensing/license -> " + m + "core/pki/authority: an aggregate may not import another context",
		// ports importing a framework.
		m + "ports -> github.com/gofiber/fiber/v2: depends on the framework fiber",
		m + "ports -> github.com/gofiber/fiber/v2: ports may import the standard library, core/errs and aggregates only",
		// The SDK reaching outside the standard library (its own packages are fine).
		m + "sdk/go/client -> " + m + "core/errs: the SDK depends on a non-standard package",
		m + "sdk/go/sig -> " + m + "core/errs: the SDK depends on a non-standard package",
		m + "sdk/go/sig -> " + m + "core/errs: the SDK may import the standard library only",
		// A workflow importing a core service.
		m + "workflows/mail -> " + m + "core/licensing: a workflow may import the Temporal SDK, ports, core/errs and aggregates only",
		m + "workflows/mail -> " + m + "adapters/pgstore: depends on " + m + "adapters/pgstore",
		m + "workflows/mail -> " + m + "core/licensing: depends on " + m + "core/licensing",
		m + "workflows/mail -> github.com/gofiber/fiber/v2: depends on the framework fiber",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("violations differ\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The allowed edges in the fixture (core/pki -> own aggregate, ports -> aggregate, adapters ->
	// Fiber, temporalclient -> workflows) must not be reported.
	for _, v := range c.check() {
		if strings.Contains(v.From, "temporalclient") || strings.HasSuffix(v.From, "core/pki") {
			t.Errorf("allowed edge reported: %s", v)
		}
	}
}
