package daemon

import (
	"testing"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestMain runs the tests and removes the refrakt binary they built.
func TestMain(m *testing.M) { daemontest.Main(m) }
