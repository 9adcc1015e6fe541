package ratelimit

import (
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/fakeclock"
)

// TestNowMicros checks that the one-read system clock agrees with time.Now,
// never runs backwards across calls and re-anchors when its anchor is
// stale, and that MicrosOf follows a fake clock exactly.
func TestNowMicros(t *testing.T) {
	prev := SystemClock{}.NowMicros()
	for range 1000 {
		before := time.Now().UnixMicro()
		got := SystemClock{}.NowMicros()
		after := time.Now().UnixMicro()
		// The wall clock may be stepped between anchor and read; allow
		// what an NTP slew could do within a second, not more.
		if got < before-2_000 || got > after+2_000 {
			t.Fatalf("NowMicros %d outside [%d, %d]", got, before, after)
		}
		if got < prev {
			t.Fatalf("NowMicros went back from %d to %d", prev, got)
		}
		prev = got
	}
	// An anchor a second old, or one ahead of the monotonic clock, is
	// replaced by a fresh reading rather than advanced from.
	for _, at := range []time.Time{time.Now().Add(-2 * reanchorEvery), time.Now().Add(time.Hour)} {
		stale := &anchor{at: at, micros: at.UnixMicro() - 5_000_000}
		sysAnchor.Store(stale)
		before := time.Now().UnixMicro()
		got := SystemClock{}.NowMicros()
		if got < before || got > time.Now().UnixMicro() {
			t.Errorf("NowMicros from an anchor at %s = %d, not the time now (%d)", at, got, before)
		}
		if a := sysAnchor.Load(); a == stale || a.micros < before {
			t.Errorf("the anchor at %s was not replaced by a fresh one", at)
		}
	}
	fc := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	m := MicrosOf(fc)
	fc.Advance(1500 * time.Microsecond)
	if want := fc.Now().UnixMicro(); m() != want {
		t.Errorf("MicrosOf(fake) = %d, want %d", m(), want)
	}
}
