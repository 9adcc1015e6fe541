package config

import (
	"strings"
	"testing"
)

// TestRedact: a password never survives, whether the URL parses or not,
// in the URL itself and in an error that quotes it (raw or decoded).
func TestRedact(t *testing.T) {
	const secret = "RedisPASSsecret42"
	for _, raw := range []string{
		"redis://u:" + secret + "@127.0.0.1:6379/0",
		"redis://:" + secret + "@127.0.0.1:6379",
		"redis://u:" + secret + "@127.0.0.1:bad",
		"rediss://:" + secret + "@[::1:17101/%zz",
		"http://u:" + secret + "@127.0.0.1:bad",
		"redis://u:" + secret + "/x@127.0.0.1",
	} {
		if got := RedactURL(raw); strings.Contains(got, secret) || !strings.Contains(got, "xxxxx") {
			t.Errorf("RedactURL(%q) = %q", raw, got)
		}
		msg := `parse "` + raw + `": invalid port`
		if got := RedactIn(msg, raw); strings.Contains(got, secret) {
			t.Errorf("RedactIn(%q) = %q", msg, got)
		}
	}
	// Encoded in the URL, decoded in a client's message.
	if got := RedactIn("AUTH p@ss failed", "redis://:p%40ss@h:1"); strings.Contains(got, "p@ss") {
		t.Errorf("decoded password kept: %q", got)
	}
	for _, raw := range []string{"redis://127.0.0.1:6379/0", "redis://user@h:1", "not a url", ""} {
		if got := RedactURL(raw); got != raw {
			t.Errorf("RedactURL(%q) = %q, want it unchanged", raw, got)
		}
	}
}
