package redisstore

import "testing"

// TestSlotOf checks the slot computation against Redis's CLUSTER KEYSLOT
// for the same keys (values read from a cluster-enabled redis-server 7.0).
func TestSlotOf(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 12739}, // the CRC16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"user1000", 3443},
		{"run:ip:203.0.113.7", 1385},
	}
	for _, tt := range tests {
		if got := slotOf(tt.key); got != tt.want {
			t.Errorf("slotOf(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// TestKeySlot checks the hash-tag rule against Redis's CLUSTER KEYSLOT.
func TestKeySlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"refrakt:rl:{run:ip:203.0.113.7}", 1385}, // the tag is the bucket key
		{"refrakt:rl:{run:user:a}b}", slotOf("run:user:a")},
		{"refrakt:rl:{}x", slotOf("refrakt:rl:{}x")}, // an empty tag is no tag
		{"app{1}:rl:{run:ip:203.0.113.7}", slotOf("1")},
		{"user1000", 3443},
	}
	for _, tt := range tests {
		if got := keySlot(tt.key); got != tt.want {
			t.Errorf("keySlot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}
