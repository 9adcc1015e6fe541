package top

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
)

func TestHeader(t *testing.T) {
	snap := loadSnapshot(t)
	at := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	notReady := snap
	notReady.Daemon.Ready = false
	data := fetchedMsg{snap: snap, at: at}
	fail := fetchedMsg{err: errRefused}
	badToken := fetchedMsg{err: core.Wrap(core.CodeUnauthorized, errors.New(" (give a token with --token or REFRAKT_TOKEN)"), "a valid bearer token is required")}
	forbidden := fetchedMsg{err: core.Errorf(core.CodeForbidden, "needs the operator role")}
	tests := []struct {
		name string
		src  Source // a daemon's (scriptSource) when nil
		msgs []tea.Msg
		want []string
	}{
		{
			name: "before the first answer",
			want: []string{"refrakt top · 127.0.0.1:8080", "connecting…"},
		},
		{
			name: "no answer yet",
			msgs: []tea.Msg{fail},
			want: []string{"refrakt top · 127.0.0.1:8080", "disconnected: connection refused · retry in 1.0s"},
		},
		{
			name: "connected",
			msgs: []tea.Msg{data},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"refreshed 10:00:01 · every 1s"},
		},
		{
			name: "not ready",
			msgs: []tea.Msg{fetchedMsg{snap: notReady, at: at}},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · NOT READY · 4 workers",
				"refreshed 10:00:01 · every 1s"},
		},
		{
			// Readiness, uptime and workers are not shown stale.
			name: "disconnected after data",
			msgs: []tea.Msg{data, fail, fail},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · redis",
				"disconnected: connection refused · retry in 2.0s · last data 10:00:01"},
		},
		{
			name: "paused and disconnected: no retry is coming",
			msgs: []tea.Msg{data, press("p"), fail},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · redis",
				"disconnected: connection refused · last data 10:00:01 · PAUSED"},
		},
		{
			name: "reconnected: the daemon's state again",
			msgs: []tea.Msg{data, fail, data},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"refreshed 10:00:01 · every 1s"},
		},
		{
			name: "a rejected token is an authentication problem, not a lost connection",
			msgs: []tea.Msg{badToken},
			want: []string{"refrakt top · 127.0.0.1:8080", "authentication failed: a valid bearer token is required · retry in 1.0s"},
		},
		{
			name: "a token rejected after data",
			msgs: []tea.Msg{tea.WindowSizeMsg{Width: 100, Height: 24}, data, badToken},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · redis",
				"authentication failed: a valid bearer token is required · retry in 1.0s · last data 10:00:01"},
		},
		{
			name: "a token without the role",
			msgs: []tea.Msg{forbidden},
			want: []string{"refrakt top · 127.0.0.1:8080", "not allowed: needs the operator role · retry in 1.0s"},
		},
		{
			name: "straight from Redis, before the first answer",
			src:  directSource{},
			want: []string{"refrakt top · redis://127.0.0.1:6379 · read directly, no daemon", "connecting…"},
		},
		{
			// No daemon: no uptime, readiness or workers, not even zeros.
			name: "straight from Redis",
			src:  directSource{},
			msgs: []tea.Msg{data},
			want: []string{"refrakt top · redis://127.0.0.1:6379 · read directly, no daemon · redis",
				"refreshed 10:00:01 · every 1s"},
		},
		{
			name: "straight from Redis, disconnected",
			src:  directSource{},
			msgs: []tea.Msg{data, fail},
			want: []string{"refrakt top · redis://127.0.0.1:6379 · read directly, no daemon · redis",
				"disconnected: connection refused · retry in 1.0s · last data 10:00:01"},
		},
		{
			name: "a kept filter",
			msgs: append([]tea.Msg{data}, presses("/", "r", "u", "n", "enter")...),
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"refreshed 10:00:01 · every 1s · filter: run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src Source = &scriptSource{}
			if tt.src != nil {
				src = tt.src
			}
			var m tea.Model = New(context.Background(), src, Options{Clock: newClock()})
			for _, msg := range tt.msgs {
				m, _ = m.Update(msg)
			}
			got := strings.Split(ansi.Strip(m.(Model).Screen()), "\n")[:2]
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}
