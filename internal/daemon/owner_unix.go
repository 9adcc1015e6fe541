//go:build unix

package daemon

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the user id owning the file st describes.
func fileOwner(st fs.FileInfo) (int, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), true
	}
	return 0, false
}
