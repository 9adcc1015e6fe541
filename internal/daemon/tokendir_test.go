package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quiet is the log of the tests that do not read it.
var quiet = slog.New(slog.DiscardHandler)

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
		tok, _, err := ensureTokenFile(path, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		again, created, err := ensureTokenFile(path, quiet)
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
		dir := dirWithMode(t, filepath.Join(t.TempDir(), "refrakt"), mode)
		if _, _, err := ensureTokenFile(filepath.Join(dir, "token"), quiet); err == nil {
			t.Errorf("directory %#o writable by others: accepted", mode)
		}
		if st, err := os.Stat(dir); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != mode {
			t.Errorf("refused directory %#o changed to %#o", mode, st.Mode().Perm())
		}
	}
}

// TestTokenDirectoryTightenedIsLogged (code28 LOW 6): making the token
// directory private is said at INFO, with its path and the old and the
// new mode; a directory already private is not mentioned.
func TestTokenDirectoryTightenedIsLogged(t *testing.T) {
	dir := dirWithMode(t, filepath.Join(t.TempDir(), "refrakt"), 0o755)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if _, _, err := ensureTokenFile(filepath.Join(dir, "token"), log); err != nil {
		t.Fatal(err)
	}
	want := `level=INFO msg="token directory made private" path=` + dir + " old_mode=0755 new_mode=0700"
	if !strings.Contains(logged.String(), want) {
		t.Errorf("log %q, want a line with %q", logged.String(), want)
	}
	logged.Reset()
	if _, _, err := ensureTokenFile(filepath.Join(dir, "token"), log); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logged.String(), "made private") {
		t.Errorf("a private directory tightened again: %q", logged.String())
	}
}

// TestTokenDirectoryLinkNotTightened (code28 LOW 6): a token directory
// that is a symbolic link, here to a 0755 directory of this user's (as
// $HOME or a web root may be), is used as before, its target not made
// private: whoever could write the link's directory could have pointed
// it there.
func TestTokenDirectoryLinkNotTightened(t *testing.T) {
	target := dirWithMode(t, filepath.Join(t.TempDir(), "public"), 0o755)
	link := filepath.Join(t.TempDir(), "refrakt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	tok, created, err := ensureTokenFile(filepath.Join(link, "token"), slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil || !created || tok == "" {
		t.Fatalf("token directory linked to a 0755 one: %q %v %v, want a token made", tok, created, err)
	}
	if st, err := os.Stat(target); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o755 {
		t.Errorf("the link's target is now %#o, want 0755 as it was", st.Mode().Perm())
	}
	if strings.Contains(logged.String(), "made private") {
		t.Errorf("log %q says a directory was made private", logged.String())
	}
}

// dirWithMode makes directory path with mode (not masked by the umask) and
// returns path.
func dirWithMode(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}
