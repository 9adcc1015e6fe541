package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
)

// MinWebhookSecret is the shortest JOB_WEBHOOK_SECRET taken, in bytes.
const MinWebhookSecret = 16

// parseWebhooks reads JOB_WEBHOOKS: comma-separated TYPE=URL pairs; an
// empty pair (a trailing comma, an empty value) is ignored, as a blank
// setting means unset. The error says what is wrong with the first bad
// pair: it names the pair by its number and quotes no part of it (nor
// does Load quote a value that may hold a secret): a URL with user info
// holds a password, a query may hold a key, and when TYPE= is forgotten
// the part before the URL's first = is taken for the type.
func parseWebhooks(v string) ([]webhook.Target, error) {
	var targets []webhook.Target
	seen := map[string]bool{}
	for i, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		typ, raw, ok := strings.Cut(pair, "=")
		typ, raw = strings.TrimSpace(typ), strings.TrimSpace(raw)
		n := i + 1
		switch {
		case !ok || raw == "":
			return nil, fmt.Errorf("pair %d is not TYPE=URL (e.g. email.send=http://127.0.0.1:9000/jobs/email; a comma inside a URL is written %%2C)", n)
		case queue.CheckType(typ) != nil:
			return nil, fmt.Errorf("pair %d: the type before = is not a job type name (want 1-64 letters, digits, and _ . : -; TYPE=URL)", n)
		case queue.Builtin(typ):
			return nil, fmt.Errorf("pair %d: its type is a built-in job type; a webhook cannot replace it (choose another name)", n)
		case seen[typ]:
			return nil, fmt.Errorf("pair %d: its type is given twice", n)
		}
		seen[typ] = true
		if why := webhookURLProblem(raw); why != "" {
			return nil, fmt.Errorf("pair %d: the URL %s", n, why)
		}
		targets = append(targets, webhook.Target{Type: typ, URL: raw})
	}
	return targets, nil
}

// webhookURLProblem says what is wrong with a webhook's URL, "" when
// webhook.URLProblem, the rules' one list, finds nothing.
func webhookURLProblem(raw string) string {
	// User info is looked for in the text first: a parser's error could
	// quote a piece of the password.
	if _, rest, ok := cutScheme(raw); ok {
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if strings.Contains(authority, "@") {
			return webhook.UserInfoProblem
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a valid URL (" + parseProblem(err) + ")"
	}
	return webhook.URLProblem(u, raw)
}

// webhookTypes is what the log shows of JOB_WEBHOOKS: the types only (a
// URL's query may hold a key), "none" when there is none.
func webhookTypes(targets []webhook.Target) string {
	if len(targets) == 0 {
		return "none"
	}
	types := make([]string, len(targets))
	for i, t := range targets {
		types[i] = t.Type
	}
	return strings.Join(types, ",")
}
