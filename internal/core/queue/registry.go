package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/refrakt/refrakt/internal/core"
)

// Handler runs the jobs of one type.
type Handler struct {
	// Validate checks a payload at enqueue, so a job that could never run is
	// refused with core.CodeInvalid and never stored. The payload is nil when
	// the caller sent none. A nil Validate accepts anything.
	Validate func(payload json.RawMessage) error
	// Run does the work. It must honour ctx: it is cancelled at shutdown and
	// when the job's lease is lost. Its result is stored as the job's result.
	// Jobs are delivered at least once, so Run should be idempotent.
	Run func(ctx context.Context, payload json.RawMessage) (json.RawMessage, error)
	// RunJob, when set, is called instead of Run, with the job as its run
	// started (its id, queue, type and attempt: a webhook's headers). The
	// handler must not change the job. Run may then be nil.
	RunJob func(ctx context.Context, j *Job) (json.RawMessage, error)
}

// Registry maps job types to their handlers. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

var typeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,63}$`)

// NewRegistry returns a registry holding the built-in handlers (ping, fail,
// sleep, echo).
func NewRegistry() *Registry {
	r := &Registry{handlers: map[string]Handler{}}
	for typ, h := range builtins() {
		r.handlers[typ] = h
	}
	return r
}

// Register adds or replaces the handler of typ.
func (r *Registry) Register(typ string, h Handler) error {
	if err := CheckType(typ); err != nil {
		return err
	}
	if h.Run == nil && h.RunJob == nil {
		return core.Errorf(core.CodeInvalid, "job type %q: handler has no Run", typ)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[typ] = h
	return nil
}

// CheckType refuses a name no job type may have: 1-64 letters, digits and
// _ . : -, starting with a letter or digit.
func CheckType(typ string) error {
	if !typeName.MatchString(typ) {
		return core.Errorf(core.CodeInvalid, "job type %q: want 1-64 letters, digits, and _ . : -", typ)
	}
	return nil
}

// Builtin reports whether typ is a built-in job type (ping, fail, sleep,
// echo), which no other handler may replace by configuration.
func Builtin(typ string) bool {
	_, ok := builtins()[typ]
	return ok
}

// Lookup returns the handler of typ.
func (r *Registry) Lookup(typ string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[typ]
	return h, ok
}

// Types returns the registered types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	types := make([]string, 0, len(r.handlers))
	for t := range r.handlers {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// validate checks that typ is registered and its handler accepts payload.
func (r *Registry) validate(typ string, payload json.RawMessage) error {
	h, ok := r.Lookup(typ)
	if !ok {
		return core.Errorf(core.CodeInvalid, "unknown job type %q (registered: %v)", typ, r.Types())
	}
	if h.Validate == nil {
		return nil
	}
	if err := h.Validate(payload); err != nil {
		if core.ErrorCode(err) == core.CodeInvalid {
			return err
		}
		return core.Wrap(core.CodeInvalid, err, fmt.Sprintf("payload of %s job: %v", typ, err))
	}
	return nil
}
