//go:build !unix

package daemon

// nofileLimit is unknown where there is no RLIMIT_NOFILE: no bound.
func nofileLimit() uint64 { return 0 }
