package top

import (
	"context"
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// fullSnapshot is the largest snapshot the daemon serves: 50 buckets, 20
// dead jobs, plus 10 queues.
func fullSnapshot(b *testing.B) snapshot.Snapshot {
	s := loadSnapshot(b)
	for i := range 10 {
		q := s.Queues[i%len(s.Queues)]
		q.Name = fmt.Sprintf("queue-%02d", i)
		s.Queues = append(s.Queues, q)
	}
	for i := len(s.DeadJobs); i < 20; i++ {
		j := s.DeadJobs[0]
		j.ID = fmt.Sprintf("%032x", i)
		s.DeadJobs = append(s.DeadJobs, j)
	}
	for i := len(s.Buckets); i < 50; i++ {
		bk := s.Buckets[1]
		bk.Key = fmt.Sprintf("run:ip:198.51.100.%d", i)
		s.Buckets = append(s.Buckets, bk)
	}
	return s
}

// BenchmarkScreen measures drawing a full snapshot with a minute of
// sparkline history, the work of every refresh and key press.
func BenchmarkScreen(b *testing.B) {
	s := fullSnapshot(b)
	for _, size := range [][2]int{{80, 24}, {200, 60}} {
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			var m tea.Model = New(context.Background(), &scriptSource{}, Options{})
			for i := range 60 {
				m, _ = m.Update(fetchedMsg{snap: later(s, time.Duration(i)*time.Second, int64(i*i))})
			}
			m, _ = m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			b.ReportAllocs()
			for b.Loop() {
				_ = m.(Model).Screen()
			}
		})
	}
}

// BenchmarkFetched measures applying one snapshot: rates, sort, filter and
// the selection.
func BenchmarkFetched(b *testing.B) {
	s := fullSnapshot(b)
	var m tea.Model = New(context.Background(), &scriptSource{}, Options{})
	for i := range 60 {
		m, _ = m.Update(fetchedMsg{snap: later(s, time.Duration(i)*time.Second, int64(i))})
	}
	next := later(s, time.Minute, 120)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = m.Update(fetchedMsg{snap: next})
	}
}
