package top

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"
)

func TestHeader(t *testing.T) {
	snap := loadSnapshot(t)
	at := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	notReady := snap
	notReady.Daemon.Ready = false
	data := fetchedMsg{snap: snap, at: at}
	fail := fetchedMsg{err: errRefused}
	tests := []struct {
		name string
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
			name: "disconnected after data",
			msgs: []tea.Msg{data, fail, fail},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"disconnected: connection refused · retry in 2.0s · last data 10:00:01"},
		},
		{
			name: "paused and disconnected: no retry is coming",
			msgs: []tea.Msg{data, press("p"), fail},
			want: []string{"refrakt top · 127.0.0.1:8080 · v0.1.0 · up 1h02m · redis · ready · 4 workers",
				"disconnected: connection refused · last data 10:00:01 · PAUSED"},
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
			var m tea.Model = New(context.Background(), &scriptSource{}, Options{Clock: newClock()})
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
