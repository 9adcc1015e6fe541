//go:build unix

package daemon

import "syscall"

// nofileLimit is the process's soft RLIMIT_NOFILE (which the Go runtime
// raised to the hard one at start), or 0 when it cannot be read.
func nofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Cur)
}
