package ddbtrack_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// Benchmarks against the local server. `make bench` runs them in several
// rounds, interleaved, and compares ddbtrack with the raw-SDK baseline
// measured in the same round: the machine is shared, so only ratios taken
// close together in time mean anything.

// BenchmarkThroughput processes Pending tasks with a no-op function at 1, 4
// and 16 concurrent workers, comparing the raw-SDK baseline (the same
// conditional writes as Start, from a list of IDs) with Tracker.Start fed
// from the same kind of list (against=start), and with Tracker.Process, the
// worker pool, which finds its tasks itself by querying the status index
// (against=process). The two of a pair alternate on one table in chunks of
// a few dozen tasks (processChunk for Process), each chunk timed on its own
// and the order swapped each
// time, so that a change in the machine's load (it is shared with the
// server and with other work) hits both alike. b.N is the number of tasks
// each processes; tasks are created before the timer starts, so the
// figures are claims plus outcomes, two writes per task, and for Process
// its queries too.
//
// Reported: tasks/s of each, and ratio, the median over the chunks of the
// implementation's rate over the baseline's in the same chunk. Process runs
// each chunk as one Batch call on a job of its own, so it also pays, per
// chunk, for the queries that find the tasks and that find out the job is
// done: requests/task counts them with its claims and outcomes (Start sends
// exactly 2). Process uses its default options, as most callers will. The pairs are measured apart because with all three in one
// rotation Start measured 10% slower at 16 workers, an interaction not
// present in either pair. The loggers are off (slog.DiscardHandler) because
// the baseline logs nothing; BenchmarkLifecycle measures what logging costs.
func BenchmarkThroughput(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		for _, against := range []string{"start", "process"} {
			b.Run(fmt.Sprintf("workers=%d/against=%s", workers, against), func(b *testing.B) {
				throughput(b, workers, against)
			})
		}
	}
}

func throughput(b *testing.B, workers int, against string) {
	cfg := config(b)
	cfg.Logger = slog.New(slog.DiscardHandler)
	tr := newTracker(b, cfg)
	base := newBaseline(ddbtracktest.Client(b), cfg)
	chunk := max(24, 2*workers)
	if against == "process" {
		// A Batch call pays a fixed number of queries to find out that
		// its job is done; a chunk of 24 would make that most of the
		// cost, where real batches spread it over thousands of tasks.
		chunk = *processChunk
	}
	chunks := (b.N + chunk - 1) / chunk
	baseIDs := createTasks(b, tr, "b", b.N)
	var run func(c, from, to int)
	rc := reqcount.New(ddbtracktest.Client(b))
	switch against {
	case "start":
		t, err := ddbtrack.New(rc, cfg)
		require.NoError(b, err)
		ids := createTasks(b, t, "d", b.N)
		run = func(_, from, to int) {
			runWorkers(b, workers, ids[from:to], func(id string) error { return t.Start(context.Background(), id, okFn) })
		}
	case "process":
		// Process finds its tasks by job, so each chunk is a job.
		procs := make([]*ddbtrack.Tracker[Step], chunks)
		for c := range procs {
			pcfg := cfg
			pcfg.Job = fmt.Sprintf("process-%d", c)
			pt, err := ddbtrack.New(rc, pcfg)
			require.NoError(b, err)
			createTasks(b, pt, "p", min(chunk, b.N-c*chunk))
			procs[c] = pt
		}
		run = func(c, from, to int) {
			res, err := procs[c].Process(context.Background(), okFn, ddbtrack.ProcessOptions[Step]{Concurrency: workers})
			require.NoError(b, err)
			require.Equal(b, to-from, res.Succeeded)
		}
	}
	runBase := func(_, from, to int) {
		runWorkers(b, workers, baseIDs[from:to], func(id string) error { return base.start(context.Background(), id, nopData) })
	}
	// Warm up: open the connections both will use, so that neither pays
	// for them inside its timed chunks.
	runWorkers(b, workers, createTasks(b, tr, "w", 2*workers), func(id string) error { return base.start(context.Background(), id, nopData) })

	rc.Reset()
	var elapsed [2]time.Duration
	var ratios []float64
	b.ResetTimer()
	for c := range chunks {
		from, to := c*chunk, min((c+1)*chunk, b.N)
		var took [2]time.Duration
		for i := range 2 {
			impl := (i + c) % 2 // 0 is the baseline; who goes first alternates.
			start := time.Now()
			if impl == 0 {
				runBase(c, from, to)
			} else {
				run(c, from, to)
			}
			took[impl] = time.Since(start)
			elapsed[impl] += took[impl]
		}
		// Same number of tasks each, so the rate ratio is the inverse
		// time ratio.
		ratios = append(ratios, took[0].Seconds()/took[1].Seconds())
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed[0].Seconds(), "baseline-tasks/s")
	b.ReportMetric(float64(b.N)/elapsed[1].Seconds(), "tasks/s")
	// The median of the chunks' ratios: a burst of load from elsewhere
	// that hits one chunk moves it less than the totals.
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(float64(rc.Counts().Total())/float64(b.N), "requests/task")
	// ns/op is the implementation's time per task; the rates are the
	// figures to compare.
	b.ReportMetric(float64(elapsed[1].Nanoseconds())/float64(b.N), "ns/op")
}

// processChunk is the size of a Process Batch call in BenchmarkThroughput:
// 120 by default, as in the figures of BENCHMARKS.md; larger chunks show
// how much of the gap to the baseline is the fixed cost of a Batch call.
var processChunk = flag.Int("bench.process-chunk", 120, "tasks per Process Batch call in BenchmarkThroughput")

// createTasks creates n Pending tasks named prefix0, prefix1, ... with a
// small payload, and returns their IDs.
func createTasks(tb testing.TB, tr *ddbtrack.Tracker[Step], prefix string, n int) []string {
	tb.Helper()
	tasks := make([]ddbtrack.NewTask, n)
	ids := make([]string, n)
	for i := range tasks {
		ids[i] = prefix + strconv.Itoa(i)
		tasks[i] = ddbtrack.NewTask{ID: ids[i], Data: payload{Version: i}}
	}
	res, err := tr.CreateMany(context.Background(), tasks)
	require.NoError(tb, err)
	require.Len(tb, res.Created, n)
	return ids
}

// runWorkers runs fn on every ID with the given number of goroutines
// pulling from one queue, and fails the benchmark on the first error.
func runWorkers(b *testing.B, workers int, ids []string, fn func(id string) error) {
	queue := make(chan string, len(ids))
	for _, id := range ids {
		queue <- id
	}
	close(queue)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for id := range queue {
				if err := fn(id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// pendingList stands in for a query of the status index: it lists the
// tasks not yet claimed, oldest first, and a task leaves it the moment it
// is claimed (a real index lags by a fraction of a second, which only adds
// refusals).
type pendingList struct {
	mu  sync.Mutex
	ids []string
}

func (p *pendingList) page(n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids[:min(n, len(p.ids))])
}

func (p *pendingList) remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.ids, id); i >= 0 {
		p.ids = slices.Delete(p.ids, i, i+1)
	}
}

// contentionPage is how many pending tasks a worker lists at a time.
const contentionPage = 10

// BenchmarkContention races workers over the same tasks, as a fleet of
// workers does when each lists the pending tasks and tries to start them.
// Each worker lists the first contentionPage pending tasks, tries each in
// turn, and lists again. With order=listed every worker tries the page in
// the listed order, so they collide on its head; with order=shuffled each
// shuffles its page first. refused/task is the number of refused claims per
// task processed, and requests/task all requests per task processed,
// including the read a refusal costs on a server that does not return the
// refusing item (dynalite).
func BenchmarkContention(b *testing.B) {
	const tasks = 100
	for _, workers := range []int{4, 16} {
		for _, order := range []string{"listed", "shuffled"} {
			b.Run(fmt.Sprintf("workers=%d/tasks=%d/order=%s", workers, tasks, order), func(b *testing.B) {
				cfg := config(b)
				newTracker(b, cfg)
				rc := reqcount.New(ddbtracktest.Client(b))
				tr, err := ddbtrack.New(rc, cfg)
				require.NoError(b, err)
				var refused, processed atomic.Int64
				var requests int
				for i := range b.N {
					b.StopTimer()
					ids := createTasks(b, tr, fmt.Sprintf("r%d-", i), tasks)
					pending := &pendingList{ids: ids}
					before := rc.Counts()
					b.StartTimer()
					var wg sync.WaitGroup
					for range workers {
						wg.Go(func() {
							for {
								page := pending.page(contentionPage)
								if len(page) == 0 {
									return
								}
								if order == "shuffled" {
									rand.Shuffle(len(page), func(i, j int) { page[i], page[j] = page[j], page[i] })
								}
								for _, id := range page {
									err := tr.Start(context.Background(), id, func(context.Context, *ddbtrack.Task[Step]) error {
										pending.remove(id)
										return nil
									})
									switch {
									case err == nil:
										processed.Add(1)
									case errors.Is(err, ddbtrack.ErrTaskLocked), errors.Is(err, ddbtrack.ErrTaskSucceeded):
										refused.Add(1)
									default:
										b.Error(err)
										return
									}
								}
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					requests += rc.Counts().Sub(before).Total()
				}
				if got := processed.Load(); got != int64(tasks*b.N) {
					b.Fatalf("processed %d tasks, want %d: a task ran twice or not at all", got, tasks*b.N)
				}
				b.ReportMetric(float64(refused.Load())/float64(processed.Load()), "refused/task")
				b.ReportMetric(float64(requests)/float64(processed.Load()), "requests/task")
			})
		}
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
