package webhook_test

import (
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue/webhook"
)

// TestHandlerTakesTheConfigRules: Handler refuses what JOB_WEBHOOKS
// refuses, by the same list (URLProblem): a port outside 1-65535 and a
// fragment too, which it used to accept.
func TestHandlerTakesTheConfigRules(t *testing.T) {
	c := webhook.New(webhook.Options{})
	for _, u := range []string{"http://h:0/x", "http://h:70000/x", "http://h/x#frag", "http://h/x#"} {
		if _, err := c.Handler(u); err == nil {
			t.Errorf("Handler(%q) accepted", u)
		}
	}
	if _, err := c.Handler("https://h:8443/x?k=v"); err != nil {
		t.Errorf("Handler of a good URL: %v", err)
	}
}
