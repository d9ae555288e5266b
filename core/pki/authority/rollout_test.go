package authority_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/pki/authority"
)

// caCert's certificates are valid from t0 for an hour.
var tValid = time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)

type member struct {
	id, state string
	share     int
	replaces  string
}

func hierarchy(t *testing.T, ms ...member) *authority.Hierarchy {
	t.Helper()
	var ints []authority.Intermediate
	rep := map[string]string{}
	for _, m := range ms {
		in, err := authority.NewIntermediate(m.id, caCert(t), m.state)
		if err != nil {
			t.Fatal(err)
		}
		if in, err = in.WithShare(m.share); err != nil {
			t.Fatal(err)
		}
		ints = append(ints, in)
		rep[m.id] = m.replaces
	}
	h, err := authority.NewHierarchy(ints, rep)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func states(h *authority.Hierarchy) string {
	s := ""
	for _, in := range h.Intermediates() {
		s += fmt.Sprintf("%s=%s", in.ID(), in.State())
		if in.Share() > 0 {
			s += fmt.Sprintf("(%d)", in.Share())
		}
		s += " "
	}
	return s
}

func TestHierarchyChange(t *testing.T) {
	type step struct {
		id    string
		to    authority.State
		share int
	}
	tests := []struct {
		name     string
		members  []member
		step     step
		at       time.Time
		want     string // states after, when the change succeeds
		wantCode string // error code, when it fails
		wantKind errs.Kind
		changes  int
	}{
		{name: "first intermediate straight to active",
			members: []member{{id: "a", state: "staged"}}, step: step{"a", authority.StateActive, 0},
			want: "a=active ", changes: 1},
		{name: "canary takes a share beside the active one",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateCanary, 5},
			want: "a=active b=canary(5) ", changes: 1},
		{name: "canary share changed by asking again",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 5}}, step: step{"b", authority.StateCanary, 25},
			want: "a=active b=canary(25) ", changes: 1},
		{name: "same state and share is a no-op (retried rollout step)",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 5}}, step: step{"b", authority.StateCanary, 5},
			want: "a=active b=canary(5) ", changes: 0},
		{name: "active again is a no-op",
			members: []member{{id: "a", state: "active"}}, step: step{"a", authority.StateActive, 0},
			want: "a=active ", changes: 0},
		{name: "promotion demotes the active one to retiring",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 5}}, step: step{"b", authority.StateActive, 0},
			want: "a=retiring b=active ", changes: 2},
		{name: "staged straight to active demotes too",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateActive, 0},
			want: "a=retiring b=active ", changes: 2},
		{name: "rollback of a canary leaves the active alone",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 5}}, step: step{"b", authority.StateRolledBack, 0},
			want: "a=active b=rolled_back ", changes: 1},
		{name: "rollback of a promoted intermediate restores the one it replaced",
			members: []member{{id: "a", state: "retiring"}, {id: "b", state: "active", replaces: "a"}}, step: step{"b", authority.StateRolledBack, 0},
			want: "a=active b=rolled_back ", changes: 2},
		{name: "rollback of an active intermediate without a fallback",
			members: []member{{id: "a", state: "retired"}, {id: "b", state: "active", replaces: "a"}}, step: step{"b", authority.StateRolledBack, 0},
			wantCode: authority.CodeNoFallback, wantKind: errs.Conflict},
		{name: "rollback fallback must still be valid",
			members: []member{{id: "a", state: "retiring"}, {id: "b", state: "active", replaces: "a"}}, step: step{"b", authority.StateRolledBack, 0},
			at: tValid.Add(2 * time.Hour), wantCode: authority.CodeNoFallback, wantKind: errs.Conflict},
		{name: "the only active cannot retire by itself",
			members: []member{{id: "a", state: "active"}}, step: step{"a", authority.StateRetiring, 0},
			wantCode: authority.CodeNoActiveIntermediate, wantKind: errs.Conflict},
		{name: "retiring to retired",
			members: []member{{id: "a", state: "retiring"}, {id: "b", state: "active"}}, step: step{"a", authority.StateRetired, 0},
			want: "a=retired b=active ", changes: 1},
		{name: "canary needs an active intermediate",
			members: []member{{id: "b", state: "staged"}}, step: step{"b", authority.StateCanary, 5},
			wantCode: authority.CodeNoActiveIntermediate, wantKind: errs.Conflict},
		{name: "canary needs a share",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateCanary, 0},
			wantCode: authority.CodeInvalidShare, wantKind: errs.Invalid},
		{name: "share above 100",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateCanary, 101},
			wantCode: authority.CodeInvalidShare, wantKind: errs.Invalid},
		{name: "canary shares add up to more than 100",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 60}, {id: "c", state: "staged"}}, step: step{"c", authority.StateCanary, 41},
			wantCode: authority.CodeInvalidShare, wantKind: errs.Invalid},
		{name: "two canaries within 100",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "canary", share: 60}, {id: "c", state: "staged"}}, step: step{"c", authority.StateCanary, 40},
			want: "a=active b=canary(60) c=canary(40) ", changes: 1},
		{name: "a share for another state",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateActive, 5},
			wantCode: authority.CodeInvalidShare, wantKind: errs.Invalid},
		{name: "an expired intermediate cannot start issuing",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateCanary, 5},
			at: tValid.Add(2 * time.Hour), wantCode: authority.CodeIntermediateNotValid, wantKind: errs.Conflict},
		{name: "transition table still rules: staged cannot retire",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "staged"}}, step: step{"b", authority.StateRetiring, 0},
			wantCode: authority.CodeIllegalTransition, wantKind: errs.Conflict},
		{name: "rolled back never comes back",
			members: []member{{id: "a", state: "active"}, {id: "b", state: "rolled_back"}}, step: step{"b", authority.StateCanary, 5},
			wantCode: authority.CodeIllegalTransition, wantKind: errs.Conflict},
		{name: "unknown intermediate",
			members: []member{{id: "a", state: "active"}}, step: step{"zz", authority.StateRetired, 0},
			wantCode: authority.CodeIntermediateNotFound, wantKind: errs.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hierarchy(t, tt.members...)
			before := states(h)
			at := tt.at
			if at.IsZero() {
				at = tValid
			}
			changes, err := h.Change(tt.step.id, tt.step.to, tt.step.share, at)
			if tt.wantCode != "" {
				if errs.CodeOf(err) != tt.wantCode || errs.KindOf(err) != tt.wantKind {
					t.Fatalf("err = %v, want %s %s", err, tt.wantKind, tt.wantCode)
				}
				if states(h) != before {
					t.Fatalf("a refused change changed the hierarchy: %s -> %s", before, states(h))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := states(h); got != tt.want {
				t.Fatalf("states %q, want %q", got, tt.want)
			}
			if len(changes) != tt.changes {
				t.Fatalf("%d changes %+v, want %d", len(changes), changes, tt.changes)
			}
		})
	}
}

func TestHierarchyRemembersRollbackTarget(t *testing.T) {
	h := hierarchy(t, member{id: "a", state: "active"}, member{id: "b", state: "staged"})
	if _, err := h.Change("b", authority.StateCanary, 5, tValid); err != nil {
		t.Fatal(err)
	}
	changes, err := h.Change("b", authority.StateActive, 0, tValid)
	if err != nil {
		t.Fatal(err)
	}
	if h.Replaces("b") != "a" || changes[len(changes)-1].Replaces != "a" {
		t.Fatalf("replaces %q, changes %+v", h.Replaces("b"), changes)
	}
	// The promotion is what makes the rollback possible: it restores a.
	if _, err := h.Change("b", authority.StateRolledBack, 0, tValid); err != nil {
		t.Fatal(err)
	}
	if got := states(h); got != "a=active b=rolled_back " {
		t.Fatalf("after rollback %q", got)
	}
}

func TestNewHierarchyRefusesDuplicates(t *testing.T) {
	in, _ := authority.NewIntermediate("a", caCert(t), "active")
	if _, err := authority.NewHierarchy([]authority.Intermediate{in, in}, nil); err == nil {
		t.Fatal("duplicate ids accepted")
	}
}

func TestWithShare(t *testing.T) {
	in, _ := authority.NewIntermediate("a", caCert(t), "canary")
	for _, bad := range []int{-1, 101} {
		if _, err := in.WithShare(bad); errs.CodeOf(err) != authority.CodeInvalidShare {
			t.Fatalf("share %d: %v", bad, err)
		}
	}
	c, err := in.WithShare(7)
	if err != nil || c.Share() != 7 {
		t.Fatalf("share %d, %v", c.Share(), err)
	}
	// A share only counts while the intermediate is a canary.
	act, _ := authority.NewIntermediate("b", caCert(t), "active")
	act, _ = act.WithShare(7)
	if act.Share() != 0 {
		t.Fatalf("active intermediate reports share %d", act.Share())
	}
}

func TestSelectIssuerShares(t *testing.T) {
	mk := func(id, state string, share int) authority.Intermediate {
		in, err := authority.NewIntermediate(id, caCert(t), state)
		if err != nil {
			t.Fatal(err)
		}
		in, err = in.WithShare(share)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	const n = 20000
	for _, share := range []int{0, 5, 50, 100} {
		ints := []authority.Intermediate{mk("old", "active", 0), mk("new", "canary", share), mk("gone", "retired", 0)}
		canary := 0
		for i := range n {
			got, err := authority.SelectIssuer(ints, fmt.Sprintf("act_%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if got.ID() == "new" {
				canary++
			} else if got.ID() != "old" {
				t.Fatalf("picked %s", got.ID())
			}
		}
		// A binomial with p = share: 5 standard deviations of slack, never a flaky test.
		p := float64(share) / 100
		want := p * n
		slack := 5 * math.Sqrt(n*p*(1-p))
		if math.Abs(float64(canary)-want) > slack+0.5 {
			t.Errorf("share %d%%: %d of %d to the canary, want %.0f ± %.0f", share, canary, n, want, slack)
		}
	}

	// The same activation lands on the same intermediate every time (renewals), and a different
	// canary id picks a different set of activations.
	a := []authority.Intermediate{mk("old", "active", 0), mk("int_a", "canary", 10)}
	b := []authority.Intermediate{mk("old", "active", 0), mk("int_b", "canary", 10)}
	same, differ := true, 0
	for i := range 2000 {
		id := fmt.Sprintf("act_%d", i)
		x, _ := authority.SelectIssuer(a, id)
		y, _ := authority.SelectIssuer(a, id)
		if x.ID() != y.ID() {
			same = false
		}
		z, _ := authority.SelectIssuer(b, id)
		if (x.ID() == "int_a") != (z.ID() == "int_b") {
			differ++
		}
	}
	if !same {
		t.Fatal("selection is not deterministic per activation")
	}
	if differ == 0 {
		t.Fatal("two rollouts chose exactly the same activations")
	}

	// A canary without an active intermediate never issues alone.
	if _, err := authority.SelectIssuer([]authority.Intermediate{mk("new", "canary", 100)}, "act_1"); errs.CodeOf(err) != authority.CodeNoActiveIntermediate {
		t.Fatalf("canary alone: %v", err)
	}
	// Two canaries of 50 % take everything: the active one gets none.
	two := []authority.Intermediate{mk("old", "active", 0), mk("c1", "canary", 50), mk("c2", "canary", 50)}
	seen := map[string]int{}
	for i := range 4000 {
		got, err := authority.SelectIssuer(two, fmt.Sprintf("act_%d", i))
		if err != nil {
			t.Fatal(err)
		}
		seen[got.ID()]++
	}
	if seen["old"] != 0 || seen["c1"] < 1700 || seen["c2"] < 1700 {
		t.Fatalf("two canaries of 50 %%: %v", seen)
	}
	// 20 % and 30 %: each gets its own share of all activations, not of what is left.
	split := []authority.Intermediate{mk("old", "active", 0), mk("c1", "canary", 20), mk("c2", "canary", 30)}
	seen = map[string]int{}
	for i := range n {
		got, _ := authority.SelectIssuer(split, fmt.Sprintf("act_%d", i))
		seen[got.ID()]++
	}
	for id, share := range map[string]float64{"c1": 0.2, "c2": 0.3, "old": 0.5} {
		if d := math.Abs(float64(seen[id]) - share*n); d > 5*math.Sqrt(n*share*(1-share)) {
			t.Errorf("%s got %d of %d, want %.0f", id, seen[id], n, share*n)
		}
	}
}

func TestChainOrder(t *testing.T) {
	order := []authority.State{authority.StateActive, authority.StateCanary, authority.StateStaged, authority.StateRetiring, authority.StateRolledBack}
	for i := 1; i < len(order); i++ {
		if authority.ChainOrder(order[i-1]) >= authority.ChainOrder(order[i]) {
			t.Fatalf("%s does not come before %s", order[i-1], order[i])
		}
	}
}
