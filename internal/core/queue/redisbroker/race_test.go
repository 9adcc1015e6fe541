//go:build race

package redisbroker_test

// raceAllocs is what the race detector adds to a one-job Enqueue's
// allocations (measured: one, every run; see TestEnqueueAllocs).
const raceAllocs = 1
