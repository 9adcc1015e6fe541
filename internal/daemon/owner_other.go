//go:build !unix

package daemon

import (
	"io/fs"
	"os"
)

// fileOwner is unknown where files have no Unix owner.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

// lockFile does nothing where there is no flock: daemons starting at once on
// one state directory rely on the token file's link alone.
func lockFile(*os.File) error { return nil }
