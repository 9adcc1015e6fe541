package loadgen

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRun drives a real server whose answers take each framing loadgen
// must read (Content-Length, chunked, no body) and checks every response
// was read and counted, and that errors are counted as such.
func TestRun(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/fixed", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello")) })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.Header.Get("X-Test") != "1" || r.Header.Get("X-Conn") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name       string
		target     Target
		wantCodes  map[int]int
		wantErrors int
	}{
		{"content-length", Target{URL: srv.URL + "/fixed"}, map[int]int{200: 40}, 0},
		{"chunked", Target{URL: srv.URL + "/chunked"}, map[int]int{200: 40}, 0},
		{"no body", Target{URL: srv.URL + "/empty"}, map[int]int{204: 40}, 0},
		{"method, headers and body", Target{URL: srv.URL + "/post", Method: "POST", Body: []byte(`{}`), Header: []string{"X-Test: 1"},
			PerConnHeader: func(i int) string { return "X-Conn: " + string(rune('a'+i)) }}, map[int]int{202: 40}, 0},
		{"5xx are errors", Target{URL: srv.URL + "/busy"}, map[int]int{503: 40}, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(tt.target, Options{Conns: 4, Requests: 40, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got := struct {
				Requests, Errors int
				Codes            map[int]int
			}{res.Requests, res.Errors, res.Codes}
			want := got
			want.Requests, want.Errors, want.Codes = 40, tt.wantErrors, tt.wantCodes
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	if _, err := Run(Target{URL: "http://192.0.2.1:80/"}, Options{Conns: 1, Requests: 1}); err == nil {
		t.Fatal("a non-loopback target was accepted")
	}
}
