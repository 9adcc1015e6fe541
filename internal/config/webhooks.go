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

// parseWebhooks reads JOB_WEBHOOKS: comma-separated TYPE=URL pairs. problem
// says what is wrong with the first bad pair, "" when all are good. It
// never quotes a URL: one with user info holds a password, and a query may
// hold a key.
func parseWebhooks(v string) (targets []webhook.Target, problem string) {
	seen := map[string]bool{}
	for i, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		typ, raw, ok := strings.Cut(pair, "=")
		typ, raw = strings.TrimSpace(typ), strings.TrimSpace(raw)
		switch {
		case pair == "":
			return nil, fmt.Sprintf("pair %d is empty (two commas?); want TYPE=URL,TYPE=URL", i+1)
		case !ok || raw == "":
			return nil, fmt.Sprintf("pair %d is not TYPE=URL (e.g. email.send=http://127.0.0.1:9000/jobs/email)", i+1)
		}
		if err := queue.CheckType(typ); err != nil {
			return nil, err.Error()
		}
		if queue.Builtin(typ) {
			return nil, fmt.Sprintf("%s is a built-in job type; a webhook cannot replace it (choose another name)", typ)
		}
		if seen[typ] {
			return nil, fmt.Sprintf("%s is given twice", typ)
		}
		seen[typ] = true
		if why := webhookURLProblem(raw); why != "" {
			return nil, fmt.Sprintf("the URL of %s %s", typ, why)
		}
		targets = append(targets, webhook.Target{Type: typ, URL: raw})
	}
	return targets, ""
}

// webhookURLProblem says what is wrong with a webhook's URL, "" when it is
// an absolute http or https URL with a host, no user info and no fragment.
func webhookURLProblem(raw string) string {
	// User info is looked for in the text first: a parser's error could
	// quote a piece of the password.
	if _, rest, ok := cutScheme(raw); ok {
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if strings.Contains(authority, "@") {
			return "holds user info (user:password@): credentials in a URL end up in logs; remove them and sign deliveries with JOB_WEBHOOK_SECRET instead"
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a valid URL (" + parseProblem(err) + ")"
	case u.User != nil:
		return "holds user info (user:password@): credentials in a URL end up in logs; remove them and sign deliveries with JOB_WEBHOOK_SECRET instead"
	case u.Scheme == "":
		return "is not absolute: want http://host/… or https://host/…"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("has scheme %q: want http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "has no host"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "has a fragment (#…), which is never sent: remove it"
	}
	return ""
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
