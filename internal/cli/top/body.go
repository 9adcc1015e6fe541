package top

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// section is one pane ready to draw: its column header, its number of
// rows and how to draw row i. The body draws only the window of rows that
// fits, however many rows there are: around the cursor in the focused pane,
// the first ones in the others.
type section struct {
	cols   string
	n      int
	row    func(i int) string
	cursor int
	empty  string // the line shown when there are no rows
	// more counts the rows the source left out of its bounded list, which
	// the title mentions; when moreUnknown, there may be others (more is
	// then a lower bound, maybe 0).
	more        int
	moreUnknown bool
}

// count is what a pane's title says in brackets: its rows, and those the
// source left out. With a filter, the rows are the matches, and those left
// out were not searched.
func (s section) count(filtering bool) string {
	out := fmt.Sprint(s.n)
	var more string
	switch {
	case s.moreUnknown && s.more > 0:
		more = fmt.Sprintf("at least %d more", s.more)
	case s.moreUnknown:
		more = "more"
	case s.more > 0:
		more = fmt.Sprintf("%d more", s.more)
	default:
		return out
	}
	if filtering {
		return out + "; " + more + " not searched"
	}
	return out + " and " + more
}

// layout shares height lines among panes of n[p] rows each: how many rows
// each shows, -1 for its title only. Each pane gets its title, its column
// header and at least one row; the spare lines are shared out evenly among
// the panes that have more rows, none getting more than it has (a long
// list of buckets no longer hid the second of two queues), and what an
// even share leaves goes to the focused pane first, then the others in
// screen order. Too short a terminal shows the focused pane and only the
// titles of the others.
func layout(n [numPanes]int, height int, focus pane) [numPanes]int {
	var rows [numPanes]int
	if height < 3*int(numPanes) {
		for p := range numPanes {
			rows[p] = -1
		}
		rows[focus] = max(1, height-int(numPanes)-1)
		return rows
	}
	spare := height - 3*int(numPanes)
	order := []pane{focus}
	for p := range numPanes {
		rows[p] = 1
		if p != focus {
			order = append(order, p)
		}
	}
	for spare > 0 {
		var hungry []pane // in order
		for _, p := range order {
			if rows[p] < n[p] {
				hungry = append(hungry, p)
			}
		}
		if len(hungry) == 0 {
			break
		}
		share := spare / len(hungry)
		if share == 0 {
			for _, p := range hungry[:spare] {
				rows[p]++
			}
			break
		}
		for _, p := range hungry {
			add := min(share, n[p]-rows[p])
			rows[p] += add
			spare -= add
		}
	}
	return rows
}

// bodyHeight is the number of lines the panes share.
func (m Model) bodyHeight() int { return max(0, m.height-len(m.header())-1) }

// body lays the panes out in height lines (layout).
func (m Model) body(height int) []string {
	if !m.haveData {
		if m.err != nil {
			return []string{"", "no data yet"}
		}
		return []string{"", "waiting for the first snapshot…"}
	}
	secs := [numPanes]section{
		paneQueues:    m.queuesSection(),
		paneDead:      m.deadSection(),
		paneBuckets:   m.bucketsSection(),
		paneOverrides: m.overridesSection(),
	}
	var n [numPanes]int
	for p := range numPanes {
		n[p] = secs[p].n
	}
	rows := layout(n, height, m.focus) // rows shown per pane; -1: the title only

	var out []string
	for p := range numPanes {
		s := secs[p]
		marker, style := "  ", m.theme.title
		if p == m.focus {
			marker, style = "▶ ", m.theme.focus
		}
		title := fmt.Sprintf("%s%s (%s) · sort %s", marker, paneNames[p], s.count(m.filter != ""), sortNames[p][m.sorts[p]])
		n := rows[p]
		// Only the focused pane scrolls to its cursor: the others, whose
		// selection is not drawn, show their first rows (the newest dead
		// jobs, the bans).
		start := 0
		if p == m.focus && n > 0 && s.cursor >= n {
			start = s.cursor - n + 1
		}
		if n >= 0 && s.n > n {
			title += fmt.Sprintf(" · %d–%d of %d", start+1, min(start+n, s.n), s.n)
		}
		out = append(out, style.Render(title))
		if n < 0 {
			continue
		}
		out = append(out, m.theme.colHeader.Render(s.cols))
		if s.n == 0 {
			out = append(out, m.theme.dim.Render("  "+s.empty))
			continue
		}
		for i := start; i < min(start+n, s.n); i++ {
			out = append(out, s.row(i))
		}
	}
	return out
}

// column is one column of a pane: its header, width and alignment.
type column struct {
	title string
	width int
	right bool
}

// line joins the cells of a row (or the titles, when vals is nil) after a
// two-cell gutter that marks the selection and warnings.
func line(gutter string, cols []column, vals []string) string {
	var b strings.Builder
	b.WriteString(gutter)
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := c.title
		if vals != nil {
			v = vals[i]
		}
		cell := fit(v, c.width, c.right)
		if i == len(cols)-1 && !c.right {
			// No padding after the last cell: lines end where their text does.
			cell = ansi.Truncate(v, c.width, "…")
		}
		b.WriteString(cell)
	}
	return b.String()
}

// gutter is the two cells before a row: '>' on the focused pane's
// selected row, and mark (e.g. '!') when the row needs attention.
func (m Model) gutter(p pane, i int, mark byte) string {
	sel := byte(' ')
	if p == m.focus && i == m.cursor[p] {
		sel = '>'
	}
	return string([]byte{sel, mark})
}

// styleRow renders a finished row: reversed when selected, warn when it
// needs attention.
func (m Model) styleRow(p pane, i int, row string, warn bool) string {
	switch {
	case p == m.focus && i == m.cursor[p]:
		return m.theme.selected.Render(row)
	case warn:
		return m.theme.warn.Render(row)
	}
	return row
}

// widest returns the width in cells of the widest of vals, between lo and
// hi. Cells, not runes: a CJK character or an emoji takes two, and a key
// measured in runes was cut at any terminal width.
func widest(lo, hi int, vals ...string) int {
	w := lo
	for _, v := range vals {
		w = max(w, ansi.StringWidth(v))
	}
	return min(w, hi)
}
