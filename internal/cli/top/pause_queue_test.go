package top

import (
	"context"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// TestPauseQueueKey: P on the queues pane asks to pause the selected
// queue, or to resume it when the snapshot shows it paused; y does it
// through the source and the footer says so (or why not), anything else
// cancels. Like R and A, it needs a queue selected, a source that can, and
// a token that may; the _other row, which sums many queues, is none to
// pause.
func TestPauseQueueKey(t *testing.T) {
	snap := loadSnapshot(t) // queues by name: default, emails, reports
	withPaused := loadSnapshot(t)
	withPaused.Queues[1].Paused = true // emails
	withOther := loadSnapshot(t)
	withOther.Queues = []snapshot.Queue{{Name: queue.OtherQueues, Pending: 7}}
	tests := []struct {
		name       string
		snap       snapshot.Snapshot
		role       string // "": a source that cannot tell
		actionErr  error
		unchanged  bool // the source finds the queue so already
		keys       []string
		wantPrompt string
		wantStatus string
		wantCalls  []string
	}{
		{name: "P asks to pause the selected queue", keys: []string{"P"}, wantPrompt: "pause queue default? [y/N]"},
		{name: "the second queue", keys: []string{"j", "P"}, wantPrompt: "pause queue emails? [y/N]"},
		{name: "y pauses it", keys: []string{"P", "y"}, wantStatus: "queue default paused", wantCalls: []string{"pause default"}},
		{name: "a paused queue: P asks to resume it", snap: withPaused, keys: []string{"j", "P"}, wantPrompt: "resume queue emails? [y/N]"},
		{name: "y resumes it", snap: withPaused, keys: []string{"j", "P", "y"}, wantStatus: "queue emails resumed", wantCalls: []string{"resume emails"}},
		{name: "already paused (a stale screen)", unchanged: true, keys: []string{"P", "y"},
			wantStatus: "queue default was already paused", wantCalls: []string{"pause default"}},
		{name: "not paused (a stale screen)", snap: withPaused, unchanged: true, keys: []string{"j", "P", "y"},
			wantStatus: "queue emails was not paused", wantCalls: []string{"resume emails"}},
		{name: "n cancels", keys: []string{"P", "n"}, wantStatus: "cancelled"},
		{name: "outside the queues pane", keys: []string{"tab", "P"}, wantStatus: "select a queue first: tab to the Queues pane"},
		{name: "the _other row", snap: withOther, keys: []string{"P"},
			wantStatus: "_other sums many queues: use refrakt jobs pause QUEUE"},
		{name: "an operator's token", role: "operator", keys: []string{"P"}, wantStatus: "pause needs a developer token"},
		{name: "a developer's token", role: "developer", keys: []string{"P"}, wantPrompt: "pause queue default? [y/N]"},
		{name: "refused by the source", actionErr: core.Errorf(core.CodeForbidden, "the operator role may not do this"),
			keys: []string{"P", "y"}, wantStatus: "pause needs a developer token", wantCalls: []string{"pause default"}},
		{name: "failed", actionErr: core.Errorf(core.CodeNotFound, "the daemon is too old for it: upgrade it, or use top --redis"),
			snap: withPaused, keys: []string{"j", "P", "y"},
			wantStatus: "resume failed: the daemon is too old for it: upgrade it, or use top --redis", wantCalls: []string{"resume emails"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := snap
			if tt.snap.Queues != nil {
				s = tt.snap
			}
			script := &scriptSource{results: []result{{snap: s}}, actionErr: tt.actionErr, unchanged: tt.unchanged}
			m := pressKeys(t, script, s, tt.role, tt.keys)
			if diff := cmp.Diff(tt.wantPrompt+tt.wantStatus, footerOf(m)); diff != "" {
				t.Errorf("footer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, script.pauses); diff != "" {
				t.Errorf("pauses asked (-want +got):\n%s", diff)
			}
			if len(script.requeues)+len(script.resets)+len(script.allDead) > 0 {
				t.Errorf("other actions ran: requeues %q, resets %q, all dead %q", script.requeues, script.resets, script.allDead)
			}
		})
	}
	t.Run("a read-only source", func(t *testing.T) {
		var m tea.Model = New(context.Background(), readOnlySource{snap}, Options{Clock: newClock(), NoColor: true})
		m, _ = m.Update(fetchedMsg{snap: snap})
		m, cmd := m.Update(press("P"))
		if cmd != nil || m.(Model).confirm != nil {
			t.Errorf("P asked to confirm (%v) or ran a command (%v)", m.(Model).confirm != nil, cmd != nil)
		}
		if diff := cmp.Diff("this source cannot do that", footerOf(m.(Model))); diff != "" {
			t.Errorf("footer (-want +got):\n%s", diff)
		}
	})
}

// TestPausedQueueRow: a paused queue's row says so after its name, at 80
// columns and wider; the others do not.
func TestPausedQueueRow(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Queues[1].Paused = true // emails
	for _, width := range []int{80, 140} {
		screen := screenOf(t, snap, width, 24)
		var emails, others []string
		for _, l := range strings.Split(screen, "\n") {
			switch {
			case strings.Contains(l, "emails"):
				emails = append(emails, l)
			case strings.Contains(l, "(paused)"):
				others = append(others, l)
			}
		}
		if len(emails) == 0 || !strings.Contains(emails[0], "emails (paused)") {
			t.Errorf("width %d: the emails row %q does not say paused:\n%s", width, emails, screen)
		}
		if len(others) > 0 {
			t.Errorf("width %d: rows of queues not paused say paused: %q", width, others)
		}
	}
}
