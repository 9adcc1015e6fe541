// Package jsondepth tells how deep a JSON text nests, without decoding it.
package jsondepth

// DeeperThan reports whether the JSON text b nests arrays and objects more
// than max levels deep, in one pass over the bytes, without decoding and
// without allocating: the daemon's public routes bound payloads by it
// (publicMaxDepth), and the CLI's -o json writes a deeper document compact
// (maxIndentDepth). Brackets inside strings do not count: a string ends
// at a quote that no backslash escapes, and a backslash escapes exactly the
// next byte (the digits of a \u escape are never a quote or a backslash).
// b is expected to be valid JSON; for any other bytes the answer is only
// some answer, never a panic.
func DeeperThan(b []byte, max int) bool {
	depth := 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}
