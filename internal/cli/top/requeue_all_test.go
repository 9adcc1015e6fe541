package top

import (
	"context"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
)

// TestRequeueAllDeadKey: A on the dead jobs pane asks to requeue every
// dead job of the selected job's queue, y does it through the source with
// that queue and the footer says how many (or why not), and anything else
// cancels. Like R, it needs a dead job selected, a source that can, and a
// token that may.
func TestRequeueAllDeadKey(t *testing.T) {
	snap := loadSnapshot(t) // the first dead job is of queue default, the second of reports
	tests := []struct {
		name      string
		role      string // "": a source that cannot tell
		moved     int
		actionErr error
		keys      []string
		// The footer after the keys, and after the action's outcome
		// when it ran.
		wantPrompt string
		wantStatus string
		wantCalls  []string
	}{
		{name: "A asks about the selected job's queue", keys: []string{"tab", "A"},
			wantPrompt: "requeue every dead job of queue default? [y/N]"},
		{name: "the second job's queue", keys: []string{"tab", "j", "A"},
			wantPrompt: "requeue every dead job of queue reports? [y/N]"},
		{name: "y requeues them", moved: 37, keys: []string{"tab", "A", "y"},
			wantStatus: "requeued 37 dead jobs of queue default", wantCalls: []string{"default"}},
		{name: "one job", moved: 1, keys: []string{"tab", "j", "A", "y"},
			wantStatus: "requeued 1 dead job of queue reports", wantCalls: []string{"reports"}},
		{name: "n cancels", keys: []string{"tab", "A", "n"}, wantStatus: "cancelled"},
		{name: "esc cancels", keys: []string{"tab", "A", "esc"}, wantStatus: "cancelled"},
		{name: "outside the dead jobs pane", keys: []string{"A"},
			wantStatus: "select a dead job first: tab to the Dead jobs pane"},
		{name: "an operator's token", role: "operator", keys: []string{"tab", "A"},
			wantStatus: "requeue needs a developer token"},
		{name: "a developer's token", role: "developer", keys: []string{"tab", "A"},
			wantPrompt: "requeue every dead job of queue default? [y/N]"},
		{name: "refused by the source", actionErr: core.Errorf(core.CodeForbidden, "the operator role may not do this"),
			keys: []string{"tab", "A", "y"}, wantStatus: "requeue needs a developer token", wantCalls: []string{"default"}},
		{name: "failed", actionErr: core.Errorf(core.CodeNotFound, "the daemon is too old for it: upgrade it, or use top --redis"),
			keys:       []string{"tab", "A", "y"},
			wantStatus: "requeue failed: the daemon is too old for it: upgrade it, or use top --redis", wantCalls: []string{"default"}},
		{name: "failed part way", moved: 500, actionErr: core.Errorf(core.CodeUnavailable, "backend unavailable"),
			keys:       []string{"tab", "A", "y"},
			wantStatus: "requeued 500 dead jobs of queue default, then failed: backend unavailable", wantCalls: []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := &scriptSource{results: []result{{snap: snap}}, moved: tt.moved, actionErr: tt.actionErr}
			m := pressKeys(t, script, snap, tt.role, tt.keys)
			if diff := cmp.Diff(tt.wantPrompt+tt.wantStatus, footerOf(m)); diff != "" {
				t.Errorf("footer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, script.allDead); diff != "" {
				t.Errorf("queues requeued (-want +got):\n%s", diff)
			}
			if len(script.requeues)+len(script.resets) > 0 {
				t.Errorf("other actions ran: requeues %q, resets %q", script.requeues, script.resets)
			}
		})
	}
}

// TestRequeueAllDeadNeedsADeadJob: A asks nothing and runs nothing, but
// says why, on an empty dead jobs pane or with a source that cannot
// requeue.
func TestRequeueAllDeadNeedsADeadJob(t *testing.T) {
	empty := loadSnapshot(t)
	empty.DeadJobs = nil
	tests := []struct {
		name string
		src  Source
		want string
	}{
		{"no dead job", &scriptSource{results: []result{{snap: empty}}}, "no dead job selected"},
		{"a read-only source", readOnlySource{loadSnapshot(t)}, "this source cannot do that"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m tea.Model = New(context.Background(), tt.src, Options{Clock: newClock(), NoColor: true})
			snap, _ := tt.src.Fetch(context.Background())
			m, _ = m.Update(fetchedMsg{snap: snap})
			var cmd tea.Cmd
			for _, k := range []string{"tab", "A"} {
				m, cmd = m.Update(press(k))
			}
			if cmd != nil || m.(Model).confirm != nil {
				t.Errorf("A asked to confirm (%v) or ran a command (%v)", m.(Model).confirm != nil, cmd != nil)
			}
			if diff := cmp.Diff(tt.want, footerOf(m.(Model))); diff != "" {
				t.Errorf("footer (-want +got):\n%s", diff)
			}
		})
	}
}

// footerOf is the screen's last line, as plain text.
func footerOf(m Model) string {
	lines := strings.Split(ansi.Strip(m.Screen()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
