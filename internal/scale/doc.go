// Package scale holds the end-to-end tests of running refrakt scaled out:
// several real daemons (the built binary, started by daemontest) sharing
// one Redis server, and sharing a Redis Cluster of three masters started by
// redistest. The tests prove what the README's "Scaling out" promises: limits are
// global, overrides propagate within a second, workers share queues and run
// each job once, recurring jobs do not multiply, a killed daemon's jobs are
// recovered by another, the tick and the lease recoverer are safe to run
// on every daemon, every daemon reports the same queue gauges, and a
// restarted master loses nothing.
//
// The package has no code of its own; everything is in its tests.
package scale
