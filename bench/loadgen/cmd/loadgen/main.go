// Command loadgen is refrakt's load generator for scripts/loadtest.sh:
//
//	loadgen bare [-addr 127.0.0.1:0] [-max-time 10m]
//	    serve the bare net/http baseline; prints "listening ADDR"
//	loadgen run -name NAME -url URL [-c 64] [-n 20000] [-method GET]
//	    [-body JSON] [-H 'Name: value']... [-xff] [-timeout 2m]
//	    drive URL and print one RESULT line
//
// Both only talk to loopback addresses and stop by themselves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/refrakt/refrakt/bench/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: loadgen bare|run [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "bare":
		err = serveBare(args[1:], stdout)
	case "run":
		err = runLoad(args[1:], stdout)
	default:
		err = fmt.Errorf("unknown command %q (bare or run)", args[0])
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	return 0
}

func serveBare(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address to listen on")
	maxTime := fs.Duration("max-time", 10*time.Minute, "stop after this long even if nobody says so")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("only loopback addresses, not %s", host)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "listening", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	srv := loadgen.BareServer()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, "; ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

func runLoad(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	name := fs.String("name", "load", "label of the RESULT line")
	url := fs.String("url", "", "http://127.0.0.1:PORT/path")
	conns := fs.Int("c", 64, "keep-alive connections, one request in flight each")
	n := fs.Int("n", 20000, "total requests")
	method := fs.String("method", "GET", "request method")
	body := fs.String("body", "", "JSON body sent with every request")
	xff := fs.Bool("xff", false, "send X-Forwarded-For: 10.9.x.y, a distinct client per connection")
	timeout := fs.Duration("timeout", 2*time.Minute, "stop sending after this long")
	var headers headerList
	fs.Var(&headers, "H", "header line 'Name: value' (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t := loadgen.Target{URL: *url, Method: *method, Header: headers}
	if *body != "" {
		t.Body = []byte(*body)
	}
	if *xff {
		t.PerConnHeader = func(i int) string { return fmt.Sprintf("X-Forwarded-For: 10.9.%d.%d", i>>8&255, i&255) }
	}
	res, err := loadgen.Run(t, loadgen.Options{Conns: *conns, Requests: *n, Timeout: *timeout})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "RESULT name=%s conns=%d %s\n", *name, *conns, res)
	return nil
}
