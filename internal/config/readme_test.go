package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEListsEverySetting keeps the README's settings table in step with
// the code.
func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		if !strings.Contains(string(b), "| `"+s.Env+"` | `--"+s.Flag+"` |") {
			t.Errorf("README's settings table lacks %s (--%s)", s.Env, s.Flag)
		}
	}
}
