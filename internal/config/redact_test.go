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
		"redis://127.0.0.1:6379/0?password=" + secret,
		"redis:/:" + secret + "://x@127.0.0.1:6379", // a "://" in the password after a mistyped scheme
		"u:" + secret + "://x@127.0.0.1:8080",       // and without a scheme
		"redis://:" + secret + "@127.0.0.1:6379/0?Password=" + secret + "&db=1",
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
	// An "@" in the query hides the host with the password: the text cannot
	// tell it from a password "p@ss?word" written raw, whose "ss" would
	// stand as the host and "word" in the query. Such a URL is refused (it
	// was before), so only its refusal quotes it. (Until the password
	// review, this case showed the host.)
	const queryAt = "redis://:secret@redis.internal:6379/0?client_name=refrakt@web1"
	if got := RedactURL(queryAt); got != "redis://:xxxxx@web1" {
		t.Errorf("RedactURL with an @ in the query = %q, want %q", got, "redis://:xxxxx@web1")
	}
	if err := CheckURLPassword(queryAt); err == nil || !strings.Contains(err.Error(), "percent-encode") {
		t.Errorf("CheckURLPassword with an @ in the query = %v, want refused", err)
	}
	if got, want := RedactURL("redis://:p@ss?word@h:1"), "redis://:xxxxx@h:1"; got != want {
		t.Errorf("RedactURL of a raw @ and ? = %q, want %q", got, want)
	}
}

// TestCheckURLPasswordQuotesNoParserText: a URL with user info that net/url
// cannot parse is refused with our own words, naming the fault and asking to
// percent-encode, never the parser's (which quotes a piece of the password).
func TestCheckURLPasswordQuotesNoParserText(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"redis://:Tr0ub4dor&3/x@127.0.0.1:6379/0", "port is not a number"},
		{"redis://:Qz9#Kw7@127.0.0.1:6379/0", "port is not a number"},
		{"redis://:Qz9%Kw7@127.0.0.1:6379", "% is not followed by two hexadecimal digits"},
		{"redis://:Qz9 Kw7@127.0.0.1:6379", "user info holds a character"},
		{"redis://:Qz9Kw7@[::1:6379", "lacks its closing ]"},
	} {
		err := CheckURLPassword(tt.raw)
		if err == nil {
			t.Errorf("CheckURLPassword(%q) = nil, want refused", tt.raw)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.want) || !strings.Contains(msg, "percent-encode") || strings.Contains(msg, "Qz9") || strings.Contains(msg, "Tr0") || strings.Contains(msg, `"`) {
			t.Errorf("CheckURLPassword(%q) = %q, want our own words with %q and the advice", tt.raw, msg, tt.want)
		}
	}
	// Without an "@" too: "redis://:secret", its "@host" forgotten, would be
	// quoted as an invalid port ":secret"; a URL that parses passes.
	if err := CheckURLPassword("redis://:Qz9secret"); err == nil || strings.Contains(err.Error(), "Qz9") {
		t.Errorf(`CheckURLPassword("redis://:Qz9secret") = %v, want refused in our own words`, err)
	}
	if err := CheckURLPassword("redis://127.0.0.1:6379/0"); err != nil {
		t.Errorf("CheckURLPassword of a valid URL = %v", err)
	}
}
