package ddbtrack_test

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// fleetTasks sets the job size of BenchmarkFleet: issue 15 asks for 20,000.
var fleetTasks = flag.Int("bench.fleet-tasks", 20_000, "tasks in BenchmarkFleet's job")

// fleetPools lists the fleet sizes of BenchmarkFleet. Issue 15 asks for 2,
// 8 and 32 pools against one; 100 answers what a fleet of 100 machines
// should expect, at the cost of 800 workers on this machine.
var fleetPools = flag.String("bench.fleet-pools", "1,2,8,32", "pool counts of BenchmarkFleet, comma-separated; include 1 for drain/1-pool")

// fleetShards sets Config.Shards of BenchmarkFleet's job, to measure what
// more shards buy a big fleet; 0 keeps the default.
var fleetShards = flag.Int("bench.fleet-shards", 0, "Config.Shards of BenchmarkFleet's job; 0 for the default")

// fleetWorkers is the Concurrency of each pool of BenchmarkFleet.
const fleetWorkers = 8

// fleetOnePool is the drain time per task of the last one-pool run in this
// process: the baseline of the other fleet sizes' drain/1-pool, measured in
// the same run because the machine's speed changes from run to run.
var fleetOnePool struct {
	mu      sync.Mutex
	perTask time.Duration
}

// BenchmarkFleet drains one job of -bench.fleet-tasks Pending tasks with 1,
// 2, 8 and 32 pools (-bench.fleet-pools) of 8 workers each (Process in Batch mode with default
// options but Concurrency), every pool a tracker with its own owner and
// its own SDK client, as separate machines would be. The function does
// nothing, so the pools contend as hard as they ever can; each task must
// run exactly once. Reported per fleet size:
//
//   - refused/task: claims refused because another machine took the task
//     first, each a wasted write unit;
//   - queries/task and RRU/task: index reads and the read units the server
//     reported, reads that explain a refusal on dynalite included (DynamoDB
//     returns the refusing item instead); query-RRU/task is the queries' share;
//   - drain-s, tasks/s and drain/1-pool: the time from the pools' start to
//     the last Process's return, and that time against the one-pool run of
//     the same process (a smaller ratio is a faster drain);
//   - where the waste falls: tail-refused-share is the share of refused
//     claims made while the last tenth of the job was left, tail-queries
//     the queries sent then, and end-queries and end-s the queries and time
//     after the last task succeeded, when the pools find out the job is done.
//
// Tasks are seeded with BatchWriteItem (seedPending), outside the timer.
func BenchmarkFleet(b *testing.B) {
	for _, s := range strings.Split(*fleetPools, ",") {
		pools, err := strconv.Atoi(strings.TrimSpace(s))
		require.NoError(b, err, "-bench.fleet-pools")
		b.Run(fmt.Sprintf("pools=%d", pools), func(b *testing.B) {
			fleet(b, pools, *fleetTasks)
		})
	}
}

// fleetRun is what drains of a job by a fleet measured, added up.
type fleetRun struct {
	tasks, succeeded, refused, errors int
	use                               usage
	drain, end                        time.Duration
	// refusedIn and queriesIn split the refused claims and the queries by
	// phase of the job: the bulk, the last tenth, after the last success.
	refusedIn, queriesIn [3]int64
}

func (r *fleetRun) add(o fleetRun) {
	r.tasks += o.tasks
	r.succeeded += o.succeeded
	r.refused += o.refused
	r.errors += o.errors
	r.use = r.use.plus(o.use)
	r.drain += o.drain
	r.end += o.end
	for i := range 3 {
		r.refusedIn[i] += o.refusedIn[i]
		r.queriesIn[i] += o.queriesIn[i]
	}
}

func fleet(b *testing.B, pools, n int) {
	cfg := config(b)
	if *fleetShards > 0 {
		cfg.Shards = *fleetShards
	}
	newTracker(b, cfg)
	var sum fleetRun
	for i := range b.N {
		sum.add(fleetOnce(b, cfg, fmt.Sprintf("fleet-%d", i), pools, n))
	}
	perDrain := sum.drain / time.Duration(sum.tasks)
	fleetOnePool.mu.Lock()
	if pools == 1 {
		fleetOnePool.perTask = perDrain
	}
	one := fleetOnePool.perTask
	fleetOnePool.mu.Unlock()

	b.ReportMetric(perTask(float64(sum.refused), sum.tasks), "refused/task")
	b.ReportMetric(perTask(float64(sum.use.counts[reqcount.Query]), sum.tasks), "queries/task")
	b.ReportMetric(perTask(sum.use.readUnits(), sum.tasks), "RRU/task")
	b.ReportMetric(perTask(sum.use.units[reqcount.Query], sum.tasks), "query-RRU/task")
	b.ReportMetric(perTask(float64(sum.use.counts.Total()), sum.tasks), "requests/task")
	b.ReportMetric(sum.drain.Seconds()/float64(b.N), "drain-s")
	b.ReportMetric(float64(sum.tasks)/sum.drain.Seconds(), "tasks/s")
	if one > 0 {
		b.ReportMetric(float64(perDrain)/float64(one), "drain/1-pool")
	}
	if sum.refused > 0 {
		b.ReportMetric(float64(sum.refusedIn[1]+sum.refusedIn[2])/float64(sum.refused), "tail-refused-share")
	}
	b.ReportMetric(float64(sum.queriesIn[1])/float64(b.N), "tail-queries")
	b.ReportMetric(float64(sum.queriesIn[2])/float64(b.N), "end-queries")
	b.ReportMetric(sum.end.Seconds()/float64(b.N), "end-s")
	b.ReportMetric(float64(sum.errors)/float64(b.N), "errors")
}

// fleetOnce seeds job with n tasks and drains it with pools pools.
func fleetOnce(b *testing.B, cfg ddbtrack.Config[Step], job string, pools, n int) fleetRun {
	b.StopTimer()
	cfg.Job = job
	const prefix = "t-"
	seedPending(b, cfg, prefix, n, time.Now().Add(-time.Minute), time.Millisecond)

	// The phase of the job a request or refusal falls in: the bulk, the
	// last tenth, or after the last task succeeded.
	var done atomic.Int64
	var lastDone atomic.Int64 // Unix nanoseconds of the last success.
	tail := int64(max(n/10, 1))
	phase := func() int {
		switch left := int64(n) - done.Load(); {
		case left == 0:
			return 2
		case left <= tail:
			return 1
		}
		return 0
	}
	var refused [3]atomic.Int64
	var queries [3]atomic.Int64
	cfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
		switch e.Kind {
		case ddbtrack.EventSucceeded:
			if done.Add(1) == int64(n) {
				lastDone.Store(time.Now().UnixNano())
			}
		case ddbtrack.EventRefused:
			refused[phase()].Add(1)
		}
		return ctx
	}
	runs := make([]atomic.Int32, n)
	fn := func(_ context.Context, task *ddbtrack.Task[Step]) error {
		i, err := strconv.Atoi(task.ID[len(prefix):])
		if err != nil {
			return err
		}
		runs[i].Add(1)
		return nil
	}

	clients := make([]*reqcount.Client, pools)
	trackers := make([]*ddbtrack.Tracker[Step], pools)
	for p := range pools {
		clients[p] = machineClient(b)
		pcfg := cfg
		pcfg.Owner = fmt.Sprintf("machine-%d", p)
		tr, err := ddbtrack.New(&phaseClient{Client: clients[p], phase: phase, queries: &queries}, pcfg)
		require.NoError(b, err)
		trackers[p] = tr
	}

	var mu sync.Mutex
	r := fleetRun{tasks: n}
	var wg sync.WaitGroup
	b.StartTimer()
	start := time.Now()
	for _, tr := range trackers {
		wg.Go(func() {
			res, err := tr.Process(context.Background(), fn, ddbtrack.ProcessOptions[Step]{Concurrency: fleetWorkers})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.Error(err)
			}
			r.succeeded += res.Succeeded
			r.refused += res.Refused
			r.errors += res.Errors
		})
	}
	wg.Wait()
	r.drain = time.Since(start)
	b.StopTimer()

	require.Equal(b, n, r.succeeded)
	for i := range runs {
		if got := runs[i].Load(); got != 1 {
			b.Fatalf("task %s%06d ran %d times, want once", prefix, i, got)
		}
	}
	r.use = usageOf(clients...)
	r.end = start.Add(r.drain).Sub(time.Unix(0, lastDone.Load()))
	for i := range 3 {
		r.refusedIn[i], r.queriesIn[i] = refused[i].Load(), queries[i].Load()
	}
	return r
}

// phaseClient counts the Query requests sent in each phase of a job.
type phaseClient struct {
	ddbtrack.Client
	phase   func() int
	queries *[3]atomic.Int64
}

func (c *phaseClient) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries[c.phase()].Add(1)
	return c.Client.Query(ctx, in, optFns...)
}
