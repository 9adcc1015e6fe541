package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// cmdHook is a go-redis hook that records what its client sends: the round
// trips (a pipeline is one) and the commands' names in order, pipelined
// ones one by one. It can also make the commands of chosen names fail,
// single or in a pipeline, and run a function just before the next command
// of a name.
type cmdHook struct {
	trips  atomic.Int64
	setups atomic.Int64 // of trips, those that set up a new connection (HELLO, CLIENT)
	mu     sync.Mutex
	sent   []string
	fail   map[string]bool
	before map[string]func()
}

func (h *cmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.send(cmd); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.send(cmds...); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// send records one round trip carrying cmds, runs what is due before them
// and fails them at the first that must fail (those after it are not sent).
func (h *cmdHook) send(cmds ...redis.Cmder) error {
	h.trips.Add(1)
	if len(cmds) > 0 && (cmds[0].Name() == "hello" || cmds[0].Name() == "client") {
		h.setups.Add(1)
	}
	for _, c := range cmds {
		h.mu.Lock()
		h.sent = append(h.sent, c.Name())
		fn := h.before[c.Name()]
		delete(h.before, c.Name())
		fail := h.fail[c.Name()]
		h.mu.Unlock()
		if fn != nil {
			fn()
		}
		if fail {
			err := errors.New("injected: " + c.Name() + " failed")
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
	}
	return nil
}

// names returns the names of the commands sent so far.
func (h *cmdHook) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

// count returns how many commands called name were sent (or refused).
func (h *cmdHook) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.sent {
		if s == name {
			n++
		}
	}
	return n
}

// failing makes the commands called name fail (on) or go through again.
func (h *cmdHook) failing(name string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail == nil {
		h.fail = map[string]bool{}
	}
	h.fail[name] = on
}

// onceBefore runs fn once, just before the next command called name.
func (h *cmdHook) onceBefore(name string, fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.before == nil {
		h.before = map[string]func(){}
	}
	h.before[name] = fn
}
