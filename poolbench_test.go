package ddbtrack_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// This file holds what the benchmarks of Process at scale share
// (BenchmarkFleet, BenchmarkIdle, BenchmarkDueWork and BenchmarkBigJob, for
// issues 15, 16 and 10): a counted client per simulated machine, a fast
// seeder of due or scheduled tasks, and the arithmetic of their metrics.
// Their sizes are test flags, whose defaults are the issues' sizes; quick
// runs pass smaller ones, e.g.
//
//	go test -run '^$' -bench 'Fleet|Idle|DueWork|BigJob' -benchtime 1x . \
//		-args -bench.fleet-tasks=2000 -bench.idle-window=10s -bench.pickups=5 \
//		-bench.later-tasks=5000 -bench.big-tasks=2000,20000

// machineClient returns a request counter, measuring capacity, around a
// DynamoDB client of its own for the shared server. Each simulated machine
// of a benchmark gets one, as real machines would: sharing one SDK client
// among hundreds of workers would also share its pool of ten idle
// connections per host, and the churn of the others would be measured as
// ddbtrack's.
func machineClient(tb testing.TB) *reqcount.Client {
	tb.Helper()
	client, err := ddblocal.NewClient(context.Background(), serverEndpoint(tb))
	require.NoError(tb, err)
	rc := reqcount.New(client)
	rc.MeasureCapacity = true
	return rc
}

// usage adds up the requests and capacity of several counted clients.
type usage struct {
	counts reqcount.Counts
	units  map[string]float64
}

func usageOf(clients ...*reqcount.Client) usage {
	var u usage
	for _, c := range clients {
		u = u.plus(usage{counts: c.Counts(), units: c.CapacityUnits()})
	}
	return u
}

// plus returns u and o added up.
func (u usage) plus(o usage) usage {
	out := usage{counts: u.counts.Add(o.counts), units: map[string]float64{}}
	for _, units := range []map[string]float64{u.units, o.units} {
		for op, n := range units {
			out.units[op] += n
		}
	}
	return out
}

// readUnits is the read capacity the server reported: the index queries,
// and on dynalite the reads that explain a refused claim, which DynamoDB
// does not need because it returns the refusing item.
func (u usage) readUnits() float64 { return u.units[reqcount.Query] + u.units[reqcount.GetItem] }

// seedPending stores n Pending tasks named prefix000000, prefix000001, ...
// of job cfg.Job with BatchWriteItem (qSeed, in the item format of qItem),
// due from first on, step apart in ID order: seeding 100,000 tasks through CreateMany would take the
// better part of ten minutes here, longer than the measurement. The items'
// created_at is a second before their due time, which the pool never
// reads.
func seedPending(tb testing.TB, cfg ddbtrack.Config[Step], prefix string, n int, first time.Time, step time.Duration) {
	tb.Helper()
	tasks := make([]qTask, n)
	for i := range tasks {
		tasks[i] = qTask{ID: fmt.Sprintf("%s%06d", prefix, i), Status: Todo, Updated: first.Add(time.Duration(i) * step).UnixMilli(), Region: "eu"}
	}
	shards := cfg.Shards
	if shards == 0 {
		shards = defaultShards
	}
	qSeed(tb, ddbtracktest.Client(tb), cfg.Table, cfg.Job, shards, tasks)
}

// percentile returns the p-th percentile of xs by the nearest-rank method:
// the smallest value at least p percent of the values are no greater
// than. With 20 values the 95th percentile is the 19th smallest.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// perTask divides a total by a number of tasks for a metric.
func perTask(total float64, tasks int) float64 { return total / float64(max(tasks, 1)) }
