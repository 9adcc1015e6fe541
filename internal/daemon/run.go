package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
)

// RunOptions are what Run needs besides the configuration.
type RunOptions struct {
	Logger *slog.Logger
	Getenv func(string) string
	// OnListen, when set, is told the bound address (e.g. the port :0 chose).
	OnListen func(addr string)
	// Forced, when closed during the stop, ends it at once: running jobs
	// are handed back rather than awaited (a second SIGTERM).
	Forced <-chan struct{}
	// Environ lists the environment ("NAME=value"), for the warning about
	// REFRAKT_* variables nothing reads; nil: no warning.
	Environ func() []string
}

// Run is the daemon's whole life: bind the listener first (so a bind error
// shows at once and :0 reports its port), then make the developer token
// file if it needs one, serve /healthz while the backend
// connects with retry (/readyz answers 503 meanwhile), build the API and its
// background components, then on ctx's end (after SHUTDOWN_DELAY, /readyz
// answering 503 meanwhile) stop accepting, drain HTTP, stop the components
// and close the backend, all within SHUTDOWN_TIMEOUT.
func Run(ctx context.Context, cfg config.Config, opt RunOptions) error {
	log := opt.Logger
	var tokenPath string
	if cfg.DeveloperToken == "" {
		path, err := TokenPath(opt.Getenv)
		if err != nil {
			return &config.Error{Msg: "REFRAKT_DEVELOPER_TOKEN: " + err.Error()}
		}
		tokenPath = path
	}

	redis.SetLogger(newRedisLog(log, backendLogEvery))
	// A QUEUE_URL no parser takes is a bad setting: said before listening,
	// as the other settings' mistakes are.
	if cfg.RedisURL != "" {
		if err := checkURL(cfg.RedisURL); err != nil {
			return &config.Error{Msg: err.Error()}
		}
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return listenError(cfg.Addr, err)
	}
	// The token file is made (or an unusable one replaced) only once the
	// port is ours: a start that fails, on a port a running daemon holds,
	// must not leave a token file that daemon rejects.
	if tokenPath != "" {
		tok, created, err := ensureTokenFile(tokenPath, log)
		if err != nil {
			_ = ln.Close()
			return err
		}
		cfg.DeveloperToken = tok
		log.Info("developer token", "path", tokenPath, "created", created)
	}
	addr := ln.Addr().String()
	defer keepGCHeadroom(opt.Getenv)()
	warnUnknownEnv(log, opt.Environ)
	warnRiskySettings(log, cfg)
	nofile := nofileLimit()
	conns := newConnLimiter(ln, connBound(nofile, runtime.GOMAXPROCS(0)), nofile, log)
	log.Info("listening", "addr", addr, "config", cfg, "max_connections", conns.max, "nofile", nofile)
	if opt.OnListen != nil {
		opt.OnListen(addr)
	}

	var current atomic.Pointer[http.Handler]
	boot := bootHandler()
	current.Store(&boot)
	httpSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			closeIfFramedAmbiguously(w, r)
			(*current.Load()).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Accept errors are logged by conns, at WARN.
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState: conns.connState,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(conns) }()

	shutdown := func(srv *Server, backend *Backend) error {
		if srv != nil && cfg.ShutdownDelay > 0 {
			delay(srv, httpSrv, cfg.ShutdownDelay, opt.Forced, serveErr, log)
		}
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		go func() {
			select {
			case <-opt.Forced:
				log.Warn("told to stop again: stopping now, running jobs handed back")
				cancel()
			case <-sctx.Done():
			}
		}()
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
		if srv != nil {
			// No job starts from now on: one started while HTTP drains
			// would be cut short at the deadline and run again.
			go srv.stopTakingJobs()
			// Requests waiting for jobs answer with a tenth of the time
			// left, so that HTTP's drain ends before the deadline.
			srv.Drain(cfg.ShutdownTimeout * 9 / 10)
		}
		err := httpSrv.Shutdown(sctx)
		if srv != nil {
			srv.Stop(sctx)
		}
		if backend != nil {
			_ = backend.Close()
		}
		// The deadline, or a second signal's forced stop, ended the drain:
		// still a stop.
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return err
		}
		log.Info("stopped")
		return nil
	}

	backend, err := connectBackend(ctx, cfg, log, nil)
	if err != nil {
		if ctx.Err() != nil {
			return shutdown(nil, nil)
		}
		_ = httpSrv.Close()
		return err
	}
	srv, err := NewServer(Deps{Config: cfg, Logger: log, Registry: prometheus.NewRegistry(), Backend: backend, ListenAddr: addr})
	if err != nil {
		_ = httpSrv.Close()
		_ = backend.Close()
		return err
	}
	if err := srv.Start(ctx); err != nil {
		_ = httpSrv.Close()
		_ = backend.Close()
		return err
	}
	var h http.Handler = srv
	current.Store(&h)
	log.Info("ready", "backend", backend.Kind)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			srv.Stop(context.Background())
			_ = backend.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	return shutdown(srv, backend)
}

// delay serves on for d before the stop begins (SHUTDOWN_DELAY), or until
// forced is closed (a second signal, which then ends the stop at once), or
// the listener fails (serving nothing, there is nothing to wait for):
// /readyz answers 503, so that a load balancer polling it takes the daemon
// out of its pool, while every other request is served as before (workers
// included); keep-alives are off, so that clients holding a connection open
// come back through the balancer, to another daemon.
func delay(srv *Server, httpSrv *http.Server, d time.Duration, forced <-chan struct{}, serveErr <-chan error, log *slog.Logger) {
	srv.markStopping()
	httpSrv.SetKeepAlivesEnabled(false)
	log.Info("stopping after the shutdown delay; /readyz answers 503 meanwhile", "delay", d.String())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-forced:
	case err := <-serveErr:
		log.Error("serving stopped during the shutdown delay", "err", err)
	}
}

// bootHandler answers while the backend connects: alive, not ready, and 503
// with Retry-After for everything else, in one wording whether or not an
// attempt has failed yet (it said "connecting" during the first attempt,
// "not reachable" after, so that one state read two ways), and never why:
// the dial error (addresses, ports) is for the log. The probes take the
// methods they take once the daemon is ready (GET, and HEAD with it): any
// other is a 405 with Allow then as now.
func bootHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := r.URL.Path == "/healthz" || r.URL.Path == "/readyz"
		if probe && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeMethodNotAllowed(w, r)
			return
		}
		if r.URL.Path == "/healthz" {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		writeError(w, r, nil, core.Errorf(core.CodeUnavailable, "%s", bootMessage))
	})
}

// bootMessage is the answer of every request but the probes while the
// backend connects.
const bootMessage = "backend not connected yet: the daemon is connecting to it, and retries until it can (its log says why an attempt failed)"

// closeIfFramedAmbiguously answers a request that came with a
// Transfer-Encoding with Connection: close, which makes net/http close the
// connection after the response. A request with both Content-Length and
// Transfer-Encoding may be framed differently by a proxy in front, and RFC
// 9112 §6.1 says the server MUST close the connection then; net/http drops
// the Content-Length before a handler sees it, so every request with a
// Transfer-Encoding is treated so (a chunked request body is rare enough
// that the lost keep-alive costs nothing).
func closeIfFramedAmbiguously(w http.ResponseWriter, r *http.Request) {
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
}
