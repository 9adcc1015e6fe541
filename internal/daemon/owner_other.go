//go:build !unix

package daemon

import (
	"errors"
	"io/fs"
	"os"
)

// FileOwner is unknown where files have no Unix owner.
func FileOwner(fs.FileInfo) (int, bool) { return 0, false }

// lockFile does nothing where there is no flock: daemons starting at once on
// one state directory rely on the token file's link alone.
func lockFile(*os.File) error { return nil }

// openDirNoFollow opens the directory dir itself: errIsLink when dir is a
// symbolic link. Without O_NOFOLLOW the link is looked for first, so a link
// put in its place between the two is followed.
func openDirNoFollow(dir string) (*os.File, error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return nil, errIsLink
	}
	if !st.IsDir() {
		return nil, errors.New("not a directory")
	}
	return os.Open(dir)
}
