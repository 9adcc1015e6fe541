package top

import (
	"context"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// screenTest runs the real program under teatest at a fixed size with
// colour off. The interval is an hour, so the only fetches are the first
// one and those the test asks for with r: each screen is reproducible.
type screenTest struct {
	tm      *teatest.TestModel
	fetched chan struct{}
}

func startScreen(t *testing.T, src Source, width, height int) *screenTest {
	t.Helper()
	st := &screenTest{fetched: make(chan struct{}, 100)}
	m := New(context.Background(), src, Options{Interval: time.Hour, Clock: newClock(), NoColor: true})
	// The filter sees each message before Update does; a key sent after
	// the signal is handled after that message's Update.
	filter := func(_ tea.Model, msg tea.Msg) tea.Msg {
		if _, ok := msg.(fetchedMsg); ok {
			st.fetched <- struct{}{}
		}
		return msg
	}
	st.tm = teatest.NewTestModel(t, m, teatest.WithInitialTermSize(width, height),
		teatest.WithProgramOptions(tea.WithFilter(filter), tea.WithEnvironment([]string{"NO_COLOR=1", "TERM=xterm-256color"})))
	t.Cleanup(func() { _ = st.tm.Quit() })
	st.waitFetch(t)
	return st
}

// waitFetch waits for the program to receive one more fetch result.
func (st *screenTest) waitFetch(t *testing.T) {
	t.Helper()
	select {
	case <-st.fetched:
	case <-time.After(5 * time.Second):
		t.Fatal("no fetch result within 5s")
	}
}

// refresh presses r and waits for its fetch.
func (st *screenTest) refresh(t *testing.T) {
	t.Helper()
	st.tm.Send(press("r"))
	st.waitFetch(t)
}

// screen quits with ctrl+c (q may be text at a prompt) and returns the
// last screen as plain text.
func (st *screenTest) screen(t *testing.T) string {
	t.Helper()
	st.tm.Send(press("ctrl+c"))
	fm := st.tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
	return ansi.Strip(fm.(Model).Screen()) + "\n"
}

// busySource returns the fixture five times, ten seconds apart, with 100,
// 50, 300 and 200 more jobs a queue each time (10, 5, 30, 20 a second), so
// the sparklines have a shape.
func busySource(t *testing.T) *scriptSource {
	s := loadSnapshot(t)
	return &scriptSource{results: []result{
		{snap: s},
		{snap: later(s, 10*time.Second, 100)},
		{snap: later(s, 20*time.Second, 150)},
		{snap: later(s, 30*time.Second, 450)},
		{snap: later(s, 40*time.Second, 650)},
	}}
}

func TestScreen(t *testing.T) {
	tests := []struct {
		name          string
		width, height int
		drive         func(t *testing.T, st *screenTest)
		src           func(t *testing.T) *scriptSource
	}{
		{
			name: "normal", width: 120, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				for range 4 {
					st.refresh(t)
				}
			},
		},
		{
			name: "disconnected", width: 100, height: 30,
			src: func(t *testing.T) *scriptSource {
				src := busySource(t)
				src.results = append(src.results[:2], result{err: errRefused})
				return src
			},
			drive: func(t *testing.T, st *screenTest) {
				st.refresh(t)
				st.refresh(t) // refused: the data stays, the header says why
			},
		},
		{
			name: "filtered", width: 100, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Type("/run")
				st.tm.Send(press("enter"))
			},
		},
		{
			name: "filtering", width: 100, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Type("/emai")
			},
		},
		{
			name: "help", width: 100, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Type("?")
			},
		},
		{
			name: "confirm reset", width: 100, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Send(press("tab"))
				st.tm.Send(press("tab"))
				st.tm.Type("jx")
			},
		},
		{
			name: "confirm ban", width: 100, height: 30,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Send(press("tab"))
				st.tm.Send(press("tab"))
				st.tm.Type("jB")
			},
		},
		{
			name: "80x24", width: 80, height: 24,
			drive: func(t *testing.T, st *screenTest) {
				for range 4 {
					st.refresh(t)
				}
				st.tm.Send(press("tab"))
				st.tm.Send(press("tab"))
			},
		},
		{
			name: "overrides beyond the snapshot's list", width: 100, height: 30,
			src: func(t *testing.T) *scriptSource {
				s := loadSnapshot(t)
				s.OverridesTotal = len(s.Overrides) + 9950
				return &scriptSource{results: []result{{snap: s}}}
			},
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Send(press("shift+tab"))
			},
		},
		{
			name: "60x16 shows the focused pane and the other titles", width: 60, height: 16,
			drive: func(t *testing.T, st *screenTest) {
				st.tm.Send(press("tab"))
				st.tm.Send(press("tab"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := busySource(t)
			if tt.src != nil {
				src = tt.src(t)
			}
			st := startScreen(t, src, tt.width, tt.height)
			tt.drive(t, st)
			golden.RequireEqual(t, st.screen(t))
		})
	}
}
