//go:build unix

package daemon

import (
	"io/fs"
	"os"
	"syscall"
)

// fileOwner returns the user id owning the file st describes.
func fileOwner(st fs.FileInfo) (int, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), true
	}
	return 0, false
}

// lockFile takes an exclusive lock on the open file f, waiting for it; the
// lock goes with f's closing.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }
