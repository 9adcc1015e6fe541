package cli

import (
	"strings"
	"testing"
)

// TestTokenHint: after a 401 the CLI says where the token came from; a
// token given by flag or variable is not answered with "give a token".
func TestTokenHint(t *testing.T) {
	tests := []struct {
		c         APIClient
		want, not string
	}{
		{APIClient{}, "give a token with --token or REFRAKT_TOKEN", "rejected"},
		{APIClient{Token: "x"}, "the daemon rejected the token given with --token or REFRAKT_TOKEN", "give a token"},
		{APIClient{Token: "x", TokenFile: "/s/refrakt/token"}, "read from the token file /s/refrakt/token", "given with"},
	}
	for _, tt := range tests {
		got := tt.c.tokenHint()
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("%+v: hint %q, want %q and not %q", tt.c, got, tt.want, tt.not)
		}
	}
}
