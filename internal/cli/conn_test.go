package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
)

// TestBlankVariablesAreUnsetAsForTheDaemon (a code review's test): a blank
// REFRAKT_PREFIX is an unset one for the daemon (config.Lookup), and must be
// for the CLI too: it kept " ", so `refrakt jobs list --redis` looked at
// another keyspace than the daemons beside it. The same for the CLI's
// other variables.
func TestBlankVariablesAreUnsetAsForTheDaemon(t *testing.T) {
	env := map[string]string{"REFRAKT_PREFIX": " ", "REFRAKT_SERVER": "\t", "REFRAKT_TOKEN": "  "}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	var o ConnOptions
	if err := o.resolve(getenv); err != nil {
		t.Fatal(err)
	}
	if o.Prefix != cfg.Prefix || o.Server != "http://127.0.0.1:8080" || o.Token == "  " {
		t.Errorf("blank variables: the CLI uses prefix %q (the daemon %q), server %q, token %q; want the defaults", o.Prefix, cfg.Prefix, o.Server, o.Token)
	}
}

// TestServerURLWithAQueryIsBadInput (top27 N7): a --server URL with a query
// or a fragment was taken, and every request then missed its route ("no
// route GET /", exit 1): it is bad input, exit 2, before any request.
func TestServerURLWithAQueryIsBadInput(t *testing.T) {
	for _, server := range []string{"http://127.0.0.1:9?x=1", "http://127.0.0.1:9/?", "http://127.0.0.1:9/sub?a=b", "http://127.0.0.1:9#top", "http://127.0.0.1:9/#"} {
		for _, args := range [][]string{{"jobs", "list"}, {"top"}} {
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_TOKEN": "x"}, append(args, "--server", server)...)
			if code != ExitUsage || !strings.Contains(stderr, "must not have a query (?…) or a fragment (#…)") {
				t.Errorf("%v --server %s: exit %d, stderr %q; want %d and the query refused", args, server, code, stderr, ExitUsage)
			}
		}
	}
}

// TestServerFlagWinsOverRedisVariable: a flag wins over a variable across
// the two drivers: --server given talks to that daemon even with
// REFRAKT_REDIS exported (it went to the variable's Redis, another
// deployment's maybe), and --server with --redis is a usage error.
func TestServerFlagWinsOverRedisVariable(t *testing.T) {
	env := map[string]string{"REFRAKT_TOKEN": "x", "REFRAKT_REDIS": "redis://127.0.0.1:1"}
	code, _, stderr := runCLI(t, env, "jobs", "list", "--server", "http://127.0.0.1:9")
	if code != ExitUnreachable || !strings.Contains(stderr, "http://127.0.0.1:9") || strings.Contains(stderr, "redis://") {
		t.Errorf("--server with REFRAKT_REDIS exported: exit %d, stderr %q; want %d naming the daemon's URL", code, stderr, ExitUnreachable)
	}
	code, _, stderr = runCLI(t, env, "jobs", "list")
	if code != ExitUnreachable || !strings.Contains(stderr, "redis://127.0.0.1:1") {
		t.Errorf("REFRAKT_REDIS alone: exit %d, stderr %q; want %d naming Redis", code, stderr, ExitUnreachable)
	}
	code, _, stderr = runCLI(t, nil, "jobs", "list", "--server", "http://127.0.0.1:9", "--redis", "redis://127.0.0.1:1")
	if code != ExitUsage || !strings.Contains(stderr, "give one") {
		t.Errorf("--server and --redis: exit %d, stderr %q; want %d", code, stderr, ExitUsage)
	}
}

// TestTokenFileWithheldOnlyWhenThere (verifier ver28 N2): for a server not
// on a loopback address the token file is not sent, and a 401 says so; with
// no token file, the hint named a file that does not exist.
func TestTokenFileWithheldOnlyWhenThere(t *testing.T) {
	state := t.TempDir()
	env := map[string]string{"XDG_STATE_HOME": state, "REFRAKT_SERVER": "https://staging.example.invalid"}
	getenv := func(k string) string { return env[k] }
	var none ConnOptions
	if err := none.resolve(getenv); err != nil {
		t.Fatal(err)
	}
	if none.remote || none.Token != "" {
		t.Errorf("no token file: withheld %v, token %q; want nothing withheld, no token", none.remote, none.Token)
	}
	if hint := none.apiClient().tokenHint(); strings.Contains(hint, "token file") {
		t.Errorf("no token file, hint %q names one", hint)
	}
	if err := os.MkdirAll(filepath.Join(state, "refrakt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "refrakt", "token"), []byte("local-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var withheld ConnOptions
	if err := withheld.resolve(getenv); err != nil {
		t.Fatal(err)
	}
	if !withheld.remote || withheld.Token != "" {
		t.Errorf("a token file and a remote server: withheld %v, token %q; want withheld, no token sent", withheld.remote, withheld.Token)
	}
	if hint := withheld.apiClient().tokenHint(); !strings.Contains(hint, "the token file is sent only to a daemon on a loopback address") {
		t.Errorf("withheld token file, hint %q does not say why", hint)
	}
}
