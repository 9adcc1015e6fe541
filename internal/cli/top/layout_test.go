package top

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// manyBuckets returns the fixture with n buckets, the first banned.
func manyBuckets(t *testing.T, n int) snapshot.Snapshot {
	snap := loadSnapshot(t)
	until := snap.GeneratedAt.Add(time.Minute)
	snap.Buckets = nil
	for i := range n {
		b := snapshot.Bucket{Key: fmt.Sprintf("run:ip:10.0.0.%d", i), Limit: "run", Scope: "ip", Tokens: 1, Capacity: 10}
		if i == 0 {
			b.BannedUntil = &until
		}
		snap.Buckets = append(snap.Buckets, b)
	}
	return snap
}

// TestFocusedPaneLeavesOthersTheirRows: the spare lines are shared, so a
// long list of buckets in focus does not hide the second of two queues
// (at 120×40 the queues pane showed 1–1 of 2).
func TestFocusedPaneLeavesOthersTheirRows(t *testing.T) {
	snap := manyBuckets(t, 50)
	snap.Queues = snap.Queues[:2]
	screen := screenOf(t, snap, 120, 40, press("tab"), press("tab"))
	if !strings.Contains(screen, "Queues (2) · sort name\n") {
		t.Errorf("queues title cut short, want both rows shown:\n%s", screen)
	}
	for _, want := range []string{" default ", " emails ", "Buckets (50 and more) · sort busiest · 1–"} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q:\n%s", want, screen)
		}
	}
}

func TestLayout(t *testing.T) {
	tests := []struct {
		name   string
		n      [numPanes]int
		height int
		focus  pane
		want   [numPanes]int
	}{
		{"all fit", [numPanes]int{3, 2, 4, 2}, 30, paneQueues, [numPanes]int{3, 2, 4, 2}},
		{"the long list takes what the others leave", [numPanes]int{2, 2, 50, 2}, 37, paneBuckets, [numPanes]int{2, 2, 23, 2}},
		{"even shares, the rest to the focus", [numPanes]int{40, 40, 40, 40}, 22, paneDead, [numPanes]int{4, 4, 3, 3}},
		{"too short: the focused pane alone", [numPanes]int{40, 40, 40, 40}, 10, paneBuckets, [numPanes]int{-1, -1, 5, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, layout(tt.n, tt.height, tt.focus)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPageKeys: pgdown and pgup move the selection by the rows shown,
// end and home (G and g) to the last and first row.
func TestPageKeys(t *testing.T) {
	snap := manyBuckets(t, 50)
	var m Model
	step := func(keys ...string) int {
		t.Helper()
		for _, k := range keys {
			tm, _ := m.Update(press(k))
			m = tm.(Model)
		}
		return m.cursor[paneBuckets]
	}
	tm, _ := New(t.Context(), &scriptSource{}, Options{Clock: newClock()}).Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	tm, _ = tm.Update(fetchedMsg{snap: snap})
	m = tm.(Model)
	step("tab", "tab")
	page := m.pageRows()
	if page < 2 {
		t.Fatalf("a page of %d rows at 80×24", page)
	}
	got := []int{step("pgdown"), step("pgdown"), step("pgup"), step("end"), step("home"), step("G"), step("g")}
	if diff := cmp.Diff([]int{page, 2 * page, page, 49, 0, 49, 0}, got); diff != "" {
		t.Errorf("cursor after pgdown, pgdown, pgup, end, home, G, g (-want +got):\n%s", diff)
	}
}

// TestHelpListsEveryKey: the ? screen names shift+tab, ctrl+c and the
// paging keys.
func TestHelpListsEveryKey(t *testing.T) {
	screen := screenOf(t, loadSnapshot(t), 100, 30, press("?"))
	for _, want := range []string{"shift+tab", "ctrl+c", "pgup", "pgdn", "home", "end"} {
		if !strings.Contains(screen, want) {
			t.Errorf("help without %q:\n%s", want, screen)
		}
	}
}

// TestTinyHeaderIsCut: at tiny sizes the header's status line is cut with
// … like every other line, not wrapped over the panes.
func TestTinyHeaderIsCut(t *testing.T) {
	for _, size := range [][2]int{{20, 5}, {10, 3}} {
		lines := strings.Split(screenOf(t, loadSnapshot(t), size[0], size[1]), "\n")
		if !strings.HasPrefix(lines[1], "refreshed") || !strings.HasSuffix(lines[1], "…") {
			t.Errorf("at %dx%d, status line %q, want it cut", size[0], size[1], lines[1])
		}
		for _, l := range lines[2:] {
			if strings.Contains(l, "every") || strings.HasPrefix(l, "20:") || strings.HasPrefix(l, "00:") {
				t.Errorf("at %dx%d, the status line wrapped: %q", size[0], size[1], lines)
			}
		}
	}
}

// TestTitlesCountWhatIsLeftOut: with a filter, the queues folded into
// _other are not counted as matches but as not searched; a full list of
// buckets says there are more live keys, at least the penalized ones it
// leaves out.
func TestTitlesCountWhatIsLeftOut(t *testing.T) {
	snap := loadSnapshot(t)
	snap.QueuesTotal = len(snap.Queues) + 6
	screen := screenOf(t, snap, 100, 30, presses("/", "e", "m", "a", "enter")...)
	if !strings.Contains(screen, "Queues (1; 6 more not searched)") {
		t.Errorf("filtered queues title, want %q:\n%s", "Queues (1; 6 more not searched)", screen)
	}
	snap = manyBuckets(t, 50)
	snap.PenalizedTotal = 13
	screen = screenOf(t, snap, 100, 30)
	if !strings.Contains(screen, "Buckets (50 and at least 12 more)") {
		t.Errorf("buckets title, want %q:\n%s", "Buckets (50 and at least 12 more)", screen)
	}
}

// TestUntouchedPanesShowTheirFirstRows: a pane whose selection nobody
// moved shows its first rows however the list shifts under it. The first
// snapshot selected the first row of every pane, unfocused ones too; each
// new dead job pushed it down and the pane scrolled after it, and once it
// fell off the list of 20 the pane stayed on the oldest ones, the newest
// deaths above its window. A new ban, listed first, went the same way.
func TestUntouchedPanesShowTheirFirstRows(t *testing.T) {
	base := manyBuckets(t, 50)
	base.DeadJobs = nil
	msgs := []tea.Msg{tea.WindowSizeMsg{Width: 80, Height: 24}}
	for n := 1; n <= 40; n++ {
		s := base
		s.GeneratedAt = base.GeneratedAt.Add(time.Duration(n) * time.Second)
		for i := n; i > max(0, n-snapshot.MaxDeadJobs); i-- {
			s.DeadJobs = append(s.DeadJobs, snapshot.DeadJob{ID: fmt.Sprintf("dead-%03d", i), Queue: "default", Type: "fail",
				Attempts: 1, LastError: "boom", FinishedAt: s.GeneratedAt.Add(-time.Duration(n-i) * time.Second)})
		}
		if n == 40 { // a new ban, listed first
			until := s.GeneratedAt.Add(time.Minute)
			s.Buckets = append([]snapshot.Bucket{{Key: "run:ip:192.0.2.99", Limit: "run", Scope: "ip", Capacity: 10, BannedUntil: &until}}, s.Buckets[:49]...)
		}
		msgs = append(msgs, fetchedMsg{snap: s})
	}
	var m tea.Model = New(t.Context(), &scriptSource{}, Options{Clock: newClock(), NoColor: true})
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	screen := ansi.Strip(m.(Model).Screen())
	for _, want := range []string{"Dead jobs (20) · sort newest · 1–", " dead-040 ", "!run:ip:192.0.2.99 "} {
		if !strings.Contains(screen, want) {
			t.Errorf("no %q on the screen:\n%s", want, screen)
		}
	}
}

// TestTinyTerminalKeepsTheFooter: the body is cut, never the footer, so
// the [y/N] prompt is on screen at any height (at heights up to 8 the
// panes' titles pushed it off).
func TestTinyTerminalKeepsTheFooter(t *testing.T) {
	for h := 2; h <= 10; h++ {
		lines := strings.Split(screenOf(t, loadSnapshot(t), 80, h, press("tab"), press("tab"), press("x")), "\n")
		if len(lines) > h || !strings.HasSuffix(lines[len(lines)-1], "[y/N]") {
			t.Errorf("height %d: %d lines, the last %q, want the prompt", h, len(lines), lines[len(lines)-1])
		}
	}
}
