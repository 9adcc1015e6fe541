// Package termtext makes text from a server safe to write to a terminal.
// A payload, an error or a name may hold characters a terminal acts on or
// that change how the text around them reads: C0 and C1 controls (ESC,
// the 8-bit CSI U+009B) move the cursor, recolour or clear the screen;
// bidi controls (U+202E) and other format characters reorder or hide
// text. Escape writes each as JSON does, `\u` and four hex digits, so a
// JSON value stays valid JSON with the same value.
package termtext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// escaped reports whether r is written as an escape: a control (C0, DEL,
// C1), a format character (Cf: bidi controls U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069, the zero-width space, BOM, soft hyphen, …), or a line or
// paragraph separator (U+2028, U+2029), which some terminals break lines at.
// The zero-width non-joiner and joiner (U+200C, U+200D) are Cf but kept:
// they join emoji (👨‍👩‍👧) and Indic and Persian letters, and reorder
// nothing.
func escaped(r rune) bool {
	if r == '\u200c' || r == '\u200d' {
		return false
	}
	return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// Escape returns s with every character escaped reports written as
// `\u` and four hex digits (a UTF-16 surrogate pair beyond U+FFFF), and
// bytes that are not UTF-8 as U+FFFD, as encoding/json does. A backslash
// is left as it is.
func Escape(s string) string {
	if !needs(s, 0) {
		return s
	}
	return escape(s, 0)
}

// EscapeJSON returns the JSON text b with the characters Escape escapes
// that encoding/json leaves raw (DEL, C1, format characters) escaped:
// the same JSON value. Outside strings JSON has only ASCII, so every
// such character is inside a string; its C0 controls, which encoding/json
// escapes already, and the white space between tokens are kept.
func EscapeJSON(b []byte) []byte {
	if !needs(string(b), utf8.RuneSelf-1) {
		return b
	}
	return []byte(escape(string(b), utf8.RuneSelf-1))
}

// asciiEscaped is escaped for an ASCII byte, without the Unicode tables:
// C0 and DEL are the only ASCII characters Escape escapes.
func asciiEscaped(c byte) bool { return c < 0x20 || c == 0x7f }

// needs reports whether s has a character at or above from to escape.
// ASCII, most of what a server sends, takes the fast path.
func needs(s string, from rune) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if rune(c) >= from && asciiEscaped(c) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || (r >= from && escaped(r)) {
			return true
		}
		i += size
	}
	return false
}

func escape(s string, from rune) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && !(rune(c) >= from && asciiEscaped(c)) {
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r >= from && escaped(r):
			if r > 0xFFFF {
				r1, r2 := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
