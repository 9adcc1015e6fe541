package cli

import (
	"testing"
	"time"
)

func fixtureLimits() LimitsView {
	expires := goldenNow.Add(59*time.Minute + 30*time.Second)
	created := goldenNow.Add(-30 * time.Second)
	return LimitsView{
		Enabled: true,
		Limits: []LimitView{
			{Name: "run", Scopes: []string{"ip", "user"}, Burst: 10, Rate: 30, WindowSeconds: 60, PremiumBurst: 30, PremiumRate: 90},
			{Name: "rl-test", Scopes: []string{"ip"}, Burst: 3, Rate: 3, WindowSeconds: 60, PremiumBurst: 9, PremiumRate: 9},
			{Name: "secure-ping", Scopes: []string{"user_tenant"}, Burst: 30, Rate: 30, WindowSeconds: 60, PremiumBurst: 90, PremiumRate: 90},
		},
		Overrides: []OverrideView{
			{Target: "run:ip", Capacity: 100, WindowSeconds: 60, Mode: "enforce", ExpiresAt: &expires, Origin: "cli", CreatedAt: &created},
			{Target: "run:ip:203.0.113.7", Capacity: 1, WindowSeconds: 3600, Mode: "shadow", Origin: "api", CreatedAt: &created},
		},
	}
}

func TestLimitsOutputGolden(t *testing.T) {
	v := fixtureLimits()
	tests := []struct {
		name  string
		print func(*Printer) error
	}{
		{"limits_get", func(p *Printer) error { return printLimits(p, v) }},
		{"limits_get_no_overrides", func(p *Printer) error {
			return printLimits(p, LimitsView{Limits: v.Limits[:1], Overrides: []OverrideView{}})
		}},
		{"limits_set", func(p *Printer) error { return printOverride(p, v.Overrides[0]) }},
		{"limits_unset", func(p *Printer) error {
			return printDone(p, map[string]any{"target": "run:ip", "removed": true}, "Removed the override of %s.", "run:ip")
		}},
	}
	for _, tt := range tests {
		goldenModes(t, tt.name, tt.print)
	}
}
