package daemon

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// readyProbe fails where the daemon could answer but not work: it pops a
// key that never exists, so it writes nothing, but Redis refuses it as a
// write on a read-only replica (READONLY: a replica's URL given by mistake)
// and to a user denied scripts or the command (NOPERM), while a PING passes
// both. LPOP is not refused when Redis is out of memory: that passes, and
// resumes by itself (README, Redis layout).
var readyProbe = redis.NewScript(`return redis.call('LPOP', KEYS[1])`)

// ready reports whether the backend answers and lets the daemon work;
// /readyz uses it.
func (s *Server) ready(ctx context.Context) error {
	b := s.backend
	if b.Redis == nil {
		return nil
	}
	err := readyProbe.Run(ctx, b.Redis, []string{b.Prefix + "ready-probe"}).Err()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// notReady is /readyz's message for err, a failed probe of the backend.
func notReady(kind string, err error) string {
	if strings.HasPrefix(err.Error(), "READONLY") {
		return "backend " + kind + " is a read-only replica: point QUEUE_URL at its master"
	}
	if problem := AuthProblem(err); problem != "" {
		return "backend " + kind + " refuses this daemon's user (" + problem + "): see README, Backends"
	}
	return "backend " + kind + " is not reachable"
}
