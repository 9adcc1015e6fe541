package top

import "charm.land/bubbles/v2/key"

// keyMap is every key of `top`; help.Model renders it for `?` and the footer.
type keyMap struct {
	Pane    key.Binding
	Up      key.Binding
	Down    key.Binding
	Page    key.Binding
	Ends    key.Binding
	Sort    key.Binding
	Filter  key.Binding
	Pause   key.Binding
	Refresh key.Binding
	Reset   key.Binding
	// Ban bans the selected bucket key for BanFor.
	Ban     key.Binding
	Requeue key.Binding
	// RequeueAll requeues every dead job of the selected dead job's queue.
	RequeueAll key.Binding
	// PauseQueue pauses the selected queue, or resumes it when paused.
	PauseQueue key.Binding
	Help       key.Binding
	Quit       key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Pane:       key.NewBinding(key.WithKeys("tab", "shift+tab"), key.WithHelp("tab/shift+tab", "pane")),
		Up:         key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:       key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Page:       key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdn", "page")),
		Ends:       key.NewBinding(key.WithKeys("home", "end", "g", "G"), key.WithHelp("home/end, g/G", "first, last")),
		Sort:       key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		Filter:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Pause:      key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
		Refresh:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		Reset:      key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "reset bucket")),
		Ban:        key.NewBinding(key.WithKeys("B"), key.WithHelp("B", "ban bucket 1h")),
		Requeue:    key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "requeue dead job")),
		RequeueAll: key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "requeue all dead of queue")),
		PauseQueue: key.NewBinding(key.WithKeys("P"), key.WithHelp("P", "pause/resume queue")),
		Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:       key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q/ctrl+c", "quit")),
	}
}

// ShortHelp is the footer's one line.
// It names one key of each binding, to fit 80 columns; `?` lists them all.
func (k keyMap) ShortHelp() []key.Binding {
	pane, quit := k.Pane, k.Quit
	pane.SetHelp("tab", "pane")
	quit.SetHelp("q", "quit")
	return []key.Binding{pane, k.Sort, k.Filter, k.Pause, k.Refresh, k.Help, quit}
}

// FullHelp is the `?` screen, one column per group.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Pane, k.Up, k.Down, k.Page, k.Ends, k.Sort, k.Filter},
		{k.Pause, k.Refresh, k.Help, k.Quit},
		{k.Reset, k.Ban, k.Requeue, k.RequeueAll, k.PauseQueue},
	}
}
