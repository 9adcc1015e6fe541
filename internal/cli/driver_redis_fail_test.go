package cli

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/redistest"
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

// TestRedisDriverReadsItsSettingsOnly: with --redis, the CLI reads the
// settings it uses (a bad JOB_HISTORY still stops it, exit 2) and nothing
// else of a daemon's environment: a bad LOG_LEVEL or REFRAKT_ADDR, or a
// REFRAKT_SERVER that --redis makes irrelevant, stopped `jobs list` with
// exit 2.
func TestRedisDriverReadsItsSettingsOnly(t *testing.T) {
	names := map[string]bool{}
	for _, s := range config.Settings() {
		names[s.Env] = true
	}
	for _, k := range driverSettings {
		if !names[k] {
			t.Errorf("driverSettings names %s, which is no setting", k)
		}
	}
	r := redistest.Start(t)
	env := map[string]string{"REFRAKT_REDIS": r.URL(), "LOG_LEVEL": "verbose", "REFRAKT_ADDR": "bogus", "REFRAKT_SERVER": "localhost:8080"}
	if code, _, stderr := runCLI(t, env, "jobs", "list"); code != ExitOK {
		t.Errorf("jobs list --redis with a daemon's bad settings around: exit %d, %q", code, stderr)
	}
	env["JOB_HISTORY"] = "abc"
	if code, _, stderr := runCLI(t, env, "jobs", "list"); code != ExitUsage || !strings.Contains(stderr, "JOB_HISTORY") {
		t.Errorf("a bad JOB_HISTORY: exit %d, %q; want 2 naming it", code, stderr)
	}
}
