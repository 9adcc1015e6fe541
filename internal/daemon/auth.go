package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/refrakt/refrakt/internal/core"
)

// Role is what a bearer token lets its holder do.
type Role string

// The roles. A developer may do everything an operator may.
const (
	RoleNone      Role = ""
	RoleOperator  Role = "operator"
	RoleDeveloper Role = "developer"
)

// tokens checks bearer tokens in constant time. It keeps only SHA-256
// digests, so comparisons leak neither content nor length.
type tokens struct {
	developer, operator [sha256.Size]byte
	hasOperator         bool
}

func newTokens(developer, operator string) *tokens {
	t := &tokens{developer: sha256.Sum256([]byte(developer))}
	if operator != "" {
		t.operator, t.hasOperator = sha256.Sum256([]byte(operator)), true
	}
	return t
}

// roleOf returns the role the request's bearer token grants.
func (t *tokens) roleOf(r *http.Request) Role {
	tok, ok := bearer(r)
	if !ok {
		return RoleNone
	}
	sum := sha256.Sum256([]byte(tok))
	dev := subtle.ConstantTimeCompare(sum[:], t.developer[:]) == 1
	op := subtle.ConstantTimeCompare(sum[:], t.operator[:]) == 1 && t.hasOperator
	switch {
	case dev:
		return RoleDeveloper
	case op:
		return RoleOperator
	}
	return RoleNone
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := headerValue(r.Header, hdrAuth)
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// equalSecret compares a presented secret with the expected one in constant time.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// requireRole lets a request through only with a token of role want (or a
// developer token, which may do everything): 401 without or with a wrong
// token, 403 with a token of a role that is not enough.
func (s *Server) requireRole(want Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := s.roleOf(w, r)
		switch {
		case got == RoleNone:
			challenge(w, r, "refrakt")
			writeError(w, r, s.log, core.Errorf(core.CodeUnauthorized, "a valid bearer token is required"))
		case got == RoleDeveloper || got == want:
			h.ServeHTTP(w, r)
		default:
			writeError(w, r, s.log, core.Errorf(core.CodeForbidden, "the %s role may not do this; it needs the %s role", got, want))
		}
	})
}

// challenge sets the WWW-Authenticate of a 401 (RFC 6750 §3): the bare
// challenge when the request carried no bearer token, and
// error="invalid_token" when it carried one that is wrong, so a client can
// tell "log in" from "your token is not accepted".
func challenge(w http.ResponseWriter, r *http.Request, realm string) {
	v := `Bearer realm="` + realm + `"`
	if _, ok := bearer(r); ok {
		v += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", v)
}

// TokenPath is where `serve` writes a generated developer token and where the
// CLI looks for it: $XDG_STATE_HOME/refrakt/token, else ~/.local/state/refrakt/token.
func TokenPath(getenv func(string) string) (string, error) {
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "refrakt", "token"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither XDG_STATE_HOME nor HOME is set; set REFRAKT_DEVELOPER_TOKEN")
	}
	return filepath.Join(home, ".local", "state", "refrakt", "token"), nil
}

// ensureTokenFile returns the developer token kept at path, creating a new
// random one (mode 0600, directory 0700) when the file is missing or empty;
// an existing directory of this user's that others may read is made 0700
// (said in log at INFO), unless it is a symbolic link: a link's target is
// used as it is.
// A file readable by others is replaced, since its token may have leaked.
// The directory must be this user's and writable by no one else, and the
// file must be this user's: whoever can write either could plant a token of
// their own choosing (an XDG_STATE_HOME pointing to a shared directory).
func ensureTokenFile(path string, log *slog.Logger) (token string, created bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create token directory: %w; set REFRAKT_DEVELOPER_TOKEN, or XDG_STATE_HOME to a directory of your own", err)
	}
	// The directory must be ours and writable by no one else (as reached: a
	// link to a private directory is fine, only who can write the link's own
	// directory could change it). Perhaps readable or searchable by others
	// (0755, 0750: made by hand or another tool), it is tightened to 0700,
	// as a directory this creates is, so that others cannot list it. Not
	// through a link: whoever can write the link's directory could point it
	// at any directory of this user's ($HOME, a web root), and making that
	// one private would break its other readers.
	if err := tightenDir(dir, log); err != nil {
		return "", false, fmt.Errorf("token directory %s: %w; set REFRAKT_DEVELOPER_TOKEN or use a directory of your own", dir, err)
	}
	// One daemon at a time reads, makes or replaces the token file: others
	// starting at once then read the token it wrote. The lock file is the
	// directory's (private, checked above) and stays.
	lock, err := os.OpenFile(filepath.Join(dir, ".token.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("lock token file: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return "", false, fmt.Errorf("lock token file: %w", err)
	}
	// Under the lock, a temporary file is a dead daemon's: removed.
	left, _ := filepath.Glob(filepath.Join(dir, ".token-*.tmp"))
	for _, f := range left {
		_ = os.Remove(f)
	}
	tok, found, err := readTokenFile(path)
	switch {
	case err != nil:
		return "", false, err
	case tok != "":
		return tok, false, nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	token = base64.RawURLEncoding.EncodeToString(buf)
	// A new file of its own (CreateTemp: a unique name, mode 0600), never one
	// found there, put in place whole. Where there was none, by a link, which
	// fails if another daemon starting at the same time put its own there
	// first: then that one is the token (two daemons on one state directory
	// serve the one token the file holds).
	f, err := os.CreateTemp(dir, ".token-*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := f.WriteString(token + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", false, fmt.Errorf("write token file: %w", werr)
	}
	if !found {
		err := os.Link(tmp, path)
		if err == nil {
			return token, true, nil
		}
		if errors.Is(err, fs.ErrExist) {
			if tok, _, rerr := readTokenFile(path); rerr != nil || tok != "" {
				return tok, false, rerr
			}
		}
		// No hard links here, or the other's file is unusable: replaced.
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	return token, true, nil
}

// readTokenFile reads the token kept at path: "" when there is none to use
// (found says whether a file is there: empty, too short, or readable by
// others, and then to be replaced), an error when path must not be used.
func readTokenFile(path string) (token string, found bool, err error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read token file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", true, fmt.Errorf("token file %s is not a regular file; set REFRAKT_DEVELOPER_TOKEN or remove it", path)
	}
	if err := ownedPrivately(os.Lstat, path, 0); err != nil {
		return "", true, fmt.Errorf("token file %s: %w; set REFRAKT_DEVELOPER_TOKEN or remove it", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", true, fmt.Errorf("read token file %s: %w", path, err)
	}
	if tok := strings.TrimSpace(string(b)); len(tok) >= minTokenLen && st.Mode().Perm()&0o077 == 0 {
		return tok, true, nil
	}
	return "", true, nil
}

// errIsLink is openDirNoFollow's answer for a symbolic link.
var errIsLink = errors.New("is a symbolic link")

// tightenDir checks that the directory dir is this user's and writable by
// no one else, and takes every permission of group and others off dir
// itself, logging the change; a symbolic link's target is only checked.
// The directory is opened once, without following a link, and checked
// (this user's, writable by no one else) and changed through that one
// descriptor, so that a link put in its place meanwhile changes nothing.
func tightenDir(dir string, log *slog.Logger) error {
	f, err := openDirNoFollow(dir)
	if errors.Is(err, errIsLink) {
		return ownedPrivately(os.Stat, dir, 0o022) // the target, used as it is
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := privately(st, 0o022); err != nil {
		return err
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		if err := f.Chmod(m &^ 0o077); err != nil {
			return fmt.Errorf("cannot make it private (mode %#o): %w", m, err)
		}
		log.Info("token directory made private", "path", dir,
			"old_mode", fmt.Sprintf("%#o", m), "new_mode", fmt.Sprintf("%#o", m&^0o077))
	}
	return nil
}

// ownedPrivately checks that path, as stat sees it, belongs to this
// process's user and that no permission bit of forbid is set.
func ownedPrivately(stat func(string) (fs.FileInfo, error), path string, forbid fs.FileMode) error {
	st, err := stat(path)
	if err != nil {
		return err
	}
	return privately(st, forbid)
}

// privately checks that the file st describes belongs to this process's
// user and that no permission bit of forbid is set.
func privately(st fs.FileInfo, forbid fs.FileMode) error {
	if uid, ok := FileOwner(st); ok && uid != os.Geteuid() {
		return fmt.Errorf("belongs to user %d, not to this one (%d)", uid, os.Geteuid())
	}
	if m := st.Mode().Perm(); m&forbid != 0 {
		return fmt.Errorf("is writable by others (mode %#o)", m)
	}
	return nil
}
