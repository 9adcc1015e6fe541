package top

import (
	"context"
	"time"

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

// BucketBanner is a Source that can ban a bucket key for d, as
// `refrakt limits ban KEY --for D` does.
type BucketBanner interface {
	BanBucket(ctx context.Context, key string, d time.Duration) error
}

// JobRequeuer is a Source that can put a dead job back to pending, as
// `refrakt jobs requeue ID` does.
type JobRequeuer interface {
	RequeueJob(ctx context.Context, id string) error
}

// DeadRequeuer is a Source that can put every dead job of a queue back to
// pending, as `refrakt jobs requeue --queue Q --all-dead` does. It returns
// how many jobs it moved, also when an error stopped it part way.
type DeadRequeuer interface {
	RequeueAllDead(ctx context.Context, queue string) (int, error)
}

// QueuePauser is a Source that can pause a queue or resume it, as
// `refrakt jobs pause Q` and `refrakt jobs resume Q` do. changed is false
// when the queue already was so (paused, or not).
type QueuePauser interface {
	SetQueuePaused(ctx context.Context, queue string, paused bool) (changed bool, err error)
}

// RoleSource is a Source that can say which role its token has ("operator"
// or "developer"), so that `top` refuses a reset or a requeue at once with a
// token that may not do them, rather than after its confirmation prompt.
type RoleSource interface {
	Role(ctx context.Context) (string, error)
}

// DirectSource is a Source with no daemon behind it: it reads the shared
// state straight from the backend (`refrakt top --redis`). The header then
// says so and shows the backend, not a daemon's version, uptime, readiness
// or workers, which would be this process's or zero.
type DirectSource interface {
	Source
	// Direct reports whether the source reads the backend directly.
	Direct() bool
}

// isDirect reports whether src reads the backend directly.
func isDirect(src Source) bool {
	d, ok := src.(DirectSource)
	return ok && d.Direct()
}
