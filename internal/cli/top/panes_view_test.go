package top

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// screenOf is the plain text of the screen of a model given snap at
// width×height, after msgs.
func screenOf(t *testing.T, snap snapshot.Snapshot, width, height int, msgs ...tea.Msg) string {
	t.Helper()
	var m tea.Model = New(context.Background(), &scriptSource{}, Options{Clock: newClock(), NoColor: true})
	m, _ = m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	m, _ = m.Update(fetchedMsg{snap: snap})
	for _, msg := range msgs {
		m, _ = m.Update(msg)
	}
	return ansi.Strip(m.(Model).Screen())
}

// TestColumnsShowWholeValues: a queue whose finished jobs all failed reads
// 100.0% at any width, counts beyond five digits are abbreviated rather
// than cut, and a wide terminal shows whole queue names (two that differ
// at their end stay apart) and whole dead job ids (to copy into
// `refrakt jobs get`).
func TestColumnsShowWholeValues(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Queues = []snapshot.Queue{
		{Name: "reports.daily.region-eu-west-1", Pending: 2, Running: 100000, Scheduled: 123456, Dead: 7654321, FailureRate: 1},
		{Name: "reports.daily.region-eu-west-2", Pending: 1234567},
	}
	snap.DeadJobs[0].Queue = "reports.daily.region-eu-west-1"
	for _, width := range []int{80, 120, 250} {
		screen := screenOf(t, snap, width, 40)
		if !strings.Contains(screen, "100.0%") {
			t.Errorf("at %d columns, no 100.0%%:\n%s", width, screen)
		}
		for _, want := range []string{"100k", "123k", "7654k", "1234k"} {
			if !strings.Contains(screen, " "+want+" ") {
				t.Errorf("at %d columns, no %s:\n%s", width, want, screen)
			}
		}
	}
	screen := screenOf(t, snap, 250, 40)
	for _, want := range []string{
		"reports.daily.region-eu-west-1 ", "reports.daily.region-eu-west-2 ", // the queues
		"9f2c4e1a7b3d4c5e8f9a0b1c2d3e4f5a reports.daily.region-eu-west-1 fail", // a dead job
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("at 250 columns, no %q:\n%s", want, screen)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		n     int64
		width int
		want  string
	}{
		{0, 5, "0"}, {99999, 5, "99999"}, {100000, 5, "100k"}, {999999, 5, "999k"}, {1234567, 5, "1234k"},
		{12345678, 5, "12M"}, {999999, 6, "999999"}, {1234567, 6, "1234k"}, {19_990_000_000, 5, "19G"},
		{1234567, 4, "1.2M"}, {5500, 4, "5500"}, {5500, 3, "5k"},
	}
	for _, tt := range tests {
		if got := count(tt.n, tt.width); got != tt.want {
			t.Errorf("count(%d, %d) = %q, want %q", tt.n, tt.width, got, tt.want)
		}
	}
}

// TestFilterMatchesShownText (code28 NIT 12): the filter finds a string by
// what the screen shows of it (its escapes, in either case) as well as by
// the string itself.
func TestFilterMatchesShownText(t *testing.T) {
	qs := []snapshot.Queue{{Name: "mail\u202elia"}, {Name: "email"}, {Name: `lit\u202e`}}
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{`\u202e`, []string{`lit\u202e`, "mail\u202elia"}},
		{`\U202E`, []string{`lit\u202e`, "mail\u202elia"}},
		{"\u202e", []string{"mail\u202elia"}},
		{"mail", []string{"email", "mail\u202elia"}},
		{"zzz", nil},
	} {
		var got []string
		for _, q := range visibleQueues(qs, tt.filter, 0) {
			got = append(got, q.Name)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("filter %q (-want +got):\n%s", tt.filter, diff)
		}
	}
}

// TestWideKeysMeasuredInCells: columns are sized in cells, not runes, so a
// key of CJK characters (two cells each; a user id or tenant a client
// chose) is shown whole on a wide terminal; on a narrow one it is cut in
// its middle, so two keys that differ at their end stay apart.
func TestWideKeysMeasuredInCells(t *testing.T) {
	snap := loadSnapshot(t)
	a := "secure-ping:user_tenant:用户甲用户甲用户甲用户甲:t1"
	b := "secure-ping:user_tenant:用户甲用户甲用户甲用户乙:t1"
	snap.Buckets = []snapshot.Bucket{
		{Key: a, Limit: "secure-ping", Scope: "user_tenant", Tokens: 28, Capacity: 30},
		{Key: b, Limit: "secure-ping", Scope: "user_tenant", Tokens: 28, Capacity: 30},
	}
	screen := screenOf(t, snap, 200, 40)
	for _, k := range []string{a, b} {
		if !strings.Contains(screen, "  "+k+" ") {
			t.Errorf("at 200 columns, key %q not shown whole:\n%s", k, screen)
		}
	}
	screen = screenOf(t, snap, 80, 40)
	for _, end := range []string{"户甲用户甲:t1 ", "户甲用户乙:t1 "} {
		if !strings.Contains(screen, "secure-ping:us…"+end) {
			t.Errorf("at 80 columns, no key cut in its middle ending %q:\n%s", end, screen)
		}
	}
	for _, l := range strings.Split(screen, "\n") {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("a line of %d cells at 80 columns: %q", w, l)
		}
	}
}

func TestCutMiddle(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"run:ip:203.0.113.7", 20, "run:ip:203.0.113.7"},
		{"run:ip:203.0.113.7", 9, "run:…13.7"},
		{"k:用户甲用户乙", 8, "k:…户乙"}, // the 用 across the cut is dropped: 7 cells, fit pads
		{"abcdef", 2, "abcdef"},  // too narrow for a cut in the middle: fit cuts it
	}
	for _, tt := range tests {
		got := cutMiddle(tt.s, tt.width)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("cutMiddle(%q, %d) (-want +got):\n%s", tt.s, tt.width, diff)
		}
		if w := ansi.StringWidth(got); w > tt.width && tt.width >= 3 {
			t.Errorf("cutMiddle(%q, %d) is %d cells", tt.s, tt.width, w)
		}
	}
}

// TestLargeCapacitiesAbbreviated: tokens and capacity are abbreviated as
// the queues' counts are, rather than cut (5000000/50…) at any width.
func TestLargeCapacitiesAbbreviated(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Buckets = []snapshot.Bucket{
		{Key: "run:ip:203.0.113.9", Limit: "run", Scope: "ip", Tokens: 4_999_999, Capacity: 5_000_000},
		{Key: "run:ip:203.0.113.10", Limit: "run", Scope: "ip", Tokens: 99_999, Capacity: 1 << 30},
		{Key: "run:ip:203.0.113.11", Limit: "run", Scope: "ip", Tokens: 28, Capacity: 30},
	}
	for _, width := range []int{80, 200} {
		screen := screenOf(t, snap, width, 40)
		for _, want := range []string{" 4999k/5000k ", " 99999/1073M ", " 28/30 "} {
			if !strings.Contains(screen, want) {
				t.Errorf("at %d columns, no %q:\n%s", width, want, screen)
			}
		}
	}
}

// TestPastedFilterEscapedOnScreen: a filter may now be pasted, a bidi
// control with it: the filter line and the header show it escaped.
func TestPastedFilterEscapedOnScreen(t *testing.T) {
	paste := tea.PasteMsg{Content: "mail\u202elia"}
	screen := screenOf(t, loadSnapshot(t), 100, 30, press("/"), paste)
	if footer := screen[strings.LastIndex(screen, "\n")+1:]; !strings.HasPrefix(footer, `/mail\u202elia▏`) {
		t.Errorf("filter line %q, want the control escaped", footer)
	}
	screen = screenOf(t, loadSnapshot(t), 100, 30, press("/"), paste, press("enter"))
	if !strings.Contains(screen, `filter: mail\u202elia`) {
		t.Errorf("header without the escaped filter:\n%s", screen)
	}
}

// TestSmallAndLargeValuesStayApart: rounding neither hides a small value
// (two jobs a minute read 0.0/s beside a busy sparkline; 0.04% failures
// read 0.0%) nor inflates a large one (99.96% read 100.0%, "every job
// fails"); an age of 100 days or more fits its 6-cell column.
func TestSmallAndLargeValuesStayApart(t *testing.T) {
	got := []string{rate(0), rate(1.0 / 30), rate(0.05), rate(42.5),
		percent(0), percent(0.0004), percent(0.031), percent(0.9996), percent(1),
		Age(99*24*time.Hour + 23*time.Hour), Age(123 * 24 * time.Hour)}
	want := []string{"0.0", "<0.1", "0.1", "42.5",
		"0.0%", "<0.1%", "3.1%", ">99.9%", "100.0%",
		"99d23h", "123d"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rate, percent, age (-want +got):\n%s", diff)
	}
}
