package config

import (
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary values to every setting: Load must never panic,
// and must either accept a valid config or answer one line naming a setting.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{"", "0", "-1", "abc", "1e309", "NaN", "30", "30s", "1h1m", "true", "10.0.0.0/8,::1", "redis://x", "\x00", "9999999999999999999999"} {
		f.Add(seed)
	}
	settings := Settings()
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range settings {
			c, err := Load(func(k string) string {
				if k == s.Env {
					return v
				}
				return ""
			}, nil)
			if err != nil {
				msg := err.Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, s.Env) {
					t.Fatalf("%s=%q: error %q is not one line naming the setting", s.Env, v, msg)
				}
				continue
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("%s=%q: Load accepted what Validate refuses: %v", s.Env, v, verr)
			}
		}
	})
}
