// Package loadgen drives an HTTP/1.1 server over keep-alive loopback
// connections with a bounded number of requests and measures req/s and
// latency percentiles. It speaks just enough HTTP/1.1 (a pre-built request,
// Content-Length or chunked responses) to cost the server's machine far less
// CPU than net/http's client would: on a 2-core box the generator shares the
// cores with the server under test, so a cheap generator keeps the figures
// about the server. It also serves the bare net/http baseline.
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Target is one kind of request to send.
type Target struct {
	// URL is http://127.0.0.1:PORT/path?query.
	URL string
	// Method defaults to GET.
	Method string
	// Header lines added to every request ("Name: value").
	Header []string
	// Body is sent with every request (Content-Type: application/json when set).
	Body []byte
	// PerConnHeader, when set, returns an extra header line for connection i
	// (e.g. a distinct X-Forwarded-For per simulated client).
	PerConnHeader func(i int) string
}

// Options bound a run.
type Options struct {
	// Conns is the number of keep-alive connections, each with one request
	// in flight.
	Conns int
	// Requests is the total number of requests across all connections.
	Requests int
	// Timeout caps the whole run; requests not sent by then are not sent.
	Timeout time.Duration
}

// Result is what a run measured.
type Result struct {
	Requests int           // answered requests
	Errors   int           // transport errors plus responses with status >= 500 (and 429 unless Expect says otherwise)
	Codes    map[int]int   // count per status code
	Elapsed  time.Duration // wall time of the run
	P50, P99 time.Duration // latency percentiles of answered requests
	Max      time.Duration
}

// ReqPerSec is answered requests per second.
func (r Result) ReqPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// String is one human-readable line.
func (r Result) String() string {
	codes := make([]string, 0, len(r.Codes))
	for _, c := range slices.Sorted(mapKeys(r.Codes)) {
		codes = append(codes, fmt.Sprintf("%d:%d", c, r.Codes[c]))
	}
	return fmt.Sprintf("req/s=%.0f p50=%s p99=%s max=%s requests=%d errors=%d codes=%s",
		r.ReqPerSec(), fmtMS(r.P50), fmtMS(r.P99), fmtMS(r.Max), r.Requests, r.Errors, strings.Join(codes, ","))
}

func fmtMS(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms" }

func mapKeys(m map[int]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// build renders the request bytes for connection i.
func (t Target) build(i int) (host string, req []byte, err error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return "", nil, err
	}
	if u.Scheme != "http" {
		return "", nil, fmt.Errorf("loadgen: only http:// URLs, not %q", t.URL)
	}
	h, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", nil, fmt.Errorf("loadgen: URL needs host:port: %w", err)
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return "", nil, fmt.Errorf("loadgen: only loopback targets, not %s", h)
	}
	method := t.Method
	if method == "" {
		method = "GET"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: refrakt-loadgen\r\n", method, u.RequestURI(), u.Host)
	for _, l := range t.Header {
		b.WriteString(l + "\r\n")
	}
	if t.PerConnHeader != nil {
		if l := t.PerConnHeader(i); l != "" {
			b.WriteString(l + "\r\n")
		}
	}
	if t.Body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(t.Body))
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return u.Host, b.Bytes(), nil
}

// Run sends opts.Requests requests of t over opts.Conns connections and
// measures them. A status >= 500 or 429 counts as an error; every status
// is also counted in Result.Codes.
func Run(t Target, opts Options) (Result, error) {
	if opts.Conns < 1 || opts.Requests < 1 {
		return Result{}, errors.New("loadgen: need at least one connection and one request")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	type conn struct {
		c   net.Conn
		req []byte
	}
	conns := make([]conn, opts.Conns)
	defer func() {
		for _, c := range conns {
			if c.c != nil {
				c.c.Close()
			}
		}
	}()
	for i := range conns {
		host, req, err := t.build(i)
		if err != nil {
			return Result{}, err
		}
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			return Result{}, fmt.Errorf("loadgen: dial %s: %w", host, err)
		}
		conns[i] = conn{c: c, req: req}
	}

	var (
		next     atomic.Int64
		deadline = time.Now().Add(opts.Timeout)
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, opts.Requests)
		codes    = map[int]int{}
		errs     int
		wg       sync.WaitGroup
	)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func(c conn) {
			defer wg.Done()
			mine := make([]time.Duration, 0, opts.Requests/opts.Conns+1)
			myCodes := map[int]int{}
			myErrs := 0
			r := bufio.NewReaderSize(c.c, 16<<10)
			_ = c.c.SetDeadline(deadline)
			for next.Add(1) <= int64(opts.Requests) {
				t0 := time.Now()
				if _, err := c.c.Write(c.req); err != nil {
					myErrs++
					break
				}
				code, err := readResponse(r)
				if err != nil {
					myErrs++
					break
				}
				mine = append(mine, time.Since(t0))
				myCodes[code]++
				if code >= 500 || code == 429 {
					myErrs++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range myCodes {
				codes[k] += v
			}
			errs += myErrs
			mu.Unlock()
		}(conns[i])
	}
	wg.Wait()
	res := Result{Requests: len(lat), Errors: errs, Codes: codes, Elapsed: time.Since(start)}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99, res.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	}
	return res, nil
}

// readResponse reads one response (status line, headers, body) and returns
// its status code.
func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("loadgen: bad status line %q", line)
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		}
	}
	switch {
	case chunked:
		return code, skipChunked(r)
	case length >= 0:
		_, err = r.Discard(length)
		return code, err
	case code == 204 || code == 304:
		return code, nil
	}
	return 0, errors.New("loadgen: response without a length (connection-delimited bodies are not supported)")
}

func skipChunked(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return fmt.Errorf("loadgen: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the empty line
				l, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(l) <= 2 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool { return bytes.EqualFold(b, []byte(s)) }
