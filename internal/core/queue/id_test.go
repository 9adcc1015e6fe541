package queue

import (
	"regexp"
	"testing"
)

func TestNewIDIsURLSafeAndNeverLooksLikeAFlag(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{21}$`)
	seen := map[string]bool{}
	for i := 0; i < 20000; i++ {
		id := NewID()
		if !re.MatchString(id) {
			t.Fatalf("id %q is not 22 URL-safe characters starting with a letter or digit", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}
