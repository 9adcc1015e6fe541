package termtext

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "héllo wörld 日本 ✓", "héllo wörld 日本 ✓"},
		{"ESC and CSI", "A\x1b[31mRED", `A\u001b[31mRED`},
		{"8-bit CSI", "A\u009b31mRED", `A\u009b31mRED`},
		{"tab, newline, CR, DEL", "a\tb\nc\rd\x7f", `a\u0009b\u000ac\u000dd\u007f`},
		{"bidi", "\u200e\u200f\u202a\u202b\u202c\u202d\u202eevil\u2066\u2067\u2068\u2069", `\u200e\u200f\u202a\u202b\u202c\u202d\u202eevil\u2066\u2067\u2068\u2069`},
		{"zero width, BOM, soft hyphen, separators", "a\u200bb\ufeffc\u00add\u2028e\u2029", `a\u200bb\ufeffc\u00add\u2028e\u2029`},
		{"format beyond U+FFFF", "x\U000E0001y", `x\udb40\udc01y`},
		{"not UTF-8", "a\x9bb\xffc", "a\ufffdb\ufffdc"},
		{"a backslash stays", `C:\new`, `C:\new`},
		// code28 NIT 4: the joiners join, they do not reorder.
		{"ZWJ and ZWNJ stay", "👨\u200d👩\u200d👧 می\u200cخواهم", "👨\u200d👩\u200d👧 می\u200cخواهم"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Escape(tt.in)); diff != "" {
				t.Errorf("Escape(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestEscapeJSON: the escaped JSON is the same value, with no raw C1 or
// format character left, and its layout kept.
func TestEscapeJSON(t *testing.T) {
	v := map[string]string{"p": "A\u009b31m\x1b[2J\u202eevil\x7f\U000E0001"}
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got := EscapeJSON(raw)
	want := "{\n  \"p\": \"A\\u009b31m\\u001b[2J\\u202eevil\\u007f\\udb40\\udc01\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, back); diff != "" {
		t.Errorf("value changed (-want +got):\n%s", diff)
	}
}

// BenchmarkEscape: a server's text is mostly ASCII, which needs no
// Unicode table (code28 NIT 3); a value with an escape and one of other
// scripts take the slower paths.
func BenchmarkEscape(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"ascii", strings.Repeat("run:ip:203.0.113.7 email.send pending ", 25)},
		{"ascii with an escape", strings.Repeat("run:ip:203.0.113.7 email.send pending ", 25) + "\x1b[2J"},
		{"other scripts", strings.Repeat("héllo wörld 日本 ✓ ", 25)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.s)))
			for b.Loop() {
				Escape(bc.s)
			}
		})
	}
}
