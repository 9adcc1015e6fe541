package daemon

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is how far above the live heap the daemon keeps the Go heap's
// goal, at least. With GOGC's default of 100 the goal is twice the live heap,
// at least 4 MiB: a daemon whose live heap is a megabyte or two (the memory
// store with few keys, the Redis store) collected every 14 ms under load,
// 70 cycles a second, and lost a fifth to a third of its requests a second
// to them (BENCHMARKS.md, "Since the 05:09 table"). A heap of tens of
// megabytes of live keys collects at the default's pace: the goal is the
// larger of twice the live heap and the live heap plus this.
const gcHeadroom = 32 << 20

// gcPercentFor is the GOGC percent that puts the heap goal at live +
// headroom, never below the default 100. The runtime's goal (Go 1.18 on) is
// live + (live + scan) × percent/100, scan being the goroutine stacks and
// globals it scans, and at least its minimum heap, 4 MiB × percent/100; so
// for a small live heap the minimum is what bounds the percent. Before the
// first cycle the live heap reads 0.
func gcPercentFor(live, scan, headroom uint64) int {
	const minHeap = 4 << 20 // the runtime's minimum heap at GOGC=100
	p := (live + headroom) * 100 / minHeap
	if live+scan > 0 {
		p = min(p, headroom*100/(live+scan))
	}
	return int(min(max(p, 100), math.MaxInt32))
}

// keepGCHeadroom keeps the heap goal at least gcHeadroom above the live heap
// while the daemon runs, by setting the GC percent after each cycle from the
// live heap, stacks and globals that cycle found (a finalizer runs once per
// cycle, so a heap that grows has its percent brought down one cycle later,
// not a tick later). An operator who sets GOGC or GOMEMLIMIT has chosen:
// both are left as they are, and so is the percent. The tuner is one per
// process, whatever the number of daemons in it: stop ends this daemon's
// share, and the last one's puts the percent back to what it was before the
// first.
func keepGCHeadroom(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	tuner.mu.Lock()
	defer tuner.mu.Unlock()
	if tuner.users++; tuner.users == 1 {
		tuner.gen++
		tuner.before = debug.SetGCPercent(tuner.percent())
		tuner.arm(tuner.gen)
	}
	var once sync.Once
	return func() { once.Do(tuner.release) }
}

// tuner is the process's GC tuner.
var tuner = gcTuner{sample: []metrics.Sample{
	{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
}}

type gcTuner struct {
	mu     sync.Mutex
	users  int    // daemons keeping the headroom
	gen    uint64 // counts starts: a sentinel of an earlier one disarms
	before int
	sample []metrics.Sample // read under mu: the finalizer and keep share it
}

// gcSentinel is the object whose finalizer runs once per cycle: made
// unreachable at once, found by the next cycle, and armed again by its
// finalizer. It holds a field besides the pointer so that it is never a
// tiny allocation (whose finalizers may never run).
type gcSentinel struct {
	t   *gcTuner
	gen uint64
}

func (t *gcTuner) arm(gen uint64) {
	runtime.SetFinalizer(&gcSentinel{t: t, gen: gen}, func(s *gcSentinel) { s.t.cycle(s.gen) })
}

// percent reads what the last cycle found; mu held.
func (t *gcTuner) percent() int {
	metrics.Read(t.sample)
	var v [3]uint64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	return gcPercentFor(v[0], v[1]+v[2], gcHeadroom)
}

func (t *gcTuner) cycle(gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.users == 0 || gen != t.gen {
		return // stopped, maybe started again since with a sentinel of its own
	}
	debug.SetGCPercent(t.percent())
	t.arm(gen)
}

func (t *gcTuner) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.users--; t.users == 0 {
		debug.SetGCPercent(t.before)
	}
}
