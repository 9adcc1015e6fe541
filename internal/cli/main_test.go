package cli

import (
	"os"
	"testing"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestMain runs the tests and removes the refrakt binary they built; run
// as a stranger's listener (strangerEnv), it is that instead.
func TestMain(m *testing.M) {
	if spec := os.Getenv(strangerEnv); spec != "" {
		runStranger(spec)
		return
	}
	daemontest.Main(m)
}
