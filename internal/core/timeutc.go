package core

import "time"

// UTCOrNil is t in UTC, or nil when t is the zero time: an optional time
// as the JSON views show it (null when there is none).
func UTCOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
