// Package top is the bubbletea program of `refrakt top`: a live terminal
// view of a deployment's queues, dead jobs, rate limit buckets and
// overrides, refreshed from a Source in the background. Update is a pure
// function of the model and the message: every fetch and action runs in a
// tea.Cmd, so the screen stays responsive while the source is slow or down.
package top

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// Clock tells the time of a refresh; tests pass a fixed one.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Refresh intervals: the default, and the floor below which a daemon would
// spend more on snapshots than on work.
const (
	DefaultInterval = time.Second
	MinInterval     = 100 * time.Millisecond
)

// requeueAllTimeout bounds a requeue of a queue's dead jobs, which takes a
// call per 500 of them: a minute is far more than the thousands of dead
// jobs JOB_HISTORY keeps take.
const requeueAllTimeout = time.Minute

// maxBackoff caps the wait between retries while the source is down, so
// `top` notices a recovered daemon within a few seconds.
const maxBackoff = 5 * time.Second

// Options tune a Model. The zero value is usable.
type Options struct {
	// Interval between refreshes: DefaultInterval when 0, at least MinInterval.
	Interval time.Duration
	// FetchTimeout bounds one fetch or action: twice the interval, between
	// 1s and 5s, when 0.
	FetchTimeout time.Duration
	// Clock defaults to the system clock.
	Clock Clock
	// NoColor draws without colour (NO_COLOR is set).
	NoColor bool
}

// Model is the state of the program. Its methods have value receivers and
// never mutate shared state, so a test can keep any intermediate model.
type Model struct {
	ctx          context.Context
	src          Source
	clock        Clock
	interval     time.Duration
	fetchTimeout time.Duration
	theme        theme
	keys         keyMap
	help         help.Model

	width, height int

	snap     snapshot.Snapshot
	haveData bool
	lastOK   time.Time // the local time of the last successful fetch
	history  map[string]queueHistory

	err      error     // the last fetch's error; nil while connected
	failures int       // consecutive failed fetches
	retryAt  time.Time // the clock's time of the next retry, while failing
	now      time.Time // the clock's time of the last fetch or countdown tick

	paused   bool
	inflight bool
	seq      int // the current refresh chain; a tick of an older one is dropped

	focus    pane
	sorts    [numPanes]int
	cursor   [numPanes]int
	selected [numPanes]string
	// chosen is whether the user moved the pane's selection: only then
	// does the cursor follow its row across refreshes. Until then it stays
	// on the first row, so that rows arriving above it (the newest dead
	// jobs, a new ban) are shown, not pushed out of view by a selection
	// nobody made.
	chosen [numPanes]bool

	filter     string
	filtering  bool   // the filter line has the keyboard
	prevFilter string // restored when the filter is abandoned with esc

	// mayAct is whether the token may reset and requeue, as far as known:
	// the source's answer (RoleSource), asked on each (re)connection, or
	// the last action's outcome.
	mayAct   permission
	confirm  *pendingAction
	status   string // a one-line message in the footer until the next key
	showHelp bool
}

// permission is whether the token may do the developer's actions.
type permission int

const (
	permissionUnknown permission = iota // not asked, or no answer (--redis, an older daemon)
	permissionYes
	permissionNo
)

// pendingAction is an action waiting for y at its confirmation prompt.
type pendingAction struct {
	kind   actionKind
	target string
}

type actionKind int

const (
	actionReset actionKind = iota
	// actionBan bans the bucket key its target names for BanFor.
	actionBan
	actionRequeue
	// actionRequeueAll requeues every dead job of the queue its target
	// names.
	actionRequeueAll
	// actionPauseQueue and actionResumeQueue pause and resume the queue
	// its target names.
	actionPauseQueue
	actionResumeQueue
)

// BanFor is how long top's B bans a bucket key: longer or shorter bans
// are `refrakt limits ban KEY --for D`.
const BanFor = time.Hour

// Messages of the program's own commands.
type (
	// tickMsg asks for the next fetch of refresh chain seq.
	tickMsg struct{ seq int }
	// clockMsg redraws the retry countdown of refresh chain seq, at the
	// clock's time at.
	clockMsg struct {
		seq int
		at  time.Time
	}
	// fetchedMsg is the outcome of one fetch, at the local time it ended.
	fetchedMsg struct {
		snap snapshot.Snapshot
		err  error
		at   time.Time
	}
	// actionDoneMsg is the outcome of a confirmed action; moved is how
	// many jobs a requeue of a queue's dead jobs moved, an error or not.
	actionDoneMsg struct {
		action pendingAction
		moved  int
		// unchanged: a pause or resume found the queue so already.
		unchanged bool
		err       error
	}
	// roleMsg is the source's answer to which role the token has.
	roleMsg struct {
		role string
		err  error
	}
)

// New returns the program's model reading from src. ctx bounds every fetch
// and action the program starts.
func New(ctx context.Context, src Source, opts Options) Model {
	interval := opts.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	interval = max(interval, MinInterval)
	timeout := opts.FetchTimeout
	if timeout == 0 {
		timeout = min(max(2*interval, time.Second), 5*time.Second)
	}
	clock := opts.Clock
	if clock == nil {
		clock = systemClock{}
	}
	th := newTheme(opts.NoColor)
	h := help.New()
	h.Styles = th.help
	return Model{
		ctx:          ctx,
		src:          src,
		clock:        clock,
		interval:     interval,
		fetchTimeout: timeout,
		theme:        th,
		keys:         newKeyMap(),
		help:         h,
		width:        80,
		height:       24,
		inflight:     true, // Init's fetch
	}
}

// Init starts the first fetch.
func (m Model) Init() tea.Cmd { return m.fetch() }

// fetch returns the command that reads one snapshot.
func (m Model) fetch() tea.Cmd {
	ctx, src, clock, timeout := m.ctx, m.src, m.clock, m.fetchTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		snap, err := src.Fetch(ctx)
		return fetchedMsg{snap: snap, err: err, at: clock.Now()}
	}
}

// schedule returns the command that starts refresh chain seq's next fetch
// after d.
func schedule(d time.Duration, seq int) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return tickMsg{seq: seq} })
}

// askRole returns the command that asks the source the token's role, or
// nil when the source cannot tell.
func (m Model) askRole() tea.Cmd {
	rs, ok := m.src.(RoleSource)
	if !ok {
		return nil
	}
	ctx, timeout := m.ctx, m.fetchTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		role, err := rs.Role(ctx)
		return roleMsg{role: role, err: err}
	}
}

// countdown returns the command that moves the retry countdown on, when
// the text the header draws for it next changes: the header is drawn after
// each message, and while the source is down no other message comes.
func (m Model) countdown() tea.Cmd {
	seq, clock := m.seq, m.clock
	return tea.Tick(countdownStep(m.retryAt.Sub(m.now)), func(time.Time) tea.Msg {
		return clockMsg{seq: seq, at: clock.Now()}
	})
}

// countdownStep is how long until the text age draws for a wait of d
// changes: it shows tenths of a second under 10s, seconds under an hour,
// minutes beyond.
func countdownStep(d time.Duration) time.Duration {
	step := 100 * time.Millisecond
	switch {
	case d >= time.Hour:
		step = time.Minute
	case d >= 10*time.Second:
		step = time.Second
	}
	if r := d % step; r > 0 {
		return r
	}
	return step
}

// refreshNow starts a fetch at once unless one is in flight, and drops any
// tick already scheduled.
func (m Model) refreshNow() (Model, tea.Cmd) {
	if m.inflight {
		return m, nil
	}
	m.seq++
	m.inflight = true
	return m, m.fetch()
}

// backoff is the wait before the next retry after n consecutive failures:
// the interval, doubling, capped at maxBackoff (or the interval if longer).
func (m Model) backoff(n int) time.Duration {
	d := m.interval
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, max(maxBackoff, m.interval))
}

// Update applies one message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		return m, nil
	case tickMsg:
		if msg.seq != m.seq || m.paused || m.inflight {
			return m, nil
		}
		m.inflight = true
		return m, m.fetch()
	case clockMsg:
		if msg.seq != m.seq || m.err == nil || m.paused || m.inflight {
			return m, nil
		}
		m.now = msg.at
		if m.retryAt.After(m.now) {
			return m, m.countdown()
		}
		return m, nil
	case fetchedMsg:
		return m.fetched(msg)
	case actionDoneMsg:
		return m.actionDone(msg)
	case roleMsg:
		// No answer leaves what is known: the prompt, and the action's
		// own answer, still stand guard.
		switch {
		case msg.err != nil || msg.role == "":
		case msg.role == "developer":
			m.mayAct = permissionYes
		default:
			m.mayAct = permissionNo
		}
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	case tea.PasteMsg:
		// The terminal's bracketed paste (bubbletea turns it on): the
		// natural way to give a 22-character job id. Only the filter line
		// takes text; a line break or a control pasted with it is dropped.
		if m.filtering && m.confirm == nil {
			m.filter += strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return -1
				}
				return r
			}, msg.Content)
			return m.reselect(), nil
		}
		return m, nil
	}
	return m, nil
}

func (m Model) fetched(msg fetchedMsg) (Model, tea.Cmd) {
	m.inflight = false
	m.now = msg.at
	// On each (re)connection, ask the token's role: the daemon may have
	// come back with other tokens.
	var role tea.Cmd
	if msg.err == nil && (m.err != nil || !m.haveData) {
		role = m.askRole()
	}
	var delay time.Duration
	if msg.err != nil {
		// Keep the last data on screen; say why it is stale.
		m.err = msg.err
		m.failures++
		delay = m.backoff(m.failures)
		m.retryAt = msg.at.Add(delay)
	} else {
		stamp := msg.snap.GeneratedAt
		if stamp.IsZero() {
			stamp = msg.at
		}
		m.history = nextHistory(m.history, msg.snap, stamp)
		m.snap, m.haveData, m.lastOK = msg.snap, true, msg.at
		m.err, m.failures = nil, 0
		m = m.reselect()
		delay = m.interval
	}
	if m.paused {
		return m, role
	}
	m.seq++
	if m.err != nil {
		return m, tea.Batch(schedule(delay, m.seq), m.countdown())
	}
	return m, tea.Batch(schedule(delay, m.seq), role)
}

func (m Model) actionDone(msg actionDoneMsg) (Model, tea.Cmd) {
	what := "bucket " + msg.action.target + " reset"
	verb := "reset"
	switch msg.action.kind {
	case actionBan:
		what, verb = "bucket "+msg.action.target+" banned for 1h", "ban"
	case actionRequeue:
		what, verb = "job "+msg.action.target+" requeued", "requeue"
	case actionRequeueAll:
		what, verb = RequeuedDead(msg.moved, msg.action.target), "requeue"
	case actionPauseQueue:
		what, verb = PausedQueue(msg.action.target, true, !msg.unchanged), "pause"
	case actionResumeQueue:
		what, verb = PausedQueue(msg.action.target, false, !msg.unchanged), "resume"
	}
	switch code := core.ErrorCode(msg.err); {
	case msg.err == nil:
		m.status, m.mayAct = what, permissionYes
		return m.refreshNow()
	case code == core.CodeUnauthorized || code == core.CodeForbidden:
		m.status, m.mayAct = verb+" needs a developer token", permissionNo
	case msg.moved > 0:
		// What moved stays moved: say how many, and show them pending.
		m.status = what + ", then failed: " + core.ErrorMessage(msg.err)
		return m.refreshNow()
	default:
		m.status = verb + " failed: " + core.ErrorMessage(msg.err)
	}
	return m, nil
}

// PausedQueue says what a pause (paused) or a resume of queue q did,
// changed or not: the line of `refrakt jobs pause` and `resume` and of
// top's P.
func PausedQueue(q string, paused, changed bool) string {
	switch {
	case paused && changed:
		return "queue " + q + " paused"
	case paused:
		return "queue " + q + " was already paused"
	case changed:
		return "queue " + q + " resumed"
	}
	return "queue " + q + " was not paused"
}

// RequeuedDead says that n dead jobs of queue q were requeued: the line of
// `refrakt jobs requeue --all-dead` and of top's A.
func RequeuedDead(n int, q string) string {
	jobs := "jobs"
	if n == 1 {
		jobs = "job"
	}
	return fmt.Sprintf("requeued %d dead %s of queue %s", n, jobs, q)
}

// key handles a key press: the confirmation prompt and the filter line take
// the keyboard first; ctrl+c always quits.
func (m Model) key(msg tea.KeyPressMsg) (Model, tea.Cmd) {
	k := msg.String()
	if k == "ctrl+c" {
		return m, tea.Quit
	}
	if m.confirm != nil {
		return m.answer(k)
	}
	if m.filtering {
		return m.editFilter(msg), nil
	}
	m.status = ""
	if m.showHelp {
		switch {
		case key.Matches(msg, m.keys.Quit):
			return m, tea.Quit
		case key.Matches(msg, m.keys.Help), k == "esc":
			m.showHelp = false
		}
		return m, nil
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m, tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.showHelp = true
	case key.Matches(msg, m.keys.Pane):
		step := pane(1)
		if k == "shift+tab" {
			step = numPanes - 1
		}
		m.focus = (m.focus + step) % numPanes
	case key.Matches(msg, m.keys.Up):
		m = m.move(-1)
	case key.Matches(msg, m.keys.Down):
		m = m.move(1)
	case key.Matches(msg, m.keys.Page):
		step := m.pageRows()
		if k == "pgup" {
			step = -step
		}
		m = m.move(step)
	case key.Matches(msg, m.keys.Ends):
		step := math.MaxInt32
		if k == "home" || k == "g" {
			step = -step
		}
		m = m.move(step)
	case key.Matches(msg, m.keys.Sort):
		m.sorts[m.focus] = (m.sorts[m.focus] + 1) % len(sortNames[m.focus])
		m = m.reselect()
	case key.Matches(msg, m.keys.Filter):
		m.filtering, m.prevFilter = true, m.filter
	case key.Matches(msg, m.keys.Pause):
		m.paused = !m.paused
		if !m.paused {
			return m.refreshNow()
		}
	case key.Matches(msg, m.keys.Refresh):
		return m.refreshNow()
	case key.Matches(msg, m.keys.Reset):
		return m.ask(actionReset), nil
	case key.Matches(msg, m.keys.Ban):
		return m.ask(actionBan), nil
	case key.Matches(msg, m.keys.Requeue):
		return m.ask(actionRequeue), nil
	case key.Matches(msg, m.keys.RequeueAll):
		return m.ask(actionRequeueAll), nil
	case key.Matches(msg, m.keys.PauseQueue):
		// Resume a queue the last snapshot shows paused, else pause it.
		kind := actionPauseQueue
		if m.queuePaused(m.selected[paneQueues]) {
			kind = actionResumeQueue
		}
		return m.ask(kind), nil
	case k == "esc":
		m.filter = ""
		m = m.reselect()
	}
	return m, nil
}

// editFilter handles a key while the filter line is open; the panes follow
// each keystroke.
func (m Model) editFilter(msg tea.KeyPressMsg) Model {
	switch msg.String() {
	case "enter":
		m.filtering = false
	case "esc":
		m.filtering, m.filter = false, m.prevFilter
	case "backspace":
		if r := []rune(m.filter); len(r) > 0 {
			m.filter = string(r[:len(r)-1])
		}
	case "ctrl+u":
		m.filter = ""
	default:
		if msg.Text != "" {
			m.filter += msg.Text
		}
	}
	return m.reselect()
}

// ask opens the confirmation prompt of an action on the selected row, or
// says in the footer why it cannot.
func (m Model) ask(kind actionKind) Model {
	want, noun, verb := paneBuckets, "bucket", "reset"
	switch kind {
	case actionBan:
		verb = "ban"
	case actionRequeue, actionRequeueAll:
		want, noun, verb = paneDead, "dead job", "requeue"
	case actionPauseQueue:
		want, noun, verb = paneQueues, "queue", "pause"
	case actionResumeQueue:
		want, noun, verb = paneQueues, "queue", "resume"
	}
	// A requeue of every dead job targets the selected job's queue.
	target := m.selected[want]
	if kind == actionRequeueAll && target != "" {
		target = m.deadQueue(target)
	}
	switch {
	case m.focus != want:
		m.status = "select a " + noun + " first: tab to the " + paneNames[want] + " pane"
		return m
	case target == "":
		m.status = "no " + noun + " selected"
		return m
	case want == paneQueues && target == queue.OtherQueues:
		m.status = queue.OtherQueues + " sums many queues: use refrakt jobs pause QUEUE"
		return m
	}
	var can bool
	switch kind {
	case actionReset:
		_, can = m.src.(BucketResetter)
	case actionBan:
		_, can = m.src.(BucketBanner)
	case actionRequeue:
		_, can = m.src.(JobRequeuer)
	case actionRequeueAll:
		_, can = m.src.(DeadRequeuer)
	case actionPauseQueue, actionResumeQueue:
		_, can = m.src.(QueuePauser)
	}
	if !can {
		m.status = "this source cannot do that"
		return m
	}
	if m.mayAct == permissionNo {
		// Known already: no prompt for an action that would be refused.
		m.status = verb + " needs a developer token"
		return m
	}
	m.confirm = &pendingAction{kind: kind, target: target}
	return m
}

// queuePaused reports whether the snapshot shows queue name paused.
func (m Model) queuePaused(name string) bool {
	for _, q := range m.snap.Queues {
		if q.Name == name {
			return q.Paused
		}
	}
	return false
}

// deadQueue is the queue of the dead job id, as the snapshot shows it.
func (m Model) deadQueue(id string) string {
	for _, j := range m.snap.DeadJobs {
		if j.ID == id {
			return j.Queue
		}
	}
	return ""
}

// answer handles the key pressed at a confirmation prompt: y runs it,
// anything else cancels.
func (m Model) answer(k string) (Model, tea.Cmd) {
	act := *m.confirm
	m.confirm = nil
	if k != "y" && k != "Y" {
		m.status = "cancelled"
		return m, nil
	}
	ctx, src, timeout := m.ctx, m.src, m.fetchTimeout
	if act.kind == actionRequeueAll {
		// As many calls as the queue's dead jobs take (500 a call).
		timeout = max(timeout, requeueAllTimeout)
	}
	m.status = "working…"
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var err error
		var moved int
		changed := true
		switch act.kind {
		case actionReset:
			err = src.(BucketResetter).ResetBucket(ctx, act.target)
		case actionBan:
			err = src.(BucketBanner).BanBucket(ctx, act.target, BanFor)
		case actionRequeue:
			err = src.(JobRequeuer).RequeueJob(ctx, act.target)
		case actionRequeueAll:
			moved, err = src.(DeadRequeuer).RequeueAllDead(ctx, act.target)
		case actionPauseQueue, actionResumeQueue:
			changed, err = src.(QueuePauser).SetQueuePaused(ctx, act.target, act.kind == actionPauseQueue)
		}
		return actionDoneMsg{action: act, moved: moved, unchanged: !changed, err: err}
	}
}

// move moves the focused pane's selection by d rows.
func (m Model) move(d int) Model {
	ids := m.rowIDs(m.focus)
	if len(ids) == 0 {
		return m
	}
	c := max(0, min(m.cursor[m.focus]+d, len(ids)-1))
	m.cursor[m.focus], m.selected[m.focus], m.chosen[m.focus] = c, ids[c], true
	return m
}

// pageRows is how many rows of the focused pane are on the screen: what
// pgup and pgdown move by.
func (m Model) pageRows() int {
	var n [numPanes]int
	for p := range numPanes {
		n[p] = len(m.rowIDs(p))
	}
	return max(1, layout(n, m.bodyHeight(), m.focus)[m.focus])
}

// reselect puts each pane's cursor back on its row after the rows changed:
// on the first row of a pane whose selection the user has not moved, on
// the selected row of one whose selection they have, and back on the
// first row (no longer chosen) when that row is gone.
func (m Model) reselect() Model {
	for p := range numPanes {
		ids := m.rowIDs(p)
		if len(ids) == 0 {
			m.cursor[p], m.selected[p], m.chosen[p] = 0, "", false
			continue
		}
		if i := slices.Index(ids, m.selected[p]); m.chosen[p] && i >= 0 {
			m.cursor[p] = i
			continue
		}
		m.cursor[p], m.selected[p], m.chosen[p] = 0, ids[0], false
	}
	return m
}
