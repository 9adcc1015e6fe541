package config

import (
	"errors"
	"net/url"
	"strings"
)

// redacted replaces a password in messages, as url.URL.Redacted does.
const redacted = "xxxxx"

// RedactURL returns raw with the password of its user info (scheme://user:
// password@host…) replaced by "xxxxx", for logs and messages. A URL that
// parses is redacted as net/url reads it; one that does not (the very one a
// message is about) by its text: the password is what follows the first ":"
// of the user info, up to the last "@" before the path; without "://",
// everything up to the last "@" is hidden.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	if user, pw, ok := password(raw); ok {
		return strings.Replace(raw, user+":"+pw+"@", user+":"+redacted+"@", 1)
	}
	if !strings.Contains(raw, "://") {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return redacted + raw[at:]
		}
	}
	return raw
}

// RedactIn returns msg with the password of rawURL, as written and decoded,
// replaced by "xxxxx": for errors of parsers and clients that quote the URL
// they were given.
func RedactIn(msg, rawURL string) string {
	for _, pw := range passwords(rawURL) {
		msg = strings.ReplaceAll(msg, pw, redacted)
		if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
			msg = strings.ReplaceAll(msg, dec, redacted)
		}
	}
	return msg
}

// CheckURLPassword refuses a URL whose password net/url would not read as
// written: a raw "/", "?" or "#" in it ends the user info early, the rest of
// the password lands in the path or the query, and go-redis's errors quote
// it there, out of RedactIn's reach. The message quotes nothing of the URL.
func CheckURLPassword(raw string) error {
	_, pw, ok := password(raw)
	if !ok {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil // the parser's own error, redacted by RedactIn
	}
	got, _ := u.User.Password()
	if want, err := url.PathUnescape(pw); u.User == nil || err != nil || got != want {
		return errors.New("the password in the URL holds a character that ends it early (a raw / ? # or @); percent-encode it, e.g. / as %2F")
	}
	return nil
}

// passwords are the spellings of rawURL's password to hide: as net/url
// reads it, and as the text gives it.
func passwords(rawURL string) []string {
	var out []string
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		}
	}
	if _, pw, ok := password(rawURL); ok {
		out = append(out, pw)
	}
	return out
}

// password finds the password of raw's user info without parsing the rest:
// what follows the first ":" of the text between "://" and the last "@"
// before the path.
func password(raw string) (user, pw string, ok bool) {
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		return "", "", false
	}
	// The user info ends at the last "@" of the authority; a password may
	// hold a raw "/" or "?" in a URL written by hand, so the "@" is looked
	// for first (in the whole rest: over-hiding is the safe mistake).
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
