package queue

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidQueueMatchesTheDocumentedPattern: the hand-written check accepts
// exactly what ^[a-zA-Z0-9_.:-]{1,64}$ accepts.
func TestValidQueueMatchesTheDocumentedPattern(t *testing.T) {
	re := regexp.MustCompile(`^[a-zA-Z0-9_.:-]{1,64}$`)
	names := []string{"", "default", "a", "A-z_0.9:x", strings.Repeat("q", 64), strings.Repeat("q", 65),
		"with space", "slash/q", "tab\t", "new\nline", "default\n", "é", "{tag}", "a*", "-", "..", "::"}
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "q"+string([]byte{byte(c)}))
	}
	for _, n := range names {
		if got, want := validQueue(n), re.MatchString(n); got != want {
			t.Errorf("validQueue(%q) = %v, want %v", n, got, want)
		}
	}
}

func BenchmarkValidQueue(b *testing.B) {
	for range b.N {
		if !validQueue(DefaultQueue) {
			b.Fatal("default refused")
		}
	}
}
