package ddbtrack_test

import (
	"context"
	"errors"
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
	"github.com/ddbtrack/ddbtrack/internal/ddbtest"
	"github.com/ddbtrack/ddbtrack/internal/reqcount"
)

// Benchmarks against the local server. `make bench` runs them in several
// rounds, interleaved, and compares ddbtrack with the raw-SDK baseline
// measured in the same round: the machine is shared, so only ratios taken
// close together in time mean anything.

// BenchmarkThroughput processes Pending tasks with a no-op function at 1, 4
// and 16 concurrent workers, through Tracker.Start and through the raw-SDK
// baseline making the same conditional writes, on one table. The two
// alternate in chunks of a few dozen tasks, each chunk timed on its own,
// so that a change in the machine's load (it is shared with the server and
// with other work) hits both alike. b.N is the number of tasks each
// processes; tasks are created before the timer starts, so the figures are
// claims plus outcomes, two writes per task.
//
// Reported: tasks/s of each, and ratio = ddbtrack's tasks/s over the
// baseline's. The loggers are off (slog.DiscardHandler) because the
// baseline logs nothing; BenchmarkLifecycle measures what logging costs.
func BenchmarkThroughput(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			cfg := config(b)
			cfg.Logger = slog.New(slog.DiscardHandler)
			tr := newTracker(b, cfg)
			base := newBaseline(ddbtest.Client(b), cfg)
			runs := map[string]func(id string) error{
				"ddbtrack": func(id string) error { return tr.Start(context.Background(), id, okFn) },
				"baseline": func(id string) error { return base.start(context.Background(), id, nopData) },
			}
			ids := map[string][]string{
				"ddbtrack": createTasks(b, tr, "d", b.N),
				"baseline": createTasks(b, tr, "b", b.N),
			}
			// Warm up: open the connections both will use, so that neither
			// pays for them inside its timed chunks.
			runWorkers(b, workers, createTasks(b, tr, "wd", 2*workers), runs["ddbtrack"])
			runWorkers(b, workers, createTasks(b, tr, "wb", 2*workers), runs["baseline"])
			order := []string{"baseline", "ddbtrack"}
			elapsed := map[string]time.Duration{}
			var ratios []float64
			chunk := max(24, 4*workers)
			b.ResetTimer()
			for from := 0; from < b.N; from += chunk {
				to := min(from+chunk, b.N)
				took := map[string]time.Duration{}
				for _, impl := range order {
					start := time.Now()
					runWorkers(b, workers, ids[impl][from:to], runs[impl])
					took[impl] = time.Since(start)
					elapsed[impl] += took[impl]
				}
				// Same number of tasks each, so the rate ratio is the
				// inverse time ratio.
				ratios = append(ratios, took["baseline"].Seconds()/took["ddbtrack"].Seconds())
				slices.Reverse(order)
			}
			b.StopTimer()
			tps := func(impl string) float64 { return float64(b.N) / elapsed[impl].Seconds() }
			b.ReportMetric(tps("ddbtrack"), "ddbtrack-tasks/s")
			b.ReportMetric(tps("baseline"), "baseline-tasks/s")
			// The median of the chunk pairs' ratios: a burst of load from
			// elsewhere that hits one chunk moves it less than the totals.
			b.ReportMetric(median(ratios), "ratio")
			// ns/op is ddbtrack's time per task; the rates are the figures
			// to compare.
			b.ReportMetric(float64(elapsed["ddbtrack"].Nanoseconds())/float64(b.N), "ns/op")
		})
	}
}

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
				rc := reqcount.New(ddbtest.Client(b))
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
