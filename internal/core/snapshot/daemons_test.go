package snapshot_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// listed is a DaemonLister answering recs, or err.
type listed struct {
	recs []presence.Record
	err  error
}

func (l listed) List(context.Context) ([]presence.Record, time.Time, error) {
	return l.recs, time.Time{}, l.err
}

// TestDaemonsFrom: the daemons' sum a daemon's snapshot and `top --redis`
// share: nil when the records cannot be read, else DaemonsOf.
func TestDaemonsFrom(t *testing.T) {
	ctx := context.Background()
	if got := snapshot.DaemonsFrom(ctx, listed{err: errors.New("down")}); got != nil {
		t.Errorf("records unreadable: %+v, want nil", got)
	}
	recs := []presence.Record{{ID: "a", Workers: 4, Busy: 1}, {ID: "b", Workers: 2, Busy: 2, Status: presence.StatusStopping}}
	if d := cmp.Diff(&snapshot.Daemons{Alive: 2, Stopping: 1, Workers: 6, Busy: 3}, snapshot.DaemonsFrom(ctx, listed{recs: recs})); d != "" {
		t.Errorf("sum (-want +got):\n%s", d)
	}
}
