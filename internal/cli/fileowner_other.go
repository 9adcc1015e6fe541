//go:build !unix

package cli

import "io/fs"

// fileOwner is unknown where files have no Unix owner: the token file's
// token then goes to a loopback server whoever listens there.
func fileOwner(fs.FileInfo) (uint32, bool) { return 0, false }
