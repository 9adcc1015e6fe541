package top

import (
	"context"
	"regexp"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp"
)

// colourSGR matches an SGR sequence that sets a foreground or background
// colour (basic, 256 or true colour).
var colourSGR = regexp.MustCompile(`\x1b\[[0-9;]*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m`)

func TestNoColor(t *testing.T) {
	snap := loadSnapshot(t)
	tests := []struct {
		name       string
		noColor    bool
		wantColour bool
	}{
		{name: "colour by default", noColor: false, wantColour: true},
		{name: "NO_COLOR draws none", noColor: true, wantColour: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(context.Background(), &scriptSource{}, Options{Clock: newClock(), NoColor: tt.noColor})
			tm, _ := m.Update(fetchedMsg{snap: snap})
			tm, _ = tm.Update(fetchedMsg{err: errRefused}) // the red "disconnected"
			got := colourSGR.MatchString(tm.(Model).Screen())
			if diff := cmp.Diff(tt.wantColour, got); diff != "" {
				t.Errorf("colour codes in the screen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNoColorEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    bool
	}{
		{name: "unset", environ: []string{"TERM=xterm"}, want: false},
		{name: "set", environ: []string{"TERM=xterm", "NO_COLOR=1"}, want: true},
		{name: "empty means unset", environ: []string{"NO_COLOR="}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, noColor(tt.environ)); diff != "" {
				t.Errorf("noColor (-want +got):\n%s", diff)
			}
		})
	}
}

var _ tea.Model = Model{}
