package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
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
	h := r.Header.Get("Authorization")
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
		got := s.tokens.roleOf(r)
		switch {
		case got == RoleNone:
			w.Header().Set("WWW-Authenticate", `Bearer realm="refrakt"`)
			writeError(w, r, s.log, core.Errorf(core.CodeUnauthorized, "a valid bearer token is required"))
		case got == RoleDeveloper || got == want:
			h.ServeHTTP(w, r)
		default:
			writeError(w, r, s.log, core.Errorf(core.CodeForbidden, "the %s role may not do this; it needs the %s role", got, want))
		}
	})
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
// random one (mode 0600, directory 0700) when the file is missing or empty.
// A file readable by others is replaced, since its token may have leaked.
func ensureTokenFile(path string) (token string, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		if st, serr := os.Stat(path); serr == nil && st.Mode().Perm()&0o077 == 0 {
			if tok := strings.TrimSpace(string(b)); len(tok) >= 16 {
				return tok, false, nil
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read token file %s: %w", path, err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	token = base64.RawURLEncoding.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create token directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	return token, true, nil
}
