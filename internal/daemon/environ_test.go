package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
)

// TestNoRangeTrustedProxiesWarned: a TRUSTED_PROXIES given that lists no
// range ("," or an empty flag) trusts no peer, as none does, and is warned
// about, naming the setting as it was given; none itself, an unset or empty
// variable (the loopback default) and a list of ranges are not. It trusted
// no peer without a word.
func TestNoRangeTrustedProxiesWarned(t *testing.T) {
	const warning = `msg="TRUSTED_PROXIES lists no range: no peer is trusted, loopback included (write none if that is meant)"`
	for _, tt := range []struct {
		name    string
		env     string
		flags   map[string]string
		setting string // the warning's setting; "" for no warning
	}{
		{name: "unset"},
		{name: "empty variable", env: ""},
		{name: "none", env: "none"},
		{name: "NONE by flag", flags: map[string]string{"trusted-proxies": "NONE"}},
		{name: "a range", env: "10.0.0.0/8,"},
		{name: "a comma", env: ",", setting: "TRUSTED_PROXIES"},
		{name: "spaces and commas", env: " , ,", setting: "TRUSTED_PROXIES"},
		{name: "empty flag", flags: map[string]string{"trusted-proxies": ""}, setting: "--trusted-proxies"},
		{name: "a comma by flag over a range", env: "10.0.0.0/8", flags: map[string]string{"trusted-proxies": ","}, setting: "--trusted-proxies"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(func(k string) string {
				if k == "TRUSTED_PROXIES" {
					return tt.env
				}
				return ""
			}, tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			warnRiskySettings(slog.New(slog.NewTextHandler(&b, nil)), cfg)
			got := b.String()
			if tt.setting == "" {
				if strings.Contains(got, "lists no range") {
					t.Errorf("warned:\n%s", got)
				}
				return
			}
			if want := warning + " setting=" + tt.setting + "\n"; strings.Count(got, "lists no range") != 1 || !strings.Contains(got, "level=WARN "+want) {
				t.Errorf("log:\n%s\nwant one WARN line ending %s", got, want)
			}
			if len(cfg.TrustedProxies) != 0 {
				t.Errorf("TrustedProxies %v; a list without a range trusts no peer", cfg.TrustedProxies)
			}
		})
	}
}

// TestRiskySettingsWarnedAsGiven: the warnings name the setting as it was
// given, as a bad setting's message does: by flag here.
func TestRiskySettingsWarnedAsGiven(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" }, map[string]string{"operator-token": "op-Sekr3t", "trusted-proxies": "::/0"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	warnRiskySettings(slog.New(slog.NewTextHandler(&b, nil)), cfg)
	for _, want := range []string{
		`msg="a token shorter than 16 characters is easy to guess" setting=--operator-token length=9`,
		`msg="TRUSTED_PROXIES trusts every address: any client can set the identity and tier headers" range=::/0 setting=--trusted-proxies`,
	} {
		if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "Sekr3t") {
			t.Errorf("log:\n%s\nwant %s, and no token", b.String(), want)
		}
	}
}

// TestTrustedProxiesCoveringAllWarned (sec28 LOW 10): ranges that together
// trust every IPv4 or every IPv6 address get the warning 0.0.0.0/0 gets,
// naming them; ranges with a gap, and the default, get none.
func TestTrustedProxiesCoveringAllWarned(t *testing.T) {
	const warning = `level=WARN msg="TRUSTED_PROXIES trusts every address: any client can set the identity and tier headers"`
	for _, tt := range []struct {
		value string
		want  []string // the warnings' range=… setting=…, in order
	}{
		{"", nil},
		{"0.0.0.0/1,128.0.0.0/1", []string{`range=0.0.0.0/1,128.0.0.0/1 setting=TRUSTED_PROXIES`}},
		{"::ffff:0.0.0.0/97,::ffff:128.0.0.0/97", []string{`range=0.0.0.0/1,128.0.0.0/1 setting=TRUSTED_PROXIES`}},
		{"10.0.0.0/8,::/1,8000::/1,0.0.0.0/0", []string{`range=10.0.0.0/8,0.0.0.0/0 setting=TRUSTED_PROXIES`, `range=::/1,8000::/1 setting=TRUSTED_PROXIES`}},
		{"0.0.0.0/1,128.0.0.0/2,::/1", nil},
	} {
		cfg, err := config.Load(func(k string) string {
			if k == "TRUSTED_PROXIES" {
				return tt.value
			}
			return ""
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		warnRiskySettings(slog.New(slog.NewTextHandler(&b, nil)), cfg)
		var got []string
		for _, line := range strings.Split(b.String(), "\n") {
			if _, rest, ok := strings.Cut(line, warning+" "); ok {
				got = append(got, rest)
			}
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("TRUSTED_PROXIES=%s: warnings %q, want %q\n%s", tt.value, got, tt.want, b.String())
		}
	}
}
