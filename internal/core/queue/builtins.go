package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// MaxSleep bounds the ms of a sleep job.
const MaxSleep = time.Hour

// builtins returns the handlers every registry starts with.
func builtins() map[string]Handler {
	return map[string]Handler{
		// ping answers "pong"; it takes no payload (or an empty object).
		"ping": {
			Validate: emptyPayload("ping"),
			Run: func(context.Context, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(`"pong"`), nil
			},
		},
		// fail always fails, to exercise retries and dead jobs; with
		// {"retry":false} its failure is not to be retried (NoRetry), to
		// exercise jobs dead at once.
		"fail": {
			Validate: func(p json.RawMessage) error {
				_, err := FailRetries(p)
				return err
			},
			Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
				retry, err := FailRetries(p)
				if err != nil {
					return nil, err
				}
				if !retry {
					return nil, NoRetry(errors.New("fail: this job always fails"))
				}
				return nil, errors.New("fail: this job always fails")
			},
		},
		// sleep waits {"ms":N} milliseconds, or until it is cancelled.
		"sleep": {
			Validate: func(p json.RawMessage) error {
				_, err := SleepDuration(p)
				return err
			},
			Run: func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) {
				d, err := SleepDuration(p)
				if err != nil {
					return nil, err
				}
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
					return json.RawMessage(fmt.Sprintf(`{"slept_ms":%d}`, d.Milliseconds())), nil
				case <-ctx.Done():
					return nil, fmt.Errorf("sleep interrupted: %w", ctx.Err())
				}
			},
		},
		// echo returns its payload (null when it has none).
		"echo": {
			Run: func(_ context.Context, p json.RawMessage) (json.RawMessage, error) {
				if len(p) == 0 {
					return json.RawMessage("null"), nil
				}
				return p, nil
			},
		},
	}
}

// emptyPayload accepts no payload, null or {}.
func emptyPayload(typ string) func(json.RawMessage) error {
	return func(p json.RawMessage) error {
		p = bytes.TrimSpace(p)
		if len(p) == 0 || string(p) == "null" {
			return nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p, &m); err != nil || len(m) != 0 {
			return core.Errorf(core.CodeInvalid, "%s takes no payload (or {})", typ)
		}
		return nil
	}
}

// FailRetries decodes and checks the payload of a fail job, the one
// reading of it for the handler and its validation: none, null or {}
// (retry true: its failure is retried as any), or {"retry":false} (retry
// false: not to be retried, NoRetry). Anything else is refused, read token
// by token rather than by encoding/json's struct decoding, which folds
// case ({"Retry":false}), takes null for absent ({"retry":null}) and lets
// the last of duplicate keys win ({"retry":true,"retry":false}): the key
// is exactly "retry", its value exactly false, and nothing follows.
func FailRetries(p json.RawMessage) (retry bool, err error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || string(p) == "null" {
		return true, nil
	}
	if !json.Valid(p) {
		return false, failRefused()
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	var toks []json.Token
	for {
		t, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil || len(toks) == 4 { // no accepted payload is longer
			return false, failRefused()
		}
		toks = append(toks, t)
	}
	switch {
	case slices.Equal(toks, []json.Token{json.Delim('{'), json.Delim('}')}):
		return true, nil
	case slices.Equal(toks, []json.Token{json.Delim('{'), "retry", false, json.Delim('}')}):
		return false, nil
	}
	return false, failRefused()
}

// failRefused is FailRetries' one line for a payload it refuses.
func failRefused() error {
	return core.Errorf(core.CodeInvalid, `fail takes no payload, {} or {"retry":false}`)
}

// SleepDuration decodes and checks the payload of a sleep job: the one
// reading of it, for the handler, its validation and the daemon's bound on
// public sleeps.
func SleepDuration(p json.RawMessage) (time.Duration, error) {
	var s struct {
		MS *int64 `json:"ms"`
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if len(bytes.TrimSpace(p)) == 0 || dec.Decode(&s) != nil || s.MS == nil {
		return 0, core.Errorf(core.CodeInvalid, `sleep wants a payload {"ms":N}`)
	}
	if *s.MS < 0 || *s.MS > MaxSleep.Milliseconds() { // before converting: a huge N would wrap around
		return 0, core.Errorf(core.CodeInvalid, "sleep ms must be between 0 and %d", MaxSleep.Milliseconds())
	}
	return time.Duration(*s.MS) * time.Millisecond, nil
}
