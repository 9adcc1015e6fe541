package config

import (
	"net/url"
	"strings"
)

// redacted replaces a password in messages, as url.URL.Redacted does.
const redacted = "xxxxx"

// RedactURL returns raw with the password of its user info (scheme://user:
// password@host…) replaced by "xxxxx", for logs and messages; a URL that
// does not parse (the very one a message is about) is redacted all the same.
func RedactURL(raw string) string {
	if user, pw, ok := password(raw); ok {
		return strings.Replace(raw, user+":"+pw+"@", user+":"+redacted+"@", 1)
	}
	return raw
}

// RedactIn returns msg with the password of rawURL, as written and decoded,
// replaced by "xxxxx": for errors of parsers and clients that quote the URL
// they were given.
func RedactIn(msg, rawURL string) string {
	_, pw, ok := password(rawURL)
	if !ok {
		return msg
	}
	msg = strings.ReplaceAll(msg, pw, redacted)
	if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
		msg = strings.ReplaceAll(msg, dec, redacted)
	}
	return msg
}

// password finds the password of raw's user info without parsing the rest:
// what follows the first ":" of the text between "://" and the last "@"
// before the path.
func password(raw string) (user, pw string, ok bool) {
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		return "", "", false
	}
	// The user info ends at the last "@" of the authority, which ends at the
	// first "/" after it (a password may hold a raw "/" or "?" in a URL
	// written by hand, so the "@" is looked for first).
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false
	}
	user, pw, found = strings.Cut(rest[:at], ":")
	if !found || pw == "" {
		return "", "", false
	}
	return user, pw, true
}
