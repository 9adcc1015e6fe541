package ratelimit

// Observer receives the limiter's events; the metrics package implements it
// with Prometheus collectors. Labels are limit and scope names only, never an
// IP or a user, so their cardinality stays fixed.
type Observer interface {
	// Decided counts one decision of a limit in a scope; decision is
	// "allowed", "limited" or "banned".
	Decided(limit, scope, decision string)
	// Banned counts one new ban.
	Banned()
	// BackendError counts one failed store operation (op is one of
	// BackendOps).
	BackendError(op string)
}

// BackendOps lists every op of Observer.BackendError: a decision's take, and
// the reload of the overrides.
var BackendOps = []string{"take", "overrides"}

// NopObserver ignores every event.
type NopObserver struct{}

// Decided does nothing.
func (NopObserver) Decided(limit, scope, decision string) {}

// Banned does nothing.
func (NopObserver) Banned() {}

// BackendError does nothing.
func (NopObserver) BackendError(op string) {}
