//go:build unix

package daemon

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// FileOwner returns the user id owning the file st describes.
func FileOwner(st fs.FileInfo) (int, bool) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid), true
	}
	return 0, false
}

// lockFile takes an exclusive lock on the open file f, waiting for it; the
// lock goes with f's closing.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

// openDirNoFollow opens the directory dir itself, never a symbolic link's
// target (O_NOFOLLOW): errIsLink when dir is a link (which open refuses
// with ELOOP, or with ENOTDIR as Linux does when O_DIRECTORY is given too).
func openDirNoFollow(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		if st, lerr := os.Lstat(dir); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, errIsLink
		}
	}
	return f, err
}
