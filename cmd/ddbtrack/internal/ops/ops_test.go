package ops_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/cmd/ddbtrack/internal/ops"
)

func TestParseStatuses(t *testing.T) {
	t.Parallel()
	st, err := ops.ParseStatuses(ops.DefaultStatuses)
	require.NoError(t, err)
	require.Equal(t, ops.Code(6), st.Of(ops.Failed))
	require.Equal(t, "s06_failed", st.Name(6))
	require.Equal(t, ops.Failed, st.RoleOf(6))
	require.Equal(t, "status(7)", st.Name(7))
	require.Empty(t, st.Extra())

	st, err = ops.ParseStatuses(" pending=1, running=2 ,failed:broken=3,succeeded=4,ignored=5,exported=20")
	require.NoError(t, err)
	require.Equal(t, "pending", st.Name(1))
	require.Equal(t, "broken", st.Name(3))
	require.Equal(t, []ops.Code{20}, st.Extra())
	require.Equal(t, []ops.Code{1, 2, 3, 4, 5, 20}, st.All())

	for spec, want := range map[string]string{
		"pending=0":               "no status has the running role",
		"pending=0,running=x":     `the value "x" is not an integer`,
		"pending=0,running=0":     "status value 0 is given twice",
		"pending:a=0,running:a=1": `status name "a" is given twice`,
		"pending:a=0,pending:b=1": "role pending is given twice",
		"waiting:a=0":             `"waiting" is not a role`,
		"pending":                 "has no value",
		"pending:=0":              "has an empty name",
		"pending=0,running=1,failed=2,ignored=3,": "no status has the succeeded role",
	} {
		_, err := ops.ParseStatuses(spec)
		require.ErrorContains(t, err, want, spec)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	st := ops.MustParseStatuses(ops.DefaultStatuses)
	for word, want := range map[string]ops.Code{"failed": 6, "s06_failed": 6, "6": 6, " ignored ": 10, "42": 42} {
		got, err := st.Lookup(word)
		require.NoError(t, err, word)
		require.Equal(t, want, got, word)
	}
	_, err := st.Lookup("done")
	require.ErrorContains(t, err, `unknown status "done": use a role (pending, running, failed, succeeded, ignored), a name (s00_todo, s03_in_progress, s06_failed, s09_success, s10_ignore) or a number`)

	list, err := st.LookupList("failed,s10_ignore,,6")
	require.NoError(t, err)
	require.Equal(t, []ops.Code{6, 10}, list, "duplicates and blanks are dropped")
}

func TestCodeString(t *testing.T) {
	// Not parallel: it changes the process-wide names.
	defaults := ops.MustParseStatuses(ops.DefaultStatuses)
	t.Cleanup(defaults.Register)
	defaults.Register()
	require.Equal(t, "s03_in_progress", ops.Code(3).String())
	require.Equal(t, "status(4)", ops.Code(4).String())
	ops.MustParseStatuses("pending=1,running=2,failed=3,succeeded=4,ignored=5").Register()
	require.Equal(t, "failed", ops.Code(3).String(), "later names win")
	require.Equal(t, "s00_todo", ops.Code(0).String(), "earlier names stay")
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"90m":                       now.Add(-90 * time.Minute),
		"6h":                        now.Add(-6 * time.Hour),
		"2d":                        now.Add(-48 * time.Hour),
		"1.5d":                      now.Add(-36 * time.Hour),
		"2025-01-01":                time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		"2025-01-01 10:30":          time.Date(2025, 1, 1, 10, 30, 0, 0, time.UTC),
		"2025-01-01T10:30":          time.Date(2025, 1, 1, 10, 30, 0, 0, time.UTC),
		"2025-01-01 10:30:15Z":      time.Date(2025, 1, 1, 10, 30, 15, 0, time.UTC),
		"2025-01-01T10:30:15+02:00": time.Date(2025, 1, 1, 8, 30, 15, 0, time.UTC),
	} {
		got, err := ops.ParseTime(in, now)
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%q: got %v, want %v", in, got, want)
	}
	for _, bad := range []string{"yesterday", "-2h", "2025-13-01", "5 minutes"} {
		_, err := ops.ParseTime(bad, now)
		require.ErrorContains(t, err, "use an age such as 90m", bad)
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1735787700123)
	c := ops.EncodeCursor(now, "lib-cursor")
	at, lib, err := ops.DecodeCursor(c)
	require.NoError(t, err)
	require.True(t, now.Equal(at))
	require.Equal(t, "lib-cursor", lib)

	require.Empty(t, ops.EncodeCursor(now, ""), "no library cursor means no next page")
	at, lib, err = ops.DecodeCursor("")
	require.NoError(t, err)
	require.True(t, at.IsZero())
	require.Empty(t, lib)
	for _, bad := range []string{"!!", "bm90IGpzb24", "e30"} {
		_, _, err := ops.DecodeCursor(bad)
		require.ErrorContains(t, err, "the cursor is damaged", bad)
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                            "0s",
		42 * time.Second:             "42s",
		5*time.Minute + time.Second:  "5m",
		3*time.Hour + 20*time.Minute: "3h20m",
		2 * time.Hour:                "2h",
		-90 * time.Second:            "1m",
		100 * time.Hour:              "4d",
	} {
		require.Equal(t, want, ops.Age(d), d.String())
	}
}

func TestFilterOptions(t *testing.T) {
	t.Parallel()
	st := ops.MustParseStatuses(ops.DefaultStatuses)
	now := time.UnixMilli(1735787700000)

	q := ops.Filter{Statuses: []ops.Code{6, 10}}.Query(st, now, 0, 50)
	require.Equal(t, []ops.Code{6, 10}, q.Statuses)
	require.False(t, q.Filter.IsSet(), "no filter beyond the statuses")
	require.Equal(t, 50, q.Limit)

	q = ops.Filter{Stuck: true, Statuses: []ops.Code{6}, ErrorContains: "timeout", IDContains: "t-", IDs: []string{"a", "b"}}.Query(st, now, 0, 0)
	require.Equal(t, []ops.Code{3}, q.Statuses, "stuck reads Running only")
	expr, err := expression.NewBuilder().WithFilter(q.Filter).Build()
	require.NoError(t, err)
	require.Equal(t, "(#0 < :0) AND (contains (#1, :1)) AND (contains (#2, :2)) AND (#2 IN (:3, :4))", aws.ToString(expr.Filter()))
	require.Equal(t, map[string]string{"#0": "lease_expires_at", "#1": "last_error", "#2": "task_id"}, expr.Names())

	r := ops.Filter{Statuses: []ops.Code{6}, Since: now.Add(-time.Hour)}.Requeue(st, now, true, nil)
	require.True(t, r.DryRun)
	require.Equal(t, now.Add(-time.Hour), r.Since)

	many := make([]string, ops.MaxIDs+1)
	require.ErrorContains(t, ops.Filter{IDs: many}.Check(), "at most 100")
	require.ErrorContains(t, ops.Filter{Since: now, Until: now.Add(-time.Second)}.Check(), "swap --since and --until")

	require.Equal(t, `s06_failed or s10_ignore, changed since 2025-01-02 03:15:00Z, error contains "x", ID contains "y", among 2 selected`,
		ops.Filter{Statuses: []ops.Code{6, 10}, Since: now, ErrorContains: "x", IDContains: "y", IDs: []string{"a", "b"}}.Describe(st))
	require.Equal(t, "stuck in s03_in_progress with an expired lease", ops.Filter{Stuck: true}.Describe(st))
}
