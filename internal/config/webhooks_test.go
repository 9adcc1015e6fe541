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
	} {
		_, err := Load(env(map[string]string{"JOB_WEBHOOKS": v}), nil)
		if err == nil || !strings.HasPrefix(err.Error(), "JOB_WEBHOOKS: ") || strings.Contains(err.Error(), pw) {
			t.Errorf("JOB_WEBHOOKS=%q: %v; want refused without the credential", v, err)
		}
	}
	_, err := Load(env(map[string]string{"JOB_WEBHOOK_SECRET": pw}), nil)
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("short secret: %v; want refused without the value", err)
	}
}
