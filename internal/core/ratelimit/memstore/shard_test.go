package memstore

import "testing"

// TestShardSpill checks the path of two keys with one hash, which real
// 64-bit hashes practically never take.
func TestShardSpill(t *testing.T) {
	sh := &shard{m: map[uint64]*slot{}}
	a, b := &slot{key: "rl-test:ip:192.0.2.1"}, &slot{key: "rl-test:ip:192.0.2.2"}
	sh.insert(7, a)
	sh.insert(7, b)
	if sh.get(7, []byte(a.key)) != a || sh.get(7, []byte(b.key)) != b || sh.get(7, []byte("other")) != nil {
		t.Fatal("get does not tell the colliding keys apart")
	}
	n := 0
	for range sh.slots() {
		n++
	}
	if n != 2 {
		t.Errorf("slots() yields %d, want 2", n)
	}
	sh.remove(7, b.key)
	sh.remove(7, a.key)
	if sh.get(7, []byte(a.key)) != nil || sh.get(7, []byte(b.key)) != nil || sh.spill != nil || len(sh.m) != 0 {
		t.Error("remove left keys behind")
	}
}
