package daemon

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/core"
)

// FuzzDecodeJSON: any body gets a coded answer (invalid or too_large), never
// a panic or an internal error.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"a","count":1}`, `{"count":"x"}`, `[]`, `null`, `{"a":1}`, `{`, `{}{}`, "\xff", `{"name":"\u0000"}`, `{"count":1e400}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		rec := httptest.NewRecorder()
		var v echoBody
		err := decodeJSON(rec, req, &v)
		if err == nil {
			if !json.Valid([]byte(body)) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		if c := core.ErrorCode(err); c != core.CodeInvalid && c != core.CodeTooLarge {
			t.Fatalf("body %q: code %q, want invalid or too_large (%v)", body, c, err)
		}
	})
}
