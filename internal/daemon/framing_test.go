package daemon

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestAmbiguousFramingClosesTheConnection: a request with both
// Content-Length and Transfer-Encoding (RFC 9112 §6.1: the server MUST close
// the connection after responding) is answered with Connection: close and
// the connection closed, so a request pipelined behind it, which a proxy
// may have framed differently, is never answered.
func TestAmbiguousFramingClosesTheConnection(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, nil)
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	conn, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	const body = `{"type":"ping"}`
	_, err = io.WriteString(conn, "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 15\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"f\r\n"+body+"\r\n0\r\n\r\n"+
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// ReadResponse takes "Connection: close" out of the header into Close.
	if diff := cmp.Diff(true, resp.Close); diff != "" {
		t.Errorf("first answer (%d): Connection: close (-want +got):\n%s", resp.StatusCode, diff)
	}
	rest, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("after the first answer: %v (want the connection closed)", err)
	}
	if len(rest) > 0 {
		t.Errorf("the pipelined request was answered: %q", rest)
	}
}
