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
// headroom, never below the default 100. The runtime's goal is the larger of
// live × (1 + percent/100) and its minimum heap, 4 MiB × percent/100, so for
// a live heap under 4 MiB the minimum is what bounds the percent. Before the
// first cycle the live heap reads 0.
func gcPercentFor(live, headroom uint64) int {
	const minHeap = 4 << 20 // the runtime's minimum heap at GOGC=100
	p := (live + headroom) * 100 / minHeap
	if live > 0 {
		p = min(p, headroom*100/live)
	}
	return int(min(max(p, 100), math.MaxInt32))
}

// keepGCHeadroom keeps the heap goal at least gcHeadroom above the live heap
// while the daemon runs, by setting the GC percent after each cycle from the
// live heap that cycle found (a finalizer runs once per cycle, so a heap
// that grows has its percent brought down one cycle later, not a tick
// later). An operator who sets GOGC or GOMEMLIMIT has chosen: both are left
// as they are, and so is the percent. stop ends it and puts the percent back
// to what it was.
func keepGCHeadroom(getenv func(string) string) (stop func()) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	t := &gcTuner{sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.before = debug.SetGCPercent(t.percent())
	t.arm()
	return t.stop
}

type gcTuner struct {
	mu      sync.Mutex
	stopped bool
	before  int
	sample  []metrics.Sample // read under mu: the finalizer and stop share it
}

// gcSentinel is the object whose finalizer runs once per cycle: made
// unreachable at once, found by the next cycle, and armed again by its
// finalizer. It holds a pointer so that it is never a tiny allocation
// (whose finalizers may never run).
type gcSentinel struct{ t *gcTuner }

func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{t: t}, func(s *gcSentinel) { s.t.cycle() })
}

// percent reads the live heap the last cycle found; mu is held or the tuner
// not yet shared.
func (t *gcTuner) percent() int {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	return gcPercentFor(live, gcHeadroom)
}

func (t *gcTuner) cycle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	debug.SetGCPercent(t.percent())
	t.arm()
}

func (t *gcTuner) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(t.before)
	}
}
