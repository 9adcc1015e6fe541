package config

import (
	"strings"
	"testing"
)

// TestWebhookMessagesQuoteNoCredentials: a JOB_WEBHOOKS refused for its
// user info, or for anything else, never quotes a password or a query.
func TestWebhookMessagesQuoteNoCredentials(t *testing.T) {
	const pw = "Pa55w0rdX"
	for _, v := range []string{
		"a=https://bob:" + pw + "@h/x",
		"a=https://bob:" + pw + "@h:bad/x",
		"a=https://:" + pw + "@[::1/x",
		"a=http://h/x?key=" + pw + "#frag",
		"a=ftp://h/x?key=" + pw,
		"https://bob:" + pw + "@h/x", // the TYPE= forgotten
		"echo=https://h/x?key=" + pw,
		// rvhook38 H1: a URL with a = before the TYPE= forgotten: the
		// part before the first = is no type name, and must not be quoted.
		"https://bob:" + pw + "@hooks.example.com/run?token=abc",
		"https://h/T0/B0/" + pw + "?x=1",
		"a=http://h/a,https://h/" + pw + "?k=v",
		"a=http://h/a,a=http://h/" + pw + "?k=v",
		"a=http://h:99999/" + pw + "?k=v",
	} {
		_, err := Load(env(map[string]string{"JOB_WEBHOOKS": v}), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "JOB_WEBHOOKS: ") || strings.Contains(err.Error(), pw) ||
			strings.Contains(err.Error(), "token") || strings.Contains(err.Error(), "k=v") {
			t.Errorf("JOB_WEBHOOKS=%q: %v; want refused without the credential", v, err)
		}
	}
	_, err := Load(env(map[string]string{"JOB_WEBHOOK_SECRET": pw}), nil)
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("short secret: %v; want refused without the value", err)
	}
}

// TestWebhooksFlagCarriesSecret: --job-webhooks given on the command line
// is warned of as the token flags are (rvhook38 L6): a URL may hold a key.
func TestWebhooksFlagCarriesSecret(t *testing.T) {
	for _, s := range Settings() {
		if s.Env != "JOB_WEBHOOKS" {
			continue
		}
		if !s.CarriesSecret("a=https://h/x?key=k") || s.CarriesSecret("") {
			t.Errorf("JOB_WEBHOOKS CarriesSecret: want true for pairs, false for none")
		}
		return
	}
	t.Fatal("no JOB_WEBHOOKS setting")
}
