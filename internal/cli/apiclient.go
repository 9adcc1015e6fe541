package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
)

// APIClient calls a refrakt daemon's HTTP API and turns its error envelope
// back into coded errors, so the CLI maps them to exit codes in one place.
type APIClient struct {
	Base  string
	Token string
	// TokenFile is the file Token was read from when neither --token nor
	// REFRAKT_TOKEN gave one (the token file serve writes), so that a
	// rejected token says where it came from; empty otherwise.
	TokenFile string
	// Remote says the token file holds a token that was not sent, the
	// server not being on a loopback address: a rejected request without
	// a token says so (and only then: with no token file it would point
	// at nothing).
	Remote bool
	HTTP   *http.Client
}

// NewAPIClient returns a client for the daemon at base.
func NewAPIClient(base, token string) *APIClient {
	return &APIClient{Base: base, Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// noRedirect makes an http.Client return a 3xx answer as it is. Go keeps
// the Authorization header on a redirect to the same host name, whatever
// the port or the scheme (https to http): following one could send the
// token to another program or in cleartext. Do reports the redirect.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// locationGuard is the transport under Do's client. Go's client parses a
// 3xx's Location before it asks CheckRedirect (noRedirect), and one that
// does not parse comes back as an error quoting it whole, user info and
// all (sec31 NIT 5). locationGuard takes such a Location out of the answer
// before the client sees it, so that the 3xx comes back as it is and
// newRedirectError names the redirect without it (unparsedLocation).
type locationGuard struct{ base http.RoundTripper }

// unparsedLocation marks an answer whose Location locationGuard took out.
const unparsedLocation = "X-Refrakt-Unparsed-Location"

func (g locationGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	base := g.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 || resp.StatusCode >= 400 {
		return resp, err
	}
	resp.Header.Del(unparsedLocation) // the server's own says nothing
	if loc := resp.Header.Get("Location"); loc != "" {
		if _, perr := req.URL.Parse(loc); perr != nil { // as the client parses it
			resp.Header.Del("Location")
			resp.Header.Set(unparsedLocation, "1")
		}
	}
	return resp, nil
}

// statusCode maps an HTTP status back to an error code when a response has
// no JSON envelope (e.g. from a proxy in front of the daemon).
var statusCode = map[int]string{
	http.StatusBadRequest:            core.CodeInvalid,
	http.StatusUnauthorized:          core.CodeUnauthorized,
	http.StatusForbidden:             core.CodeForbidden,
	http.StatusNotFound:              core.CodeNotFound,
	http.StatusConflict:              core.CodeConflict,
	http.StatusRequestEntityTooLarge: core.CodeTooLarge,
	http.StatusUnprocessableEntity:   core.CodeFailed,
	http.StatusTooManyRequests:       core.CodeLimited,
	http.StatusServiceUnavailable:    core.CodeUnavailable,
	http.StatusGatewayTimeout:        core.CodeTimeout,
}

// encodedJSON is a request body Do sends as it is, already encoded (an
// enqueue-batch body, whose size its chunks were cut on).
type encodedJSON []byte

// Do sends in (when not nil) as JSON (an encodedJSON as it is) and decodes a 2xx answer into out
// (when not nil). A daemon that cannot be reached is an unreachableError;
// an error answer is a *core.Error with the daemon's code and message.
func (c *APIClient) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if b, ok := in.(encodedJSON); ok {
		body = bytes.NewReader(b)
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return usageError{fmt.Errorf("bad server URL %q: %s", config.RedactURL(c.Base), config.RedactIn(err.Error(), c.Base))}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	// Whatever client it was given, Do follows no redirect (noRedirect).
	hc := *c.HTTP
	hc.CheckRedirect = noRedirect
	hc.Transport = locationGuard{base: hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var withheld listenerOwnerError
		if errors.As(err, &withheld) {
			withheld.server = c.Base
			return withheld
		}
		return unreachableError{addr: c.Base, err: errors.Unwrap(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return unreachableError{addr: c.Base, err: err}
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return newRedirectError(c.Base, path, resp)
	}
	if resp.StatusCode >= 300 {
		var env struct {
			Error struct {
				Code    string          `json:"code"`
				Message string          `json:"message"`
				Details json.RawMessage `json:"details"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &env)
		code, msg := env.Error.Code, env.Error.Message
		if code == "" {
			code = statusCode[resp.StatusCode]
			if code == "" {
				code = core.CodeInternal
			}
		}
		if msg == "" {
			msg = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		var hint error
		if code == core.CodeUnauthorized {
			hint = hintError(c.tokenHint())
		}
		ce := &core.Error{Code: code, Message: msg, Err: hint}
		var e error = ce
		if code == core.CodeUnavailable {
			e = daemonOutageError{addr: c.Base, err: ce}
		}
		if len(env.Error.Details) > 0 {
			e = detailedError{err: e, details: env.Error.Details}
		}
		return e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	if a, ok := out.(interface{ answered(http.Header) }); ok {
		a.answered(resp.Header) // what the answer says beside its body
	}
	return nil
}

// daemonOutageError is a daemon's answer that it cannot serve now (exit 3):
// its backend is down or not connected yet. The daemon's message says what
// is down; the CLI's line also says which daemon answered, as for a daemon
// it cannot reach (errorText). The *core.Error stays the cause, so `top`,
// whose header shows the address, takes the message alone.
type daemonOutageError struct {
	addr string
	err  *core.Error
}

func (e daemonOutageError) Error() string {
	return config.RedactURL(e.addr) + ": " + e.err.Message
}
func (e daemonOutageError) Unwrap() error { return e.err }

// redirectError is a server's answer that what was asked is elsewhere (a
// 3xx), which the client does not follow (noRedirect): exit 3, as for a
// daemon it cannot reach, since the daemon was not reached at that URL.
// The message names where the answer points, without a password, and
// when that is the same route under another base URL, suggests it as
// --server.
type redirectError struct {
	addr     string // the --server asked
	status   string // "307 Temporary Redirect"
	location string // absolute, redacted; "" when the answer named none
	server   string // the base URL to suggest, redacted; "" when unknown
	unparsed bool   // the answer's Location did not parse (locationGuard)
}

func newRedirectError(base, path string, resp *http.Response) redirectError {
	e := redirectError{addr: base, status: resp.Status, unparsed: resp.Header.Get(unparsedLocation) != ""}
	loc, err := resp.Location() // resolved against the request's URL
	switch {
	case err == nil:
		e.location = config.RedactURL(loc.String())
		if s, ok := strings.CutSuffix(loc.String(), path); ok && s != loc.String() && strings.Contains(s, "://") {
			e.server = config.RedactURL(s)
		}
	case resp.Header.Get("Location") != "":
		e.location = config.RedactURL(resp.Header.Get("Location"))
	}
	return e
}

func (e redirectError) Error() string {
	msg := config.RedactURL(e.addr) + " answered " + e.status
	switch {
	case e.location != "":
		msg += " to " + e.location
	case e.unparsed:
		msg += " to a Location that does not parse (not shown: it may hold a password)"
	}
	return msg + ": refrakt follows no redirect, so that the token goes nowhere else" + e.Hint()
}

// Location is where the redirect points, without a password; `top` shows
// it in its header.
func (e redirectError) Location() string { return e.location }

// Hint is the advice after the message: the daemon's URL, if the redirect
// names one.
func (e redirectError) Hint() string {
	if e.server == "" {
		return ""
	}
	return " (if the daemon is there, give --server " + e.server + ")"
}

// hintError is advice for the person at the command line, kept apart from
// the daemon's message: errorText appends it, and so does `top` to its
// "authentication failed" line (through Hint), so both say the same.
type hintError string

func (h hintError) Error() string { return string(h) }

// Hint returns the advice, to be appended to the daemon's message.
func (h hintError) Hint() string { return string(h) }

// tokenHint says, after an unauthorized answer, where the token came from
// and how to give another: REFRAKT_TOKEN first, since a --token is in the
// command line, which ps shows to every user of the machine.
func (c *APIClient) tokenHint() string {
	const how = "REFRAKT_TOKEN, or --token, which ps shows"
	switch {
	case c.Token != "" && c.TokenFile != "":
		// The path is long already: top wraps this over at most four lines.
		return fmt.Sprintf(" (the token was read from the token file %s and the daemon rejected it: give another with REFRAKT_TOKEN or --token)", c.TokenFile)
	case c.Token != "":
		return " (the daemon rejected the token given with REFRAKT_TOKEN or --token)"
	case c.Remote:
		return " (the token file is sent only to a daemon on a loopback address: give this daemon's token with " + how + ")"
	}
	return " (give a token with " + how + ")"
}

// detailedError is a daemon's error answer that carries details (the
// machine-readable extras of its JSON error), for a caller that reads them
// (errorDetails); it says and unwraps to the error as without them.
type detailedError struct {
	err     error
	details json.RawMessage
}

func (e detailedError) Error() string { return e.err.Error() }
func (e detailedError) Unwrap() error { return e.err }

// errorDetails decodes the details of a daemon's error answer in err's
// chain into v, and reports whether there were any.
func errorDetails(err error, v any) bool {
	var d detailedError
	return errors.As(err, &d) && json.Unmarshal(d.details, v) == nil
}
