package daemon

import (
	"log/slog"
	"strconv"

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
		attrs := []any{"name", v.Name}
		if v.Suggest != "" {
			attrs = append(attrs, "did_you_mean", v.Suggest)
		}
		log.Warn("unknown environment variable, ignored", attrs...)
	}
}

// minTokenLen is the shortest token the token file may hold, and the length
// below which a token set by hand is warned about (a generated one has 43
// characters).
const minTokenLen = 16

// warnRiskySettings warns about settings that start but weaken the daemon
// or may not say what was meant: a trusted proxy range that trusts every
// address (any client may then set its identity and tier headers), a
// TRUSTED_PROXIES given that lists no range at all, and a token short
// enough to guess. It names the setting, never a token.
func warnRiskySettings(log *slog.Logger, cfg config.Config) {
	// Every address of a family, by one range (0.0.0.0/0) or by several
	// together (0.0.0.0/1,128.0.0.0/1).
	for _, fam := range config.CoveringAll(cfg.TrustedProxies) {
		log.Warn("TRUSTED_PROXIES trusts every address: any client can set the identity and tier headers", "range", config.ShowPrefixes(fam), "setting", cfg.SettingName("TRUSTED_PROXIES"))
	}
	// A value that lists no range ("," or an empty flag; nil, where none
	// is an empty list) trusts no peer, as none does, but may well be a
	// list that lost its ranges, loopback's default included.
	if cfg.TrustedProxies == nil {
		log.Warn("TRUSTED_PROXIES lists no range: no peer is trusted, loopback included (write none if that is meant)", "setting", cfg.SettingName("TRUSTED_PROXIES"))
	}
	for _, t := range []struct{ name, value string }{
		{"REFRAKT_DEVELOPER_TOKEN", cfg.DeveloperToken},
		{"REFRAKT_OPERATOR_TOKEN", cfg.OperatorToken},
		{"PROMETHEUS_BEARER_TOKEN", cfg.PrometheusBearerToken},
	} {
		if t.value != "" && len(t.value) < minTokenLen {
			log.Warn("a token shorter than "+strconv.Itoa(minTokenLen)+" characters is easy to guess", "setting", cfg.SettingName(t.name), "length", len(t.value))
		}
	}
}
