package cli

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/core"
)

// replyError is an error Redis answered, as go-redis types them.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestRedisDriverFailExitCodes: an error Redis answered (TRYAGAIN while a
// slot moves, during a Cluster's resharding) is a failed command (exit 1),
// not an unreachable server (exit 3); a lost connection stays exit 3.
func TestRedisDriverFailExitCodes(t *testing.T) {
	d := &redisDriver{addr: "redis://127.0.0.1:17301"}
	tryAgain := core.Wrap(core.CodeUnavailable, fmt.Errorf("tick q2: %w", replyError("TRYAGAIN Multiple keys request during rehashing of slot")), "the job queue is unavailable")
	err := d.fail(tryAgain)
	if code := exitCode(err); code != ExitFailed {
		t.Errorf("TRYAGAIN: exit %d, want %d (%v)", code, ExitFailed, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "redis://127.0.0.1:17301 answered an error") || !strings.Contains(msg, "TRYAGAIN") {
		t.Errorf("TRYAGAIN: message %q", msg)
	}
	lost := core.Wrap(core.CodeUnavailable, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, "the job queue is unavailable")
	if code := exitCode(d.fail(lost)); code != ExitUnreachable {
		t.Errorf("connection refused: exit %d, want %d", code, ExitUnreachable)
	}
}
