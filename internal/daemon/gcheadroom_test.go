package daemon

import (
	"net/http"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestGCPercentForKeepsTheHeadroom checks the percent against the runtime's
// rule for the heap goal (the larger of live + (live + scan) × p/100 and
// 4 MiB × p/100, scan being the stacks and globals): live + headroom,
// within a percent's rounding, while that is more than the default's goal,
// else GOGC's default.
func TestGCPercentForKeepsTheHeadroom(t *testing.T) {
	const headroom = 32 << 20
	for _, scan := range []uint64{0, 512 << 10, 18 << 20, 64 << 20} {
		for live := uint64(0); live <= 80<<20; live += 64 << 10 {
			p := gcPercentFor(live, scan, headroom)
			goal := max(live+(live+scan)*uint64(p)/100, (4<<20)*uint64(p)/100)
			if live+scan >= headroom {
				if p != 100 {
					t.Fatalf("live %d, scan %d: percent %d, want the default 100", live, scan, p)
				}
				continue
			}
			want := live + headroom
			step := max(live+scan, 4<<20) / 100 // one percent's worth of goal
			if goal > want || goal < want-step {
				t.Fatalf("live %d, scan %d: percent %d puts the goal at %d, want %d (within %d below)", live, scan, p, goal, want, step)
			}
		}
	}
}

func gcPercentNow(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGCPercent runs cycles until the percent is what ok wants (the
// finalizer that sets it runs after a cycle, on its own goroutine).
func waitGCPercent(t *testing.T, what string, ok func(int) bool) {
	t.Helper()
	for range 500 {
		runtime.GC()
		if ok(gcPercentNow(t)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GC percent is %d, want %s", gcPercentNow(t), what)
}

// TestKeepGCHeadroomFollowsTheLiveHeap: a small live heap gets a percent
// above the default, a large one the default, and stop puts back the percent
// that was set before.
func TestKeepGCHeadroomFollowsTheLiveHeap(t *testing.T) {
	was := debug.SetGCPercent(150)
	t.Cleanup(func() { debug.SetGCPercent(was) })

	stop := keepGCHeadroom(func(string) string { return "" })
	waitGCPercent(t, "above 150 with a small live heap", func(p int) bool { return p > 150 })

	func() {
		big := make([]byte, 96<<20) // live, and three times the headroom
		waitGCPercent(t, "100 with 96 MiB live", func(p int) bool { return p == 100 })
		runtime.KeepAlive(big)
	}()
	waitGCPercent(t, "above 150 again once the 96 MiB are garbage", func(p int) bool { return p > 150 })

	stop()
	if p := gcPercentNow(t); p != 150 {
		t.Fatalf("after stop the percent is %d, want 150 (what it was before)", p)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercentNow(t); p != 150 {
		t.Fatalf("cycles after stop set the percent to %d, want 150 kept", p)
	}
}

func gcGoalAboveLive(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// TestKeepGCHeadroomCountsStacks: goroutine stacks count in the runtime's
// goal; with 2,000 goroutines holding about 9 KiB of stack each and a small
// live heap, the goal stays about the headroom above the live heap (the
// percent from the live heap alone put it 171 MiB above: review code31).
func TestKeepGCHeadroomCountsStacks(t *testing.T) {
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	release := make(chan struct{})
	var started sync.WaitGroup
	for range 2000 {
		started.Add(1)
		go func() { deepStack(64, &started, release) }()
	}
	started.Wait()
	defer close(release)
	stop := keepGCHeadroom(func(string) string { return "" })
	defer stop()
	waitGCPercent(t, "above 100", func(p int) bool { return p > 100 })
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if above := gcGoalAboveLive(t); above > 48<<20 {
		t.Fatalf("the heap goal is %d MiB above the live heap, want about 32", above>>20)
	}
}

// deepStack recurses n frames of about 128 bytes, then waits.
func deepStack(n int, started *sync.WaitGroup, release <-chan struct{}) byte {
	var pad [128]byte
	if n == 0 {
		started.Done()
		<-release
		return pad[0]
	}
	pad[n%128] = byte(n)
	return deepStack(n-1, started, release) + pad[(n+1)%128]
}

// TestKeepGCHeadroomNested: daemons in one process share one tuner; the
// percent goes back to what it was before the first only when the last
// stops, in whatever order (each restored its own "before": stopped in
// start order, the first's percent stayed for good: review code31).
func TestKeepGCHeadroomNested(t *testing.T) {
	was := debug.SetGCPercent(150)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	env := func(string) string { return "" }
	first := keepGCHeadroom(env)
	second := keepGCHeadroom(env)
	waitGCPercent(t, "above 150", func(p int) bool { return p > 150 })
	first()
	first() // a second call changes nothing
	waitGCPercent(t, "still above 150 while one daemon runs", func(p int) bool { return p > 150 })
	second()
	if p := gcPercentNow(t); p != 150 {
		t.Fatalf("after both stopped the percent is %d, want 150", p)
	}
	third := keepGCHeadroom(env) // started again: tuned again
	waitGCPercent(t, "above 150 once started again", func(p int) bool { return p > 150 })
	third()
	if p := gcPercentNow(t); p != 150 {
		t.Fatalf("after the restart stopped the percent is %d, want 150", p)
	}
}

// TestKeepGCHeadroomLeavesAnOperatorsChoice: GOGC or GOMEMLIMIT set, the
// percent is left alone.
func TestKeepGCHeadroomLeavesAnOperatorsChoice(t *testing.T) {
	was := debug.SetGCPercent(150)
	t.Cleanup(func() { debug.SetGCPercent(was) })
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		stop := keepGCHeadroom(func(k string) string {
			if k == name {
				return "200"
			}
			return ""
		})
		for range 3 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		if p := gcPercentNow(t); p != 150 {
			t.Fatalf("%s set: the percent is %d, want 150 left alone", name, p)
		}
	}
}

var gogcMetric = regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)

// TestServeKeepsGCHeadroom: the real daemon, started without GOGC, runs with
// a percent above the default (its live heap is a few MiB), shown in
// /metrics; with GOGC=100 in its environment it keeps 100.
func TestServeKeepsGCHeadroom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env   []string
		above bool
	}{{nil, true}, {[]string{"GOGC=100"}, false}} {
		d := daemontest.Start(t, tc.env)
		d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
		_, body := d.Call("GET", "/metrics", "")
		m := gogcMetric.FindSubmatch(body)
		if m == nil {
			t.Fatalf("env %v: no go_gc_gogc_percent in /metrics", tc.env)
		}
		p, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		if tc.above && p <= 100 || !tc.above && p != 100 {
			t.Errorf("env %v: go_gc_gogc_percent %v, want above 100: %v", tc.env, p, tc.above)
		}
	}
}
