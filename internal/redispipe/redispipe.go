// Package redispipe runs go-redis pipelines so that every command of one
// says what became of it, and tells the refusals that ran nothing because
// a Cluster's slot was moving.
package redispipe

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Exec runs pipe and returns its commands and its error, as pipe.Exec
// does, except for one case: when the client could not get a connection
// because Redis refused it with an error reply (a changed password's
// WRONGPASS, NOAUTH, at the connection's AUTH or HELLO), go-redis sends
// none of the commands and sets none of their errors, so each would read as
// answered with a nil value. Exec gives them the pipeline's error then. It
// can tell that case by its commands: when Redis ran any of them and one
// failed, that one carries the error; a pipeline that fails while none
// does got no answer in its last attempt. (go-redis returns the last
// attempt's error only: an attempt before, cut off after it wrote the
// commands, may have had them run, so a caller that must know whether a
// write happened takes such an error as "may have run".)
func Exec(ctx context.Context, pipe redis.Pipeliner) ([]redis.Cmder, error) {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return cmds, nil
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return cmds, err
		}
	}
	for _, c := range cmds {
		c.SetErr(err)
	}
	return cmds, err
}

// SlotMoving reports whether err is a Redis Cluster's refusal of a command
// whose slot is moving between two masters, which ran nothing: TRYAGAIN
// (the command's keys are split between the old master and the new), or a
// MOVED or ASK redirect go-redis gave up following (the masters tell the
// slot's owner apart for a moment as the move ends). Such a command may be
// sent again once the move is done.
func SlotMoving(err error) bool {
	if redis.IsTryAgainError(err) {
		return true
	}
	if _, ok := redis.IsMovedError(err); ok {
		return true
	}
	_, ok := redis.IsAskError(err)
	return ok
}

// IsNoScript reports whether err is Redis's NOSCRIPT: the server does not
// have the script (a restart, a failover, SCRIPT FLUSH), and ran nothing.
func IsNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// MasterAddr is the address of the master that holds key on the Cluster
// c, as far as the client knows the slots; "" when it cannot tell.
func MasterAddr(ctx context.Context, c *redis.ClusterClient, key string) string {
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return m.Options().Addr
}
