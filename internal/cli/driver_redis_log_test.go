package cli

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/refrakt/refrakt/internal/redistest"
)

// TestRedisDriverLogsNothing: the CLI over --redis reports through its exit
// path alone. Its limiter logs an overrides read failing and recovering;
// on the default logger those lines went to the user's terminal, across
// top's screen while Redis was down.
func TestRedisDriverLogsNothing(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	srv := redistest.Start(t)
	ctx := context.Background()
	d, err := newRedisDriver(ctx, srv.URL(), "", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Limits(ctx, ""); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := d.Limits(ctx, ""); err == nil {
		t.Fatal("limits with Redis stopped: no error")
	}
	srv.Restart()
	if _, err := d.Limits(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if logs.Len() > 0 {
		t.Errorf("the CLI's driver logged:\n%s", logs.String())
	}
}
