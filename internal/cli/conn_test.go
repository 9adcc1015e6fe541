package cli

import (
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
