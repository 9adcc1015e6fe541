//go:build !linux

package redistest

import "syscall"

// ProcAttr starts a child in its own process group.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
