package daemon

import (
	"fmt"
	"testing"
)

// TestJSONErrorMessagesSayWhatIsWrong: a body with a byte order mark, a body
// that is null or not an object, and a null where a field needs a value
// are told so, not "not valid JSON (at byte 1)" or the handler's
// `unknown job type ""` about a type the client never sent.
func TestJSONErrorMessagesSayWhatIsWrong(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name, path, body, msg string
	}{
		{"byte order mark", "/run", "\xef\xbb\xbf{\"type\":\"ping\"}", "starts with a byte order mark"},
		{"null body", "/run", "null", "request body must be a JSON object, not null"},
		{"null body, blanks around", "/assistant", " null\n", "request body must be a JSON object, not null"},
		{"array body", "/run", "[]", "request body must be a JSON object"},
		{"string body", "/run", `"x"`, "request body must be a JSON object"},
		{"number body", "/run", "3", "request body must be a JSON object"},
		{"null type", "/run", `{"type":null}`, `field "type" must be a string, not null`},
		{"null whole number", "/api/dev/rate-limits/config", `{"target":"rl-test:ip:203.0.113.7","capacity":null,"window_seconds":60}`, `field "capacity" must be a whole number, not null`},
		{"null body to an override", "/api/dev/rate-limits/config", "null", "request body must be a JSON object, not null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "POST", tt.path, devToken, tt.body)
			wantAnswer(t, fmt.Sprintf("POST %s %q", tt.path, tt.body), resp, body, 400, tt.msg)
		})
	}
	// A null where null means "not given" (a pointer) still passes.
	if resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","max_retries":null,"payload":null}`); resp.StatusCode != 202 {
		t.Errorf("null for optional pointer and raw fields: %d %v, want 202", resp.StatusCode, body)
	}
}

// TestNullOptionalFieldsAccepted: null for an optional field (queue,
// delay_ms, interval_seconds, an override's mode) means absent, as before
// the null rule; only a field that needs a value refuses it (README).
func TestNullOptionalFieldsAccepted(t *testing.T) {
	s := newTestServer(t)
	for _, body := range []string{
		`{"type":"ping","queue":null}`,
		`{"type":"ping","delay_ms":null}`,
		`{"type":"ping","interval_seconds":null}`,
	} {
		if resp, out := do(t, s, "POST", "/run", "", body); resp.StatusCode != 202 {
			t.Errorf("POST /run %s: %d %v, want 202 (an optional field's null is absent)", body, resp.StatusCode, out)
		}
	}
	if resp, out := do(t, s, "POST", "/api/dev/rate-limits/config", devToken, `{"target":"rl-test:ip:203.0.113.7","capacity":1,"window_seconds":60,"mode":null}`); resp.StatusCode != 200 {
		t.Errorf("override with mode null: %d %v, want 200", resp.StatusCode, out)
	}
}
