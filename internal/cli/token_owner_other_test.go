//go:build !linux

package cli

// strangerEnv names the variable that makes the test binary a stranger's
// listener on Linux (token_owner_linux_test.go); elsewhere it is never set.
const strangerEnv = "REFRAKT_TEST_STRANGER_LISTENER"

// runStranger is the Linux tests' listener of another user: none here.
func runStranger(string) {}
