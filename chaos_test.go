//go:build unix

package ddbtrack_test

// TestChaos runs several worker processes on one job through the fault
// proxy, kills and pauses them, cuts DynamoDB off for a moment, and then
// checks the table against what the workers logged (chaos_report_test.go).
// The workers are this test binary started again with chaosWorkerEnv set,
// as crash_test.go does; they call the library through libcalls_test.go.
//
//	go test -run '^TestChaos$' -v .                      # short form, also in make test
//	go test -run '^TestChaos$' -v . -args -chaos.long    # long form, make chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

var (
	chaosLong = flag.Bool("chaos.long", false, "run TestChaos's long form (make chaos)")
	chaosSeed = flag.Uint64("chaos.seed", 0, "seed TestChaos's faults and schedule with this, instead of a random one")
	chaosLogs = flag.String("chaos.logs", "", "keep TestChaos's worker logs in this directory, instead of a temporary one")
)

// chaosWorkerEnv holds a worker's chaosSpec, as JSON, when TestChaos starts
// this test binary as a worker.
const chaosWorkerEnv = "DDBTRACK_CHAOS_WORKER"

// chaosPlan sizes one chaos run. Every duration follows from the lease, so
// that the margins between them hold whatever the lease is.
type chaosPlan struct {
	Tasks, Workers, Concurrency int
	// Lease is the tasks' lease. A killed worker's tasks wait that long.
	Lease time.Duration
	// Outage is how long every request is cut or held, at each of the
	// Outages moments: a third of the lease, so that a lease last renewed
	// just before an outage outlives it by another third.
	Outage  time.Duration
	Outages int
	// FinishTimeout is five outages: an outcome write that meets an outage
	// has four more to land in.
	FinishTimeout time.Duration
	// Pause is how long a worker is stopped (SIGSTOP), at each of the
	// Pauses moments: one and a half leases, so its leases expire and its
	// tasks are taken over while it sleeps.
	Pause  time.Duration
	Pauses int
	// KillEvery is how often a worker is killed (SIGKILL) and started
	// again, while the job is between 5% and 85% done.
	KillEvery time.Duration
	// Deadline bounds the run, from the workers' start to the last one's
	// exit.
	Deadline time.Duration
}

func newChaosPlan(server string, long bool) chaosPlan {
	p := chaosPlan{Tasks: 240, Workers: 4, Concurrency: 4, Lease: 6 * time.Second, Outages: 1, Pauses: 1, Deadline: 50 * time.Second}
	if server == "moto" {
		// moto serves about a hundred requests a second, one at a time.
		p.Tasks, p.Workers, p.Concurrency = 60, 3, 2
	}
	if long {
		p.Tasks, p.Lease, p.Outages, p.Pauses, p.Deadline = 2000, 12*time.Second, 3, 3, 20*time.Minute
		if server == "moto" {
			p.Tasks = 400
		}
	}
	p.Outage = p.Lease / 3
	p.FinishTimeout = 5 * p.Outage
	p.Pause = 3 * p.Lease / 2
	p.KillEvery = p.Lease / 2
	return p
}

// chaosSpec tells a worker process what to do.
type chaosSpec struct {
	Name          string // "w2.g1": worker 2, started the second time.
	Table         string
	Endpoint      string // The fault proxy.
	Log           string // The file the worker appends its chaosLines to.
	ParentPid     int
	Lease         time.Duration
	FinishTimeout time.Duration
	MaxAttempts   int
	Concurrency   int
}

// chaosLine is one line of a worker's log.
type chaosLine struct {
	// Ev is "hello" (the worker started), "start" and "end" (a run of fn),
	// "event" (a report from Process, Kind saying which) or "result" (what
	// Process returned).
	Ev      string    `json:"ev"`
	T       time.Time `json:"t"`
	Pid     int       `json:"pid,omitempty"`
	Run     string    `json:"run,omitempty"`
	Task    string    `json:"task,omitempty"`
	Fence   int64     `json:"fence,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	// Kind is an event's kind, or how a run ended: "ok", "failed", or
	// "stopped" when fn's context was cancelled.
	Kind   string      `json:"kind,omitempty"`
	Err    string      `json:"err,omitempty"`
	Counts *poolCounts `json:"counts,omitempty"`
}

// chaosOutput is what a successful run stores as the task's output.
type chaosOutput struct {
	Run   string
	Fence int64
}

// chaosWork decides how long a run works and whether it fails, the same
// way for every worker: mostly a fraction of a second, so that the job
// lasts long enough for the chaos while the machine stays idle; one run in
// twenty outlives a few renewals; one in six fails.
func chaosWork(task string, attempt int, lease time.Duration) (time.Duration, bool) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", task, attempt)
	v := h.Sum64()
	fail := v%6 == 0
	ms := func(lo, hi uint64) time.Duration { return time.Duration(lo+(v>>16)%(hi-lo)) * time.Millisecond }
	switch r := (v >> 8) % 100; {
	case r < 5:
		return 6 * lease / 10, fail
	case r < 30:
		return ms(800, 1600), fail
	default:
		return ms(200, 800), fail
	}
}

// TestChaosWorker is not a test of its own: it is a worker that TestChaos
// runs in a child process. Without chaosWorkerEnv it does nothing.
func TestChaosWorker(t *testing.T) {
	raw := os.Getenv(chaosWorkerEnv)
	if raw == "" {
		return
	}
	var spec chaosSpec
	require.NoError(t, json.Unmarshal([]byte(raw), &spec))
	f, err := os.OpenFile(spec.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	var mu sync.Mutex
	// Each line is one write, so a SIGKILL cuts at most the last one.
	logLine := func(l chaosLine) {
		l.T = time.Now()
		b, err := json.Marshal(l)
		if err != nil {
			panic(err)
		}
		mu.Lock()
		defer mu.Unlock()
		_, _ = f.Write(append(b, '\n'))
	}
	logLine(chaosLine{Ev: "hello", Pid: os.Getpid()})

	// A parent that dies without its cleanup (a test timeout) must not
	// leave workers behind.
	go func() {
		for range time.Tick(time.Second) {
			if os.Getppid() != spec.ParentPid {
				os.Exit(3)
			}
		}
	}()

	tr, err := newTrackerWith(rigClient(t, spec.Endpoint), trackerSettings{
		Table: spec.Table, Owner: spec.Name, Lease: spec.Lease, FinishTimeout: spec.FinishTimeout,
		MaxAttempts: spec.MaxAttempts, ErrorHistory: 100,
	})
	require.NoError(t, err)
	var seq atomic.Int64
	fn := func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		run := fmt.Sprintf("%s.%d", spec.Name, seq.Add(1))
		logLine(chaosLine{Ev: "start", Run: run, Task: task.ID, Fence: task.Fence, Attempt: task.Attempts})
		d, fail := chaosWork(task.ID, task.Attempts, spec.Lease)
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			err := fmt.Errorf("run %s (fence %d) stopped: %w", run, task.Fence, context.Cause(ctx))
			logLine(chaosLine{Ev: "end", Run: run, Task: task.ID, Fence: task.Fence, Kind: "stopped", Err: err.Error()})
			return err
		}
		if fail {
			err := fmt.Errorf("injected failure: run %s (fence %d)", run, task.Fence)
			logLine(chaosLine{Ev: "end", Run: run, Task: task.ID, Fence: task.Fence, Kind: "failed", Err: err.Error()})
			return err
		}
		if err := task.SetOutput(chaosOutput{Run: run, Fence: task.Fence}); err != nil {
			return err
		}
		logLine(chaosLine{Ev: "end", Run: run, Task: task.ID, Fence: task.Fence, Kind: "ok"})
		return nil
	}
	counts, err := runPool(context.Background(), tr, fn, poolOptions{
		Concurrency: spec.Concurrency, PollInterval: 200 * time.Millisecond, MaxBackoff: time.Second,
	}, func(ev poolEvent) {
		logLine(chaosLine{Ev: "event", Kind: ev.Kind, Task: ev.TaskID, Fence: ev.Fence, Attempt: ev.Attempt, Err: ev.Err})
	})
	res := chaosLine{Ev: "result", Counts: &counts}
	if err != nil {
		res.Err = err.Error()
	}
	logLine(res)
}

// chaosProc is one worker process: one start of one worker.
type chaosProc struct {
	name   string
	worker int
	gen    int
	cmd    *exec.Cmd
	log    string // The file it appends its chaosLines to.
	output string // The file holding its stdout and stderr.
	done   chan struct{}
	err    error // From Wait, once done is closed.
	killed time.Time
	pauses []window
}

// window is a stretch of time, such as an outage or a pause.
type window struct{ from, to time.Time }

func (w window) overlaps(from, to time.Time) bool { return !to.Before(w.from) && !from.After(w.to) }

func (p *chaosProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *chaosProc) paused() bool { return len(p.pauses) > 0 && p.pauses[len(p.pauses)-1].to.IsZero() }

// chaosRig runs the workers and the chaos.
type chaosRig struct {
	t     *testing.T
	plan  chaosPlan
	spec  chaosSpec
	dir   string
	rng   *rand.Rand
	proxy *faultproxy.Proxy
	// faultRng draws the faults on writes, and faults logs them; both
	// are used only under the proxy's lock, until the run is over.
	faultRng *rand.Rand
	faults   []injected
	procs    []*chaosProc
	// began is when the first worker started; outages are the total
	// outages so far; kills counts SIGKILLs.
	began   time.Time
	outages []window
	kills   int
}

// baseFaults are the faults of the whole run: lost responses, cut
// requests, throttling, 500s and delays, each on a few percent of requests.
// With rigAttempts tries per request, they alone almost never make a
// request fail for good; the outages do. The faults on UpdateItem are drawn
// here rather than by the proxy, so that each one is logged with the write
// and the task it hit, which the report uses to explain what followed.
func (r *chaosRig) baseFaults() []faultproxy.Rule {
	write := func(fault faultproxy.Fault, p float64) faultproxy.Rule {
		return faultproxy.Rule{Op: "UpdateItem", Fault: fault, Match: func(op string, body []byte) bool {
			// The proxy calls Match under its lock, one request at a
			// time, which also guards the generator and the log.
			if r.faultRng.Float64() >= p {
				return false
			}
			r.faults = append(r.faults, injected{at: time.Now(), fault: fault, write: writeKind(op, body), task: taskOf(body)})
			return true
		}}
	}
	return []faultproxy.Rule{
		write(faultproxy.Drop, 0.04),
		write(faultproxy.Throttle, 0.03),
		write(faultproxy.Cut, 0.02),
		{Op: "Query", Fault: faultproxy.ServerError, Probability: 0.04},
		{Op: "Query", Fault: faultproxy.Throttle, Probability: 0.03},
		{Op: "GetItem", Fault: faultproxy.Cut, Probability: 0.05},
		{Fault: faultproxy.Delay, Delay: 30 * time.Millisecond, Probability: 0.05},
	}
}

// injected is one fault that baseFaults put on a write.
type injected struct {
	at    time.Time
	fault faultproxy.Fault
	write string // "claim", "outcome", "renewal" or "other".
	task  string
}

func writeKind(op string, body []byte) string {
	switch {
	case isClaim(op, body):
		return "claim"
	case isOutcome(op, body):
		return "outcome"
	case isRenewal(op, body):
		return "renewal"
	}
	return "other"
}

var taskKey = regexp.MustCompile(`"pk":\{"S":"test-job#([^"]+)"\}`)

// taskOf returns the ID of the task a request writes.
func taskOf(body []byte) string {
	if m := taskKey.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

// outageFaults cut every request, or hold it a moment first, as a network
// that has gone away does.
func outageFaults() []faultproxy.Rule {
	return []faultproxy.Rule{
		{Fault: faultproxy.Hang, Delay: 300 * time.Millisecond, Probability: 0.3},
		{Fault: faultproxy.Cut},
	}
}

func (r *chaosRig) start(worker, gen int) {
	spec := r.spec
	spec.Name = fmt.Sprintf("w%d.g%d", worker, gen)
	spec.Log = filepath.Join(r.dir, spec.Name+".jsonl")
	raw, err := json.Marshal(spec)
	require.NoError(r.t, err)
	out, err := os.Create(filepath.Join(r.dir, spec.Name+".out"))
	require.NoError(r.t, err)
	defer out.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosWorker$", "-test.count=1",
		"-test.timeout="+(r.plan.Deadline+time.Minute).String())
	cmd.Env = append(os.Environ(), chaosWorkerEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(r.t, cmd.Start())
	p := &chaosProc{name: spec.Name, worker: worker, gen: gen, cmd: cmd, log: spec.Log, output: out.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.procs = append(r.procs, p)
}

// live returns the workers that are running and not paused.
func (r *chaosRig) live() []*chaosProc {
	var live []*chaosProc
	for _, p := range r.procs {
		if !p.exited() && !p.paused() {
			live = append(live, p)
		}
	}
	return live
}

func (r *chaosRig) running() bool {
	for _, p := range r.procs {
		if !p.exited() {
			return true
		}
	}
	return false
}

// progress estimates the share of the job done from the writes that have
// reached the proxy: a claim and an outcome per attempt.
func (r *chaosRig) progress() float64 {
	return float64(r.proxy.Requests()["UpdateItem"]) / float64(2*r.plan.Tasks)
}

// run starts the workers and brings on the chaos until every worker has
// exited, or the deadline. It reports whether the run finished in time.
func (r *chaosRig) run() bool {
	r.began = time.Now()
	for w := range r.plan.Workers {
		r.start(w, 0)
	}
	type restart struct {
		at           time.Time
		worker, next int
	}
	var restarts []restart
	var nextKill time.Time
	var outageEnds, pauseEnds time.Time
	var paused *chaosProc
	// The outages and pauses come at even steps through the middle of the
	// job, by the share of it done, so that each meets a busy pool however
	// fast the machine is.
	at := func(i, n int, from, to float64) float64 { return from + (to-from)*float64(i)/float64(max(n-1, 1)) }
	for {
		now := time.Now()
		if !outageEnds.IsZero() && now.After(outageEnds) {
			r.proxy.Set(r.baseFaults()...)
			r.outages[len(r.outages)-1].to = now
			outageEnds = time.Time{}
		}
		if paused != nil && now.After(pauseEnds) {
			_ = paused.cmd.Process.Signal(syscall.SIGCONT)
			paused.pauses[len(paused.pauses)-1].to = time.Now()
			paused = nil
		}
		for len(restarts) > 0 && now.After(restarts[0].at) {
			r.start(restarts[0].worker, restarts[0].next)
			restarts = restarts[1:]
		}
		if !r.running() && len(restarts) == 0 {
			return true
		}
		if now.Sub(r.began) > r.plan.Deadline {
			return false
		}
		done := r.progress()
		if live := r.live(); done >= 0.05 && done < 0.85 && now.After(nextKill) && len(live) > 0 {
			p := live[r.rng.IntN(len(live))]
			p.killed = time.Now()
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			r.kills++
			restarts = append(restarts, restart{at: now.Add(300 * time.Millisecond), worker: p.worker, next: p.gen + 1})
			nextKill = now.Add(r.plan.KillEvery)
		}
		// Outages and pauses never overlap, so that each run they touch
		// has one cause.
		if n := len(r.outages); outageEnds.IsZero() && paused == nil && n < r.plan.Outages && done >= at(n, r.plan.Outages, 0.25, 0.65) {
			r.proxy.Set(outageFaults()...)
			r.outages = append(r.outages, window{from: time.Now()})
			outageEnds = now.Add(r.plan.Outage)
		}
		pauses := 0
		for _, p := range r.procs {
			pauses += len(p.pauses)
		}
		if live := r.live(); paused == nil && outageEnds.IsZero() && pauses < r.plan.Pauses && done >= at(pauses, r.plan.Pauses, 0.45, 0.8) && len(live) > 0 {
			// The worker that has run longest: one just started again
			// after a kill may hold no task yet.
			paused = live[0]
			paused.pauses = append(paused.pauses, window{from: time.Now()})
			_ = paused.cmd.Process.Signal(syscall.SIGSTOP)
			pauseEnds = now.Add(r.plan.Pause)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll kills every worker still running, after a deadline or a
// failure.
func (r *chaosRig) stopAll() {
	for _, p := range r.procs {
		if !p.exited() {
			p.killed = time.Now()
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
	}
}

// TestChaos: several worker processes run Process on one job through the
// fault proxy, which loses responses, cuts requests, throttles, answers
// 500 and delays, and once or more cuts DynamoDB off for a third of a
// lease. Workers are killed with SIGKILL and started again, and paused
// with SIGSTOP for longer than their leases. Then the table and the
// workers' logs must agree; chaos_report_test.go says how.
func TestChaos(t *testing.T) {
	t.Parallel()
	endpoint := serverEndpoint(t)
	if !strings.HasPrefix(endpoint, "http://") {
		t.Skipf("the fault proxy needs a local server's http:// endpoint; the tests run against %q", endpoint)
	}
	ctx := context.Background()
	plan := newChaosPlan(serverKind(), *chaosLong)
	seed := *chaosSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	dir := *chaosLogs
	if dir == "" {
		dir = t.TempDir()
	} else {
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}

	cfg := config(t)
	cfg.Lease, cfg.FinishTimeout, cfg.ErrorHistory = plan.Lease, plan.FinishTimeout, 100
	tr := newTracker(t, cfg)
	ids := make([]string, plan.Tasks)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%04d", i)
	}
	created, _, err := createMany(ctx, tr, ids)
	require.NoError(t, err)
	require.Len(t, created, plan.Tasks)

	proxy, err := faultproxy.New(rigTarget(t), seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	r := &chaosRig{
		t: t, plan: plan, dir: dir, proxy: proxy,
		rng: rand.New(rand.NewPCG(seed, seed>>1)), faultRng: rand.New(rand.NewPCG(seed>>2, seed)),
		spec: chaosSpec{
			Table: cfg.Table, Endpoint: proxy.URL, ParentPid: os.Getpid(),
			Lease: plan.Lease, FinishTimeout: plan.FinishTimeout, MaxAttempts: 5, Concurrency: plan.Concurrency,
		},
	}
	proxy.Set(r.baseFaults()...)
	t.Cleanup(r.stopAll)
	t.Logf("chaos on %s: %d tasks, %d workers × %d, lease %v, FinishTimeout %v, %d outage(s) of %v, %d pause(s) of %v, a kill every %v; seed %d (-chaos.seed), logs in %s",
		serverKind(), plan.Tasks, plan.Workers, plan.Concurrency, plan.Lease, plan.FinishTimeout,
		plan.Outages, plan.Outage, plan.Pauses, plan.Pause, plan.KillEvery, seed, dir)

	finished := r.run()
	r.stopAll()
	proxy.Set()
	t.Logf("workers ran for %v; faults injected: %v", time.Since(r.began).Round(time.Millisecond), proxy.Injected())

	// A worker that exited on its own must have exited cleanly: anything
	// else (a race report, a panic) is a failure of its own.
	for _, p := range r.procs {
		if p.killed.IsZero() && p.err != nil && finished {
			out, _ := os.ReadFile(p.output)
			t.Fatalf("worker %s exited with %v:\n%s", p.name, p.err, tail(string(out), 4000))
		}
	}
	tasks := make(map[string]*ddbtrack.Task[Step], len(ids))
	for _, id := range ids {
		tasks[id] = get(t, tr, id)
	}
	rep := analyseChaos(t, r, tasks)
	rep.log(t)
	require.Truef(t, finished, "the workers did not finish the job within %v; the report above shows where it stood", plan.Deadline)
	require.Equal(t, plan.Outages, len(r.outages), "the job ended before every outage: raise chaosPlan.Tasks")
	require.Positive(t, r.kills, "no worker was killed: raise chaosPlan.Tasks")
	require.Empty(t, rep.failedAssertions(), "chaos assertions failed; each violation is listed above")
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// readChaosLog reads a worker's log. A SIGKILL may cut its last line
// short; that line is dropped and counted. Any other line that does not
// parse is a harness bug.
func readChaosLog(path string) (lines []chaosLine, torn int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var bad string
	for sc.Scan() {
		if bad != "" {
			return nil, 0, fmt.Errorf("%s: a line that is not the last does not parse: %q", path, bad)
		}
		var l chaosLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			bad = sc.Text()
			continue
		}
		lines = append(lines, l)
	}
	if bad != "" {
		torn = 1
	}
	return lines, torn, sc.Err()
}
