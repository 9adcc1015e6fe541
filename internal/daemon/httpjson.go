package daemon

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/refrakt/refrakt/internal/core"
)

// MaxBody is the largest request body accepted; larger ones get 413. The
// CLI checks a payload against it over either driver.
const MaxBody = 1 << 20

// jsonBuffers recycles response buffers and their encoders: writeJSON runs
// on every response, and a fresh buffer, grown twice, and a fresh encoder
// were most of its allocations. It holds no state between requests (a
// buffer is reset before reuse), like encoding/json's own encoder pool.
var jsonBuffers = sync.Pool{New: func() any {
	jb := &jsonBuffer{}
	jb.enc = json.NewEncoder(&jb.buf)
	jb.enc.SetEscapeHTML(false)
	return jb
}}

type jsonBuffer struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// hdrCacheControl is Cache-Control in http.Header's canonical form.
const hdrCacheControl = "Cache-Control"

// maxPooledBuffer keeps a rare huge response from pinning its buffer.
const maxPooledBuffer = 64 << 10

// writeJSON answers with v as JSON and the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	jb := jsonBuffers.Get().(*jsonBuffer)
	defer func() {
		if jb.buf.Cap() <= maxPooledBuffer {
			jb.buf.Reset()
			jsonBuffers.Put(jb)
		}
	}()
	jb.buf.Reset()
	if err := jb.enc.Encode(v); err != nil {
		w.Header().Set(hdrCacheControl, "no-store")
		http.Error(w, `{"error":{"code":"internal","message":"encode response"}}`, http.StatusInternalServerError)
		return
	}
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(jb.buf.Bytes())
}

// decodeJSON reads the request body into v strictly: one JSON value, no
// unknown fields, right types, at most MaxBody bytes. Its errors are coded
// (invalid or too_large) and name the offending field.
//
// Field names must match exactly and appear once: encoding/json alone
// matches them regardless of case and lets a repeated key's last value win,
// so {"TYPE":"x"} or {"type":"ping","Type":"echo"} would pass.
//
// A body that is null, or a field that is null where a value is required,
// is refused too: encoding/json leaves the target as it was, and the
// handler would judge an empty value the client never sent (null to /run
// said `unknown job type ""`).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := readBody(w, r)
	if err != nil {
		return jsonError(err)
	}
	return decodeJSONData(data, v)
}

// decodeJSONData is decodeJSON for a body already read (or one value of
// it: a job of a batch).
func decodeJSONData(data []byte, v any) error {
	if bytes.HasPrefix(data, byteOrderMark) {
		return core.Errorf(core.CodeInvalid, "request body starts with a byte order mark (U+FEFF); send the JSON without one")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return core.Errorf(core.CodeInvalid, "request body must hold one JSON value")
	}
	return checkFieldNames(data, v)
}

// byteOrderMark is U+FEFF in UTF-8, which JSON (RFC 8259 §8.1) must not
// start with and encoding/json calls invalid at byte 1.
var byteOrderMark = []byte("\xef\xbb\xbf")

// readBody reads the body whole, at most MaxBody bytes: into a buffer of
// Content-Length bytes when the client sent one.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	if n := r.ContentLength; n > 0 && n <= MaxBody {
		data := make([]byte, n)
		if _, err := io.ReadFull(body, data); err != nil {
			return nil, err // ErrUnexpectedEOF: shorter than it said
		}
		return data, nil
	}
	return io.ReadAll(body)
}

// checkFieldNames refuses, in a body that decoded into v, a top-level
// field whose name is not one of v's exactly, one given twice, and a null
// for a field that cannot be null (not a pointer, slice, map or
// interface); and, for v a struct, a body that is null. Nested values (a
// job's payload) are skipped, not looked into. data is known to be one
// valid JSON value (Decode took it), so a plain scan reads it.
func checkFieldNames(data []byte, v any) error {
	names := jsonFields(reflect.TypeOf(v))
	if names == nil {
		return nil
	}
	i := skipSpace(data, 0)
	if isNull(data, i) {
		return core.Errorf(core.CodeInvalid, "request body must be a JSON object, not null")
	}
	if i >= len(data) || data[i] != '{' {
		return nil // not an object: Decode has judged it already
	}
	var seenArr [8][]byte
	seen := seenArr[:0]
	for i = skipSpace(data, i+1); i < len(data) && data[i] != '}'; {
		end := stringEnd(data, i)
		key := data[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 { // escaped: compare what it means
			var k string
			_ = json.Unmarshal(data[i:end], &k)
			key = []byte(k)
		}
		typ, ok := names[string(key)]
		if !ok {
			for name := range names {
				if strings.EqualFold(name, string(key)) {
					return core.Errorf(core.CodeInvalid, "unknown field %q (field names are case-sensitive: %q)", key, name)
				}
			}
			return core.Errorf(core.CodeInvalid, "unknown field %q", key)
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				return core.Errorf(core.CodeInvalid, "field %q is given more than once", key)
			}
		}
		seen = append(seen, key)
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // past ':'
		if isNull(data, i) && !nullable(typ) {
			return core.Errorf(core.CodeInvalid, "field %q must be %s, not null", key, jsonKind(typ.Kind().String()))
		}
		i = skipValue(data, i)
		if i = skipSpace(data, i); i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return nil
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at i.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index just past the value that starts at i.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(data) && data[i] != ',' && data[i] != '}' && data[i] != ']' && data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r' {
		i++
	}
	return i
}

// isNull reports whether the JSON value at i is null.
func isNull(data []byte, i int) bool {
	return bytes.HasPrefix(data[min(i, len(data)):], []byte("null"))
}

// nullable reports whether encoding/json gives null a meaning for a field
// of type t (nil), rather than leaving the field as it was.
func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

// fieldNames caches jsonFields by type.
var fieldNames sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields returns the JSON names of the fields of the struct t points
// to, those of embedded structs included, with their types, or nil when t
// is not a pointer to a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	var add func(st reflect.Type)
	add = func(st reflect.Type) {
		for f := range st.Fields() {
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			switch {
			case name == "-" && tag == "-":
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
				add(f.Type)
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
				add(f.Type.Elem())
			case !f.IsExported():
			default:
				m[cmp.Or(name, f.Name)] = fieldType(f, tag)
			}
		}
	}
	add(t.Elem())
	fieldNames.Store(t, m)
	return m
}

// fieldType is the type checkFieldNames judges a null against: an optional
// field (omitempty, omitzero), which a client may leave out and so may send
// as null, counts as a pointer to its type, for which null means absent.
func fieldType(f reflect.StructField, tag string) reflect.Type {
	if strings.Contains(tag, ",omitempty") || strings.Contains(tag, ",omitzero") {
		return reflect.PointerTo(f.Type)
	}
	return f.Type
}

// bodiless refuses a body on a route that takes none (its parameters are
// in the path or the query): one sent by mistake, such as {"queue":"q"} to
// run-next, would otherwise be ignored and the action done on other jobs.
// An empty body, blanks or {} pass.
func (s *Server) bodiless(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			b, err := readBody(w, r)
			if err != nil {
				writeError(w, r, s.log, jsonError(err))
				return
			}
			if t := bytes.TrimSpace(b); len(t) > 0 && string(t) != "{}" {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "%s %s takes no request body; its parameters go in the path or the query (e.g. ?queue=Q)", r.Method, r.URL.Path))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func jsonError(err error) error {
	var (
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return core.Errorf(core.CodeTooLarge, "request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return core.Errorf(core.CodeInvalid, "request body is empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return core.Errorf(core.CodeInvalid, "request body is truncated JSON")
	case errors.As(err, &syntax):
		return core.Errorf(core.CodeInvalid, "request body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return core.Errorf(core.CodeInvalid, "request body must be a JSON object, not %s", typ.Value)
		}
		return core.Errorf(core.CodeInvalid, "field %q must be %s, not %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return core.Errorf(core.CodeInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return core.Wrap(core.CodeInvalid, err, fmt.Sprintf("request body: %v", err))
	}
}

func jsonKind(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}

// setJSONHeaders sets the headers of a JSON answer, with one allocation for
// the three values. no-store: an answer is one moment's state (a job, a
// bucket's RateLimit headers, whoever asked), which no shared cache may
// keep and serve to someone else.
func setJSONHeaders(h http.Header) {
	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = "application/json", "nosniff", "no-store"
	h["Content-Type"] = vals[0:1:1]
	h["X-Content-Type-Options"] = vals[1:2:2]
	h[hdrCacheControl] = vals[2:3:3]
}
