package ddbtrack_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

var (
	idleWindow = flag.Duration("bench.idle-window", time.Minute,
		"how long BenchmarkIdle counts an idle pool's requests; at least 20 PollIntervals, so that the slow sweep of Failed and Running partitions is counted once")
	idlePickups = flag.Int("bench.pickups", 20, "tasks BenchmarkIdle creates one at a time to time their pickup")
	idlePolls   = flag.String("bench.idle-polls", "1.5s,5s,500ms",
		"ProcessOptions.PollInterval settings of BenchmarkIdle, comma-separated; 1.5s is the default, which BenchmarkIdle leaves unset")
)

// monthMinutes is the minutes of a 30-day month, the month of the cost
// figures.
const monthMinutes = 30 * 24 * 60

// minQueryRRU is what DynamoDB bills at least for one Query, even one that
// reads nothing: half a read unit, a 4 KB eventually consistent read.
const minQueryRRU = 0.5

// BenchmarkIdle measures, for issue 16, what one Process in Service mode
// costs while its job has no due work, and how soon it then picks up a
// task created by another process. For each PollInterval of -bench.idle-polls
// (default options otherwise, so the default setting leaves PollInterval
// unset), it:
//
//  1. starts the pool on a job whose only tasks are scheduled for tomorrow,
//     waits for its first reads of every partition, and counts its requests
//     over -bench.idle-window, stretched to at least 20 PollIntervals so
//     that the slow sweep of the Failed and Running partitions is counted
//     once; reported as requests/min and RRU/min (the read units the server
//     reported), and month-RRU-100-workers, the read units of 100 such
//     workers in a 30-day month, counting each query at least the 0.5 RRU
//     DynamoDB bills for one;
//  2. creates -bench.pickups tasks one at a time from another tracker, each
//     after a pause of a second plus one to two PollIntervals: long enough
//     for the pool to be idle again, and spread over a whole PollInterval
//     so that the task arrives at a uniformly random point of the poll
//     schedule (a pause spread over less would line up with the schedule,
//     which restarts when a task is found); each is timed from just before
//     Create to the start of its function;
//     reported as pickup-min-s, pickup-p50-s, pickup-p95-s and pickup-max-s
//     (nearest-rank percentiles).
func BenchmarkIdle(b *testing.B) {
	for _, s := range strings.Split(*idlePolls, ",") {
		poll, err := time.ParseDuration(strings.TrimSpace(s))
		require.NoError(b, err, "-bench.idle-polls")
		b.Run("poll="+poll.String(), func(b *testing.B) {
			if poll == 1500*time.Millisecond {
				poll = 0 // The default, as a caller gets it.
			}
			var sum idleRun
			for range b.N {
				r := idle(b, poll)
				sum.window += r.window
				sum.requests = sum.requests.Add(r.requests)
				sum.queryRRU += r.queryRRU
				sum.latencies = append(sum.latencies, r.latencies...)
			}
			perMin := float64(sum.requests.Total()) / sum.window.Minutes()
			rruPerMin := sum.queryRRU / sum.window.Minutes()
			billed := max(rruPerMin, minQueryRRU*float64(sum.requests[reqcount.Query])/sum.window.Minutes())
			b.ReportMetric(perMin, "requests/min")
			b.ReportMetric(rruPerMin, "RRU/min")
			b.ReportMetric(billed*monthMinutes*100, "month-RRU-100-workers")
			b.ReportMetric(sum.window.Seconds()/float64(b.N), "window-s")
			if len(sum.latencies) > 0 {
				b.ReportMetric(percentile(sum.latencies, 0), "pickup-min-s")
				b.ReportMetric(percentile(sum.latencies, 50), "pickup-p50-s")
				b.ReportMetric(percentile(sum.latencies, 95), "pickup-p95-s")
				b.ReportMetric(percentile(sum.latencies, 100), "pickup-max-s")
			}
		})
	}
}

// idleRun is what one idle pool measured.
type idleRun struct {
	window    time.Duration
	requests  reqcount.Counts
	queryRRU  float64   // read units of the window's queries
	latencies []float64 // pickup latencies, seconds
}

func idle(b *testing.B, poll time.Duration) idleRun {
	ctx := context.Background()
	cfg := config(b)
	creator := newTracker(b, cfg)
	tomorrow := time.Now().Add(24 * time.Hour)
	for i := range 10 {
		require.NoError(b, creator.Create(ctx, ddbtrack.NewTask{ID: fmt.Sprintf("later-%d", i), DueAt: tomorrow}))
	}

	rc := machineClient(b)
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(b, err)
	var mu sync.Mutex
	picked := map[string]chan time.Time{}
	pickup := func(id string) chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		if picked[id] == nil {
			picked[id] = make(chan time.Time, 1)
		}
		return picked[id]
	}
	procCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := tr.Process(procCtx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
			pickup(task.ID) <- time.Now()
			return nil
		}, ddbtrack.ProcessOptions[Step]{Mode: ddbtrack.Service, PollInterval: poll})
		done <- err
	}()
	defer func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			b.Errorf("Process returned %v, want context.Canceled", err)
		}
	}()

	interval := poll
	if interval == 0 {
		interval = 1500 * time.Millisecond
	}
	// The pool reads every partition when it starts; the window begins
	// once those reads are done.
	time.Sleep(2 * time.Second)
	window := max(*idleWindow, 20*interval)
	rc.Reset()
	time.Sleep(window)
	r := idleRun{window: window, requests: rc.Counts(), queryRRU: rc.CapacityUnits()[reqcount.Query]}
	if r.requests.Total() != r.requests[reqcount.Query] {
		b.Logf("idle requests other than queries: %v", r.requests)
	}

	for i := range *idlePickups {
		time.Sleep(time.Second + interval + rand.N(interval))
		id := fmt.Sprintf("new-%d", i)
		created := time.Now()
		require.NoError(b, creator.Create(ctx, ddbtrack.NewTask{ID: id}))
		select {
		case at := <-pickup(id):
			r.latencies = append(r.latencies, at.Sub(created).Seconds())
		case <-time.After(time.Minute + 10*interval):
			b.Fatalf("task %s was not picked up within %v", id, time.Minute+10*interval)
		}
	}

	return r
}
