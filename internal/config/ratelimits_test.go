package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// TestRateLimitsGood: RATE_LIMITS's grammar, its defaults (burst = rate,
// scopes = ip), blanks, and the start-up line's rendering of it.
func TestRateLimitsGood(t *testing.T) {
	sec, min := time.Second, time.Minute
	tests := []struct {
		name    string
		value   string
		want    []ratelimit.Limit
		wantLog string
	}{
		{"blank", "  ", nil, ""},
		{"one, defaults", "api=100/1m", []ratelimit.Limit{{Name: "api", Scopes: []ratelimit.Scope{"ip"}, Policy: ratelimit.Policy{Burst: 100, Rate: 100, Window: min}}},
			"api=100/1m burst=100 scopes=ip"},
		{"the brief's example", "api=100/1m burst=200 scopes=ip,user; search=10/1s scopes=user_tenant", []ratelimit.Limit{
			{Name: "api", Scopes: []ratelimit.Scope{"ip", "user"}, Policy: ratelimit.Policy{Burst: 200, Rate: 100, Window: min}},
			{Name: "search", Scopes: []ratelimit.Scope{"user_tenant"}, Policy: ratelimit.Policy{Burst: 10, Rate: 10, Window: sec}},
		}, "api=100/1m burst=200 scopes=ip,user; search=10/1s burst=10 scopes=user_tenant"},
		{"blank entries and spaces", " ; a_b-1=5/1h   scopes=tenant ;; ", []ratelimit.Limit{{Name: "a_b-1", Scopes: []ratelimit.Scope{"tenant"}, Policy: ratelimit.Policy{Burst: 5, Rate: 5, Window: time.Hour}}},
			"a_b-1=5/1h burst=5 scopes=tenant"},
		{"90s window", "x=3/90s burst=1", []ratelimit.Limit{{Name: "x", Scopes: []ratelimit.Scope{"ip"}, Policy: ratelimit.Policy{Burst: 1, Rate: 3, Window: 90 * sec}}},
			"x=3/1m30s burst=1 scopes=ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(map[string]string{"RATE_LIMITS": tt.value}), nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, c.RateLimits); diff != "" {
				t.Errorf("RateLimits (-want +got):\n%s", diff)
			}
			if got := logAttrs(t, c)["rate_limits"]; got != tt.wantLog {
				t.Errorf("start-up line rate_limits=%q, want %q", got, tt.wantLog)
			}
			// The flag takes the same, and the limiter takes what it gives.
			fc, err := Load(env(nil), map[string]string{"rate-limits": tt.value})
			if err != nil || !cmp.Equal(fc.RateLimits, c.RateLimits) {
				t.Errorf("--rate-limits: %v, %v", fc.RateLimits, err)
			}
		})
	}
}

// TestRateLimitsBad: every violation stops start-up with one line naming
// the setting and the entry by number.
func TestRateLimitsBad(t *testing.T) {
	many := strings.Repeat("a=1/1s;", 0)
	for i := range ratelimit.MaxCustomLimits + 1 {
		many += "l" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "=1/1s; "
	}
	tests := []struct {
		name, value string
		env         map[string]string
		want        []string // in the message
	}{
		{"built-in name", "api=1/1s; run=1/1s", nil, []string{"RATE_LIMITS: ", "entry 2 ", "built-in"}},
		{"duplicate", "api=1/1s; api=2/1s", nil, []string{"entry 2 ", "given twice"}},
		{"upper case name", "Api=1/1s", nil, []string{"entry 1 ", "lower-case"}},
		{"colon in name", "a:b=1/1s", nil, []string{"entry 1 ", "name"}},
		{"name too long", strings.Repeat("a", 33) + "=1/1s", nil, []string{"entry 1 ", "32"}},
		{"no policy", "api", nil, []string{"entry 1 ", "NAME=RATE/WINDOW"}},
		{"no window", "api=10", nil, []string{"entry 1 ", "NAME=RATE/WINDOW"}},
		{"zero rate", "api=0/1s", nil, []string{"entry 1 ", "rate"}},
		{"signed rate", "api=+1/1s", nil, []string{"entry 1 ", "rate \"+1\""}},
		{"signed burst", "api=1/1s burst=+2", nil, []string{"entry 1 ", "burst \"+2\""}},
		{"rate too big", "api=1073741825/1s", nil, []string{"rate", "1073741824"}},
		{"bad window", "api=1/soon", nil, []string{"window"}},
		{"sub-second window", "api=1/500ms", nil, []string{"window"}},
		{"window too long", "api=1/9000h", nil, []string{"window"}},
		{"bad burst", "api=1/1s burst=x", nil, []string{"burst"}},
		{"zero burst", "api=1/1s burst=0", nil, []string{"burst"}},
		{"burst twice", "api=1/1s burst=1 burst=2", nil, []string{"burst is given twice"}},
		{"unknown option", "api=1/1s rate=2", nil, []string{"unknown option"}},
		{"unknown scope", "api=1/1s scopes=ip,host", nil, []string{"unknown scope"}},
		{"global scope", "api=1/1s scopes=global", nil, []string{"global", "overrides"}},
		{"scope twice", "api=1/1s scopes=ip,ip", nil, []string{"scope ip is given twice"}},
		{"empty scopes", "api=1/1s scopes=", nil, []string{"unknown scope"}},
		{"too many", many, nil, []string{"entry 65 ", "at most 64"}},
		{"refill shortfall", "ok=1/1s; fast=600001/1s", nil, []string{"RATE_LIMITS: entry 2 (fast)", "cannot be refilled exactly"}},
		{"premium refill shortfall", "fast=250000/1s", map[string]string{"RATE_LIMIT_PREMIUM_MULTIPLIER": "3"}, []string{"RATE_LIMITS: entry 1 (fast)", "RATE_LIMIT_PREMIUM_MULTIPLIER 3", "premium"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := map[string]string{"RATE_LIMITS": tt.value}
			for k, v := range tt.env {
				e[k] = v
			}
			_, err := Load(env(e), nil)
			if err == nil {
				t.Fatalf("RATE_LIMITS=%q accepted", tt.value)
			}
			msg := err.Error()
			if _, ok := err.(*Error); !ok || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "RATE_LIMITS: ") {
				t.Errorf("error %T %q: want one line of a *config.Error starting RATE_LIMITS:", err, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestRateLimitsErrorNamesTheFlag: a bad entry given by --rate-limits is
// reported under the flag's name, by parse and check alike, and the error
// quotes the entry at fault, never the whole value.
func TestRateLimitsErrorNamesTheFlag(t *testing.T) {
	long := ""
	for i := range 40 {
		long += "l" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "=1/1s; "
	}
	for _, c := range []struct{ name, value, want string }{
		{"parse", long + "run=5/1s", `--rate-limits: entry 41 "run=5/1s": `},
		{"check", long + "fast=600001/1s", "--rate-limits: entry 41 (fast)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(env(nil), map[string]string{"rate-limits": c.value})
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, c.want) || strings.Contains(msg, "laa=1/1s") || strings.Contains(msg, "RATE_LIMITS") {
				t.Errorf("error %q: want it to start %q, without the whole value or RATE_LIMITS", msg, c.want)
			}
		})
	}
}
