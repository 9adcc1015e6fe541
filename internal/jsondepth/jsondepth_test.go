package jsondepth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// publicDepth is the daemon's bound on a public job's payload.
const publicDepth = 64

// refDepth is how deep valid JSON b nests arrays and objects, as
// encoding/json's tokenizer sees it.
func refDepth(t *testing.T, b []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // a number past float64's range (1E1000) is valid JSON
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest
		}
		if err != nil {
			t.Fatalf("tokenize %q: %v", b, err)
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// TestDeeperThan: the depth counter counts arrays and objects, not
// brackets inside strings, whatever the escapes before them.
func TestDeeperThan(t *testing.T) {
	for _, tt := range []struct {
		name  string
		json  string
		depth int
	}{
		{"empty", ``, 0},
		{"scalar", `1`, 0},
		{"null", `null`, 0},
		{"string of brackets", `"[[[{{{"`, 0},
		{"empty array", `[]`, 1},
		{"empty object", `{}`, 1},
		{"siblings do not add", `[[],[],{}]`, 2},
		{"closed before opened again", `[[[]],[[]]]`, 3},
		{"object in array in object", `{"a":[{"b":1}]}`, 3},
		{"brackets in a key", `{"[[[":{"}}}":[]}}`, 3},
		{"escaped quote then bracket in string", `["\"[[[["]`, 1},
		{"escaped backslash ends the string", `["\\",[[]]]`, 3},
		{"escaped backslash then quote", `["\\\"[",[]]`, 2},
		{"three backslashes", `["\\\\\\\"]]]",[]]`, 2},
		{"unicode escape of a bracket", `["\u005b\u007b",[]]`, 2},
		{"unicode escape of a quote", `["\u0022[",[]]`, 2},
		{"multibyte text", `["é[ü{",{"ß":["€"]}]`, 3},
		{"white space", " [ \n [ \t ] ] ", 2},
		{"64 deep", strings.Repeat("[", 64) + strings.Repeat("]", 64), 64},
		{"65 deep", strings.Repeat("[", 65) + strings.Repeat("]", 65), 65},
		{"65 deep objects", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), 65},
		{"deep inside a wide one", `[` + strings.Repeat(`[1],`, 100) + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `]`, 71},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.json != "" {
				if got := refDepth(t, []byte(tt.json)); got != tt.depth {
					t.Fatalf("the case is wrong: encoding/json finds depth %d, the case says %d", got, tt.depth)
				}
			}
			for _, max := range []int{0, tt.depth - 1, tt.depth, tt.depth + 1, publicDepth} {
				if max < 0 {
					continue
				}
				if got, want := DeeperThan([]byte(tt.json), max), tt.depth > max; got != want {
					t.Errorf("DeeperThan(%q, %d) = %v, want %v", tt.json, max, got, want)
				}
			}
		})
	}
}

// TestDeeperThanAllocatesNothing: the check runs on every public enqueue.
func TestDeeperThanAllocatesNothing(t *testing.T) {
	b := []byte(`{"a":[1,"x\"]",{"b":[[[]]]}],"c":"` + strings.Repeat("[", 100) + `"}`)
	if n := testing.AllocsPerRun(100, func() { DeeperThan(b, publicDepth) }); n != 0 {
		t.Errorf("DeeperThan allocates %v times, want 0", n)
	}
}

// FuzzDeeperThan: on valid JSON the counter agrees with encoding/json's
// tokenizer at the depth and one below it; on any bytes it never panics.
func FuzzDeeperThan(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[1,{"b":"]"}]}`, `["\\",[]]`, `["\"[",{}]`, `"\u005b"`, `[[[[[[[[]]]]]]]]`, `{"[":"{","]":[]}`, `"\\\\"`, "\xff[", `["a\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			DeeperThan(b, publicDepth)
			return
		}
		d := refDepth(t, b)
		if DeeperThan(b, d) {
			t.Errorf("DeeperThan(%q, %d) = true; encoding/json finds depth %d", b, d, d)
		}
		if d > 0 && !DeeperThan(b, d-1) {
			t.Errorf("DeeperThan(%q, %d) = false; encoding/json finds depth %d", b, d-1, d)
		}
	})
}
