package ratelimit

import "time"

// Request is what the limiter needs to know about one request. Empty fields
// are unknown identities: their scopes are skipped.
type Request struct {
	Limit   string
	IP      string // the client address as the identity middleware found it
	User    string
	Tenant  string
	Premium bool
}

// Decision is the limiter's answer for one request. Limit, Scope and
// Identity name the bucket that decided: of those that denied, the one with
// the longest wait, else the one with the fewest tokens left.
type Decision struct {
	Allowed  bool
	Limit    string
	Scope    Scope
	Identity string
	// Capacity is the deciding bucket's effective capacity (after tier,
	// override and penalties); Remaining its tokens left.
	Capacity  int
	Remaining int
	// Window is the deciding policy's window, for the RateLimit-Policy header.
	Window time.Duration
	// Interval is the time the deciding bucket takes to refill one token
	// (tier and override applied; penalties leave it as it is).
	Interval time.Duration
	// Reset is the time until the bucket is full again.
	Reset time.Duration
	// RetryAfter is the time until a request can pass (0 when allowed).
	RetryAfter time.Duration
	Strikes    int
	// BannedUntil is the end of the key's ban; zero when not banned.
	BannedUntil time.Time
	// Shadow says a shadow override would have denied this request.
	Shadow bool
	// Unchecked says the request was let through unchecked: the backend
	// failed and RATE_LIMIT_ON_BACKEND_ERROR is allow. Its figures are the
	// policy's, not a bucket's, so no RateLimit headers are sent.
	Unchecked bool
}

// Key is the deciding bucket's key, "<limit>:<scope>:<identity>".
func (d *Decision) Key() string {
	return d.Limit + ":" + string(d.Scope) + ":" + d.Identity
}

// Quota is the deciding policy's quota: the tokens its bucket refills per
// Window (30 for run's 30 per minute, whatever its burst), the draft
// RateLimit-Policy's q. Penalties shrink the capacity, not the quota.
func (d *Decision) Quota() int {
	if d.Interval <= 0 {
		return d.Capacity
	}
	return max(1, int((d.Window+d.Interval/2)/d.Interval))
}

// Banned reports whether the request was refused by a ban.
func (d *Decision) Banned() bool { return !d.Allowed && !d.BannedUntil.IsZero() }
