package webhook

import (
	"net/url"
	"strconv"
	"strings"
)

// UserInfoProblem is what is wrong with a webhook URL that holds user
// info, after "the URL".
const UserInfoProblem = "holds user info (user:password@): credentials in a URL end up in logs; remove them and sign deliveries with JOB_WEBHOOK_SECRET instead"

// URLProblem says what is wrong with a webhook's URL, u as parsed from raw,
// after "the URL"; "" when it is an absolute http or https URL with a host,
// a port from 1 to 65535 if any, no user info and no fragment. It never
// quotes the URL: user info holds a password, a query may hold a key. The
// one list of the rules: JOB_WEBHOOKS's check (config) and Handler use it.
func URLProblem(u *url.URL, raw string) string {
	switch {
	case u.User != nil:
		return UserInfoProblem
	case u.Scheme == "":
		return "is not absolute: want http://host/… or https://host/…"
	case u.Scheme != "http" && u.Scheme != "https":
		return "has a scheme other than http or https"
	case u.Host == "" || u.Hostname() == "":
		return "has no host"
	case !portOK(u.Port()):
		return "has a port outside 1-65535"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "has a fragment (#…), which is never sent: remove it"
	}
	return ""
}

// portOK reports whether port, a URL's port ("" when none), is absent or
// a number from 1 to 65535: another fails every delivery.
func portOK(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}
