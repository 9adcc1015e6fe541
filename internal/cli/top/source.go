package top

import (
	"context"

	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// Source is where `top` reads the state it draws: a daemon over HTTP, or
// Redis directly. Fetch is called from a tea.Cmd, never from Update, so a
// slow source never freezes the screen; it must honour ctx's deadline.
type Source interface {
	// Name says where the data comes from, for the header (a URL).
	Name() string
	Fetch(ctx context.Context) (snapshot.Snapshot, error)
}

// BucketResetter is a Source that can clear a bucket (tokens, strikes and
// ban), as `refrakt limits reset KEY` does.
type BucketResetter interface {
	ResetBucket(ctx context.Context, key string) error
}

// JobRequeuer is a Source that can put a dead job back to pending, as
// `refrakt jobs requeue ID` does.
type JobRequeuer interface {
	RequeueJob(ctx context.Context, id string) error
}
