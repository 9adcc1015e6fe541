package top

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/cli/termtext"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// maxSpark is the widest a sparkline grows: one cell a second.
const maxSpark = 60

// Every string of the snapshot is a server's and is escaped before it is
// measured or drawn (termtext.Escape): a queue name or a last error cannot
// move the cursor, recolour the screen or reorder the row. The filter
// matches a string as it is or as it is shown (contains); the actions use
// the strings as they are.

func (m Model) queuesSection() section {
	qs := visibleQueues(m.snap.Queues, m.filter, m.sorts[paneQueues])
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = termtext.Escape(q.Name)
		if q.Paused {
			// Its jobs wait on purpose: say so where the eye reads the
			// name (cutMiddle keeps a name's end).
			names[i] += " (paused)"
		}
	}
	// A name is cut at 20 cells only when the terminal has no room for
	// more: names that differ at their end must stay apart.
	cols := []column{{"QUEUE", widest(5, 20, names...), false}, {"PEND", 6, true}, {"RUN", 5, true}, {"SCHED", 5, true},
		{"DEAD", 5, true}, {"OLDEST", 6, true}, {"ENQ/S", 6, true}, {"DONE/S", 6, true}, {"FAIL", 6, true}}
	grow(m.width-usedWidth(cols), cols[:1], widest(5, maxCell, names...))
	used := usedWidth(cols)
	spark := min(maxSpark, (m.width-used-2)/2)
	if spark >= 4 {
		// Each sparkline sits after its rate.
		cols = append(cols[:7], append([]column{{"", spark, false}}, cols[7:]...)...)
		cols = append(cols[:9], append([]column{{"", spark, false}}, cols[9:]...)...)
	} else {
		spark = 0
	}
	s := section{cols: line("  ", cols, nil), cursor: m.cursor[paneQueues], empty: "no queues"}
	// Past 100 queues the snapshot names the 99 busiest and sums the rest
	// as _other: those are not here to find.
	// The title counts the rows and the queues beyond them (the _other row
	// stands for all of those).
	named := len(m.snap.Queues)
	if slices.ContainsFunc(m.snap.Queues, func(q snapshot.Queue) bool { return q.Name == queue.OtherQueues }) {
		named--
	}
	s.more = max(0, m.snap.QueuesTotal-len(m.snap.Queues))
	if m.filter != "" {
		s.empty = "no queue matches " + strconv.Quote(m.filter)
		if folded := m.snap.QueuesTotal - named; folded > 0 && named < len(m.snap.Queues) {
			s.empty += fmt.Sprintf(" among the %d shown (%d more in %s; refrakt jobs list --queue finds any)", named, folded, queue.OtherQueues)
		}
	}
	s.n = len(qs)
	s.row = func(i int) string {
		q := qs[i]
		oldest := "-"
		if q.OldestPendingSeconds > 0 {
			oldest = Age(seconds(q.OldestPendingSeconds))
		}
		vals := []string{cutMiddle(names[i], cols[0].width), count(q.Pending, 6), count(q.Running, 5),
			count(q.Scheduled, 5), count(q.Dead, 5), oldest,
			rate(q.EnqueueRate), rate(q.DoneRate), percent(q.FailureRate)}
		if spark > 0 {
			h := m.history[q.Name]
			end := m.snap.GeneratedAt
			if len(h.samples) > 0 {
				end = h.samples[len(h.samples)-1].at
			}
			enq := sparkline(series(h.samples, end, spark, func(r rateSample) float64 { return r.enq }))
			done := sparkline(series(h.samples, end, spark, func(r rateSample) float64 { return r.done }))
			vals = append(vals[:7], append([]string{enq}, vals[7:]...)...)
			vals = append(vals[:9], append([]string{done}, vals[9:]...)...)
		}
		mark := byte(' ')
		if q.Admission.Refusing {
			mark = '!'
		}
		row := line(m.gutter(paneQueues, i, mark), cols, vals)
		return m.styleRow(paneQueues, i, row, q.Admission.Refusing)
	}
	return s
}

func (m Model) deadSection() section {
	js := visibleDead(m.snap.DeadJobs, m.filter, m.sorts[paneDead])
	var ids, queues, types []string
	for _, j := range js {
		ids, queues, types = append(ids, termtext.Escape(j.ID)), append(queues, termtext.Escape(j.Queue)), append(types, termtext.Escape(j.Type))
	}
	cols := []column{{"ID", widest(2, 10, ids...), false}, {"QUEUE", widest(5, 12, queues...), false},
		{"TYPE", widest(4, 10, types...), false}, {"ATT", 3, true}, {"AGO", 6, true}}
	// A wider terminal shows whole ids (to copy into `refrakt jobs get`),
	// then whole queue names and types, keeping room for the error.
	const minError = 20
	grow(m.width-usedWidth(cols)-1-minError, cols[:3],
		widest(2, maxCell, ids...), widest(5, maxCell, queues...), widest(4, maxCell, types...))
	used := usedWidth(cols) + 1
	cols = append(cols, column{"LAST ERROR", max(5, m.width-used), false})
	s := section{cols: line("  ", cols, nil), cursor: m.cursor[paneDead], empty: "no dead jobs"}
	if m.filter != "" {
		s.empty = "no dead job matches " + strconv.Quote(m.filter)
	}
	s.n = len(js)
	s.row = func(i int) string {
		j := js[i]
		errText := termtext.Escape(strings.Join(strings.Fields(j.LastError), " "))
		vals := []string{ids[i], queues[i], types[i], strconv.Itoa(j.Attempts), Age(m.snap.GeneratedAt.Sub(j.FinishedAt)), errText}
		return m.styleRow(paneDead, i, line(m.gutter(paneDead, i, ' '), cols, vals), false)
	}
	return s
}

func (m Model) bucketsSection() section {
	bs := visibleBuckets(m.snap.Buckets, m.filter, m.sorts[paneBuckets])
	var keys, limits, scopes, counts []string
	for _, b := range bs {
		keys, limits, scopes = append(keys, termtext.Escape(b.Key)), append(limits, termtext.Escape(b.Limit)), append(scopes, termtext.Escape(b.Scope))
		// Abbreviated as the queues' counts are: a capacity an override
		// raised (up to 2^30) was cut at 11 cells, 5000000/50….
		counts = append(counts, count(b.Tokens, 5)+"/"+count(b.Capacity, 5))
	}
	limW, scopeW, countW := widest(5, 12, limits...), widest(5, 11, scopes...), widest(1, 11, counts...)
	keyWant := widest(3, 200, keys...)
	fixed := 2 + limW + scopeW + 1 + countW + 4 + 6 + 6 // and the key and the bar
	bar := max(5, min(20, m.width-fixed-keyWant))
	keyW := max(3, m.width-fixed-bar)
	if keyW > keyWant {
		keyW = keyWant
	}
	cols := []column{{"KEY", keyW, false}, {"LIMIT", limW, false}, {"SCOPE", scopeW, false},
		{"TOKENS", bar + 1 + countW, false}, {"STRK", 4, true}, {"BAN", 6, true}}
	s := section{cols: line("  ", cols, nil), cursor: m.cursor[paneBuckets], empty: "no active buckets"}
	// The snapshot lists at most MaxBuckets keys, and counts only the
	// penalized ones of all: a full list may leave out any number of
	// others.
	if len(m.snap.Buckets) >= snapshot.MaxBuckets {
		penalized := 0
		for _, b := range m.snap.Buckets {
			if b.Strikes > 0 || (b.BannedUntil != nil && b.BannedUntil.After(m.snap.GeneratedAt)) {
				penalized++
			}
		}
		s.more, s.moreUnknown = max(0, m.snap.PenalizedTotal-penalized), true
	}
	if m.filter != "" {
		s.empty = "no bucket matches " + strconv.Quote(m.filter)
	}
	s.n = len(bs)
	s.row = func(i int) string {
		b := bs[i]
		full, empty := fillBar(b.Tokens, b.Capacity, bar)
		selected := paneBuckets == m.focus && i == m.cursor[paneBuckets]
		if !selected {
			full, empty = m.theme.barFull.Render(full), m.theme.barEmpty.Render(empty)
		}
		tokens := full + empty + " " + fit(counts[i], countW, true)
		ban, banned := "-", b.BannedUntil != nil && b.BannedUntil.After(m.snap.GeneratedAt)
		if banned {
			ban = Age(b.BannedUntil.Sub(m.snap.GeneratedAt))
			if !selected {
				ban = m.theme.bad.Render(ban)
			}
		}
		mark := byte(' ')
		if banned {
			mark = '!'
		}
		vals := []string{cutMiddle(keys[i], keyW), limits[i], scopes[i], tokens, strconv.Itoa(b.Strikes), ban}
		return m.styleRow(paneBuckets, i, line(m.gutter(paneBuckets, i, mark), cols, vals), false)
	}
	return s
}

func (m Model) overridesSection() section {
	ovs := visibleOverrides(m.snap.Overrides, m.filter, m.sorts[paneOverrides])
	var targets, policies []string
	for _, o := range ovs {
		targets = append(targets, termtext.Escape(o.Target))
		policies = append(policies, fmt.Sprintf("%d/%s", o.Capacity, window(o.WindowSeconds)))
	}
	polW := widest(6, 16, policies...)
	fixed := 2 + polW + 7 + 9 + 3
	cols := []column{{"TARGET", max(6, min(widest(6, 200, targets...), m.width-fixed)), false},
		{"POLICY", polW, false}, {"MODE", 7, false}, {"EXPIRES", 9, true}}
	s := section{cols: line("  ", cols, nil), cursor: m.cursor[paneOverrides], empty: "no overrides"}
	if m.filter != "" {
		s.empty = "no override matches " + strconv.Quote(m.filter)
	}
	s.n = len(ovs)
	// The snapshot lists the broadest 50 overrides of all those in force.
	s.more = max(0, m.snap.OverridesTotal-len(m.snap.Overrides))
	s.row = func(i int) string {
		o := ovs[i]
		expires := "never"
		if o.ExpiresAt != nil {
			expires = "in " + Age(o.ExpiresAt.Sub(m.snap.GeneratedAt))
		}
		vals := []string{cutMiddle(targets[i], cols[0].width), policies[i], termtext.Escape(o.Mode), expires}
		return m.styleRow(paneOverrides, i, line(m.gutter(paneOverrides, i, ' '), cols, vals), false)
	}
	return s
}

// maxCell is the widest any column of names grows, on the widest terminal.
const maxCell = 200

// usedWidth is the width of a row of cols: the two-cell gutter, the cells
// and one space between each two.
func usedWidth(cols []column) int {
	used := 2 + len(cols) - 1
	for _, c := range cols {
		used += c.width
	}
	return used
}

// grow widens cols, in order, each up to its want, by spare cells in all:
// the room a wider terminal has beyond the columns' usual widths.
func grow(spare int, cols []column, wants ...int) {
	for i := range cols {
		if spare <= 0 {
			return
		}
		add := min(spare, max(0, wants[i]-cols[i].width))
		cols[i].width += add
		spare -= add
	}
}

// count formats a count for a column width cells wide: exact when it fits,
// else abbreviated (123k, 4.5M, 12G), never cut.
func count(n int64, width int) string {
	s := strconv.FormatInt(n, 10)
	if len(s) <= width || n < 0 {
		return s
	}
	for _, u := range []struct {
		unit int64
		sym  string
	}{{1_000, "k"}, {1_000_000, "M"}, {1_000_000_000, "G"}, {1_000_000_000_000, "T"}} {
		if n < 10*u.unit {
			// One decimal, rounded down: a count is never shown larger.
			if t := fmt.Sprintf("%d.%d%s", n/u.unit, n%u.unit*10/u.unit, u.sym); len(t) <= width {
				return t
			}
		}
		if t := fmt.Sprintf("%d%s", n/u.unit, u.sym); len(t) <= width {
			return t
		}
	}
	return s
}

// window formats a policy window the way it is usually written: 60s, 5m, 1h.
func window(secs float64) string {
	d := seconds(secs)
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= 10*time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
