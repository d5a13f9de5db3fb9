package ops

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// TestFilterOptions checks the options a filter gives the library: the
// statuses and times go to the index, the rest to a filter expression.
func TestFilterOptions(t *testing.T) {
	t.Parallel()
	type S = opsfixture.Status
	st := StatusesOf(ddbtrack.Config[S]{Pending: 0, Running: 3, Failed: 6, Succeeded: 9, Ignored: 10})
	now := time.UnixMilli(1735787700000)

	q := Filter[S]{Statuses: []S{6, 10}}.query(st, now, oldestFirst, 50)
	require.Equal(t, []S{6, 10}, q.Statuses)
	require.False(t, q.Filter.IsSet(), "no filter beyond the statuses")
	require.Equal(t, 50, q.Limit)

	q = Filter[S]{Stuck: true, Statuses: []S{6}, ErrorContains: "timeout", IDContains: "t-", IDs: []string{"a", "b"}}.query(st, now, oldestFirst, 0)
	require.Equal(t, []S{3}, q.Statuses, "stuck reads Running only")
	expr, err := expression.NewBuilder().WithFilter(q.Filter).Build()
	require.NoError(t, err)
	require.Equal(t, "(#0 < :0) AND (contains (#1, :1)) AND (contains (#2, :2)) AND (#2 IN (:3, :4))", aws.ToString(expr.Filter()))
	require.Equal(t, map[string]string{"#0": "lease_expires_at", "#1": "last_error", "#2": "task_id"}, expr.Names())

	require.Equal(t, now, q.Until, "a stuck task was due before now: the read ends there")
	later := now.Add(time.Hour)
	require.Equal(t, now, Filter[S]{Stuck: true, Until: later}.query(st, now, oldestFirst, 0).Until, "and before a later end")
	earlier := now.Add(-time.Hour)
	require.Equal(t, earlier, Filter[S]{Stuck: true, Until: earlier}.query(st, now, oldestFirst, 0).Until, "an earlier end stays")
	require.True(t, Filter[S]{Statuses: []S{3}}.query(st, now, oldestFirst, 0).Until.IsZero(), "live Running tasks are due after now")

	r := Filter[S]{Statuses: []S{6}, Since: now.Add(-time.Hour)}.requeue(st, now, true, nil)
	require.True(t, r.DryRun)
	require.Equal(t, now.Add(-time.Hour), r.Since)
	require.Equal(t, now, Filter[S]{Stuck: true}.requeue(st, now, true, nil).Until, "a requeue of stuck tasks reads as little")
}
