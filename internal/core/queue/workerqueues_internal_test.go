package queue

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestQueueOrderRequests (wq40): what a pool's fetch asks of the broker:
// nothing more without a set; the set, not ordered, with equal weights (the
// broker's rotation); the listed order for strict; a drawn order for
// weights that differ. Every one marks the set Only.
func TestQueueOrderRequests(t *testing.T) {
	var none *queueOrder
	req := FetchRequest{}
	none.request(&req)
	if d := cmp.Diff(FetchRequest{}, req); d != "" {
		t.Errorf("no set (-want +got):\n%s", d)
	}
	eq := []WorkerQueue{{"a", 2}, {"b", 2}}
	for _, tt := range []struct {
		name   string
		qs     []WorkerQueue
		strict bool
		want   FetchRequest
	}{
		{"equal weights", eq, false, FetchRequest{Queues: []string{"a", "b"}, Only: true}},
		{"strict", []WorkerQueue{{"c", 1}, {"d", 1}, {"l", 1}}, true, FetchRequest{Queues: []string{"c", "d", "l"}, Ordered: true, Strict: true, Only: true}},
	} {
		req := FetchRequest{}
		newQueueOrder(tt.qs, tt.strict, nil).request(&req)
		if d := cmp.Diff(tt.want, req); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
	req = FetchRequest{}
	newQueueOrder([]WorkerQueue{{"a", 9}, {"b", 1}}, false, nil).request(&req)
	if !req.Ordered || req.Strict || !req.Only || len(req.Queues) != 2 {
		t.Errorf("weighted: %+v; want an order of both queues, Ordered and Only", req)
	}
}

// TestWeightedPermutation (wq40): over 100,000 draws of critical=6,
// default=3, low=1 (seeded), each queue comes first with its weight over
// the sum, and after critical, default comes second with 3/(3+1): weighted
// sampling without replacement. The bounds are 5 standard deviations and
// more (sd ≤ 0.0016); every draw holds each queue once.
func TestWeightedPermutation(t *testing.T) {
	o := newQueueOrder([]WorkerQueue{{"critical", 6}, {"default", 3}, {"low", 1}}, false, rand.New(rand.NewPCG(1, 2)))
	const n = 100000
	first := map[string]int{}
	afterCritical, defaultSecond := 0, 0
	for range n {
		p := o.permutation()
		if len(p) != 3 || p[0] == p[1] || p[1] == p[2] || p[0] == p[2] {
			t.Fatalf("draw %v: want each queue once", p)
		}
		first[p[0]]++
		if p[0] == "critical" {
			afterCritical++
			if p[1] == "default" {
				defaultSecond++
			}
		}
	}
	for q, want := range map[string]float64{"critical": 0.6, "default": 0.3, "low": 0.1} {
		if got := float64(first[q]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("%s first in %.4f of draws; want %.1f", q, got, want)
		}
	}
	if got := float64(defaultSecond) / float64(afterCritical); math.Abs(got-0.75) > 0.015 {
		t.Errorf("default second after critical in %.4f; want 0.75", got)
	}
}
