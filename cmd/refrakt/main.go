// Command refrakt is the refrakt daemon and the operator's tool in one
// binary; everything it does starts in cli.Run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/refrakt/refrakt/internal/cli"
)

func main() {
	// SIGHUP too: a terminal or an ssh session closing ends a command, and
	// stops a daemon gracefully, as SIGTERM does.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
