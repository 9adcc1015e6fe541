package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTokenDirectoryTightened (sec28 NIT 11): an existing token directory
// of this user's that others may read or search (0755, 0750, 0711) is made
// 0700, and the token in it kept; one that others may write is still
// refused, left as it was.
func TestTokenDirectoryTightened(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o750, 0o711, 0o700} {
		dir := filepath.Join(t.TempDir(), "refrakt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "token")
		tok, _, err := ensureTokenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		again, created, err := ensureTokenFile(path)
		if err != nil || created || again != tok {
			t.Errorf("directory %#o: token %v, created %v, err %v; want the token kept", mode, again == tok, created, err)
		}
		if st, err := os.Stat(dir); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o700 {
			t.Errorf("directory %#o: now %v, want 0700", mode, st.Mode().Perm())
		}
	}
	for _, mode := range []os.FileMode{0o775, 0o757, 0o777} {
		dir := filepath.Join(t.TempDir(), "refrakt")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ensureTokenFile(filepath.Join(dir, "token")); err == nil {
			t.Errorf("directory %#o writable by others: accepted", mode)
		}
		if st, err := os.Stat(dir); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("refused directory %#o changed to %#o", mode, st.Mode().Perm())
		}
	}
}
