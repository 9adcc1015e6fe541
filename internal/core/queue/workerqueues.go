package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// WorkerQueue is one entry of WORKER_QUEUES: a queue a daemon's worker
// pool takes jobs from, and its weight (its share of first places in the
// weighted order).
type WorkerQueue struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

// The words of WORKER_QUEUE_ORDER.
const (
	OrderWeighted = "weighted" // per fetch, a weighted random order (the default)
	OrderStrict   = "strict"   // per fetch, the listed order
)

// Bounds of WORKER_QUEUES.
const (
	MaxWorkerQueues = 100  // entries
	MaxQueueWeight  = 1000 // a weight is 1 to this
)

// ParseWorkerQueues reads WORKER_QUEUES: comma-separated NAME[=WEIGHT]
// entries (a name as CheckQueue takes it but OtherQueues, a weight of
// digits alone from 1 to MaxQueueWeight, 1 when not given), without
// duplicates, at most MaxWorkerQueues. Blanks around an entry, its name or its weight are
// trimmed (as JOB_WEBHOOKS trims its pairs); an empty entry is refused,
// since a list with a hole in it is more likely a typo than meant. The
// empty value, or blanks alone, is nil: every queue.
func ParseWorkerQueues(v string) ([]WorkerQueue, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > MaxWorkerQueues {
		return nil, fmt.Errorf("lists %d entries; at most %d", len(parts), MaxWorkerQueues)
	}
	out := make([]WorkerQueue, 0, len(parts))
	for i, part := range parts {
		n := i + 1
		if strings.TrimSpace(part) == "" {
			return nil, fmt.Errorf("entry %d is empty (want NAME or NAME=WEIGHT, comma-separated)", n)
		}
		name, weight, hasWeight := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !validQueue(name) {
			return nil, fmt.Errorf("entry %d: %q is not a queue name (want %s)", n, name, NameRule)
		}
		if name == OtherQueues {
			return nil, fmt.Errorf("entry %d: %s is reserved (the metrics' and stats' sum of the queues beyond their cap)", n, name)
		}
		w := 1
		if hasWeight {
			var err error
			w, err = weightOf(strings.TrimSpace(weight))
			if err != nil || w < 1 || w > MaxQueueWeight {
				return nil, fmt.Errorf("entry %d (%s): weight %q is not a whole number from 1 to %d", n, name, strings.TrimSpace(weight), MaxQueueWeight)
			}
		}
		if slices.ContainsFunc(out, func(q WorkerQueue) bool { return q.Name == name }) {
			return nil, fmt.Errorf("entry %d: queue %s is listed twice", n, name)
		}
		out = append(out, WorkerQueue{Name: name, Weight: w})
	}
	return out, nil
}

// weightOf reads a weight: digits alone, without a leading 0 (strconv.Atoi
// would take "+3" and "03" too).
func weightOf(s string) (int, error) {
	if s == "" || s[0] == '0' || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// FormatWorkerQueues writes qs as WORKER_QUEUES takes them, a weight only
// where it is not 1; "all" when qs is empty (every queue).
func FormatWorkerQueues(qs []WorkerQueue) string {
	if len(qs) == 0 {
		return "all"
	}
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = q.Name
		if q.Weight != 1 {
			parts[i] += "=" + strconv.Itoa(q.Weight)
		}
	}
	return strings.Join(parts, ",")
}

// queueOrder is what a pool's fetches ask for: the queues of its set, and
// how to visit them.
type queueOrder struct {
	names  []string // the set, in the listed order
	weight []int    // their weights, when they differ (else nil: rotation)
	strict bool
	rnd    *rand.Rand
}

func newQueueOrder(qs []WorkerQueue, strict bool, rnd *rand.Rand) *queueOrder {
	if len(qs) == 0 {
		return nil
	}
	o := &queueOrder{strict: strict, rnd: rnd}
	for _, q := range qs {
		o.names = append(o.names, q.Name)
	}
	if !strict && slices.ContainsFunc(qs, func(q WorkerQueue) bool { return q.Weight != qs[0].Weight }) {
		for _, q := range qs {
			o.weight = append(o.weight, q.Weight)
		}
	}
	if o.rnd == nil {
		o.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return o
}

// request fills in req the queues of one fetch: the set in the listed
// order (strict), a weighted random order (weights that differ), or the
// set for the broker to rotate through (equal weights: today's
// round-robin over the listed queues). Only the pool's fetcher calls it.
func (o *queueOrder) request(req *FetchRequest) {
	if o == nil {
		return
	}
	req.Only = true
	switch {
	case o.strict:
		req.Queues, req.Ordered, req.Strict = o.names, true, true
	case o.weight != nil:
		req.Queues, req.Ordered = o.permutation(), true
	default:
		req.Queues = o.names
	}
}

// permutation draws the set's order for one fetch by weighted sampling
// without replacement: the first place goes to queue i with probability
// weight[i]/sum, each next place likewise among the queues not placed
// yet. It is the distribution of asynq's order (a list holding each queue
// weight times, shuffled, its duplicates dropped): in a uniform shuffle of
// that list, the first item is any of its sum entries alike, and the first
// item not yet seen is any of the remaining queues' entries alike.
func (o *queueOrder) permutation() []string {
	n := len(o.names)
	out := make([]string, 0, n)
	left := slices.Clone(o.weight)
	names := slices.Clone(o.names)
	sum := 0
	for _, w := range left {
		sum += w
	}
	for len(names) > 0 {
		r := o.rnd.IntN(sum)
		i := 0
		for r >= left[i] {
			r -= left[i]
			i++
		}
		out = append(out, names[i])
		sum -= left[i]
		names = slices.Delete(names, i, i+1)
		left = slices.Delete(left, i, i+1)
	}
	return out
}
