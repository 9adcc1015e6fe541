package top

import (
	"charm.land/bubbles/v2/help"
	"charm.land/lipgloss/v2"
)

// theme holds every style of the screen. With colour off (NO_COLOR) it
// keeps only attributes that read on any terminal; the screen never relies
// on colour alone: warnings, focus and selection also have a marker.
type theme struct {
	title     lipgloss.Style // the pane titles
	focus     lipgloss.Style // the focused pane's title
	colHeader lipgloss.Style
	selected  lipgloss.Style // the selected row of the focused pane
	warn      lipgloss.Style // a queue admission control refuses
	bad       lipgloss.Style // disconnected, banned, not ready
	good      lipgloss.Style // ready
	dim       lipgloss.Style
	spark     lipgloss.Style
	barFull   lipgloss.Style
	barEmpty  lipgloss.Style
	help      help.Styles
}

func newTheme(noColor bool) theme {
	if noColor {
		plain := lipgloss.NewStyle()
		return theme{
			title:     plain,
			focus:     plain.Bold(true),
			colHeader: plain,
			selected:  plain.Reverse(true),
			warn:      plain.Bold(true),
			bad:       plain.Bold(true),
			good:      plain,
			dim:       plain,
			spark:     plain,
			barFull:   plain,
			barEmpty:  plain,
			help: help.Styles{
				Ellipsis: plain, ShortKey: plain.Bold(true), ShortDesc: plain, ShortSeparator: plain,
				FullKey: plain.Bold(true), FullDesc: plain, FullSeparator: plain,
			},
		}
	}
	return theme{
		title:     lipgloss.NewStyle().Bold(true),
		focus:     lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12")),
		colHeader: lipgloss.NewStyle().Foreground(lipgloss.Color("8")),
		selected:  lipgloss.NewStyle().Reverse(true),
		warn:      lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("11")),
		bad:       lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("9")),
		good:      lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		dim:       lipgloss.NewStyle().Foreground(lipgloss.Color("8")),
		spark:     lipgloss.NewStyle().Foreground(lipgloss.Color("14")),
		barFull:   lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		barEmpty:  lipgloss.NewStyle().Foreground(lipgloss.Color("8")),
		help:      help.DefaultDarkStyles(),
	}
}
