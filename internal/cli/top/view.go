package top

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/refrakt/refrakt/internal/cli/termtext"
)

// View draws the screen: the header, the four panes sharing the height,
// and the footer. Every line is cut to the width, so a narrow terminal
// never wraps.
func (m Model) View() tea.View {
	v := tea.NewView(m.Screen())
	v.AltScreen = true
	v.WindowTitle = "refrakt top"
	return v
}

// Screen is the text of the view, also what the golden tests compare.
func (m Model) Screen() string {
	lines := m.header()
	bodyHeight := max(0, m.height-len(lines)-1) // bodyHeight, the header built once
	if m.showHelp {
		lines = append(lines, m.helpScreen(bodyHeight)...)
	} else {
		lines = append(lines, m.body(bodyHeight)...)
	}
	for len(lines) < m.height-1 {
		lines = append(lines, "")
	}
	if len(lines) > m.height-1 {
		// Too short: the body is cut, never the footer, which holds the
		// [y/N] prompt and the filter line.
		lines = lines[:max(0, m.height-1)]
	}
	lines = append(lines, m.footer())
	if len(lines) > m.height {
		lines = lines[:m.height]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > m.width {
			lines[i] = ansi.Truncate(l, m.width, "…")
		}
	}
	return strings.Join(lines, "\n")
}

// header is two lines: what is drawn and its health, then the freshness of
// the data or why it is stale.
func (m Model) header() []string {
	t := m.theme
	// The scheme of a plain http URL is noise on an 80-column header.
	parts := []string{t.title.Render("refrakt top"), termtext.Escape(strings.TrimPrefix(m.src.Name(), "http://"))}
	switch d := m.snap.Daemon; {
	case isDirect(m.src):
		// No daemon: what is read, and from what backend once known.
		parts = append(parts, "read directly, no daemon")
		if m.haveData && d.Backend != "" {
			parts = append(parts, termtext.Escape(d.Backend))
		}
	case m.haveData && m.err != nil:
		// Uptime, readiness and workers are live: the last ones known
		// would be stale while the daemon does not answer.
		parts = append(parts, termtext.Escape(d.Version), termtext.Escape(d.Backend))
	case m.haveData:
		ready := t.good.Render("ready")
		if !d.Ready {
			ready = t.bad.Render("NOT READY")
		}
		parts = append(parts, termtext.Escape(d.Version), "up "+Age(seconds(d.UptimeSeconds)), termtext.Escape(d.Backend), ready,
			fmt.Sprintf("%d workers", d.Workers))
	}
	first := strings.Join(parts, " · ")

	var second []string
	switch {
	case m.err != nil:
		// The daemon's message is part of it.
		second = append(second, t.bad.Render(termtext.Escape(problem(m.err))))
		switch left := m.retryAt.Sub(m.now); {
		case m.paused:
		case m.inflight || left <= 0:
			second = append(second, "retrying…")
		default:
			second = append(second, "retry in "+Age(left))
		}
		if m.haveData {
			second = append(second, "last data "+m.lastOK.Format("15:04:05"))
		}
	case !m.haveData:
		second = append(second, "connecting…")
	default:
		second = append(second, "refreshed "+m.lastOK.Format("15:04:05"), "every "+m.interval.String())
	}
	if m.paused {
		second = append(second, t.warn.Render("PAUSED"))
	}
	if m.filter != "" && !m.filtering {
		// Escaped: it may be pasted (a bidi control with it).
		second = append(second, "filter: "+termtext.Escape(m.filter))
	}
	if ds := m.snap.Daemons; m.err == nil && m.haveData && ds != nil {
		// The daemons alive on the shared backend (absent in memory), last:
		// at 80 columns the edge cuts them rather than PAUSED or the filter.
		part := fmt.Sprintf("%s, %d/%d workers busy", plural(ds.Alive, "daemon"), ds.Busy, ds.Workers)
		if ds.Stopping > 0 {
			part += fmt.Sprintf(", %d stopping", ds.Stopping)
		}
		second = append(second, part)
	}
	// What is wrong, with the advice that goes with it (a rejected token's
	// says how to give another), is not cut at the edge: the second line
	// wraps, over at most maxStatusLines lines. Anything else is cut at the
	// edge (Screen) like every other line.
	lines := []string{first}
	if m.err == nil {
		return append(lines, strings.Join(second, " · "))
	}
	wrapped := wrapWords(strings.Join(second, " · "), m.width)
	if len(wrapped) > maxStatusLines {
		wrapped = wrapped[:maxStatusLines]
		last := &wrapped[maxStatusLines-1]
		*last = ansi.Truncate(*last, max(m.width-1, 0), "") + "…"
	}
	return append(lines, wrapped...)
}

// maxStatusLines bounds the header's status line once wrapped, so that
// the panes keep the screen.
const maxStatusLines = 4

// wrapWords wraps s to width cells at spaces, and within a word only when
// the word alone is wider. ansi.Wrap also breaks after every hyphen, which
// would cut a flag ("--token") in two: hyphens are swapped for non-breaking
// ones while it wraps.
func wrapWords(s string, width int) []string {
	const nbHyphen = "\u2011"
	s = strings.ReplaceAll(s, "-", nbHyphen)
	s = ansi.Wrap(s, max(width, 1), "")
	return strings.Split(strings.ReplaceAll(s, nbHyphen, "-"), "\n")
}

// footer is the confirmation prompt, the filter line, the last action's
// outcome, or the short help, in that order of precedence.
func (m Model) footer() string {
	switch {
	case m.confirm != nil:
		q := "reset bucket " + termtext.Escape(m.confirm.target)
		switch m.confirm.kind {
		case actionBan:
			q = "ban " + termtext.Escape(m.confirm.target) + " for 1h"
		case actionRequeue:
			q = "requeue dead job " + termtext.Escape(m.confirm.target)
		case actionRequeueAll:
			q = "requeue every dead job of queue " + termtext.Escape(m.confirm.target)
		case actionPauseQueue:
			q = "pause queue " + termtext.Escape(m.confirm.target)
		case actionResumeQueue:
			q = "resume queue " + termtext.Escape(m.confirm.target)
		}
		return m.theme.warn.Render(q + "? [y/N]")
	case m.filtering:
		return "/" + termtext.Escape(m.filter) + "▏  enter keep · esc cancel"
	case m.status != "": // may hold the daemon's message
		return termtext.Escape(m.status)
	}
	return m.help.ShortHelpView(m.keys.ShortHelp())
}

// helpScreen lists every key and what the panes show.
func (m Model) helpScreen(height int) []string {
	lines := []string{"", m.theme.title.Render("Keys"), ""}
	lines = append(lines, strings.Split(m.help.FullHelpView(m.keys.FullHelp()), "\n")...)
	lines = append(lines, "",
		"x, B, R, A and P ask to confirm first, and need a developer token.",
		"s sorts the focused pane; / filters every pane by queue, key or target.",
		"",
		m.theme.title.Render("Panes"),
		"Queues     gauges; enqueue/s and done/s with the last minute's sparklines;",
		"           the failure rate. ! marks a queue admission control refuses;",
		"           (paused) one whose jobs wait for refrakt jobs resume (P).",
		"Dead jobs  the newest jobs that ran out of retries.",
		"Buckets    banned and struck keys first, then the most recently active:",
		"           tokens left of capacity, strikes, ban left. ! marks a ban.",
		"Overrides  limits changed at runtime: capacity/window, mode, expiry.",
		"",
		"? or esc closes this help.")
	if len(lines) > height {
		lines = lines[:height]
	}
	return lines
}

// plural is n and noun, with an s when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
