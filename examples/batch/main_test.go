package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// TestRunUsesTheTableAndJobOfTheEnvironment runs the example with
// DDBTRACK_TABLE and DDBTRACK_JOB set, as for the ddbtrack command, and
// finds its tasks there.
func TestRunUsesTheTableAndJobOfTheEnvironment(t *testing.T) {
	t.Parallel()
	table := ddbtracktest.Table(t)
	env := map[string]string{"DDBTRACK_TABLE": table, "DDBTRACK_JOB": "thumbs-test"}
	s := settings{tasks: 30, workers: 4, progressEvery: time.Second}.fromEnv(func(k string) string { return env[k] })
	require.Equal(t, table, s.table)
	require.Equal(t, "thumbs-test", s.job)

	var out bytes.Buffer
	client := ddbtracktest.Client(t)
	require.NoError(t, run(t.Context(), client, &out, s))
	require.Contains(t, out.String(), "Creating 30 tasks in job thumbs-test of table "+table)

	tracker, err := ddbtrack.New(client, ddbtrack.Config[Status]{
		Table: table, Job: "thumbs-test", Pending: Queued, Running: Resizing, Failed: Retrying, Succeeded: Done, Ignored: GaveUp,
	})
	require.NoError(t, err)
	n, err := tracker.Count(t.Context(), Done)
	require.NoError(t, err)
	require.Equal(t, int64(30), n.ByStatus[Done])

	// Without the variables, a new table and the job "thumbnails".
	s = settings{}.fromEnv(func(string) string { return "" })
	require.Regexp(t, `^batch-example-[0-9a-f]{8}$`, s.table)
	require.Equal(t, "thumbnails", s.job)
}
