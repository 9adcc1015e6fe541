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

// TestRedactReviewCases: URLs a code review found leaking or over-hiding.
func TestRedactReviewCases(t *testing.T) {
	const secret = "S3cretPW"
	for _, raw := range []string{
		"redis:/:" + secret + "@127.0.0.1:6379", // no "://"
		"u:" + secret + "@h:6379",
		"redis://:/" + secret + "@127.0.0.1:6379", // a raw "/" in the password
		"redis://:?" + secret + "@127.0.0.1:6379",
		"unix://u:1/" + secret + "@/tmp/x.sock",
	} {
		if got := RedactURL(raw); strings.Contains(got, secret) {
			t.Errorf("RedactURL(%q) = %q", raw, got)
		}
	}
	// A password net/url would split is refused before any parser quotes it.
	for _, raw := range []string{"redis://:/" + secret + "@127.0.0.1:6379", "redis://:?" + secret + "@h:1", "unix://u:1/" + secret + "@/tmp/x.sock"} {
		if err := CheckURLPassword(raw); err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("CheckURLPassword(%q) = %v, want refused without the password", raw, err)
		}
	}
	for _, raw := range []string{"redis://:" + secret + "@h:1/0", "redis://u:p%2Fq@h:1", "redis://h:1", "redis://u@h:1"} {
		if err := CheckURLPassword(raw); err != nil {
			t.Errorf("CheckURLPassword(%q) = %v, want accepted", raw, err)
		}
	}
	// An "@" in the query does not take the host with it.
	if got := RedactURL("redis://:secret@redis.internal:6379/0?client_name=refrakt@web1"); !strings.Contains(got, "redis.internal:6379") || strings.Contains(got, "secret") {
		t.Errorf("RedactURL with an @ in the query = %q", got)
	}
}
