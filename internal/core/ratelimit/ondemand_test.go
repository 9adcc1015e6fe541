package ratelimit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/storetest"
)

// TestOnDemandTargets: every limit has a tenant and a global scope that an
// override can target (run:tenant, run:tenant:T, run:global,
// run:global:all); the other scopes a limit lacks stay refused, and so do
// identities that are not one.
func TestOnDemandTargets(t *testing.T) {
	clock := storetest.NewClock()
	l := storetest.NewLimiter(t, memstore.New(clock), clock, nil)
	for _, target := range []string{"run:tenant", "run:tenant:acme", "run:global", "run:global:all",
		"secure-ping:tenant", "tenant-meta:global", "rl-test:tenant:t:with:colons"} {
		if _, err := l.ParseTarget(target); err != nil {
			t.Errorf("ParseTarget(%q): %v, want accepted", target, err)
		}
	}
	for _, target := range []string{"", "secure-ping:ip", "rl-test:user", "run:user_tenant", "run:global:everyone",
		"run:tenant:", "run:tenant:" + strings.Repeat("t", 201)} {
		if _, err := l.ParseTarget(target); core.ErrorCode(err) != core.CodeInvalid {
			t.Errorf("ParseTarget(%q): err %v, want invalid", target, err)
		}
	}
}

// TestOnDemandOverrideLookup: Limiter.Override of a tenant or global key is
// the override that puts the scope in force for it (the key's, else the
// scope's); the limit's own override does not.
func TestOnDemandOverrideLookup(t *testing.T) {
	clock := storetest.NewClock()
	l := storetest.NewLimiter(t, memstore.New(clock), clock, nil)
	ctx := context.Background()
	for _, o := range []ratelimit.Override{
		{Target: "run", Capacity: 100, Window: time.Minute},
		{Target: "assistant:tenant", Capacity: 50, Window: time.Minute},
		{Target: "assistant:tenant:big", Capacity: 500, Window: time.Minute},
	} {
		if _, err := l.SetOverride(ctx, o, 0); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for _, key := range []string{"run:tenant:acme", "run:global:all", "run:ip:192.0.2.1", "assistant:tenant:acme", "assistant:tenant:big", "assistant:global:all"} {
		if o, ok := l.Override(key); ok {
			got[key] = o.Capacity
		}
	}
	want := map[string]int{"run:ip:192.0.2.1": 100, "assistant:tenant:acme": 50, "assistant:tenant:big": 500}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("overrides by key (-want +got):\n%s", diff)
	}
	// Listed as `limits get` lists them: the limit's own override is not
	// among those of its tenant or global targets.
	if _, err := l.SetOverride(ctx, ratelimit.Override{Target: "assistant", Capacity: 9, Window: time.Minute}, 0); err != nil {
		t.Fatal(err)
	}
	listed := map[string][]string{}
	for _, target := range []string{"assistant:tenant:big", "assistant:global", "assistant:ip:192.0.2.1", "assistant"} {
		listed[target] = []string{}
		for _, o := range l.OverridesOf(target) {
			listed[target] = append(listed[target], o.Target)
		}
	}
	wantListed := map[string][]string{
		"assistant:tenant:big":   {"assistant:tenant", "assistant:tenant:big"},
		"assistant:global":       {},
		"assistant:ip:192.0.2.1": {"assistant"},
		"assistant":              {"assistant", "assistant:tenant", "assistant:tenant:big"},
	}
	if diff := cmp.Diff(wantListed, listed); diff != "" {
		t.Errorf("OverridesOf (-want +got):\n%s", diff)
	}
}

// TestOnDemandAllocatesNothing: on the memory store, a decision with the
// tenant and global scopes in force allocates nothing either, on the
// general path and for a request with one identity of the limit's own (which
// leaves allowOne for the general path).
func TestOnDemandAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	checkAllowAllocatesNothing(t, []string{"run", "run:tenant", "run:global"}, []ratelimit.Request{
		{Limit: "run", IP: "203.0.113.7", User: "u1", Tenant: "t1"},
		{Limit: "run", IP: "203.0.113.8"},
	})
}
