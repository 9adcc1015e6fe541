package core

import (
	"slices"
	"testing"
	"time"
)

// TestLogBudget: Burst lines an interval go through, the rest are held
// back and counted on the next line let through, in a later interval.
func TestLogBudget(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	b := &LogBudget{Burst: 3, Every: 10 * time.Second, Now: func() time.Time { return at }}
	var got []bool
	for range 5 {
		ok, held := b.Take()
		if held != 0 {
			t.Errorf("a line in the first interval reports %d held back", held)
		}
		got = append(got, ok)
	}
	if want := []bool{true, true, true, false, false}; !slices.Equal(got, want) {
		t.Errorf("the first interval let through %v, want %v", got, want)
	}
	at = at.Add(9 * time.Second)
	if ok, _ := b.Take(); ok {
		t.Error("a line 9 s into a spent 10 s interval went through")
	}
	at = at.Add(time.Second)
	if ok, held := b.Take(); !ok || held != 3 {
		t.Errorf("the first line of the next interval: %v, %d held back; want through, 3", ok, held)
	}
	if ok, held := b.Take(); !ok || held != 0 {
		t.Errorf("the second line of the next interval: %v, %d held back; want through, 0", ok, held)
	}
}
