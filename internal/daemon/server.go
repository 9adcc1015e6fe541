// Package daemon is refrakt's HTTP server: the routes of the API, the
// middleware every request passes (recovery, logging, body limits, auth,
// identity, rate limits, admission), the handlers, and the lifecycle that
// binds the listener, connects the backend, serves and shuts down in order.
package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/version"
)

// Deps is everything a Server is built from. Nothing is global: two servers
// can run in one process (and in one test) side by side.
type Deps struct {
	Config   config.Config
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Backend  *Backend
	// Clock returns now; nil means time.Now.
	Clock func() time.Time
	// ListenAddr is the address the daemon listens on, as bound (its
	// heartbeat names it); "" when it serves no listener (tests).
	ListenAddr string
	// HeartbeatEvery is how often the daemon writes its presence record on
	// Redis; 0 means every 5 s. A test hook, not a setting.
	HeartbeatEvery time.Duration
}

// Server is the API of one daemon: an http.Handler plus the background
// components (workers, loops) it owns.
type Server struct {
	cfg     config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	backend *Backend
	clock   ratelimit.Clock // SystemClock unless Deps.Clock: the memory store reads it by one vDSO call
	started time.Time
	tokens  *tokens
	metrics *metrics.Metrics

	limiter  *ratelimit.Limiter
	identity *identityRules
	jobs     *jobs // the job queue and its workers (jobs.go)
	rates    *snapshot.RateTracker

	// queueSeries are the queue labels the sampler set last (jobs_metrics.go).
	queueSeriesMu sync.Mutex
	queueSeries   map[string]bool
	otherTotals   otherTotals // _other's counters (jobs_metrics.go); under queueSeriesMu

	inFlight atomic.Int64
	// opsInFlight counts the developer and operator requests (capInFlight).
	opsInFlight atomic.Int64
	// checkInFlight counts the decision route's requests (capInFlight).
	checkInFlight atomic.Int64
	// draining ends when the daemon must answer the requests still waiting
	// for jobs (POST /assistant) before HTTP's drain runs out (Drain).
	draining context.Context
	drained  context.CancelFunc
	// stopping is set when a stop is coming (markStopping): /readyz
	// answers 503.
	stopping atomic.Bool
	// stopEnded is when the ctx of a Stop ended (UnixNano; 0 until then):
	// the half second README allows past it counts from there.
	stopEnded atomic.Int64

	// hb is this daemon's presence: its id and heartbeat (heartbeat.go).
	hb *heartbeat

	mux        *http.ServeMux
	handler    http.Handler
	components []component
}

// component is a background part of the daemon, started after the listener
// is serving and stopped, in reverse order, after HTTP has drained.
type component struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// NewServer builds the API on an already connected backend.
func NewServer(d Deps) (*Server, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Backend == nil {
		d.Backend = &Backend{Kind: BackendMemory}
	}
	var clock ratelimit.Clock = ratelimit.SystemClock{}
	if d.Clock != nil {
		clock = clockFunc(d.Clock)
	}
	s := &Server{
		cfg:     d.Config,
		log:     d.Logger,
		reg:     d.Registry,
		backend: d.Backend,
		clock:   clock,
		tokens:  newTokens(d.Config.DeveloperToken, d.Config.OperatorToken),
		mux:     http.NewServeMux(),
		metrics: metrics.New(d.Registry, version.Get()),
		rates:   snapshot.NewRateTracker(),
	}
	s.started = s.clock.Now()
	s.draining, s.drained = context.WithCancel(context.Background())
	s.buildHeartbeat(d.ListenAddr, d.HeartbeatEvery)
	if err := s.build(); err != nil {
		return nil, err
	}
	s.routes()
	// observe outside recoverPanics: the 500 a panic turns into is counted.
	s.handler = s.observe(s.recoverPanics(s.capInFlight(s.limitBody(s.dispatch()))))
	return s, nil
}

// build constructs the domain services on the backend. Each part of the
// API adds its construction here, in the order it needs.
func (s *Server) build() error {
	if err := s.buildRateLimit(); err != nil {
		return err
	}
	return s.buildJobs()
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// addComponent registers a background part of the daemon.
func (s *Server) addComponent(name string, start, stop func(ctx context.Context) error) {
	s.components = append(s.components, component{name: name, start: start, stop: stop})
}

// Start starts the background components in order.
func (s *Server) Start(ctx context.Context) error {
	for i, c := range s.components {
		if c.start == nil {
			continue
		}
		if err := c.start(ctx); err != nil {
			s.stopComponents(ctx, i)
			return err
		}
		s.log.Debug("started", "component", c.name)
	}
	return nil
}

// Drain tells the requests waiting for a job (POST /assistant) to answer
// within d: a 503 naming the job, which goes on, rather than a connection
// closed when the shutdown's time runs out.
func (s *Server) Drain(d time.Duration) { time.AfterFunc(max(d, 0), s.drained) }

// markStopping makes /readyz answer 503 from now on, everything else
// served as before: the stop's delay (SHUTDOWN_DELAY), for a load balancer
// to take the daemon out of its pool before the listener closes.
func (s *Server) markStopping() {
	s.stopping.Store(true)
	s.hb.beginStop()
}

// stopTakingJobs stops the workers from taking jobs; the running ones go on
// until Stop, and so do those a waiting request needs (waitOrRun).
func (s *Server) stopTakingJobs() {
	s.hb.beginStop()
	s.jobs.pool.StopFetching()
}

// Stop stops the background components in reverse order, within ctx.
func (s *Server) Stop(ctx context.Context) {
	ended := context.AfterFunc(ctx, func() { s.stopEnded.CompareAndSwap(0, time.Now().UnixNano()) })
	defer ended()
	s.stopComponents(ctx, len(s.components))
}

// stopOvertime is the time a part of the stop may still take once the
// stop's ctx is done (a second signal, SHUTDOWN_TIMEOUT over): what is left
// of the half second README allows past it. Only the heartbeat reads it; the
// pool's hand-back has its own budget (queue's releaseBudget), which reads
// ctx's deadline, not its cancel: after a second signal with Redis hung it
// may take up to what is left of SHUTDOWN_TIMEOUT (5 s at most).
func (s *Server) stopOvertime(ctx context.Context) time.Duration {
	if ctx.Err() == nil {
		return stopOvertimeMax
	}
	s.stopEnded.CompareAndSwap(0, time.Now().UnixNano())
	return max(time.Until(time.Unix(0, s.stopEnded.Load()).Add(stopOvertimeMax)), 0)
}

// stopOvertimeMax is README's "SHUTDOWN_TIMEOUT + half a second".
const stopOvertimeMax = 500 * time.Millisecond

func (s *Server) stopComponents(ctx context.Context, n int) {
	for i := n - 1; i >= 0; i-- {
		c := s.components[i]
		if c.stop == nil {
			continue
		}
		if err := c.stop(ctx); err != nil {
			s.log.Warn("stop", "component", c.name, "err", err)
		}
	}
}
