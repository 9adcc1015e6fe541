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
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

func TestHeader(t *testing.T) {
	snap := loadSnapshot(t)
	at := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	notReady := snap
	notReady.Daemon.Ready = false
	data := fetchedMsg{snap: snap, at: at}
	withDaemons := snap
	withDaemons.Daemons = &snapshot.Daemons{Alive: 2, Workers: 6, Busy: 1}
	stopping := snap
	stopping.Daemons = &snapshot.Daemons{Alive: 1, Stopping: 1, Workers: 4, Busy: 4}
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
			// The daemons alive on a shared backend, from the snapshot's
			// daemons (absent from earlier daemons and in memory: above).
			name: "connected, with the daemons alive",
			msgs: []tea.Msg{fetchedMsg{snap: withDaemons, at: at}},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"refreshed 10:00:01 · every 1s · 2 daemons, 1/6 workers busy"},
		},
		{
			name: "one daemon, stopping",
			msgs: []tea.Msg{fetchedMsg{snap: stopping, at: at}},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"refreshed 10:00:01 · every 1s · 1 daemon, 4/4 workers busy, 1 stopping"},
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

// TestRetryCountdown: while the source is down, "retry in" counts down to
// the next retry by the model's clock. The failure's command includes a
// countdown tick that reads that clock, and each tick schedules the next
// until the retry; a tick of an older refresh chain changes nothing.
func TestRetryCountdown(t *testing.T) {
	snap := loadSnapshot(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC) // the fake clock says t0+1s, t0+2s, … when asked
	fail := fetchedMsg{err: errRefused, at: t0}
	m := New(context.Background(), &scriptSource{}, Options{Clock: newClock()})
	status := func() string {
		t.Helper()
		return strings.Split(ansi.Strip(m.Screen()), "\n")[1]
	}
	update := func(msg tea.Msg) tea.Cmd {
		t.Helper()
		tm, cmd := m.Update(msg)
		m = tm.(Model)
		return cmd
	}
	var cmd tea.Cmd
	for _, msg := range []tea.Msg{fetchedMsg{snap: snap, at: t0}, fail, fail, fail, fail, fail} {
		cmd = update(msg)
	}
	if diff := cmp.Diff("disconnected: connection refused · retry in 5.0s · last data 10:00:00", status()); diff != "" {
		t.Errorf("after the failure (-want +got):\n%s", diff)
	}

	tick := firstMsg[clockMsg](t, cmd)
	if cmd := update(tick); cmd == nil {
		t.Error("a countdown tick before the retry schedules no next one")
	}
	if diff := cmp.Diff("disconnected: connection refused · retry in 4.0s · last data 10:00:00", status()); diff != "" {
		t.Errorf("after the first tick, at %s (-want +got):\n%s", tick.at.Format("15:04:05.0"), diff)
	}
	update(clockMsg{seq: m.seq, at: t0.Add(2500 * time.Millisecond)})
	if diff := cmp.Diff("disconnected: connection refused · retry in 2.5s · last data 10:00:00", status()); diff != "" {
		t.Errorf("2.5s after the failure (-want +got):\n%s", diff)
	}
	if cmd := update(clockMsg{seq: m.seq - 1, at: t0.Add(4 * time.Second)}); cmd != nil {
		t.Error("a tick of an older chain schedules another")
	}
	if diff := cmp.Diff("disconnected: connection refused · retry in 2.5s · last data 10:00:00", status()); diff != "" {
		t.Errorf("after an older chain's tick (-want +got):\n%s", diff)
	}
	if cmd := update(clockMsg{seq: m.seq, at: t0.Add(5 * time.Second)}); cmd != nil {
		t.Error("a tick at the retry schedules another")
	}
	if diff := cmp.Diff("disconnected: connection refused · retrying… · last data 10:00:00", status()); diff != "" {
		t.Errorf("at the retry (-want +got):\n%s", diff)
	}
}

// firstMsg runs cmd (a batch: each of its commands, at once) and returns
// the first message of type T it yields within 2s.
func firstMsg[T tea.Msg](t *testing.T, cmd tea.Cmd) T {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	msgs := make(chan tea.Msg, 16)
	var run func(tea.Cmd)
	run = func(c tea.Cmd) {
		msg := c()
		if batch, ok := msg.(tea.BatchMsg); ok {
			for _, c := range batch {
				if c != nil {
					go run(c)
				}
			}
			return
		}
		msgs <- msg
	}
	go run(cmd)
	timeout := time.After(2 * time.Second)
	for {
		select {
		case msg := <-msgs:
			if m, ok := msg.(T); ok {
				return m
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T within 2s", zero)
		}
	}
}

// TestHeaderAt80KeepsPausedAndFilter: at 80 columns the status line keeps
// PAUSED and the filter whatever the daemons' part says: it goes last, and
// the edge cuts it first.
func TestHeaderAt80KeepsPausedAndFilter(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		daemons *snapshot.Daemons
	}{
		{"memory", nil},
		{"two daemons", &snapshot.Daemons{Alive: 2, Workers: 6, Busy: 1}},
		{"twelve daemons, three stopping", &snapshot.Daemons{Alive: 12, Stopping: 3, Workers: 128, Busy: 100}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap := loadSnapshot(t)
			snap.Daemons = tt.daemons
			var m tea.Model = New(context.Background(), &scriptSource{}, Options{Clock: newClock()})
			m, _ = m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
			for _, msg := range append([]tea.Msg{fetchedMsg{snap: snap, at: at}}, presses("/", "r", "u", "n", "enter", "p")...) {
				m, _ = m.Update(msg)
			}
			line := strings.Split(ansi.Strip(m.(Model).Screen()), "\n")[1]
			if want := "refreshed 10:00:01 · every 1s · PAUSED · filter: run"; !strings.HasPrefix(line, want) {
				t.Errorf("status line at 80 columns: %q, want it to begin %q", line, want)
			}
		})
	}
}
