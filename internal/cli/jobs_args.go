package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

// Job ids are 22 characters of URL-safe base64, so one in 64 begins with
// "-" and would be read as a flag ("unknown shorthand flag: 't' in
// -tql6k…"). acceptDashIDs makes cmd take such ids as arguments anywhere on
// the line: it parses the flags itself, after moving every token shaped like
// a job id that is neither a flag nor a flag's value behind "--". Without a
// job-id-shaped token the line parses exactly as cobra would parse it.
func acceptDashIDs(cmd *cobra.Command) {
	run, validate := cmd.RunE, cmd.Args
	cmd.DisableFlagParsing = true
	cmd.Args = cobra.ArbitraryArgs // validated below, once the flags are out
	cmd.RunE = func(c *cobra.Command, raw []string) error {
		c.DisableFlagParsing = false
		defer func() { c.DisableFlagParsing = true }()
		if err := c.ParseFlags(dashIDsLast(c, raw)); err != nil {
			return usageError{err}
		}
		if help, _ := c.Flags().GetBool("help"); help {
			return c.Help()
		}
		if err := c.ValidateRequiredFlags(); err != nil {
			return usageError{err}
		}
		args := c.Flags().Args()
		if validate != nil {
			if err := validate(c, args); err != nil {
				return usageError{err}
			}
		}
		return run(c, args)
	}
}

// dashIDsLast returns raw with the job-id-shaped tokens that begin with "-"
// moved behind a "--" (raw itself when there are none, or when it already
// has a "--").
func dashIDsLast(c *cobra.Command, raw []string) []string {
	var rest, ids []string
	for i := 0; i < len(raw); i++ {
		t := raw[i]
		if t == "--" {
			return raw
		}
		if strings.HasPrefix(t, "-") && looksLikeJobID(t) && !isFlag(c, t) {
			ids = append(ids, t)
			continue
		}
		rest = append(rest, t)
		if takesValue(c, t) && i+1 < len(raw) { // the flag's value, whatever it looks like
			i++
			rest = append(rest, raw[i])
		}
	}
	if len(ids) == 0 {
		return raw
	}
	return append(append(rest, "--"), ids...)
}

// looksLikeJobID reports whether t has the shape of queue.NewID's ids.
func looksLikeJobID(t string) bool {
	if len(t) != 22 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// isFlag reports whether t names one of c's flags ("--name").
func isFlag(c *cobra.Command, t string) bool {
	name, ok := strings.CutPrefix(t, "--")
	return ok && c.Flag(name) != nil
}

// takesValue reports whether t is a flag that takes its value from the next
// token: "--name" or "-n" of a non-boolean flag, without "=value".
func takesValue(c *cobra.Command, t string) bool {
	if strings.Contains(t, "=") {
		return false
	}
	var name string
	switch {
	case strings.HasPrefix(t, "--"):
		name = t[2:]
	case len(t) == 2 && t[0] == '-':
		if f := c.Flags().ShorthandLookup(t[1:]); f != nil {
			name = f.Name
		} else if f := c.InheritedFlags().ShorthandLookup(t[1:]); f != nil {
			name = f.Name
		}
	}
	f := c.Flag(name)
	return f != nil && f.NoOptDefVal == ""
}
