package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
)

// Backend kinds.
const (
	BackendMemory       = "memory"
	BackendRedis        = "redis"
	BackendRedisCluster = "redis-cluster"
)

// Backend is where the daemon keeps its state: in process (Redis nil) or in
// a Redis server or cluster shared with other daemons and CLIs.
type Backend struct {
	Kind   string
	Redis  redis.UniversalClient
	Prefix string
}

// Close releases the backend's connections.
func (b *Backend) Close() error {
	if b.Redis == nil {
		return nil
	}
	return b.Redis.Close()
}

// OpenRedis builds a client for url: a cluster client when cluster is
// "true", or when it is "auto" and the server reports cluster_enabled:1; a
// single-server client otherwise (also when INFO is denied to the user, see
// openRedis). It fails when the server cannot be reached within ctx
// (auto-detection needs an answer).
func OpenRedis(ctx context.Context, url, cluster string) (redis.UniversalClient, string, error) {
	c, kind, _, err := openRedis(ctx, url, cluster)
	return c, kind, err
}

// openRedis is OpenRedis, with a note for the log when the detection of a
// Cluster could not run: INFO is in the @dangerous category, which a
// restricted ACL user (+@all -@dangerous) lacks, and such a user would
// otherwise never connect. It is taken for a single server then; the note
// says so and names REDIS_CLUSTER, which decides without INFO.
func openRedis(ctx context.Context, url, cluster string) (redis.UniversalClient, string, string, error) {
	if err := checkURL(url); err != nil {
		return nil, "", "", err
	}
	// The URL as one server: the probe, the single-server client and the
	// database check of a cluster each read a copy.
	seed, seedErr := redis.ParseURL(firstSeed(url))
	var note string
	useCluster := cluster == "true"
	if cluster == "auto" {
		if seedErr != nil {
			return nil, "", "", urlError(seedErr, url)
		}
		opt := *seed
		probe := redis.NewClient(&opt)
		info, err := probe.Info(ctx, "cluster").Result()
		_ = probe.Close()
		switch {
		case err != nil && AuthProblem(err) == "permission denied":
			note = "INFO is denied to the Redis user, so whether Redis is a Cluster cannot be detected; taken for a single server: set REDIS_CLUSTER=true or false to choose explicitly"
		case err != nil:
			return nil, "", "", err
		default:
			useCluster = strings.Contains(info, "cluster_enabled:1")
		}
	}
	if useCluster {
		if seedErr == nil && seed.DB != 0 {
			return nil, "", "", errClusterDB
		}
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, "", "", urlError(err, url)
		}
		boundTimeouts(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
		opt.ContextTimeoutEnabled = true // a caller's deadline bounds its command
		clusterResilience(opt)
		c := redis.NewClusterClient(opt)
		if err := c.Ping(ctx).Err(); err != nil {
			_ = c.Close()
			return nil, "", "", err
		}
		return c, BackendRedisCluster, note, nil
	}
	if seedErr != nil {
		return nil, "", "", urlError(seedErr, url)
	}
	boundTimeouts(&seed.DialTimeout, &seed.ReadTimeout, &seed.WriteTimeout)
	seed.ContextTimeoutEnabled = true // a caller's deadline bounds its command
	c := redis.NewClient(seed)
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, "", "", err
	}
	return c, BackendRedis, note, nil
}

// AuthProblem names a refusal of Redis that no retry mends by itself, or is
// "": "authentication failed" for a wrong password or user (WRONGPASS) or
// none given to a server that wants one (NOAUTH), "permission denied" for a
// command or key the ACL user may not use (NOPERM).
func AuthProblem(err error) string {
	var re redis.Error
	if !errors.As(err, &re) {
		return ""
	}
	msg := re.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
		strings.HasPrefix(msg, "ERR AUTH"), strings.Contains(msg, "invalid password"):
		return "authentication failed"
	case strings.HasPrefix(msg, "NOPERM"):
		return "permission denied"
	}
	return ""
}

// NoSuchDatabase is the error to show when err is Redis refusing to SELECT
// the URL's database number, or nil: a mistake in the URL, which no retry
// mends, not a server that cannot be reached. The daemon (QUEUE_URL) and the
// CLI (--redis) say it in these words.
func NoSuchDatabase(err error) error {
	var re redis.Error
	redisErr := errors.As(err, &re)
	switch {
	case errors.Is(err, errClusterDB) || redisErr && strings.Contains(re.Error(), "SELECT is not allowed in cluster mode"):
		return errors.New("a Redis Cluster has database 0 only; drop the database number from the URL")
	case redisErr && strings.Contains(re.Error(), "DB index is out of range"):
		return fmt.Errorf("this server has no such database (%v); pick a number below its \"databases\" setting, 0-15 by default", err)
	}
	return nil
}

// NotACluster is the error to show when err is a single Redis server
// refusing the first command of a cluster client (REDIS_CLUSTER=true): a
// bad setting, which no retry mends, not a server that cannot be reached.
// The daemon and the CLI say it in these words.
func NotACluster(err error) error {
	var re redis.Error
	if errors.As(err, &re) && strings.Contains(re.Error(), "cluster support disabled") {
		return fmt.Errorf("true, but this server is a single Redis, not a Redis Cluster (%v); leave REDIS_CLUSTER at auto (a Cluster is detected) or set it to false", err)
	}
	return nil
}

// errClusterDB is a cluster's URL naming a database other than 0, which the
// cluster client would ignore.
var errClusterDB = errors.New("a database number in a Redis Cluster's URL")

// clusterReload is how often the cluster client reloads its map of slots.
const clusterReload = time.Second

// clusterResilience tunes a cluster client for failover. go-redis refreshes
// its map of slots after a MOVED reply or every ClusterStateReloadInterval
// (60 s by default). A master that died answers nothing, so after its
// replica took over, commands for its slots kept failing with "connection
// refused" for up to a minute (22–42 s measured after the promotion).
// Reloaded every second, the map finds the new master within a second of the
// promotion.
//
// A reload asks CLUSTER SLOTS of the known nodes one at a time, in random
// order, until one answers. A stalled node (a stopped process, a long fork)
// accepts the connection and says nothing, so it held each reload for the
// whole read timeout (3 s): a daemon took up to 4 s to find a replica
// promoted in place of a stalled master (fail30 F3). Every node client
// gives CLUSTER SLOTS clusterSlotsWait to answer once connected
// (boundSlotsReads), and the reload goes on to the next node. The node
// clients are go-redis's own (NewClient only adds the hook), so the URL's
// user, password, TLS and dialer apply.
// go-redis's ClusterSlots option, which would let the nodes be asked in
// parallel, was not used: a map it returns has no origin node, and
// go-redis then rewrites every loopback address in it to ":port", and
// gives replicas no READONLY.
//
// More retries of TRYAGAIN while a slot moves (MaxRedirects, 3 by default)
// were tried and left out: at 8, after a master restarted under load, its
// queues' enqueues kept failing past the second the recovery test allows
// (TestCluster/MasterRestartUnderLoad in internal/scale, 4 runs of 4).
func clusterResilience(opt *redis.ClusterOptions) {
	if opt.ClusterStateReloadInterval == 0 {
		opt.ClusterStateReloadInterval = clusterReload
	}
	newClient := opt.NewClient
	if newClient == nil {
		newClient = redis.NewClient
	}
	opt.NewClient = func(o *redis.Options) *redis.Client {
		c := newClient(o)
		c.AddHook(newBoundSlotsReads(o.DialTimeout))
		return c
	}
}

// clusterSlotsWait is how long a node has to answer CLUSTER SLOTS once
// connected: a healthy one answers within a millisecond or two; one slower
// than this is passed over for the next.
const clusterSlotsWait = 300 * time.Millisecond

// errSlotsWait is the error of a CLUSTER SLOTS that clusterSlotsWait cut.
var errSlotsWait = fmt.Errorf("CLUSTER SLOTS not answered within %v (%w)", clusterSlotsWait, context.DeadlineExceeded)

// boundSlotsReads is the hook of one node client of a cluster client that
// bounds CLUSTER SLOTS by clusterSlotsWait (see clusterResilience). Other
// commands pass untouched.
//
// The bound is for the answer, not for making the connection: go-redis
// dials (TCP, and TLS, which its dialer completes) while the command waits,
// under the command's context, and a remote cluster or a cold TLS session
// can take longer than the bound to connect. Cut then, no node's map would
// ever load, and the daemon could not start (code30 C3). A node client
// that had never connected when CLUSTER SLOTS was sent, and was cut, waits
// for its first connection (up to the dial timeout) and is asked once more,
// with the whole bound; go-redis keeps dialling the connection the cut
// command stopped waiting for, and pools it. A node client that connected
// before is not waited for: a node that answered once and no longer
// connects within the bound (a host gone, its packets dropped) is passed
// over as quickly as one that stalled. Its dial goes on all the same, so
// a slow connection is there for the next reload. HELLO and AUTH on a new
// connection are round trips like CLUSTER SLOTS and count in the bound.
type boundSlotsReads struct {
	dialTimeout time.Duration

	mu        sync.Mutex
	connected bool          // a dial of this node client has succeeded
	dialEnded chan struct{} // closed, and replaced, when a dial ends
}

func newBoundSlotsReads(dialTimeout time.Duration) *boundSlotsReads {
	if dialTimeout <= 0 {
		dialTimeout = 5 * time.Second // go-redis's default
	}
	return &boundSlotsReads{dialTimeout: dialTimeout, dialEnded: make(chan struct{})}
}

func (b *boundSlotsReads) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		b.mu.Lock()
		if err == nil {
			b.connected = true
		}
		close(b.dialEnded)
		b.dialEnded = make(chan struct{})
		b.mu.Unlock()
		return conn, err
	}
}

func (b *boundSlotsReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (b *boundSlotsReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, ok := cmd.(*redis.ClusterSlotsCmd); !ok {
			return next(ctx, cmd)
		}
		start := time.Now()
		b.mu.Lock()
		first := !b.connected
		b.mu.Unlock()
		cut, err := askBounded(ctx, next, cmd)
		if cut && first && b.awaitConnection(ctx, start.Add(b.dialTimeout)) {
			cut, err = askBounded(ctx, next, cmd)
		}
		if cut {
			// The bound cut it, not the caller: say so, rather than the
			// read's "i/o timeout".
			err = errSlotsWait
			cmd.SetErr(err)
		}
		return err
	}
}

// askBounded sends cmd through next with clusterSlotsWait to answer, and
// says whether the bound, not the caller, cut it, and the command's error.
func askBounded(ctx context.Context, next redis.ProcessHook, cmd redis.Cmder) (cut bool, err error) {
	bounded, cancel := context.WithTimeout(ctx, clusterSlotsWait)
	defer cancel()
	err = next(bounded, cmd)
	// The read's deadline (the bound's) may end it before the bound's
	// timer has marked the context done: the clock says.
	deadline, _ := bounded.Deadline()
	cut = bounded.Err() != nil || !time.Now().Before(deadline)
	if theirs, ok := ctx.Deadline(); ok && !theirs.After(deadline) {
		cut = false // the caller's own deadline, not the bound
	}
	return err != nil && cut && ctx.Err() == nil, err
}

// awaitConnection waits until a dial of this node client has succeeded,
// until, or ctx's end, and says whether one has.
func (b *boundSlotsReads) awaitConnection(ctx context.Context, until time.Time) bool {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		b.mu.Lock()
		connected, ended := b.connected, b.dialEnded
		b.mu.Unlock()
		if connected {
			return true
		}
		select {
		case <-ended:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// clusterOnly are the query parameters of go-redis's cluster URLs that its
// single-server parser rejects.
// (go-redis v9.23; TestClusterOnlyOptions passes each through both parsers).
var clusterOnly = []string{"addr", "max_redirects", "read_only", "route_by_latency", "route_by_latency_tolerance",
	"route_randomly", "dialer_retries", "dialer_retry_timeout", "failing_timeout_seconds"}

// firstSeed drops the cluster-only query parameters (the other seeds'
// "addr", "max_redirects", …), so that the single-server parser takes a
// cluster's URL: to probe whether it is one, or to read it as the one server
// it names.
func firstSeed(url string) string {
	base, query, ok := strings.Cut(url, "?")
	if !ok {
		return url
	}
	var keep []string
	for _, kv := range strings.Split(query, "&") {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(clusterOnly, name) {
			keep = append(keep, kv)
		}
	}
	if len(keep) == 0 {
		return base
	}
	return base + "?" + strings.Join(keep, "&")
}

// connectBackend connects the configured backend, retrying with backoff
// (100ms doubling to 5s) until it answers or ctx ends; failures are logged
// once per backendLogEvery of each kind (not reachable, or refused), with
// how many lines were left out since the previous one.
func connectBackend(ctx context.Context, cfg config.Config, log *slog.Logger, onAttempt func(error)) (*Backend, error) {
	if cfg.RedisURL == "" {
		return &Backend{Kind: BackendMemory, Prefix: cfg.Prefix}, nil
	}
	if err := checkURL(cfg.RedisURL); err != nil {
		return nil, &config.Error{Msg: err.Error()}
	}
	delay := 100 * time.Millisecond
	refused := map[string]*core.LogThrottle{} // by problem
	unreachable := &core.LogThrottle{Logger: log, Msg: "backend not reachable; retrying", Every: backendLogEvery}
	for {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		client, kind, note, err := openRedis(attempt, cfg.RedisURL, cfg.RedisCluster)
		cancel()
		if err == nil {
			if note != "" {
				log.Warn(note, "backend", "redis", "redis_cluster", cfg.RedisCluster)
			}
			checkEvictionPolicy(ctx, client, log)
			return &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}, nil
		}
		if onAttempt != nil {
			onAttempt(err)
		}
		addr, cause := config.RedactURL(cfg.RedisURL), config.RedactIn(err.Error(), cfg.RedisURL)
		if bad := NoSuchDatabase(err); bad != nil {
			return nil, &config.Error{Msg: "QUEUE_URL: " + addr + ": " + config.RedactIn(bad.Error(), cfg.RedisURL)}
		}
		if bad := NotACluster(err); bad != nil {
			return nil, &config.Error{Msg: "REDIS_CLUSTER: " + config.RedactIn(bad.Error(), cfg.RedisURL) + " (QUEUE_URL " + addr + ")"}
		}
		if ctx.Err() != nil { // the attempt was cut short by the stop, not by Redis
			return nil, errors.Join(ctx.Err(), err)
		}
		if problem := AuthProblem(err); problem != "" {
			// Redis answered, and refused: retried all the same (the user
			// or its password may be fixed on the server's side), but said
			// as what it is, at ERROR, once per interval.
			if refused[problem] == nil {
				refused[problem] = &core.LogThrottle{Logger: log, Msg: "backend " + problem + "; retrying", Every: backendLogEvery}
			}
			refused[problem].Log(ctx, slog.LevelError, slog.String("backend", "redis"), slog.String("addr", addr), slog.String("err", cause), slog.Duration("retry_in", delay))
		} else {
			unreachable.Warn(ctx, slog.String("backend", "redis"), slog.String("addr", addr), slog.String("err", cause), slog.Duration("retry_in", delay))
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// checkURL checks url before any connection: with go-redis's single-server
// parser, and with its cluster parser too when it has cluster-only options,
// so that a mistake in one of those is a bad setting (start-up stops, exit
// 2), not an outage retried for ever.
func checkURL(url string) error {
	if err := config.CheckURLPassword(url); err != nil {
		return errors.New("QUEUE_URL: " + err.Error())
	}
	seed := firstSeed(url)
	if _, err := redis.ParseURL(seed); err != nil {
		return urlError(err, url)
	}
	if seed != url {
		if _, err := redis.ParseClusterURL(url); err != nil {
			return urlError(err, url)
		}
	}
	return nil
}

// urlError is the error of a QUEUE_URL that does not parse: go-redis and
// net/url quote the URL, password included, and the message goes to the
// terminal and the logs.
func urlError(err error, rawURL string) error {
	return errors.New("QUEUE_URL: " + config.RedactIn(err.Error(), rawURL))
}

// checkEvictionPolicy warns when Redis may evict keys under memory pressure:
// an evicted job or bucket is lost state. When CONFIG GET is denied or
// renamed (managed Redis often does so), it warns that the policy could not
// be checked: it was a debug line, so nobody learnt it went unchecked.
func checkEvictionPolicy(ctx context.Context, client redis.UniversalClient, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res, err := client.ConfigGet(cctx, "maxmemory-policy").Result()
	if err != nil {
		log.Warn("cannot check Redis's maxmemory-policy; make sure it is noeviction: an evicted job or bucket is lost", "err", err)
		return
	}
	if p := res["maxmemory-policy"]; p != "" && p != "noeviction" {
		log.Warn("Redis may evict refrakt's keys under memory pressure; set maxmemory-policy noeviction", "maxmemory-policy", p)
	}
}

// boundTimeouts keeps every Redis command bounded: a stalled server costs a
// caller at most a few seconds, never a hang (URL parameters may tighten them).
func boundTimeouts(dial, read, write *time.Duration) {
	if *dial <= 0 || *dial > 2*time.Second {
		*dial = 2 * time.Second
	}
	if *read <= 0 || *read > 3*time.Second {
		*read = 3 * time.Second
	}
	if *write <= 0 || *write > 3*time.Second {
		*write = 3 * time.Second
	}
}
