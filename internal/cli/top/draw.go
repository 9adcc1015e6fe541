package top

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// sparkline draws vals scaled to their own maximum; a slot with no data is
// a space, a zero rate the lowest block.
func sparkline(vals []float64, ok []bool) string {
	maxv := 0.0
	for i, v := range vals {
		if ok[i] && v > maxv {
			maxv = v
		}
	}
	var b strings.Builder
	for i, v := range vals {
		switch {
		case !ok[i]:
			b.WriteByte(' ')
		case maxv <= 0 || v <= 0:
			b.WriteRune(sparkLevels[0])
		default:
			lvl := int(math.Ceil(v/maxv*float64(len(sparkLevels)))) - 1
			b.WriteRune(sparkLevels[max(0, min(lvl, len(sparkLevels)-1))])
		}
	}
	return b.String()
}

// fillBar draws tokens left of capacity as width cells, full ones first.
func fillBar(tokens, capacity int64, width int) (full, empty string) {
	if width <= 0 {
		return "", ""
	}
	n := 0
	if capacity > 0 {
		n = int(math.Round(float64(max(0, min(tokens, capacity))) / float64(capacity) * float64(width)))
	}
	if n == 0 && tokens > 0 {
		n = 1 // a bucket with anything left never looks empty
	}
	if n == width && tokens < capacity && width > 1 {
		// Nor does one short of capacity look full; in one cell, "not
		// empty" wins.
		n = width - 1
	}
	return strings.Repeat("█", n), strings.Repeat("░", width-n)
}

// Age formats a duration compactly for a narrow column: 850ms, 4.2s, 42s,
// 3m05s, 2h04m, 3d04h; `refrakt jobs queues` shows ages as top does.
func Age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 100*24*time.Hour:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	default:
		return fmt.Sprintf("%dd", int(d.Hours())/24) // 6 cells up to 27 years
	}
}

// seconds turns the snapshot's float seconds into a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// rate formats a per-second rate in at most six cells. A rate too small
// for one decimal reads <0.1, not 0.0: two jobs a minute are not none.
func rate(v float64) string {
	switch {
	case v > 0 && v < 0.05:
		return "<0.1"
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// fit pads or cuts s (which may hold ANSI styles) to exactly width cells.
func fit(s string, width int, right bool) string {
	if width <= 0 {
		return ""
	}
	w := ansi.StringWidth(s)
	if w > width {
		if width == 1 {
			return ansi.Truncate(s, 1, "")
		}
		return ansi.Truncate(s, width, "…")
	}
	pad := strings.Repeat(" ", width-w)
	if right {
		return pad + s
	}
	return s + pad
}

// cutMiddle cuts s to width cells by putting … in its middle, keeping its
// start and a little more of its end: two bucket keys of the same limit and
// scope differ in their identity, at the end.
func cutMiddle(s string, width int) string {
	w := ansi.StringWidth(s)
	if w <= width || width < 3 {
		return s // fit cuts it, or it fits
	}
	keep := width - 1
	head := keep / 2
	tail := keep - head
	left := ansi.Truncate(s, head, "")
	right := ansi.TruncateLeft(s, w-tail, "")
	for cut := w - tail + 1; ansi.StringWidth(right) > tail && cut <= w; cut++ {
		right = ansi.TruncateLeft(s, cut, "") // a wide character across the cut
	}
	return left + "…" + right
}

// percent formats a fraction (0..1) as a percentage with one decimal; one
// that would round to 0.0% or 100.0% without being 0 or 1 reads <0.1% or
// >99.9%: a queue where one job in a thousand fails does not fail always.
func percent(f float64) string {
	switch {
	case f > 0 && f < 0.0005:
		return "<0.1%"
	case f < 1 && f >= 0.9995:
		return ">99.9%"
	}
	return fmt.Sprintf("%.1f%%", f*100)
}
