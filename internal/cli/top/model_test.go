package top

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// state is what a user can observe of a Model, for comparing.
type state struct {
	HaveData   bool
	Pending    int64 // of the first queue shown
	Err        string
	Failures   int
	RetryIn    time.Duration
	Paused     bool
	Inflight   bool
	Focus      pane
	Sorts      [numPanes]int
	Cursor     [numPanes]int
	Selected   [numPanes]string
	Filter     string
	Filtering  bool
	Confirm    string
	Status     string
	ShowHelp   bool
	Width      int
	Height     int
	Cmd        string // "", "cmd" (any), "quit", "fetch", "action"
	ResetCalls []string
	BanCalls   []string
}

func observe(m Model, cmd tea.Cmd, src *scriptSource) state {
	s := state{
		HaveData: m.haveData, Failures: m.failures, Paused: m.paused,
		Inflight: m.inflight, Focus: m.focus, Sorts: m.sorts, Cursor: m.cursor, Selected: m.selected,
		Filter: m.filter, Filtering: m.filtering, Status: m.status, ShowHelp: m.showHelp,
		Width: m.width, Height: m.height,
	}
	if qs := visibleQueues(m.snap.Queues, m.filter, m.sorts[paneQueues]); len(qs) > 0 {
		s.Pending = qs[0].Pending
	}
	if m.err != nil {
		s.Err = m.err.Error()
		s.RetryIn = m.backoff(m.failures) // the wait chosen at the last failure
	}
	if m.confirm != nil {
		s.Confirm = m.confirm.target
	}
	if cmd != nil {
		s.Cmd = "cmd"
	}
	if src != nil {
		s.ResetCalls, s.BanCalls = src.resets, src.bans
	}
	return s
}

// kind runs cmd when it returns at once and says what it produced; a tick
// (which would sleep) is only reported as "cmd".
func kind(m Model, cmd tea.Cmd) string {
	if cmd == nil {
		return ""
	}
	if m.inflight && m.confirm == nil && m.status != "working…" {
		if _, ok := cmd().(fetchedMsg); ok {
			return "fetch"
		}
	}
	if m.status == "working…" {
		if _, ok := cmd().(actionDoneMsg); ok {
			return "action"
		}
	}
	return "cmd"
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func presses(ss ...string) []tea.Msg {
	msgs := make([]tea.Msg, len(ss))
	for i, s := range ss {
		msgs[i] = press(s)
	}
	return msgs
}

func TestUpdate(t *testing.T) {
	snap := loadSnapshot(t)
	at := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	data := fetchedMsg{snap: snap, at: at}
	fail := fetchedMsg{err: errRefused, at: at.Add(time.Second)}
	// withData is the state after the first snapshot: what most cases start from.
	withData := state{HaveData: true, Pending: 1423, Width: 80, Height: 24,
		Selected: [numPanes]string{"default", "9f2c4e1a7b3d4c5e8f9a0b1c2d3e4f5a", "run:ip:203.0.113.7", "assistant"}}
	edit := func(f func(*state)) state {
		s := withData
		s.Selected = withData.Selected
		f(&s)
		return s
	}
	tests := []struct {
		name     string
		src      *scriptSource
		msgs     []tea.Msg
		want     state
		wantKind string
	}{
		{
			name: "first data arrives and the next refresh is scheduled",
			msgs: []tea.Msg{data},
			want: edit(func(s *state) { s.Cmd = "cmd" }), wantKind: "cmd",
		},
		{
			name: "an error keeps the last data and says why",
			msgs: []tea.Msg{data, fail},
			want: edit(func(s *state) {
				s.Err, s.Failures, s.RetryIn, s.Cmd = "connection refused", 1, time.Second, "cmd"
			}),
			wantKind: "cmd",
		},
		{
			name: "retries back off, doubling up to the cap",
			msgs: []tea.Msg{data, fail, fail, fail, fail, fail},
			want: edit(func(s *state) {
				s.Err, s.Failures, s.RetryIn, s.Cmd = "connection refused", 5, maxBackoff, "cmd"
			}),
			wantKind: "cmd",
		},
		{
			name: "it recovers by itself when data comes again",
			msgs: []tea.Msg{data, fail, fail, data},
			want: edit(func(s *state) { s.Cmd = "cmd" }), wantKind: "cmd",
		},
		{
			name:     "an error before any data",
			msgs:     []tea.Msg{fail},
			want:     state{Err: "connection refused", Failures: 1, RetryIn: time.Second, Width: 80, Height: 24, Cmd: "cmd"},
			wantKind: "cmd",
		},
		{
			name: "a tick of an older chain is dropped",
			msgs: []tea.Msg{data, tickMsg{seq: 0}},
			want: withData,
		},
		{
			name: "the current chain's tick fetches",
			msgs: []tea.Msg{data, tickMsg{seq: 1}},
			want: edit(func(s *state) { s.Inflight, s.Cmd = true, "cmd" }), wantKind: "fetch",
		},
		{
			name: "resize reflows",
			msgs: []tea.Msg{data, tea.WindowSizeMsg{Width: 132, Height: 50}},
			want: edit(func(s *state) { s.Width, s.Height = 132, 50 }),
		},
		{
			name: "tab moves the focus, shift+tab back",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "tab", "shift+tab")...),
			want: edit(func(s *state) { s.Focus = paneBuckets }),
		},
		{
			name: "tab wraps around",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "tab", "tab")...),
			want: withData,
		},
		{
			name: "j and down move the selection, k and up back, clamped",
			msgs: append([]tea.Msg{data}, presses("j", "down", "j", "j", "k")...),
			want: edit(func(s *state) { s.Cursor[paneQueues], s.Selected[paneQueues] = 1, "emails" }),
		},
		{
			name: "s cycles the focused pane's sort and the selection follows its row",
			msgs: append([]tea.Msg{data}, presses("j", "s")...), // emails; then by pending: default, emails, reports
			want: edit(func(s *state) {
				s.Sorts[paneQueues], s.Cursor[paneQueues], s.Selected[paneQueues] = 1, 1, "emails"
			}),
		},
		{
			name: "s wraps around to the default order",
			msgs: append([]tea.Msg{data}, presses("s", "s", "s", "s")...),
			want: withData,
		},
		{
			name: "/ opens the filter line and the panes follow each key",
			msgs: append([]tea.Msg{data}, presses("/", "e", "m")...),
			want: edit(func(s *state) {
				s.Filter, s.Filtering, s.Pending = "em", true, 3
				s.Selected = [numPanes]string{"emails", "", "", ""}
			}),
		},
		{
			name: "enter keeps the filter, backspace edits it",
			msgs: append([]tea.Msg{data}, presses("/", "r", "u", "x", "backspace", "enter")...),
			want: edit(func(s *state) {
				s.Filter, s.Pending = "ru", 0
				s.Selected = [numPanes]string{"", "", "run:ip:203.0.113.7", "run:ip"}
			}),
		},
		{
			// Selections nobody moved stay on the first rows.
			name: "esc abandons the filter line",
			msgs: append([]tea.Msg{data}, presses("/", "r", "esc")...),
			want: withData,
		},
		{
			name: "esc clears a kept filter",
			msgs: append([]tea.Msg{data}, presses("/", "r", "u", "enter", "esc")...),
			want: withData,
		},
		{
			// A moved selection follows its row through the filter.
			name: "esc after a filter keeps a moved selection on its row",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "tab", "j", "/", "r", "esc")...),
			want: edit(func(s *state) {
				s.Focus, s.Cursor[paneOverrides], s.Selected[paneOverrides] = paneOverrides, 1, "run:ip"
			}),
		},
		{
			// A new dead job comes first: an untouched selection stays on
			// the first row, the newest, rather than follow the job it
			// happened to be on.
			name:     "new rows above a selection nobody moved: it stays on the first row",
			msgs:     []tea.Msg{data, fetchedMsg{snap: withDeadJob(snap, "0a0a"), at: at.Add(time.Second)}},
			want:     edit(func(s *state) { s.Selected[paneDead], s.Cmd = "0a0a", "cmd" }),
			wantKind: "cmd",
		},
		{
			name: "new rows above a moved selection: it follows its row",
			msgs: append(append([]tea.Msg{data}, presses("tab", "j")...), fetchedMsg{snap: withDeadJob(snap, "0a0a"), at: at.Add(time.Second)}),
			want: edit(func(s *state) {
				s.Focus, s.Cursor[paneDead], s.Selected[paneDead], s.Cmd = paneDead, 2, "1b7e0c9d2a4f4e6b9c8d7e6f5a4b3c2d", "cmd"
			}),
			wantKind: "cmd",
		},
		{
			// It had kept its index: on the oldest of a full list, while
			// every new death came in above the window.
			name: "a followed row that is gone: back to the first row",
			msgs: append(append([]tea.Msg{data}, presses("tab", "j")...), fetchedMsg{snap: withoutDeadJob(withDeadJob(snap, "0a0a"), "1b7e0c9d2a4f4e6b9c8d7e6f5a4b3c2d"), at: at.Add(time.Second)}),
			want: edit(func(s *state) {
				s.Focus, s.Selected[paneDead], s.Cmd = paneDead, "0a0a", "cmd"
			}),
			wantKind: "cmd",
		},
		{
			// Bracketed paste: a line break or a control pasted with the
			// text is dropped.
			name: "a paste goes into the filter line",
			msgs: append([]tea.Msg{data}, press("/"), tea.PasteMsg{Content: "ema\nil\x1b"}),
			want: edit(func(s *state) {
				s.Filter, s.Filtering, s.Pending = "email", true, 3
				s.Selected = [numPanes]string{"emails", "", "", ""}
			}),
		},
		{
			name: "a paste outside the filter line is ignored",
			msgs: []tea.Msg{data, tea.PasteMsg{Content: "q"}},
			want: withData,
		},
		{
			name: "q while filtering is text, not quit",
			msgs: append([]tea.Msg{data}, presses("/", "q")...),
			want: edit(func(s *state) {
				s.Filter, s.Filtering, s.Pending = "q", true, 0
				s.Selected = [numPanes]string{}
			}),
		},
		{
			name: "p pauses: a fetch result schedules nothing",
			msgs: append([]tea.Msg{data}, press("p"), data),
			want: edit(func(s *state) { s.Paused = true }),
		},
		{
			name: "p again resumes with a refresh at once",
			msgs: append([]tea.Msg{data}, presses("p", "p")...),
			want: edit(func(s *state) { s.Inflight, s.Cmd = true, "cmd" }), wantKind: "fetch",
		},
		{
			name: "r refreshes now",
			msgs: append([]tea.Msg{data}, press("r")),
			want: edit(func(s *state) { s.Inflight, s.Cmd = true, "cmd" }), wantKind: "fetch",
		},
		{
			name: "r while a fetch is in flight does not start another",
			msgs: append([]tea.Msg{data}, press("r"), press("r")),
			want: edit(func(s *state) { s.Inflight = true }),
		},
		{
			name: "? opens the help and esc closes it",
			msgs: append([]tea.Msg{data}, presses("?", "j")...),
			want: edit(func(s *state) { s.ShowHelp = true }),
		},
		{
			name: "? closes the help",
			msgs: append([]tea.Msg{data}, presses("?", "?")...),
			want: withData,
		},
		{
			name: "q quits",
			msgs: append([]tea.Msg{data}, press("q")),
			want: edit(func(s *state) { s.Cmd = "cmd" }), wantKind: "quit",
		},
		{
			name: "ctrl+c quits even at a prompt",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "x", "ctrl+c")...),
			want: edit(func(s *state) {
				s.Focus, s.Confirm, s.Cmd = paneBuckets, "run:ip:203.0.113.7", "cmd"
			}),
			wantKind: "quit",
		},
		{
			name: "x outside the buckets pane explains",
			msgs: append([]tea.Msg{data}, press("x")),
			want: edit(func(s *state) { s.Status = "select a bucket first: tab to the Buckets pane" }),
		},
		{
			name: "x on a bucket asks to confirm",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "j", "x")...),
			want: edit(func(s *state) {
				s.Focus, s.Confirm = paneBuckets, "assistant:user:u-1842"
				s.Cursor[paneBuckets], s.Selected[paneBuckets] = 1, "assistant:user:u-1842"
			}),
		},
		{
			name: "n at the prompt cancels",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "x", "n")...),
			want: edit(func(s *state) { s.Focus, s.Status = paneBuckets, "cancelled" }),
		},
		{
			name: "y at the prompt resets the bucket",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "x", "y")...),
			want: edit(func(s *state) {
				s.Focus, s.Status, s.Cmd = paneBuckets, "working…", "cmd"
				s.ResetCalls = []string{"run:ip:203.0.113.7"}
			}),
			wantKind: "action",
		},
		{
			name: "a done reset says so and refreshes",
			msgs: append([]tea.Msg{data}, actionDoneMsg{action: pendingAction{actionReset, "run:ip:203.0.113.7"}}),
			want: edit(func(s *state) {
				s.Status, s.Inflight, s.Cmd = "bucket run:ip:203.0.113.7 reset", true, "cmd"
			}),
			wantKind: "fetch",
		},
		{
			name: "B outside the buckets pane explains",
			msgs: append([]tea.Msg{data}, press("B")),
			want: edit(func(s *state) { s.Status = "select a bucket first: tab to the Buckets pane" }),
		},
		{
			name: "B on a bucket asks to confirm",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "j", "B")...),
			want: edit(func(s *state) {
				s.Focus, s.Confirm = paneBuckets, "assistant:user:u-1842"
				s.Cursor[paneBuckets], s.Selected[paneBuckets] = 1, "assistant:user:u-1842"
			}),
		},
		{
			name: "n at the ban prompt cancels",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "B", "n")...),
			want: edit(func(s *state) { s.Focus, s.Status = paneBuckets, "cancelled" }),
		},
		{
			name: "y at the ban prompt bans the bucket for an hour",
			msgs: append([]tea.Msg{data}, presses("tab", "tab", "B", "y")...),
			want: edit(func(s *state) {
				s.Focus, s.Status, s.Cmd = paneBuckets, "working…", "cmd"
				s.BanCalls = []string{"run:ip:203.0.113.7 for 1h0m0s"}
			}),
			wantKind: "action",
		},
		{
			name: "a done ban says so and refreshes",
			msgs: append([]tea.Msg{data}, actionDoneMsg{action: pendingAction{actionBan, "run:ip:203.0.113.7"}}),
			want: edit(func(s *state) {
				s.Status, s.Inflight, s.Cmd = "bucket run:ip:203.0.113.7 banned for 1h", true, "cmd"
			}),
			wantKind: "fetch",
		},
		{
			name: "a ban an earlier daemon cannot do says why",
			msgs: append([]tea.Msg{data}, actionDoneMsg{
				action: pendingAction{actionBan, "run:ip:203.0.113.7"},
				err:    core.Errorf(core.CodeNotFound, "no route POST /api/dev/rate-limits/ban"),
			}),
			want: edit(func(s *state) { s.Status = "ban failed: no route POST /api/dev/rate-limits/ban" }),
		},
		{
			name: "a refused action needs a developer token",
			msgs: append([]tea.Msg{data}, actionDoneMsg{
				action: pendingAction{actionRequeue, "9f2c"},
				err:    core.Errorf(core.CodeForbidden, "HTTP 403: forbidden"),
			}),
			want: edit(func(s *state) { s.Status = "requeue needs a developer token" }),
		},
		{
			name: "a failed action says why",
			msgs: append([]tea.Msg{data}, actionDoneMsg{
				action: pendingAction{actionRequeue, "9f2c"},
				err:    core.Errorf(core.CodeNotFound, "HTTP 404: job not found"),
			}),
			want: edit(func(s *state) { s.Status = "requeue failed: HTTP 404: job not found" }),
		},
		{
			name: "R on a dead job asks to confirm",
			msgs: append([]tea.Msg{data}, presses("tab", "R")...),
			want: edit(func(s *state) { s.Focus, s.Confirm = paneDead, "9f2c4e1a7b3d4c5e8f9a0b1c2d3e4f5a" }),
		},
		{
			name: "the next key clears a status line",
			msgs: append([]tea.Msg{data}, presses("x", "j")...),
			want: edit(func(s *state) { s.Cursor[paneQueues], s.Selected[paneQueues] = 1, "emails" }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if src == nil {
				src = &scriptSource{results: []result{{snap: snap}}}
			}
			m := New(context.Background(), src, Options{Clock: newClock()})
			var cmd tea.Cmd
			for _, msg := range tt.msgs {
				var tm tea.Model
				tm, cmd = m.Update(msg)
				m = tm.(Model)
			}
			got := observe(m, cmd, src)
			gotKind := kind(m, cmd)
			if tt.want.Cmd == "cmd" && tt.wantKind == "quit" {
				if _, ok := cmd().(tea.QuitMsg); ok {
					gotKind = "quit"
				}
			}
			got.ResetCalls, got.BanCalls = src.resets, src.bans
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantKind, gotKind); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
		})
	}
}

func TestActionsNeedASourceThatHasThem(t *testing.T) {
	snap := loadSnapshot(t)
	tests := []struct {
		name string
		keys []string
	}{
		{"reset", []string{"tab", "tab", "x"}},
		{"ban", []string{"tab", "tab", "B"}},
		{"requeue", []string{"tab", "R"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m tea.Model = New(context.Background(), readOnlySource{snap}, Options{Clock: newClock()})
			m, _ = m.Update(fetchedMsg{snap: snap})
			for _, k := range tt.keys {
				m, _ = m.Update(press(k))
			}
			got := observe(m.(Model), nil, nil)
			if diff := cmp.Diff([2]string{"", "this source cannot do that"}, [2]string{got.Confirm, got.Status}); diff != "" {
				t.Errorf("prompt and status (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEmptyPanesWhileFiltering: a filter that matches nothing says so in
// every pane in the same words, not as if the pane were empty.
func TestEmptyPanesWhileFiltering(t *testing.T) {
	var m tea.Model = New(context.Background(), &scriptSource{}, Options{Clock: newClock()})
	msgs := append([]tea.Msg{tea.WindowSizeMsg{Width: 100, Height: 40}, fetchedMsg{snap: loadSnapshot(t)}}, presses("/", "z", "z", "enter")...)
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	screen := m.(Model).Screen()
	for _, want := range []string{`no queue matches "zz"`, `no dead job matches "zz"`, `no bucket matches "zz"`, `no override matches "zz"`} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen without %q:\n%s", want, screen)
		}
	}
	for _, unwanted := range []string{"no overrides", "no dead jobs", "no active buckets"} {
		if strings.Contains(screen, unwanted) {
			t.Errorf("screen says %q while filtering:\n%s", unwanted, screen)
		}
	}
}

// TestFilterBeyondShownQueues: past the 99 queues a snapshot names, a
// filter that finds none of them says the others are summed in _other and
// how to reach them, instead of saying they do not exist; the title counts
// them.
func TestFilterBeyondShownQueues(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Queues = nil
	for i := range 99 {
		snap.Queues = append(snap.Queues, snapshot.Queue{Name: fmt.Sprintf("q%04d", i)})
	}
	snap.Queues = append(snap.Queues, snapshot.Queue{Name: "_other", Pending: 1901})
	snap.QueuesTotal = 2000
	var m tea.Model = New(context.Background(), &scriptSource{}, Options{Clock: newClock()})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 200, Height: 60})
	m, _ = m.Update(fetchedMsg{snap: snap})
	if screen := m.(Model).Screen(); !strings.Contains(screen, "Queues (100 and 1900 more)") {
		t.Errorf("queues title without the count of the others:\n%s", screen)
	}
	for _, msg := range presses("/", "q", "1", "9", "enter") {
		m, _ = m.Update(msg)
	}
	want := `no queue matches "q19" among the 99 shown (1901 more in _other; refrakt jobs list --queue finds any)`
	if screen := m.(Model).Screen(); !strings.Contains(screen, want) {
		t.Errorf("screen without %q:\n%s", want, screen)
	}
}

// TestActionsNeedADeveloperToken: once the source has said the token is
// not a developer's (or an action was refused for it), x and R say so at
// once, with no prompt; a developer's token, or a role nobody could tell,
// gets the prompt. The role is asked with the first data.
func TestActionsNeedADeveloperToken(t *testing.T) {
	snap := loadSnapshot(t)
	refused := actionDoneMsg{action: pendingAction{actionReset, "run:ip:203.0.113.7"}, err: core.Errorf(core.CodeForbidden, "the operator role may not do this; it needs the developer role")}
	tests := []struct {
		name        string
		role        string // "-": a source that cannot tell
		roleErr     error
		then        []tea.Msg
		wantConfirm string
		wantStatus  string
	}{
		{name: "an operator's x", role: "operator", then: presses("tab", "tab", "x"), wantStatus: "reset needs a developer token"},
		{name: "an operator's R", role: "operator", then: presses("tab", "R"), wantStatus: "requeue needs a developer token"},
		{name: "an operator's B", role: "operator", then: presses("tab", "tab", "B"), wantStatus: "ban needs a developer token"},
		{name: "a developer's B", role: "developer", then: presses("tab", "tab", "B"), wantConfirm: "run:ip:203.0.113.7"},
		{name: "a developer's x", role: "developer", then: presses("tab", "tab", "x"), wantConfirm: "run:ip:203.0.113.7"},
		{name: "a developer's R", role: "developer", then: presses("tab", "R"), wantConfirm: "9f2c4e1a7b3d4c5e8f9a0b1c2d3e4f5a"},
		{name: "no answer: the prompt", roleErr: core.Errorf(core.CodeNotFound, "no such route"), then: presses("tab", "tab", "x"), wantConfirm: "run:ip:203.0.113.7"},
		{name: "a source without roles: the prompt", role: "-", then: presses("tab", "tab", "x"), wantConfirm: "run:ip:203.0.113.7"},
		{name: "after a refused action, at once", role: "-", then: append([]tea.Msg{refused}, presses("tab", "tab", "x")...),
			wantStatus: "reset needs a developer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := &scriptSource{results: []result{{snap: snap}}}
			var src Source = roleSource{scriptSource: script, role: tt.role, err: tt.roleErr}
			if tt.role == "-" {
				src = script
			}
			var m tea.Model = New(context.Background(), src, Options{Clock: newClock()})
			m, cmd := m.Update(fetchedMsg{snap: snap})
			if tt.role != "-" {
				m, _ = m.Update(firstMsg[roleMsg](t, cmd))
			}
			for _, msg := range tt.then {
				m, _ = m.Update(msg)
			}
			got := observe(m.(Model), nil, script)
			if diff := cmp.Diff([2]string{tt.wantConfirm, tt.wantStatus}, [2]string{got.Confirm, got.Status}); diff != "" {
				t.Errorf("prompt and status (-want +got):\n%s", diff)
			}
			if len(script.resets)+len(script.requeues)+len(script.bans) > 0 {
				t.Errorf("actions ran: resets %q, requeues %q, bans %q", script.resets, script.requeues, script.bans)
			}
		})
	}
}
