package ops_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// TestLatest reads the latest tasks of a status, as the dashboard's chart
// does: newest first, cut at n with more reported, in about one request
// per shard.
func TestLatest(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	scale := opsfixture.SeedScale(t, ddbtracktest.Client(t), fx.Table, 1000, fx.Clock.Now())
	succeeded := scale.ByStatus[opsfixture.Succeeded]
	counter := reqcount.New(fx.Client)
	tr, err := ddbtrack.New(counter, fx.Config("viewer"))
	require.NoError(t, err)
	job := ops.NewJob(tr)
	f := ops.Filter[opsfixture.Status]{Statuses: []opsfixture.Status{opsfixture.Succeeded}}

	tasks, more, err := job.Latest(t.Context(), f, fx.Clock.Now(), 500)
	require.NoError(t, err)
	require.Len(t, tasks, 500)
	require.True(t, more)
	for i := 1; i < len(tasks); i++ {
		require.False(t, tasks[i].DueAt.After(tasks[i-1].DueAt), "newest first")
	}
	// Two shards, each read in a page of a quarter more than its share:
	// pages of the default 100 would take 6 requests.
	require.LessOrEqual(t, counter.Counts()[reqcount.Query], 3)

	tasks, more, err = job.Latest(t.Context(), f, fx.Clock.Now(), 1000)
	require.NoError(t, err)
	require.Len(t, tasks, succeeded)
	require.False(t, more, "every task was read")
}
