package daemon

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// writeRejection answers an enqueue refused by admission control: 503,
// Retry-After in whole seconds (at least 1), and a JSON error naming the
// bound that was hit (details.reason: max_pending, max_age or backend).
// Nothing was enqueued.
func writeRejection(w http.ResponseWriter, r *http.Request, log *slog.Logger, rej *queue.Rejection) {
	secs := max(1, int64(rej.RetryAfter.Seconds()))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	details := map[string]any{"queue": rej.Queue, "reason": rej.Reason, "retry_after_seconds": secs}
	switch rej.Reason {
	case queue.ReasonMaxPending:
		details["bound"] = "QUEUE_MAX_PENDING"
	case queue.ReasonMaxAge:
		details["bound"] = "QUEUE_MAX_AGE_SECONDS"
	}
	writeErrorDetails(w, r, log, rej, details)
}
