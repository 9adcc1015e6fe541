package queue

// Tracked is how many queues a holds readings of.
func (a *Admission) Tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queues)
}
