package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestIndexWriterKeepsPenaltiesAndForgetsResets: a Cluster's index writer
// that holds more batches than maxIndexBacklog (the indexes' master not
// answering) drops the oldest batch's recently-active keys only, its
// penalties and bans going on with the next batch (a ban is reported once);
// and a reset withdraws the key's penalty and ban from the batches not yet
// written (recorded after the reset, they would list it again).
func TestIndexWriterKeepsPenaltiesAndForgetsResets(t *testing.T) {
	w := &indexWriter{running: true} // no writer goroutine: the backlog stays
	s := &Store{}
	w.add(s, indexBatch{active: []redis.Z{{Member: "a"}}, bans: []redis.Z{{Score: 9, Member: "banned"}}, pen: []redis.Z{{Score: 9, Member: "banned"}}})
	for range maxIndexBacklog {
		w.add(s, indexBatch{active: []redis.Z{{Member: "b"}}})
	}
	if len(w.backlog) != maxIndexBacklog {
		t.Fatalf("backlog of %d batches, want %d", len(w.backlog), maxIndexBacklog)
	}
	var bans, pen, active int
	for _, b := range w.backlog {
		bans += len(b.bans)
		pen += len(b.pen)
		for _, z := range b.active {
			if z.Member == "a" {
				active++
			}
		}
	}
	if bans != 1 || pen != 1 || active != 0 {
		t.Errorf("after the oldest batch went: %d bans, %d penalties, %d of its active keys; want 1, 1, 0", bans, pen, active)
	}
	w.forget("banned")
	for _, b := range w.backlog {
		if len(b.bans)+len(b.pen) > 0 {
			t.Errorf("after a reset of the key: %v %v still to be written", b.bans, b.pen)
		}
	}
}
