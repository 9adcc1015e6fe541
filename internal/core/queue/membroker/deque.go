package membroker

import "container/heap"

// item is one entry of a pending deque. seq is the job's sequence number
// when the item was made: an item whose job has moved on since (cancelled,
// claimed) carries an old seq and is skipped, which makes that removal O(1)
// without searching the deque; the broker compacts a deque once its stale
// items outnumber the live ones (Broker.compactPending).
type item struct {
	id  string
	seq uint64
}

// deque is a FIFO with push-front (for jobs handed back at shutdown).
type deque struct {
	front []item // pushed at the head, last element first
	back  []item
	head  int // index of the first live element of back
}

func (d *deque) pushBack(it item)  { d.back = append(d.back, it) }
func (d *deque) pushFront(it item) { d.front = append(d.front, it) }

func (d *deque) peek() (item, bool) {
	if n := len(d.front); n > 0 {
		return d.front[n-1], true
	}
	if d.head < len(d.back) {
		return d.back[d.head], true
	}
	return item{}, false
}

func (d *deque) pop() (item, bool) {
	if n := len(d.front); n > 0 {
		it := d.front[n-1]
		d.front = d.front[:n-1]
		return it, true
	}
	if d.head < len(d.back) {
		it := d.back[d.head]
		d.back[d.head] = item{}
		d.head++
		if d.head > 1024 && d.head*2 > len(d.back) {
			d.back = append([]item(nil), d.back[d.head:]...)
			d.head = 0
		}
		return it, true
	}
	return item{}, false
}

// len is the number of items, stale ones included.
func (d *deque) len() int { return len(d.front) + len(d.back) - d.head }

// keep drops the items live says are not, keeping the order of the others,
// into a new slice sized for n of them: the old arrays, however long, go.
func (d *deque) keep(n int, live func(item) bool) {
	kept := make([]item, 0, n)
	d.each(func(it item) bool {
		if live(it) {
			kept = append(kept, it)
		}
		return true
	})
	d.front, d.back, d.head = nil, kept, 0
}

// each calls f on every item, head first, until f returns false.
func (d *deque) each(f func(item) bool) {
	for i := len(d.front) - 1; i >= 0; i-- {
		if !f(d.front[i]) {
			return
		}
	}
	for _, it := range d.back[d.head:] {
		if !f(it) {
			return
		}
	}
}

// timeHeap is a min-heap of the entries of one queue's scheduled or
// retrying jobs, earliest run time first (container/heap interface). Each
// entry knows its place in the heap (entry.index), so a job that leaves it
// out of line (cancelled, run by id) is taken out at once with heap.Remove,
// in O(log n): the heap holds exactly the queue's jobs in its status, and its
// memory follows them rather than their old run times.
type timeHeap []*entry

func (h timeHeap) Len() int { return len(h) }
func (h timeHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].job.ID < h[j].job.ID
}
func (h timeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *timeHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

// Pop takes the last entry (heap.Pop and heap.Remove call it last of all, so
// it may also hand the array back: when a burst drains, a heap a quarter full
// moves to an array half its size, O(1) amortized).
func (h *timeHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	e.index = -1
	*h = old[:n]
	if c := cap(old); c > 64 && n < c/4 {
		*h = append(make(timeHeap, 0, c/2), (*h)...)
	}
	return e
}

// remove takes e out of h, if h holds it.
func (h *timeHeap) remove(e *entry) {
	if i := e.index; i >= 0 && i < len(*h) && (*h)[i] == e {
		heap.Remove(h, i)
	}
}

// earliest calls visit with the entries of h in order (earliest first, as
// sort.Sort would put them) until visit returns false or h is exhausted,
// without sorting or copying h: a best-first walk from the root, whose
// frontier (the children of the entries visited) is a small heap of
// indexes. Visiting k entries costs O(k log k), whatever the size of h.
func (h timeHeap) earliest(visit func(*entry) bool) {
	if len(h) == 0 {
		return
	}
	f := frontier{h: h, idx: []int{0}}
	for len(f.idx) > 0 {
		i := heap.Pop(&f).(int)
		if !visit(h[i]) {
			return
		}
		// A child is never earlier than its parent, so the next entry in
		// order is always in the frontier.
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(h) {
				heap.Push(&f, c)
			}
		}
	}
}

// frontier is a min-heap of indexes of h, ordered as h orders its entries
// (container/heap interface).
type frontier struct {
	h   timeHeap
	idx []int
}

func (f *frontier) Len() int           { return len(f.idx) }
func (f *frontier) Less(i, j int) bool { return f.h.Less(f.idx[i], f.idx[j]) }
func (f *frontier) Swap(i, j int)      { f.idx[i], f.idx[j] = f.idx[j], f.idx[i] }
func (f *frontier) Push(x any)         { f.idx = append(f.idx, x.(int)) }
func (f *frontier) Pop() any {
	i := f.idx[len(f.idx)-1]
	f.idx = f.idx[:len(f.idx)-1]
	return i
}
