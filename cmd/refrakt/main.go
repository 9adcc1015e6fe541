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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
