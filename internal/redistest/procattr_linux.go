package redistest

import "syscall"

// ProcAttr starts a child in its own process group, killed by the kernel
// when the test process dies, so that a test binary killed by its -timeout
// or a panic leaves no server behind (two such redis-servers outlived their
// tests for an hour).
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
