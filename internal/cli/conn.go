package cli

import (
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/daemon"
	"github.com/refrakt/refrakt/internal/procnet"
)

// DefaultServer is the daemon the client commands talk to when neither
// --server nor REFRAKT_SERVER says otherwise.
const DefaultServer = "http://127.0.0.1:8080"

// ConnOptions say where a client command finds refrakt's state: a daemon's
// API (Server, Token) or Redis directly (Redis), and how to print.
type ConnOptions struct {
	Server  string
	Token   string
	Redis   string
	Prefix  string
	Output  string
	NoColor bool

	// tokenFile is the file Token was read from, when it was (resolve).
	tokenFile string
	// tokenOwner is the user id owning tokenFile, when the system tells
	// (ownerKnown): the token goes only to a server process of that user.
	tokenOwner uint32
	ownerKnown bool
	// remote says the token file holds a token (the local daemon's) that
	// is not sent, the server not being on a loopback address (resolve).
	remote bool
	// exposed are warnings of flags that carry a password, which ps shows
	// to every user of the machine (resolve; warnExposed prints them).
	exposed []string
}

// addConnFlags registers the connection and output flags shared by jobs,
// limits and top on cmd (persistent, so subcommands inherit them).
func addConnFlags(cmd *cobra.Command, o *ConnOptions) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&o.Server, "server", "", "daemon URL (env REFRAKT_SERVER, default "+DefaultServer+")")
	fl.StringVar(&o.Token, "token", "", "bearer token (env REFRAKT_TOKEN, default: the token file serve writes); as a flag it shows in ps to every local user: prefer the env var")
	fl.StringVar(&o.Redis, "redis", "", "talk to Redis directly instead of a daemon (env REFRAKT_REDIS); a password in it, given as a flag, shows in ps to every local user: prefer the env var")
	fl.StringVar(&o.Prefix, "prefix", "", "Redis key prefix with --redis (env REFRAKT_PREFIX, default refrakt:)")
	fl.StringVarP(&o.Output, "output", "o", "", "output format: table or json")
	fl.BoolVar(&o.NoColor, "no-color", false, "no colour (also NO_COLOR)")
}

// warnExposed writes resolve's warnings of flags that carry a password,
// one line each, to w: never the value.
func (o *ConnOptions) warnExposed(w io.Writer) {
	for _, msg := range o.exposed {
		fmt.Fprintln(w, "refrakt: warning: "+msg)
	}
}

// newGroupCmd completes cmd as a noun over one connection (jobs, limits):
// it takes the connection flags, and subs builds its subcommands on a
// client over that connection. It is runnable, so that an unknown
// subcommand is an error (exit 2) rather than cobra's help with exit 0.
func newGroupCmd(f *Factory, cmd *cobra.Command, subs func(client) []*cobra.Command) *cobra.Command {
	conn := &ConnOptions{}
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	addConnFlags(cmd, conn)
	// jobs and limits print no colour: the flag is taken (a script may pass
	// it to every command) but has nothing to turn off.
	cmd.PersistentFlags().Lookup("no-color").Usage = "accepted, no effect: only top uses colour (also NO_COLOR)"
	cmd.AddCommand(subs(client{f: f, conn: conn})...)
	return cmd
}

// apiClient returns the client of the daemon o names, once resolved.
func (o *ConnOptions) apiClient() *APIClient {
	c := NewAPIClient(o.Server, o.Token)
	c.TokenFile = o.tokenFile
	c.Remote = o.remote
	if o.tokenFile != "" && o.ownerKnown {
		c.HTTP = ownerCheckedClient(o.tokenOwner, procnet.System)
	}
	return c
}

// resolve fills what the flags left empty from the environment and the
// token file, in the documented order: flag, env var, default.
func (o *ConnOptions) resolve(getenv func(string) string) error {
	// A flag wins over a variable across the two drivers too: --server
	// given is the daemon, whatever REFRAKT_REDIS says (a variable left
	// exported would send the command to another deployment's Redis).
	serverFlag := o.Server != ""
	// A flag is in the command line, which ps shows to every user of the
	// machine (sec31 NIT 6); the README advises REFRAKT_TOKEN over --token.
	o.exposed = nil
	for _, f := range []struct{ flag, value, env string }{{"--redis", o.Redis, "REFRAKT_REDIS"}, {"--server", o.Server, "REFRAKT_SERVER"}} {
		if config.HasPassword(f.value) {
			o.exposed = append(o.exposed, f.flag+" carries a password, which other users of this machine see in ps; prefer "+f.env)
		}
	}
	if serverFlag && o.Redis != "" {
		return usageError{errorf("--server and --redis: give one (a daemon, or Redis directly)")}
	}
	if o.Server == "" {
		o.Server = config.Lookup(getenv, "REFRAKT_SERVER")
	}
	if o.Server == "" {
		o.Server = DefaultServer
	}
	o.Server = strings.TrimRight(o.Server, "/")
	if o.Redis == "" && !serverFlag {
		o.Redis = config.Lookup(getenv, "REFRAKT_REDIS")
	}
	// The server is checked only when it is the one used: with --redis (or
	// REFRAKT_REDIS) a REFRAKT_SERVER left in the environment is ignored.
	if o.Redis == "" {
		if !strings.HasPrefix(o.Server, "http://") && !strings.HasPrefix(o.Server, "https://") {
			return usageError{errorf("--server %q: must be an http:// or https:// URL", config.RedactURL(o.Server))}
		}
		// A password a parser would split, or a URL with user info it
		// cannot parse, is refused before any parser quotes a piece of it.
		if err := config.CheckURLPassword(o.Server); err != nil {
			return usageError{errorf("--server %s: %v", config.RedactURL(o.Server), err)}
		}
		// The client appends each route's path to the URL (a path in it is
		// a prefix, as behind a proxy): a query or a fragment would end up
		// before that path, and every request would miss its route.
		if u, err := url.Parse(o.Server); err == nil && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(o.Server, "#")) {
			return usageError{errorf("--server %s: must not have a query (?…) or a fragment (#…): give the daemon's URL, e.g. %s", config.RedactURL(o.Server), DefaultServer)}
		}
	}
	if o.Prefix == "" {
		o.Prefix = config.Lookup(getenv, "REFRAKT_PREFIX")
	}
	if o.Prefix == "" {
		o.Prefix = "refrakt:"
	}
	if o.Token == "" {
		o.Token = config.Lookup(getenv, "REFRAKT_TOKEN")
	}
	// The token file holds the developer token of the daemon on this
	// machine: a server elsewhere (named by mistake, or a redirect's
	// target) must not get it. Only a flag or a variable sends one there.
	if o.Token == "" && o.Redis == "" {
		if path, err := daemon.TokenPath(getenv); err == nil {
			if b, st, err := readFileStat(path); err == nil {
				switch tok := strings.TrimSpace(string(b)); {
				case tok == "":
				case loopbackServer(o.Server):
					o.Token, o.tokenFile = tok, path
					var uid int
					uid, o.ownerKnown = daemon.FileOwner(st)
					o.tokenOwner = uint32(uid)
				default:
					o.remote = true // withheld: a 401 says why
				}
			}
		}
	}
	if getenv("NO_COLOR") != "" {
		o.NoColor = true
	}
	switch o.Output {
	case "", "table", "json":
	default:
		return usageError{errorf("--output %q: must be table or json", o.Output)}
	}
	return nil
}

// readFileStat reads the file at path, and says who owns what it read.
func readFileStat(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(f)
	return b, st, err
}

// loopbackServer reports whether server's host is a loopback address
// literal (127.0.0.0/8, ::1, IPv4-mapped loopback) or exactly localhost: a
// daemon on this machine, reached directly. These are the hosts net/http
// never sends through HTTP_PROXY (httpproxy's useProxy). Any other
// spelling (LOCALHOST, localhost.) goes to the proxy, where the token
// file's token must not: it is remote here.
func loopbackServer(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
