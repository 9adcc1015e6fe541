package daemon

import (
	"log/slog"
	"os"

	"github.com/refrakt/refrakt/internal/config"
)

// warnUnknownEnv warns once about each REFRAKT_* variable of the
// environment that nothing in refrakt reads (REFRAKT_WORKERS,
// REFRAKT_LOG_LEVEL): such a setting was silently ignored. It names the
// variable and the setting it likely stands for, never the value, which may
// be a secret. environ is RunOptions.Environ; nil reads the process's own
// (os.Environ), as long as the CLI passes none.
func warnUnknownEnv(log *slog.Logger, environ func() []string) {
	if environ == nil {
		environ = os.Environ
	}
	for _, v := range config.UnknownEnv(environ()) {
		if v.Suggest != "" {
			log.Warn("unknown environment variable, ignored", "name", v.Name, "did_you_mean", v.Suggest)
		} else {
			log.Warn("unknown environment variable, ignored", "name", v.Name)
		}
	}
}
