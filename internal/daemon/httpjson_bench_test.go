package daemon

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// BenchmarkDecodeJSON is decodeJSON on POST /run's usual body and on one
// with a large payload.
func BenchmarkDecodeJSON(b *testing.B) {
	for _, tt := range []struct{ name, body string }{
		{"small", `{"type":"echo","queue":"default","max_retries":2,"payload":{"a":1,"b":"x","c":[1,2,3]}}`},
		{"payload-100KiB", `{"type":"echo","payload":{"blob":"` + strings.Repeat("x", 100<<10) + `"}}`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.body)))
			for b.Loop() {
				req := httptest.NewRequest("POST", "/run", strings.NewReader(tt.body))
				rec := httptest.NewRecorder()
				var v queue.EnqueueRequest
				if err := decodeJSON(rec, req, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
