package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/refrakt/refrakt/internal/core"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	core.CodeInvalid:      http.StatusBadRequest,
	core.CodeUnauthorized: http.StatusUnauthorized,
	core.CodeForbidden:    http.StatusForbidden,
	core.CodeNotFound:     http.StatusNotFound,
	core.CodeConflict:     http.StatusConflict,
	core.CodeTooLarge:     http.StatusRequestEntityTooLarge,
	core.CodeFailed:       http.StatusUnprocessableEntity,
	core.CodeLimited:      http.StatusTooManyRequests,
	core.CodeInternal:     http.StatusInternalServerError,
	core.CodeUnavailable:  http.StatusServiceUnavailable,
	core.CodeTimeout:      http.StatusGatewayTimeout,
	core.CodeKeyReused:    http.StatusUnprocessableEntity,
}

// StatusClientClosed is the status a request whose client went away before
// its answer is counted with (nginx's 499); the client never sees it.
const StatusClientClosed = 499

// StatusOf returns the HTTP status for an error code (500 for unknown codes).
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// hdrRetryAfter is Retry-After in http.Header's canonical form.
const hdrRetryAfter = "Retry-After"

// errorBody is the JSON error envelope of every failed request.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details carries machine-readable extras (e.g. the limit and scope of a 429).
	Details map[string]any `json:"details,omitempty"`
}

// writeError answers with err's code, status and caller-facing message.
// Internal errors are logged with their cause and answered generically.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	writeErrorDetails(w, r, log, err, nil)
}

func writeErrorDetails(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error, details map[string]any) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The request failed because its client went away (its context
		// ends only so): no one reads this answer, and the failure was not
		// the daemon's, so it is not logged and counts as 499, as nginx has
		// it, not 500. Any other error keeps its status and log line.
		w.WriteHeader(StatusClientClosed)
		return
	}
	code := core.ErrorCode(err)
	if code == core.CodeInternal && log != nil {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == core.CodeUnavailable {
		// Every 503 (a backend down, the in-flight cap, start-up, a
		// drain) tells the client when to retry: in a second, unless the
		// caller knows better (admission control's estimate).
		if h := w.Header(); len(h[hdrRetryAfter]) == 0 {
			h[hdrRetryAfter] = []string{"1"}
		}
	}
	writeJSON(w, StatusOf(code), errorBody{Error: errorDetail{Code: code, Message: core.ErrorMessage(err), Details: details}})
}
