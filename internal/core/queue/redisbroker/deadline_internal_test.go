package redisbroker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redistest"
)

// TestClockOffsetConservative: the offset estimate never exceeds the true
// offset (so a deadline translated with it is early, never late), whatever
// the replies' delays, and follows a clock stepped back within two windows.
func TestClockOffsetConservative(t *testing.T) {
	var o clockOffset
	if _, ok := o.get(); ok {
		t.Fatal("an offset before any reply")
	}
	const trueOff = 123_456 // Redis is ahead by about two minutes
	local := int64(1_000_000)
	for i := range 1000 {
		// Redis computes its reply at local time exec (its clock: exec +
		// trueOff); the reply is read up to 50 ms later.
		exec := local + int64(i)*7
		read := exec + rand.Int64N(50)
		o.observe(exec+trueOff, read)
		if est, ok := o.get(); !ok || est > trueOff {
			t.Fatalf("sample %d: estimate %d (%v), above the true offset %d", i, est, ok, trueOff)
		}
	}
	if est, _ := o.get(); est < trueOff-50 {
		t.Errorf("estimate %d: more than the largest reply delay below the true offset %d", est, trueOff)
	}
	// Redis's clock steps back by a second: two windows later the
	// estimate is below the new offset again.
	const stepped = trueOff - 1000
	local += 7000
	end := local + 2*offsetWindow.Milliseconds() + 1
	for ; local <= end; local += 10 {
		o.observe(local+stepped, local+5)
	}
	if est, _ := o.get(); est > stepped {
		t.Errorf("after Redis's clock stepped back: estimate %d, above the true offset %d", est, stepped)
	}
}

// TestNotAfter: a script's deadline is half the caller's time left, in
// Redis's clock; none before an offset is known or with a test clock; and
// already past for a caller that has given up.
func TestNotAfter(t *testing.T) {
	b := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Options{})
	now := time.UnixMilli(1_000_000)
	if got := b.notAfter(now, now.Add(3*time.Second)); got != 0 {
		t.Errorf("without an offset: %d, want 0 (no deadline)", got)
	}
	b.offset.observe(1_000_000+5000, 1_000_000)
	if got, want := b.notAfter(now, now.Add(3*time.Second)), int64(1_000_000+5000+1500); got != want {
		t.Errorf("not after: %d, want %d", got, want)
	}
	if got := b.notAfter(now, now.Add(-time.Millisecond)); got != 1 {
		t.Errorf("for a caller already gone: %d, want 1", got)
	}
	if got, want := b.cmdTimeout, b.rdb.(*redis.Client).Options().ReadTimeout; got != want || got <= 0 {
		t.Errorf("command timeout of a client with the default read timeout: %v, want that (%v)", got, want)
	}
	if got := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: -1}), Options{}).cmdTimeout; got != defaultCommandTimeout {
		t.Errorf("command timeout of a client without a read timeout: %v, want %v", got, defaultCommandTimeout)
	}
	tb := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: time.Second}), Options{Clock: fixedClock{now}})
	tb.offset.observe(1_000_000+5000, 1_000_000)
	if got := tb.notAfter(now, now.Add(3*time.Second)); got != 0 {
		t.Errorf("with a test clock: %d, want 0 (no deadline)", got)
	}
	if got := tb.cmdTimeout; got != time.Second {
		t.Errorf("command timeout of a client with a 1s read timeout: %v", got)
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// TestSlowReplyTeachesNoOffset: once the offset is known, a reply read long
// after it was sent (behind a cluster master that did not answer, say)
// does not lower the estimate: its bound is too low by its whole round
// trip, and kept for seconds it would make every script's "not after" pass
// before the script runs.
func TestSlowReplyTeachesNoOffset(t *testing.T) {
	b := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: 3 * time.Second}), Options{})
	sent := time.UnixMilli(1_000_000)
	b.learn(int64(1_000_000+5000+2), sent, sent.Add(2*time.Millisecond)) // Redis 5 s ahead, a 2 ms trip
	// Run at once, read 2.5 s later: a bound 2.5 s too low.
	later := sent.Add(100 * time.Millisecond)
	b.learn(later.UnixMilli()+5000, later, later.Add(2500*time.Millisecond))
	if est, _ := b.offset.get(); est != 5000 {
		t.Errorf("estimate after a reply read 2.5 s late: %d, want 5000", est)
	}
	// A quick one still teaches.
	b.learn(later.UnixMilli()+4990, later, later.Add(time.Millisecond))
	if est, _ := b.offset.get(); est != 4989 {
		t.Errorf("estimate after a quick reply 10 ms lower: %d, want 4989", est)
	}
}

// TestOffsetSampling: a broker's first sample is taken only from a quick
// reply (a slow one would set an estimate too low, every script "late");
// and with no quick reply for two windows, slow ones are taken again, so
// that the estimate follows a clock stepped meanwhile.
func TestOffsetSampling(t *testing.T) {
	b := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: 3 * time.Second}), Options{})
	start := time.UnixMilli(b.offset.last.Load())
	b.learn(start.UnixMilli()+5000, start, start.Add(2*time.Second)) // read 2 s late
	if _, ok := b.offset.get(); ok {
		t.Fatal("an estimate from a first reply read 2 s late")
	}
	sent := start.Add(100 * time.Millisecond)
	b.learn(sent.UnixMilli()+5000, sent, sent.Add(time.Millisecond))
	if est, ok := b.offset.get(); !ok || est != 4999 {
		t.Fatalf("estimate after a quick first reply: %d (%v), want 4999", est, ok)
	}
	// Every reply slow from now on, Redis's clock stepped back 10 s: taken
	// once no quick one came for two windows.
	later := sent.Add(2*offsetWindow + 500*time.Millisecond)
	b.learn(later.UnixMilli()-5000, later, later.Add(time.Second))
	if est, _ := b.offset.get(); est > -6000 {
		t.Errorf("estimate after only slow replies for two windows, Redis 5 s behind: %d, want at most -6000", est)
	}
}

// TestRanPartly: Redis's errors of a script that failed while it ran (a
// command's WRONGTYPE inside it, a Lua error) are told from those of a
// command that did not run (NOSCRIPT; WRONGTYPE of a plain command) and
// from a connection's error (mayHaveRun's, not ranPartly's).
func TestRanPartly(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "rp:s", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		err  error
		want bool
	}{
		{"WRONGTYPE after a write in a script", rdb.Eval(ctx, "redis.call('SET', KEYS[2], 'x'); return redis.call('RPUSH', KEYS[1], 'x')", []string{"rp:s", "rp:w"}).Err(), true},
		{"a Lua error", rdb.Eval(ctx, "return nil + 1", nil).Err(), true},
		{"NOSCRIPT", rdb.EvalSha(ctx, strings.Repeat("0", 40), nil).Err(), false},
		{"WRONGTYPE of a plain command", rdb.RPush(ctx, "rp:s", "x").Err(), false},
		{"a connection's error", errors.New("connection reset by peer"), false},
	} {
		if c.err == nil {
			t.Fatalf("%s: no error", c.what)
		}
		if got := ranPartly(c.err); got != c.want {
			t.Errorf("%s (%v): ranPartly %v, want %v", c.what, c.err, got, c.want)
		}
	}
}
