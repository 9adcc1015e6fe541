package daemon

import (
	"log/slog"

	"github.com/refrakt/refrakt/internal/config"
)

// warnUnknownEnv warns once about each REFRAKT_* variable of the
// environment that nothing in refrakt reads (REFRAKT_WORKERS,
// REFRAKT_LOG_LEVEL): such a setting was silently ignored. It names the
// variable and the setting it likely stands for, never the value, which may
// be a secret. environ is RunOptions.Environ (`refrakt serve` passes
// os.Environ); nil warns of nothing.
func warnUnknownEnv(log *slog.Logger, environ func() []string) {
	if environ == nil {
		return
	}
	for _, v := range config.UnknownEnv(environ()) {
		if v.Suggest != "" {
			log.Warn("unknown environment variable, ignored", "name", v.Name, "did_you_mean", v.Suggest)
		} else {
			log.Warn("unknown environment variable, ignored", "name", v.Name)
		}
	}
}
