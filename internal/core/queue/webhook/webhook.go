// Package webhook runs jobs of the user's own types by delivering each to
// the user's service over HTTP (JOB_WEBHOOKS): a POST of the job's payload,
// whose answer is the job's outcome, as Google Cloud Tasks' HTTP targets and
// QStash do. A 2xx answer succeeds, its body the job's result; anything else
// fails the attempt, retried by the queue's backoff as any handler's
// failure, unless the answer says not to retry (Refrakt-No-Retry: true,
// as QStash's Upstash-NonRetryable-Error). With a secret every delivery
// is signed (Refrakt-Signature, Stripe's scheme), so that the receiver can
// tell it came from refrakt.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// Target is one job type run by a webhook: its jobs are POSTed to URL.
type Target struct {
	Type string
	URL  string
}

// The headers of a delivery besides Content-Type and User-Agent.
const (
	HeaderJobID     = "Refrakt-Job-Id"
	HeaderJobType   = "Refrakt-Job-Type"
	HeaderJobQueue  = "Refrakt-Job-Queue"
	HeaderAttempt   = "Refrakt-Job-Attempt"
	HeaderSignature = "Refrakt-Signature"
)

// HeaderNoRetry, on a failed (non-2xx) answer, says the failure is final:
// the attempt fails and the job goes dead at once, whatever retries it has
// left (queue.NoRetry), over a Retry-After the answer carries. Its value
// is "true" or "1", any case, blanks around ignored; any other value, and
// the header on a 2xx answer, is ignored (a malformed value retries, as
// every failure did before the header was known). Only its first value
// counts.
const HeaderNoRetry = "Refrakt-No-Retry"

// MaxAnswer bounds the body of a webhook's answer read as the job's result:
// the API's own request body limit, so that a result fits where a payload
// does. A longer answer fails the attempt.
const MaxAnswer = 1 << 20

// excerptLen is how much of a failed answer's body its error quotes.
const excerptLen = 200

// maxHeader bounds the header of a webhook's answer (Go's default is 10
// MiB): the header is read in full before the status is known, and a
// transport's error about it quotes what it read.
const maxHeader = 64 << 10

// failedRead is how much of a failed (non-2xx) answer's body is read for
// its excerpt: enough for excerptLen bytes after blanks.
const failedRead = 4 << 10

// drainLen is how much more of an answer's body is read and dropped before
// closing it, so that the connection is kept for the next delivery; a
// longer body closes the connection instead.
const drainLen = 64 << 10

// dialTimeout bounds connecting to a webhook: the job's timeout bounds the
// whole delivery, but an unreachable host should fail the attempt in
// seconds, not hold the worker until then.
const dialTimeout = 5 * time.Second

// Options configure a Client.
type Options struct {
	// Secret signs every delivery (Refrakt-Signature) when not empty.
	Secret string
	// UserAgent is the User-Agent of every delivery (refrakt/<version>).
	UserAgent string
	// IdleConnsPerHost is how many idle connections to one host are kept
	// for reuse: the daemon's WORKER_CONCURRENCY, as many as may deliver
	// at once. At least 2.
	IdleConnsPerHost int
	// Now is the clock of the signature's timestamp; time.Now when nil.
	Now func() time.Time
}

// Client delivers jobs to webhooks over one shared http.Client, so that
// connections are kept alive and reused across jobs and types.
type Client struct {
	hc     *http.Client
	tr     *http.Transport
	secret []byte
	ua     string
	now    func() time.Time
}

// New returns a Client. Proxies come from the environment (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY) as with Go's default transport; redirects are not
// followed: a 3xx answer fails the attempt.
func New(o Options) *Client {
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2: true,
		// No total cap: one would drop idle connections a host of
		// WORKER_CONCURRENCY deliveries at once needs again (up to 1024),
		// and the hosts are the few of JOB_WEBHOOKS, each capped below.
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    max(o.IdleConnsPerHost, 2),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    dialTimeout,
		MaxResponseHeaderBytes: maxHeader,
		ExpectContinueTimeout:  time.Second,
	}
	c := &Client{
		tr: tr,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		ua:  o.UserAgent,
		now: o.Now,
	}
	if o.Secret != "" {
		c.secret = []byte(o.Secret)
	}
	if c.ua == "" {
		c.ua = "refrakt"
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Register registers a handler for each target in reg.
func (c *Client) Register(reg *queue.Registry, targets []Target) error {
	for _, t := range targets {
		h, err := c.Handler(t.URL)
		if err != nil {
			return fmt.Errorf("webhook of %s: %w", t.Type, err)
		}
		if err := reg.Register(t.Type, h); err != nil {
			return err
		}
	}
	return nil
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// Handler returns the handler that delivers jobs to rawURL. It takes any
// payload (the queue has checked it is JSON).
func (c *Client) Handler(rawURL string) (queue.Handler, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return queue.Handler{}, errors.New("the URL is not a valid URL")
	}
	if why := URLProblem(u, rawURL); why != "" {
		return queue.Handler{}, errors.New("the URL " + why)
	}
	d := &delivery{c: c, url: u.String(), host: u.Host}
	return queue.Handler{RunJob: d.run}, nil
}

// delivery is the handler of one webhook URL.
type delivery struct {
	c    *Client
	url  string
	host string // named by errors: never the path or query, which may hold a key
}

// run POSTs j's payload to the webhook under ctx (the job's timeout, the
// daemon's shutdown, a lost lease) and returns the answer as the job's
// result, or the attempt's error.
func (d *delivery) run(ctx context.Context, j *queue.Job) (json.RawMessage, error) {
	body := []byte(j.Payload)
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("null")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %v", d.host, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", d.c.ua)
	h.Set(HeaderJobID, j.ID)
	h.Set(HeaderJobType, j.Type)
	h.Set(HeaderJobQueue, j.Queue)
	h.Set(HeaderAttempt, strconv.Itoa(j.Attempts))
	if d.c.secret != nil {
		h.Set(HeaderSignature, Sign(d.c.secret, d.c.now().Unix(), body))
	}
	resp, err := d.c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("webhook %s: %w", d.host, context.Cause(ctx))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text quotes the whole URL, query included
		}
		// The error's text may quote the receiver's answer (a malformed
		// header line): bounded and escaped as any text of the receiver.
		if unreachable(err) {
			return nil, fmt.Errorf("webhook %s unreachable: %s", d.host, excerpt([]byte(err.Error())))
		}
		return nil, fmt.Errorf("webhook %s: no valid HTTP answer: %s", d.host, excerpt([]byte(err.Error())))
	}
	defer func() {
		// Drained (up to a bound) so that the connection is reused.
		_, _ = io.CopyN(io.Discard, resp.Body, drainLen)
		_ = resp.Body.Close()
	}()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(MaxAnswer + 1)
	if !ok {
		limit = failedRead // only its excerpt is wanted
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("webhook %s: %w", d.host, context.Cause(ctx))
		}
		return nil, fmt.Errorf("webhook %s: reading its answer: %s", d.host, excerpt([]byte(err.Error())))
	}
	switch {
	case ok && len(data) > MaxAnswer:
		return nil, fmt.Errorf("webhook answered %s with a body over %d bytes (1 MiB): too large for a job's result", status(resp), MaxAnswer)
	case ok:
		return result(data), nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		err := fmt.Errorf("webhook answered %s: redirects are not followed (Location %s); point JOB_WEBHOOKS at the final URL",
			status(resp), excerpt([]byte(resp.Header.Get("Location"))))
		if noRetry(resp.Header) {
			return nil, queue.NoRetry(err)
		}
		return nil, err
	}
	msg := "webhook answered " + status(resp)
	// Final: a Retry-After it carries is moot, and not said.
	final := noRetry(resp.Header)
	after, later := time.Duration(0), false
	if !final && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		after, later = retryAfter(resp.Header.Get("Retry-After"), d.c.now())
		if later {
			msg += ", Retry-After " + after.String()
		}
	}
	if e := excerpt(data); e != "" {
		msg += ": " + e
	}
	if final {
		return nil, queue.NoRetry(errors.New(msg))
	}
	if later {
		return nil, &queue.RetryAfterError{Err: errors.New(msg), After: after}
	}
	return nil, errors.New(msg)
}

// noRetry reports whether a failed answer's header says not to retry
// (HeaderNoRetry: "true" or "1", any case).
func noRetry(h http.Header) bool {
	v := strings.TrimSpace(h.Get(HeaderNoRetry))
	return v == "1" || strings.EqualFold(v, "true")
}

// retryAfter reads the Retry-After of a 429 or 503 answer (RFC 9110:
// seconds, or an HTTP date) as the least wait before the job's retry;
// false when it is absent, malformed, or not in the future. At most
// queue.MaxBackoffCap (the queue caps it again at JOB_RETRY_MAX).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		n = min(n, uint64(queue.MaxBackoffCap/time.Second)) // out of range: n is the largest uint64
		return time.Duration(n) * time.Second, n > 0
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0, false
	}
	return min(t.Sub(now), queue.MaxBackoffCap), true
}

// unreachable reports whether err, a failed request's, is a failure to
// connect (the host's name, a refused or timed-out dial, the proxy), not
// an answer that is no valid HTTP.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// status is an answer's status for an error: its code, and its reason
// phrase (the receiver's text) bounded and escaped.
func status(resp *http.Response) string {
	code := strconv.Itoa(resp.StatusCode)
	reason := strings.TrimPrefix(resp.Status, code)
	if e := excerpt([]byte(reason)); e != "" {
		return code + " " + e
	}
	return code
}

// result is the job's result of a 2xx answer's body: the JSON itself,
// null when empty, or the text as a JSON string when it is no JSON.
func result(data []byte) json.RawMessage {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return json.RawMessage("null")
	case json.Valid(data):
		return json.RawMessage(data)
	}
	s, _ := json.Marshal(string(data))
	return s
}

// excerpt is the start of a failed answer's body for the attempt's error:
// at most excerptLen bytes, control and format characters (a bidi
// override, U+202E) escaped, so that a receiver's HTML page or stack trace
// neither floods last_error nor moves a terminal's cursor or reorders its
// text.
func excerpt(data []byte) string {
	data = bytes.TrimSpace(data)
	cut := len(data) > excerptLen
	if cut {
		data = data[:excerptLen]
	}
	var b strings.Builder
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && n <= 1:
			if len(data) < utf8.UTFMax && cut { // a rune the cut split
				data = nil
				continue
			}
			fmt.Fprintf(&b, `\x%02x`, data[0])
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		data = data[n:]
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

// Sign returns the Refrakt-Signature of body sent at unix time t:
// "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Refrakt-Signature header against body and secret, as a
// receiver does: a v1 that matches, and a t no further than tolerance from
// now (a replayed delivery is refused once it is old). It is the reference
// implementation of the check README's "Verifying the signature" recipe
// mirrors, and the one the tests of the daemon and the CLI use as their
// receivers. A receiver cannot import it (this package is internal to
// refrakt): it copies the recipe, and this is what the recipe must agree
// with.
func Verify(header string, secret, body []byte, now time.Time, tolerance time.Duration) error {
	var t int64 = -1
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("signature: t is not a number")
			}
			t = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if t < 0 || len(sigs) == 0 {
		return errors.New("signature: want t=<unix seconds>,v1=<hex>")
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return errors.New("signature: too old (or from the future)")
	}
	_, want, _ := strings.Cut(Sign(secret, t, body), ",v1=")
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature: no v1 matches")
}
