package config

import (
	"errors"
	"strings"
	"testing"
)

// TestUnpresentableTokensRefused (sec28 NIT 13): a token that no request
// could present (invalid UTF-8; white space around it, which the daemon
// trims from a presented token), or that holds a control character, is a
// configuration error naming the setting as given, never the
// value; a token of any other text, spaces inside or non-ASCII letters, is
// taken.
func TestUnpresentableTokensRefused(t *testing.T) {
	const secret = "Sekr3t-0123456789"
	for _, tt := range []struct {
		name, env, value, flag, want string
	}{
		{"control character", "REFRAKT_DEVELOPER_TOKEN", secret + "\x01x", "", "REFRAKT_DEVELOPER_TOKEN: holds a control character"},
		{"tab inside", "REFRAKT_OPERATOR_TOKEN", secret + "\tx", "", "REFRAKT_OPERATOR_TOKEN: holds a control character"},
		{"NUL", "PROMETHEUS_BEARER_TOKEN", secret + "\x00", "", "PROMETHEUS_BEARER_TOKEN: holds a control character"},
		{"DEL", "REFRAKT_DEVELOPER_TOKEN", secret + "\x7fx", "", "holds a control character"},
		{"C1 control", "REFRAKT_DEVELOPER_TOKEN", secret + "\u009bx", "", "holds a control character"},
		{"newline inside", "REFRAKT_DEVELOPER_TOKEN", secret + "\nx", "", "holds a control character"},
		{"invalid UTF-8", "REFRAKT_DEVELOPER_TOKEN", secret + "\xff\xfe", "", "REFRAKT_DEVELOPER_TOKEN: is not valid UTF-8"},
		{"by flag", "", "", "operator-token", "--operator-token: holds a control character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{tt.env: tt.value}
			var flags map[string]string
			if tt.flag != "" {
				flags = map[string]string{tt.flag: secret + "\x02x"}
			}
			_, err := Load(env(vars), flags)
			var cerr *Error
			if !errors.As(err, &cerr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a config error containing %q", err, tt.want)
			}
			// code28 NIT 6: a header can carry a tab, DEL or a C1 control
			// (obs-text), so a control character is refused without a
			// claim that it cannot be presented.
			control := strings.Contains(tt.want, "control character")
			if claim := strings.Contains(err.Error(), "no request could ever present it"); claim == control {
				t.Errorf("err %v: says no request could present it: %v, want %v", err, claim, !control)
			}
			if strings.Contains(err.Error(), "cannot carry") {
				t.Errorf("err %v: says a header cannot carry it", err)
			}
			if strings.Contains(err.Error(), "Sekr3t") || strings.Contains(err.Error(), "0123456789") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	// White space around a token is not presentable either; Load trims
	// it from every setting, so only a Config built otherwise holds it.
	for _, tok := range []string{" " + secret, secret + " ", secret + "\u00a0", "\u2003" + secret} {
		c := Default()
		c.DeveloperToken = tok
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "REFRAKT_DEVELOPER_TOKEN: begins or ends with white space") || strings.Contains(err.Error(), "Sekr3t") {
			t.Errorf("token %q: %v, want refused for its white space, the value not shown", tok, err)
		}
	}
	for _, tok := range []string{secret, "two words " + secret, "ünïcödé-" + secret, `!#$%&'*+-.^_|~"(),/:;<=>?@[\]{}` + secret} {
		if _, err := Load(env(map[string]string{"REFRAKT_DEVELOPER_TOKEN": tok}), nil); err != nil {
			t.Errorf("token %q refused: %v", tok, err)
		}
	}
}
