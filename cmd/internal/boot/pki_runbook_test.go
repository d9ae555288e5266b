package boot

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/adapters/casigner"
	"github.com/samplero/samplero/ports/portstest"
)

// The runbook is executable: every line of its ```sh blocks runs here, in order, on temp
// directories standing for the offline root ($ROOT), the server's PKI directory ($PKI) and the
// transfer medium ($MEDIA). Blocks marked ```sh alternative run on a copy of the three directories
// at that point, which is then thrown away. The ids and the fingerprint the commands print are
// captured as the runbook tells the operator to ($ROOT_FP, $INT1, $INT2, …).

type runbookBlock struct {
	alternative bool
	line        int
	cmds        []string
}

func readRunbook(t *testing.T) []runbookBlock {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "docs", "pki-runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []runbookBlock
	var cur *runbookBlock
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && (line == "```sh" || line == "```sh alternative"):
			blocks = append(blocks, runbookBlock{alternative: line == "```sh alternative", line: n})
			cur = &blocks[len(blocks)-1]
		case cur != nil && line == "```":
			cur = nil
		case cur != nil && strings.TrimSpace(line) != "":
			cur.cmds = append(cur.cmds, strings.TrimSpace(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// words splits a command line the way the shell would for these lines: blanks separate words,
// double quotes group, nothing else is special.
func words(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var b strings.Builder
	inQuote, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, inWord = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if inWord {
				out = append(out, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inQuote {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if inWord {
		out = append(out, b.String())
	}
	return out
}

type runbookRun struct {
	vars map[string]string
	ints int // how many new-intermediate ran: the next id is INT<ints+1>
}

func (r *runbookRun) exec(t *testing.T, blockLine int, line string) {
	t.Helper()
	expanded := os.Expand(line, func(k string) string {
		v, ok := r.vars[k]
		if !ok {
			t.Fatalf("runbook block at line %d: $%s is not set when %q runs", blockLine, k, line)
		}
		return v
	})
	args := words(t, expanded)
	switch {
	case len(args) == 3 && args[0] == "cp":
		data, err := os.ReadFile(args[1])
		if err != nil {
			t.Fatalf("runbook %q: %v", line, err)
		}
		if err := os.WriteFile(args[2], data, 0o644); err != nil {
			t.Fatalf("runbook %q: %v", line, err)
		}
	case len(args) > 2 && args[0] == "samplero" && args[1] == "pki":
		stdin := ""
		if args[2] == "init-root" || args[2] == "sign-intermediate" {
			stdin = testPassphrase + "\n" // the operator types it at the prompt
		}
		out, err := pkiCLI(t, nil, stdin, args[2:]...)
		if err != nil {
			t.Fatalf("runbook block at line %d: %s\nfailed: %v\n%s", blockLine, line, err, out)
		}
		switch args[2] {
		case "init-root":
			m := fpRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("init-root printed no fingerprint:\n%s", out)
			}
			r.vars["ROOT_FP"] = m[1]
		case "new-intermediate":
			m := idRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("new-intermediate printed no id:\n%s", out)
			}
			r.ints++
			r.vars["INT"+strconv.Itoa(r.ints)] = m[1]
		}
		t.Logf("ok: %s", line)
	default:
		t.Fatalf("runbook block at line %d: %q is neither samplero pki nor cp; the test cannot try it", blockLine, line)
	}
}

// copyTree copies a directory with its modes (the audit checks them).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPKIRunbook(t *testing.T) {
	blocks := readRunbook(t)
	base := t.TempDir()
	run := &runbookRun{vars: map[string]string{
		"ROOT":  filepath.Join(base, "offline", "root-ca"),
		"PKI":   filepath.Join(base, "srv", "pki"),
		"MEDIA": filepath.Join(base, "media"),
	}}
	if err := os.MkdirAll(run.vars["MEDIA"], 0o700); err != nil {
		t.Fatal(err)
	}
	alternatives := 0
	for i, b := range blocks {
		if !b.alternative {
			for _, c := range b.cmds {
				run.exec(t, b.line, c)
			}
			continue
		}
		alternatives++
		sandbox := filepath.Join(t.TempDir(), "alt"+strconv.Itoa(i))
		alt := &runbookRun{vars: map[string]string{}, ints: run.ints}
		for k, v := range run.vars {
			alt.vars[k] = v
		}
		for _, k := range []string{"ROOT", "PKI", "MEDIA"} {
			alt.vars[k] = filepath.Join(sandbox, k)
			copyTree(t, run.vars[k], alt.vars[k])
		}
		for _, c := range b.cmds {
			alt.exec(t, b.line, c)
		}
	}
	if alternatives < 3 {
		t.Fatalf("the runbook has %d alternative blocks; the rollbacks are missing", alternatives)
	}

	// The runbook ends with the second intermediate promoted and the first retired.
	snap, err := casigner.NewDirectory(run.vars["PKI"], portstest.NewFakeClock(time.Now())).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, in := range snap.Intermediates {
		got[in.ID] = in.Record.State
	}
	if run.ints != 2 || got[run.vars["INT1"]] != "retired" || got[run.vars["INT2"]] != "active" || len(got) != 2 {
		t.Fatalf("after the runbook: %v (INT1 %s, INT2 %s)", got, run.vars["INT1"], run.vars["INT2"])
	}

	// Every action of samplero pki is in it.
	all := ""
	for _, b := range blocks {
		all += strings.Join(b.cmds, "\n") + "\n"
	}
	for _, action := range []string{"init-root", "new-intermediate", "sign-intermediate", "bundle build", "bundle verify", "bundle install",
		"audit", "status", "state set", "--state canary", "--state active", "--state rolled_back", "--state retired"} {
		if !strings.Contains(all, action) {
			t.Errorf("the runbook never runs %q", action)
		}
	}
}
