package top

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// runTopEnv makes the test binary run `top` itself instead of the tests,
// so the tmux test can drive the real program in a real terminal before
// the refrakt binary has a `top` command. Its value is the server URL.
const runTopEnv = "REFRAKT_TOP_TEST_SERVER"

func TestMain(m *testing.M) {
	if server := os.Getenv(runTopEnv); server != "" {
		src := NewHTTPSource(server, os.Getenv("REFRAKT_TOKEN"), nil)
		if err := Run(context.Background(), src, Options{Interval: MinInterval * 2}, os.Stdin, os.Stdout, os.Environ()); err != nil {
			fmt.Fprintln(os.Stderr, "top:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
