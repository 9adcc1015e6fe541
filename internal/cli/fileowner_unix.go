//go:build unix

package cli

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the user id owning the file st describes.
func fileOwner(st fs.FileInfo) (uint32, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid, true
	}
	return 0, false
}
