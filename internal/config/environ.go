package config

import (
	"slices"
	"sort"
	"strings"
)

// toolEnv are the REFRAKT_* variables read by other parts of refrakt than
// the settings of serve: the CLI's connection (internal/cli/conn.go), and
// the repository's scripts and test switches (scripts/, internal/chaos,
// the redisbroker crash helper). A shell that sets them for those is no
// mistake of serve's.
var toolEnv = []string{
	"REFRAKT_SERVER", "REFRAKT_TOKEN", "REFRAKT_REDIS", "REFRAKT_PREFIX",
	"REFRAKT_CLUSTER_DIR", "REFRAKT_CLUSTER_PORT", "REFRAKT_SOAK", "REFRAKT_SOAK_DURATION",
	"REFRAKT_CHAOS", "REFRAKT_CRASH_WORKER", "REFRAKT_CRASH_HANG",
}

// UnknownVar is a REFRAKT_* environment variable nothing in refrakt reads,
// and the known name it most likely stands for ("" when none is obvious).
type UnknownVar struct {
	Name    string
	Suggest string
}

// UnknownEnv returns the REFRAKT_* variables of environ ("NAME=value"
// entries, as os.Environ gives them) that are neither a setting nor a
// variable of the CLI or the scripts, sorted by name, each once. Only names
// are looked at: a value may be a secret.
func UnknownEnv(environ []string) []UnknownVar {
	settings := Settings()
	known := slices.Clone(toolEnv)
	for _, s := range settings {
		known = append(known, s.Env)
	}
	seen := map[string]bool{}
	var out []UnknownVar
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "REFRAKT_") || slices.Contains(known, name) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, UnknownVar{Name: name, Suggest: suggestEnv(name, settings, known)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// suggestEnv is the known variable name stands for, when one is obvious: a
// setting named without or with the REFRAKT_ prefix it lacks or has for
// nothing (REFRAKT_LOG_LEVEL for LOG_LEVEL), a flag of serve written as a
// variable (REFRAKT_WORKERS for --workers, WORKER_CONCURRENCY), or the one
// known name a typo or two away (REFRAKT_DEVELOPER_TOKN). "" otherwise.
func suggestEnv(name string, settings []Setting, known []string) string {
	bare := strings.TrimPrefix(name, "REFRAKT_")
	for _, s := range settings {
		if s.Env == bare || "REFRAKT_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")) == name {
			return s.Env
		}
	}
	best, bestDist, tie := "", 3, false // at most two edits away
	for _, k := range known {
		d := min(editDistance(name, k), editDistance(bare, k))
		switch {
		case d < bestDist:
			best, bestDist, tie = k, d, false
		case d == bestDist && k != best:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
