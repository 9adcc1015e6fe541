package config

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// redacted replaces a password in messages, as url.URL.Redacted does.
const redacted = "xxxxx"

// percentEncodeAdvice ends every message about a URL whose user info may be
// mistyped: what to do, without quoting any of it.
const percentEncodeAdvice = "percent-encode any / ? # @ % or space in the password (/ as %2F, ? as %3F, # as %23, @ as %40, % as %25, space as %20)"

// RedactURL returns raw with the password of its user info (scheme://user:
// password@host…) replaced by "xxxxx", for logs and messages. The password
// is read from the text, never by a parser (which a raw "/", "?" or "#" in
// it would mislead): it is what follows the first ":" of the text between
// "://" and the last "@" of the URL, wherever that "@" stands. So an "@" in
// the path or the query hides what precedes it, host included: over-hiding
// is the safe mistake, and such a URL is refused anyway (CheckURLPassword).
// Without "://", everything up to the last "@" is hidden.
//
// A query parameter named like a password (?password=…, as some clients
// take it; go-redis refuses it, quoting the URL) has its value hidden too.
func RedactURL(raw string) string {
	return redactQuery(redactUserInfo(raw))
}

// redactUserInfo hides the password of raw's user info (RedactURL).
func redactUserInfo(raw string) string {
	start, at, ok := passwordSpan(raw)
	if !ok {
		return raw
	}
	return raw[:start] + redacted + raw[at:]
}

// RedactIn returns msg with the password of rawURL, as written and decoded,
// replaced by "xxxxx": for errors of clients that may quote the URL they
// were given. It hides whole spellings only; a message that may quote a part
// of a password (a parser's error about a URL it could not split) must not be
// shown at all (CheckURLPassword is there for that).
func RedactIn(msg, rawURL string) string {
	for _, pw := range passwords(rawURL) {
		msg = strings.ReplaceAll(msg, pw, redacted)
		if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
			msg = strings.ReplaceAll(msg, dec, redacted)
		}
	}
	return msg
}

// CheckURLPassword refuses, with a message that quotes nothing of it, a URL
// with user info (an "@" after "://") that a parser might quote a part of:
//
//   - one net/url cannot parse: its errors quote the text around the fault
//     (`invalid port ":Tr0ub" after host`), which may be a piece of the
//     password;
//   - one whose password net/url would not read as written: a raw "/", "?"
//     or "#" ends the user info early, or an "@" follows it, and the rest of
//     the password lands in the host, the path or the query, which go-redis's
//     errors and our own messages quote.
//
// A URL without "@" has no user info to protect; it passes, and its parse
// errors may be quoted.
func CheckURLPassword(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// Whether or not it has an "@": "redis://:secret", its "@host"
		// forgotten, is quoted as an invalid port ":secret".
		return errors.New("is not a valid URL (" + parseProblem(err) + "); " + percentEncodeAdvice)
	}
	if _, _, found := cutScheme(raw); !found {
		return nil
	}
	pw, ok := password(raw)
	if !ok {
		return nil // no user info, or a user name alone: nothing secret
	}
	got, hasPassword := "", false
	if u.User != nil {
		got, hasPassword = u.User.Password()
	}
	if want, err := url.PathUnescape(pw); !hasPassword || err != nil || got != want {
		return errors.New("the password in the URL holds a character that ends it early (a raw / ? # or @), or an @ follows it in the path or the query; " + percentEncodeAdvice)
	}
	return nil
}

// parseProblem names what net/url found wrong in a URL without quoting the
// text its error quotes.
func parseProblem(err error) string {
	var esc url.EscapeError
	var host url.InvalidHostError
	msg := err.Error()
	switch {
	case errors.As(err, &esc):
		return "a % is not followed by two hexadecimal digits"
	case errors.As(err, &host):
		return "its host holds a character not allowed there"
	case strings.Contains(msg, "invalid port"):
		return "what stands as its port is not a number"
	case strings.Contains(msg, "invalid userinfo"):
		return "its user info holds a character not allowed there"
	case strings.Contains(msg, "missing ']' in host"):
		return "an IPv6 host lacks its closing ]"
	case strings.Contains(msg, "control character"):
		return "it holds a control character"
	case strings.Contains(msg, "missing protocol scheme"):
		return "it has no scheme"
	default:
		return "it does not parse"
	}
}

// secretParams are the query parameter names whose values RedactURL and
// RedactIn hide.
var secretParams = []string{"password", "passwd", "pass", "pwd"}

// queryPasswords returns the values of raw's query parameters named like a
// password (secretParams), as written.
func queryPasswords(raw string) []string {
	_, query, ok := strings.Cut(raw, "?")
	if !ok {
		return nil
	}
	query, _, _ = strings.Cut(query, "#")
	var out []string
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if v != "" && slices.ContainsFunc(secretParams, func(n string) bool { return strings.EqualFold(n, k) }) {
			out = append(out, v)
		}
	}
	return out
}

// redactQuery hides the values of raw's query parameters named like a
// password.
func redactQuery(raw string) string {
	for _, v := range queryPasswords(raw) {
		raw = strings.ReplaceAll(raw, "="+v, "="+redacted)
	}
	return raw
}

// passwords are the spellings of rawURL's password to hide: as net/url
// reads it, and as the text gives it; and the values of its query
// parameters named like a password.
func passwords(rawURL string) []string {
	out := queryPasswords(rawURL)
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw)
		}
	}
	if pw, ok := password(rawURL); ok {
		out = append(out, pw)
	}
	return out
}

// password is the password of raw's user info, read without parsing the
// rest (passwordSpan); ok is false when there is none, or it is empty.
func password(raw string) (pw string, ok bool) {
	start, at, ok := passwordSpan(raw)
	if !ok || start == at {
		return "", false
	}
	return raw[start:at], true
}

// passwordSpan locates the password of raw's user info as raw[start:at],
// at being the last "@": what follows the first ":" of the text between
// "://" and that "@". A password may hold a raw "/" or "?" in a URL written
// by hand, so the "@" is looked for first, in the whole rest (over-hiding
// is the safe mistake). With no scheme to start from (mistyped, or none),
// all that precedes the last "@" is taken. ok is false when there is no
// "@", or a user but no ":".
func passwordSpan(raw string) (start, at int, ok bool) {
	scheme, rest, found := cutScheme(raw)
	if !found {
		at = strings.LastIndex(raw, "@")
		return 0, at, at >= 0
	}
	at = strings.LastIndex(rest, "@")
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return 0, 0, false
	}
	off := len(scheme) + len("://")
	return off + colon + 1, off + at, true
}

// cutScheme splits raw at its "://" when what precedes it is a scheme
// (a letter, then letters, digits, "+", "-" or "."): a "://" inside a
// password, after a mistyped scheme ("redis:/:pw://x@h") or none at all,
// is not taken for the separator, so the password is not taken for a host.
func cutScheme(raw string) (scheme, rest string, ok bool) {
	scheme, rest, ok = strings.Cut(raw, "://")
	if !ok || scheme == "" {
		return "", "", false
	}
	for i, c := range scheme {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", "", false
		}
	}
	return scheme, rest, true
}

// HasPassword says whether url carries a password (RedactURL would hide
// one).
func HasPassword(url string) bool { return RedactURL(url) != url }
