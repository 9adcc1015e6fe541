// Command refrakt is the refrakt daemon and the operator's tool in one
// binary; everything it does starts in cli.Run.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/refrakt/refrakt/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), cli.StopSignals()...)
	code := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
