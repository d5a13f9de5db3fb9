package main

// The benchmarks of issue 14's point 2: what an operator waits for, and
// what the job's counting costs, on one job of 100,000 tasks on dynalite.
// They live here, in the command's module, because it holds both the
// command and the dashboard it serves, built as `ddbtrack serve` builds
// it. Run them with (BENCHMARKS.md has the results):
//
//	go test -run '^$' -bench '^BenchmarkOps' -benchtime 5x -count 5 -timeout 60m ./cmd/ddbtrack -args -opsbench.tasks=100000
//
// Seeding 100,000 tasks takes a minute or two, once per test binary, so
// `make bench` runs them only with BENCH_QUERIES=1.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

var opsBenchTasks = flag.Int("opsbench.tasks", 100_000, "tasks in the job the BenchmarkOps benchmarks read (10000 for a quick run)")

// opsJob is the seeded job the BenchmarkOps benchmarks share.
type opsJob struct {
	table  string
	scale  fixture.Scale
	client *dynamodb.Client
	// clock is every benchmark's clock. The job's shared counts carry the
	// time they were taken, so a benchmark whose clock started behind
	// the one before would find them fresh, however far it moved its own;
	// one clock that only moves forward keeps their age true.
	clock *fixture.Clock
}

// opsJobs holds the seeded job, loaded once per test binary: seeding takes
// too long to repeat for every benchmark and -count. On the local server
// the table goes with the server when the binary ends.
var opsJobs struct {
	mu  sync.Mutex
	job *opsJob
}

func loadOpsJob(b *testing.B) *opsJob {
	b.Helper()
	opsJobs.mu.Lock()
	defer opsJobs.mu.Unlock()
	if opsJobs.job != nil {
		return opsJobs.job
	}
	client := ddbtracktest.Client(b)
	j := &opsJob{table: fmt.Sprintf("BenchmarkOps-%d-%08x", *opsBenchTasks, rand.Uint32()), client: client, clock: fixture.NewClock(fixture.Start)}
	fx := &fixture.Fixture{Client: client, Table: j.table, Clock: fixture.NewClock(fixture.Start)}
	tr, err := ddbtrack.New(client, fx.Config("seed"))
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.CreateTable(context.Background()); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	j.scale = fixture.SeedScale(b, client, j.table, *opsBenchTasks, fixture.Start)
	b.Logf("seeded %d tasks in %v", j.scale.Total(), time.Since(start).Round(time.Millisecond))
	opsJobs.job = j
	return j
}

// opsRun is one benchmark's view of the job: a client that counts the
// requests sent through it.
type opsRun struct {
	*opsJob
	counter *reqcount.Client
}

func (j *opsJob) run() *opsRun {
	return &opsRun{opsJob: j, counter: reqcount.New(j.client)}
}

// app returns the command as a process would run it, reaching the job
// through the counting client, with its output in out.
func (r *opsRun) app(out *bytes.Buffer) *app {
	env := map[string]string{envTable: r.table, envJob: fixture.Job}
	return &app{
		stdout: out,
		stderr: out,
		getenv: func(k string) string { return env[k] },
		now:    r.clock.Now,
		dial:   func(context.Context, *common) (ddbtrack.Client, error) { return r.counter, nil },
	}
}

// cli runs the command and fails the benchmark unless it exits 0.
func (r *opsRun) cli(b *testing.B, args ...string) string {
	b.Helper()
	var out bytes.Buffer
	if code := r.app(&out).run(context.Background(), args); code != exitOK {
		b.Fatalf("ddbtrack %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	}
	return out.String()
}

// session opens the command's session, with the tracker the command
// builds from its flags and environment.
func (r *opsRun) session(b *testing.B) *session {
	b.Helper()
	a := r.app(new(bytes.Buffer))
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	s := &session{app: a, common: registerCommon(fs, a.getenv)}
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	if err := s.open(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// dashboard returns the handler `ddbtrack serve` serves, with its default
// refresh.
func (r *opsRun) dashboard(b *testing.B) http.Handler {
	b.Helper()
	h, err := dashboard.New(r.session(b).tracker, dashboard.Options{
		Refresh: 30 * time.Second,
		Now:     r.clock.Now,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// get loads a dashboard page as a browser on this machine would, and fails
// the benchmark unless it is served.
func get(b *testing.B, h http.Handler, path string) string {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+path, nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d\n%s", path, rec.Code, rec.Body.String())
	}
	return rec.Body.String()
}

// countMode is a state of the job's shared counts that a viewer meets.
type countMode int

const (
	// shared: another viewer took the counts less than CountMaxAge ago,
	// so they cost one GetItem.
	shared countMode = iota
	// refresh: the counts are older than CountMaxAge, and this viewer
	// refreshes them for everyone, with a full count. No other count
	// runs, as for a lone viewer that reloads every 30 s.
	refresh
	// busy: the counts are older than CountMaxAge, and another viewer is
	// refreshing them: this viewer uses them as they are, while the
	// other's full count keeps the server busy.
	busy
)

var countModes = []struct {
	name string
	mode countMode
}{
	{"counts=shared", shared},
	{"counts=refresh", refresh},
	{"counts=busy", busy},
}

// timed runs op once per iteration of b, after one untimed warm-up, with
// the job's counts in the mode's state, and reports the median time of
// the iterations beside Go's mean, and the requests each sent.
func (r *opsRun) timed(b *testing.B, mode countMode, op func()) {
	b.Helper()
	op() // The first load: the dashboard's check of the table, and the job's first counts.
	r.counter.Reset()
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		r.waitForCounts(b)
		if mode != shared {
			r.clock.Advance(countMaxAge + time.Second)
		}
		if mode == busy {
			r.otherRefresh(b)
		}
		b.StartTimer()
		start := time.Now()
		op()
		times = append(times, time.Since(start))
	}
	// A dashboard's refresh of the counts may still run: it would slow
	// whatever the next benchmark measures.
	r.waitForCounts(b)
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(r.counter.Counts().Total())/float64(b.N), "requests/op")
	b.ReportMetric(float64(r.counter.CountQueries())/float64(b.N), "count-queries/op")
	b.ReportMetric(float64(r.counter.CountedItems())/float64(b.N), "tasks-read/op")
}

// otherRefresh starts a refresh of the job's counts by another viewer, as
// the command builds it, and returns once it holds the refresh.
func (r *opsRun) otherRefresh(b *testing.B) {
	b.Helper()
	// Its requests are not this viewer's: they go through a counter of
	// their own.
	other := (&opsRun{opsJob: r.opsJob, counter: reqcount.New(r.client)}).session(b)
	go func() { _, _ = other.tracker.Count(context.Background()) }()
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fixture.Job}}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		out, err := r.client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &r.table, Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			b.Fatal(err)
		}
		if _, counting := out.Item["counting_token"]; counting {
			return
		}
	}
	b.Fatal("the other viewer's refresh did not start within a minute")
}

// waitForCounts waits until no refresh of the job's shared counts runs,
// which the job's item shows by its counting_token.
func (r *opsRun) waitForCounts(b *testing.B) {
	b.Helper()
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fixture.Job}}
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, err := r.client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &r.table, Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			b.Fatal(err)
		}
		if _, counting := out.Item["counting_token"]; !counting {
			return
		}
	}
	b.Fatal("the job's counts were still being refreshed after 5 minutes")
}

// BenchmarkOpsOverview loads the dashboard's overview, GET /, through the
// handler `ddbtrack serve` serves: the counts, the stuck tasks and the
// chart of the last 24 hours. Goal: under 1 s.
func BenchmarkOpsOverview(b *testing.B) {
	job := loadOpsJob(b)
	for _, mode := range countModes {
		b.Run(mode.name, func(b *testing.B) {
			r := job.run()
			h := r.dashboard(b)
			want := fmt.Sprintf("%d tasks in total", job.scale.Total())
			r.timed(b, mode.mode, func() {
				if page := get(b, h, "/"); !strings.Contains(page, want) {
					b.Fatalf("the overview does not say %q", want)
				}
			})
		})
	}
}

// BenchmarkOpsStats runs `ddbtrack stats` in-process, as the command's
// tests do: a new process's tracker each time. Goal: under 1 s.
func BenchmarkOpsStats(b *testing.B) {
	job := loadOpsJob(b)
	for _, mode := range countModes {
		b.Run(mode.name, func(b *testing.B) {
			r := job.run()
			want := fmt.Sprint(job.scale.Total())
			r.timed(b, mode.mode, func() {
				if out := r.cli(b, "stats"); !strings.Contains(out, want) {
					b.Fatalf("stats does not count %s tasks:\n%s", want, out)
				}
			})
		})
	}
}

// BenchmarkOpsFailedByError lists the first page of failed tasks whose
// error contains a text, with `ddbtrack ls` and on the dashboard's tasks
// page: for the most common cause (40% of the failures), and for the
// rarest (2%), which DynamoDB has to read every failed task to fill a page
// of. Goal: under 100 ms.
func BenchmarkOpsFailedByError(b *testing.B) {
	job := loadOpsJob(b)
	for _, c := range []int{0, len(fixture.ScaleCauses) - 1} {
		cause := fixture.ScaleCauses[c]
		name := strings.ReplaceAll(cause.Contains, " ", "-")
		b.Run("via=ls/error="+name, func(b *testing.B) {
			r := job.run()
			r.timed(b, shared, func() {
				if out := r.cli(b, "ls", "--status", "failed", "--error-contains", cause.Contains); !strings.Contains(out, cause.Contains) {
					b.Fatalf("ls lists no task with %q:\n%s", cause.Contains, out)
				}
			})
		})
		b.Run("via=dashboard/error="+name, func(b *testing.B) {
			r := job.run()
			h := r.dashboard(b)
			path := "/tasks?" + url.Values{"status": {"failed"}, "error": {cause.Contains}}.Encode()
			r.timed(b, shared, func() {
				if page := get(b, h, path); !strings.Contains(page, cause.Contains) {
					b.Fatalf("the tasks page lists no task with %q", cause.Contains)
				}
			})
		})
	}
}

// The viewers of BenchmarkOpsCountQueries: 10 viewers, 5 dashboards
// reloading the overview every 30 s and 5 `stats --watch` at their default
// 5 s, and 8 Process pools reporting progress at the default
// ProgressInterval of 5 s.
const (
	simDashboards = 5
	simWatchers   = 5
	simPools      = 8
	dashboardRate = 30 * time.Second
	watchRate     = 5 * time.Second
	progressRate  = 5 * time.Second
)

// BenchmarkOpsCountQueries counts the count queries (Select=COUNT) that
// the job receives in one minute from 10 viewers and 8 progress-reporting
// pools, with the job's shared counts as the command and the dashboard
// use them (counts=shared), against the same viewers counting afresh
// (counts=fresh, Config.CountMaxAge 0, as before shared counts).
//
// The minute is simulated on the fixture's clock, one second at a time:
// at each second every viewer and pool due then asks for the counts at
// once, and the clock waits for their answers. So a count that a pool or
// watcher makes takes no simulated time, and the figure is what the
// sharing allows, not what dynalite's speed allows. (A dashboard answers
// after ops.CountWait at most, and the count it started goes on while the
// clock moves.) A minute of warm-up comes first, so that the figure is
// the steady state, not the job's first counts.
//
// The dashboards load the overview through the handler; the watchers
// make the call each refresh of `stats --watch` makes (ops.Job.Count, on
// the command's tracker); a pool's progress report reads the shared
// counts with ProgressInterval as their maximum age, which is
// Tracker.Count on a tracker whose CountMaxAge is ProgressInterval.
//
// Besides the count queries, it reports the tasks they read (tasks-read,
// by the server's ScannedCount), which a count's cost and time grow with,
// and that figure in full counts of the job (full-counts): a refresh of
// the shared counts reads the unfinished tasks and only the finished ones
// that are new since the last refresh.
//
// Counting afresh is not run for a whole minute: at 100,000 tasks its 166
// full counts would take most of an hour on dynalite. Every one of them
// sends the same queries, so it is the number of calls in the minute
// times the count queries of one fresh count, measured.
func BenchmarkOpsCountQueries(b *testing.B) {
	job := loadOpsJob(b)
	b.Run("counts=shared", func(b *testing.B) {
		var perMinute, read, fullCounts float64
		for b.Loop() {
			r := job.run()
			// Counts left by other benchmarks are stale here.
			r.clock.Advance(time.Minute)
			perMinute, read, fullCounts = r.simulate(b)
		}
		b.ReportMetric(perMinute, "count-queries/min")
		b.ReportMetric(read, "tasks-read/min")
		b.ReportMetric(fullCounts, "full-counts/min")
	})
	b.Run("counts=fresh", func(b *testing.B) {
		calls := simDashboards*int(time.Minute/dashboardRate) + simWatchers*int(time.Minute/watchRate) + simPools*int(time.Minute/progressRate)
		var perCount int
		var perCountRead int64
		for b.Loop() {
			r := job.run()
			tr, err := ddbtrack.New(r.counter, r.poolConfig("fresh", 0))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.Count(context.Background()); err != nil {
				b.Fatal(err)
			}
			perCount, perCountRead = r.counter.CountQueries(), r.counter.CountedItems()
		}
		b.ReportMetric(float64(calls*perCount), "count-queries/min")
		b.ReportMetric(float64(int64(calls)*perCountRead), "tasks-read/min")
		b.ReportMetric(float64(calls), "full-counts/min")
	})
}

// poolConfig is the configuration of a worker of the job whose progress
// reports read counts at most maxAge old.
func (r *opsRun) poolConfig(owner string, maxAge time.Duration) ddbtrack.Config[fixture.Status] {
	fx := &fixture.Fixture{Client: r.counter, Table: r.table, Clock: r.clock}
	cfg := fx.Config(owner)
	cfg.CountMaxAge = maxAge
	return cfg
}

// simulate runs a minute of warm-up and a minute of viewers and pools on
// the clock, and returns the count queries of the second, the tasks they
// read, and that in full counts of the job.
func (r *opsRun) simulate(b *testing.B) (countQueries, read, fullCounts float64) {
	b.Helper()
	ctx := context.Background()
	type viewer struct {
		every, offset time.Duration
		ask           func()
	}
	var viewers []viewer
	for i := range simDashboards {
		h := r.dashboard(b)
		viewers = append(viewers, viewer{dashboardRate, time.Duration(i) * dashboardRate / simDashboards, func() { get(b, h, "/") }})
	}
	for i := range simWatchers {
		s := r.session(b)
		viewers = append(viewers, viewer{watchRate, time.Duration(i) * time.Second % watchRate, func() {
			if _, err := s.job.Count(ctx, s.now()); err != nil {
				b.Error(err)
			}
		}})
	}
	for i := range simPools {
		tr, err := ddbtrack.New(r.counter, r.poolConfig(fmt.Sprintf("pool-%d", i), progressRate))
		if err != nil {
			b.Fatal(err)
		}
		viewers = append(viewers, viewer{progressRate, time.Duration(i) * time.Second % progressRate, func() {
			if _, err := tr.Count(ctx); err != nil {
				b.Error(err)
			}
		}})
	}
	// The tasks one fresh count reads, to tell how many full counts the
	// minute's count queries make.
	perCount := r.freshCountRead(b)

	start := r.clock.Now()
	for sec := range 2 * 60 {
		if sec == 60 {
			r.counter.Reset()
		}
		at := time.Duration(sec) * time.Second
		r.clock.Set(start.Add(at))
		var wg sync.WaitGroup
		for _, v := range viewers {
			if at >= v.offset && (at-v.offset)%v.every == 0 {
				wg.Go(v.ask)
			}
		}
		wg.Wait()
	}
	r.waitForCounts(b)
	read = float64(r.counter.CountedItems())
	return float64(r.counter.CountQueries()), read, read / float64(perCount)
}

// freshCountRead returns the tasks one fresh count of the job reads.
func (r *opsRun) freshCountRead(b *testing.B) int64 {
	b.Helper()
	counter := reqcount.New(r.client)
	fx := &fixture.Fixture{Client: counter, Table: r.table, Clock: r.clock}
	tr, err := ddbtrack.New(counter, fx.Config("counter"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Count(context.Background()); err != nil {
		b.Fatal(err)
	}
	return counter.CountedItems()
}
