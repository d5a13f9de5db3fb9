package ddbtrack_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

var (
	bigTasks = flag.String("bench.big-tasks", "20000,200000", "job sizes of BenchmarkBigJob, comma-separated")
	bigChunk = flag.Int("bench.big-chunk", 1_000, "tasks per CreateMany call in BenchmarkBigJob; 0 creates the whole job in one call")
)

// bigWorkers is the Concurrency of BenchmarkBigJob's pool.
const bigWorkers = 8

// BenchmarkBigJob checks issue 15's point 5, that a big job stays in
// bounded memory. For each size of -bench.big-tasks it creates the job with
// CreateMany, -bench.big-chunk tasks a call as a loader reading a file
// would, then drains it with one Process in Batch mode (Concurrency 8, a
// no-op function). Reported:
//
//   - create-tasks/s and process-tasks/s;
//   - requests/task, creating and processing together;
//   - create-peak-RSS-MB and process-peak-RSS-MB: the peak resident set of
//     the test process during each phase (VmHWM, reset before the phase
//     through /proc/self/clear_refs after returning freed memory to the
//     system), and start-RSS-MB, the resident set a phase starts from;
//   - create-peak-heap-MB and process-peak-heap-MB: the largest Go heap in
//     use, sampled every 100ms, and create-peak-live-MB and
//     process-peak-live-MB, the largest heap found live by a garbage
//     collection: what the library holds, without the collector's slack,
//     whose peaks a longer phase samples more of.
//
// MB is a million bytes, as benchstat reads the unit.
//
// For a clean peak on a kernel without clear_refs, run each size in a
// process of its own: -bench 'BigJob/tasks=200000$'.
func BenchmarkBigJob(b *testing.B) {
	for _, s := range strings.Split(*bigTasks, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		require.NoError(b, err, "-bench.big-tasks")
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			for range b.N {
				bigJob(b, n)
			}
		})
	}
}

func bigJob(b *testing.B, n int) {
	ctx := context.Background()
	cfg := config(b)
	newTracker(b, cfg)
	rc := machineClient(b)
	rc.MeasureCapacity = false // The figures here are requests and memory.
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(b, err)
	chunk := *bigChunk
	if chunk <= 0 {
		chunk = n
	}

	createMem := watchMemory()
	start := time.Now()
	for from := 0; from < n; from += chunk {
		tasks := make([]ddbtrack.NewTask, min(chunk, n-from))
		for i := range tasks {
			tasks[i] = ddbtrack.NewTask{ID: fmt.Sprintf("t-%07d", from+i), Data: payload{Version: from + i}}
		}
		res, err := tr.CreateMany(ctx, tasks)
		require.NoError(b, err)
		require.Len(b, res.Created, len(tasks))
	}
	created := time.Since(start)
	createPeak := createMem.stop()

	processMem := watchMemory()
	start = time.Now()
	var runs atomic.Int64
	res, err := tr.Process(ctx, func(context.Context, *ddbtrack.Task[Step]) error {
		runs.Add(1)
		return nil
	}, ddbtrack.ProcessOptions[Step]{Concurrency: bigWorkers})
	processed := time.Since(start)
	processPeak := processMem.stop()
	require.NoError(b, err)
	require.Equal(b, n, res.Succeeded)
	require.Equal(b, int64(n), runs.Load())

	b.ReportMetric(float64(n)/created.Seconds(), "create-tasks/s")
	b.ReportMetric(float64(n)/processed.Seconds(), "process-tasks/s")
	b.ReportMetric(perTask(float64(rc.Counts().Total()), n), "requests/task")
	b.ReportMetric(createMem.startRSS, "start-RSS-MB")
	b.ReportMetric(createPeak.rss, "create-peak-RSS-MB")
	b.ReportMetric(createPeak.heap, "create-peak-heap-MB")
	b.ReportMetric(processPeak.rss, "process-peak-RSS-MB")
	b.ReportMetric(processPeak.heap, "process-peak-heap-MB")
	b.ReportMetric(createPeak.live, "create-peak-live-MB")
	b.ReportMetric(processPeak.live, "process-peak-live-MB")
	if !createMem.reset || !processMem.reset {
		b.Log("the kernel refused to reset the peak resident set: the RSS peaks are the process's since it started")
	}
}

// memoryPeak is the most memory a phase used, in MB (millions of bytes).
type memoryPeak struct{ rss, heap, live float64 }

// memoryWatch follows one phase's memory.
type memoryWatch struct {
	startRSS float64 // millions of bytes
	reset    bool    // whether the kernel's peak was reset for the phase
	done     chan struct{}
	wg       sync.WaitGroup
	heap     atomic.Uint64 // the largest heap in use seen, bytes
	live     atomic.Uint64 // the largest live heap seen, bytes
}

// watchMemory returns freed memory to the system, resets the kernel's peak
// resident set to the current one, and samples the Go heap until stop.
func watchMemory() *memoryWatch {
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets VmHWM, the peak resident set, to the
	// current resident set (Linux 4.0 and later).
	w := &memoryWatch{done: make(chan struct{})}
	w.reset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	w.startRSS = procStatusMB("VmRSS")
	w.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.heap.Load() {
				w.heap.Store(ms.HeapInuse)
			}
			metrics.Read(live)
			if live[0].Value.Kind() == metrics.KindUint64 && live[0].Value.Uint64() > w.live.Load() {
				w.live.Store(live[0].Value.Uint64())
			}
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	})
	return w
}

func (w *memoryWatch) stop() memoryPeak {
	close(w.done)
	w.wg.Wait()
	return memoryPeak{rss: procStatusMB("VmHWM"), heap: float64(w.heap.Load()) / 1e6, live: float64(w.live.Load()) / 1e6}
}

// procStatusMB reads a field of /proc/self/status, which the kernel gives
// in units of 1024 bytes, in millions of bytes, or 0 where there is no such
// file.
func procStatusMB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, found := strings.Cut(sc.Text(), ":")
		if !found || name != field {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return 0
		}
		return kb * 1024 / 1e6
	}
	return 0
}
