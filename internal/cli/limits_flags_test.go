package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func TestLimitsSetFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *LimitsSetOptions
		wantReq  OverrideRequest
		wantCode int
	}{
		{"capacity and window", []string{"run:ip", "--capacity", "100", "--window", "1m"},
			&LimitsSetOptions{Target: "run:ip", Capacity: 100, Window: time.Minute},
			OverrideRequest{Target: "run:ip", Capacity: 100, WindowSeconds: 60, Origin: "cli"}, ExitOK},
		{"ttl and shadow", []string{"run", "--capacity", "5", "--window", "10s", "--ttl", "1h", "--shadow"},
			&LimitsSetOptions{Target: "run", Capacity: 5, Window: 10 * time.Second, TTL: time.Hour, Shadow: true},
			OverrideRequest{Target: "run", Capacity: 5, WindowSeconds: 10, TTLSeconds: 3600, Mode: "shadow", Origin: "cli"}, ExitOK},
		{"no capacity", []string{"run", "--window", "1m"}, nil, OverrideRequest{}, ExitUsage},
		{"no window", []string{"run", "--capacity", "5"}, nil, OverrideRequest{}, ExitUsage},
		{"negative capacity", []string{"run", "--capacity", "-1", "--window", "1m"}, nil, OverrideRequest{}, ExitUsage},
		{"zero capacity", []string{"run", "--capacity", "0", "--window", "1m"}, nil, OverrideRequest{}, ExitUsage},
		{"window under a second", []string{"run", "--capacity", "5", "--window", "500ms"}, nil, OverrideRequest{}, ExitUsage},
		{"fractional window", []string{"run", "--capacity", "5", "--window", "1500ms"}, nil, OverrideRequest{}, ExitUsage},
		{"negative ttl", []string{"run", "--capacity", "5", "--window", "1m", "--ttl", "-1s"}, nil, OverrideRequest{}, ExitUsage},
		// The API's ttl_seconds runs from 1: a TTL given as 0 is not "never".
		{"zero ttl", []string{"run", "--capacity", "5", "--window", "1m", "--ttl", "0s"}, nil, OverrideRequest{}, ExitUsage},
		{"ttl under a second", []string{"run", "--capacity", "5", "--window", "1m", "--ttl", "500ms"}, nil, OverrideRequest{}, ExitUsage},
		{"ttl of a second", []string{"run", "--capacity", "5", "--window", "1m", "--ttl", "1s"},
			&LimitsSetOptions{Target: "run", Capacity: 5, Window: time.Minute, TTL: time.Second},
			OverrideRequest{Target: "run", Capacity: 5, WindowSeconds: 60, TTLSeconds: 1, Origin: "cli"}, ExitOK},
		{"capacity past the bound", []string{"run", "--capacity", "9223372036854775807", "--window", "1m"}, nil, OverrideRequest{}, ExitUsage},
		{"window past a year", []string{"run", "--capacity", "5", "--window", "8761h"}, nil, OverrideRequest{}, ExitUsage},
		{"ttl past ten years", []string{"run", "--capacity", "5", "--window", "1m", "--ttl", "87601h"}, nil, OverrideRequest{}, ExitUsage},
		{"no target", []string{"--capacity", "5", "--window", "1m"}, nil, OverrideRequest{}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkParse(t, newLimitsSetCmd, tt.args, tt.want, tt.wantCode)
			if got != nil {
				if diff := cmp.Diff(tt.wantReq, got.request()); diff != "" {
					t.Errorf("request (-want +got)\n%s", diff)
				}
			}
		})
	}
}

// TestLimitsSetRejects: a flag out of the API's bounds is refused in one
// line naming the flag, before any daemon is asked.
func TestLimitsSetRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a ttl of zero", []string{"--ttl", "0s"}, "--ttl must be a whole number of seconds from 1s to 87600h0m0s, got 0s (leave --ttl out for an override that never expires)"},
		{"a ttl under a second", []string{"--ttl", "999ms"}, "--ttl must be a whole number of seconds from 1s to 87600h0m0s, got 999ms (leave --ttl out for an override that never expires)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"limits", "set", "run", "--capacity", "5", "--window", "1m"}, tt.args...)
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": "http://127.0.0.1:9"}, args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if diff := cmp.Diff("refrakt: "+tt.want+"\n", stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLimitsTargetCommandFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     string
		wantCode int
	}{
		{"one", []string{"run:ip:203.0.113.7"}, "run:ip:203.0.113.7", ExitOK},
		{"none", nil, "", ExitUsage},
		{"two", []string{"run", "assistant"}, "", ExitUsage},
	}
	for _, tt := range tests {
		t.Run("unset/"+tt.name, func(t *testing.T) {
			got, code := parseCmd(t, newLimitsUnsetCmd, tt.args)
			checkID(t, code, tt.wantCode, tt.want, func() string { return got.Target })
		})
		t.Run("reset/"+tt.name, func(t *testing.T) {
			got, code := parseCmd(t, newLimitsResetCmd, tt.args)
			checkID(t, code, tt.wantCode, tt.want, func() string { return got.Key })
		})
	}
	getTests := []struct {
		name     string
		args     []string
		want     *LimitsGetOptions
		wantCode int
	}{
		{"all", nil, &LimitsGetOptions{}, ExitOK},
		{"a target", []string{"run:ip"}, &LimitsGetOptions{Target: "run:ip"}, ExitOK},
		{"two targets", []string{"run", "rl-test"}, nil, ExitUsage},
	}
	for _, tt := range getTests {
		t.Run("get/"+tt.name, func(t *testing.T) {
			checkParse(t, newLimitsGetCmd, tt.args, tt.want, tt.wantCode)
		})
	}
}

func TestFilterLimits(t *testing.T) {
	v := LimitsView{
		Limits: []LimitView{{Name: "run", Scopes: []string{"ip", "user"}}, {Name: "rl-test", Scopes: []string{"ip"}}},
		Overrides: []OverrideView{
			{Target: "rl-test"}, {Target: "run"}, {Target: "run:ip"}, {Target: "run:ip:203.0.113.7"}, {Target: "run:user"}, {Target: "run:ip:198.51.100.1"},
		},
	}
	tests := []struct {
		name     string
		target   string
		want     []string
		wantCode int
	}{
		{"limit", "run", []string{"run", "run:ip", "run:ip:203.0.113.7", "run:user", "run:ip:198.51.100.1"}, ExitOK},
		{"scope", "run:ip", []string{"run", "run:ip", "run:ip:203.0.113.7", "run:ip:198.51.100.1"}, ExitOK},
		{"key", "run:ip:203.0.113.7", []string{"run", "run:ip", "run:ip:203.0.113.7"}, ExitOK},
		{"unknown limit", "nope", nil, ExitUsage},
		{"scope the limit lacks", "rl-test:user", nil, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := filterLimits(v, tt.target)
			if err != nil {
				if code := exitCode(err); code != tt.wantCode {
					t.Fatalf("exit code = %d (%v), want %d", code, err, tt.wantCode)
				}
				return
			}
			var targets []string
			for _, o := range got.Overrides {
				targets = append(targets, o.Target)
			}
			if diff := cmp.Diff(tt.want, targets); diff != "" {
				t.Errorf("overrides (-want +got)\n%s", diff)
			}
		})
	}
}
