package ops_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

func statuses(t *testing.T) *ops.Statuses[opsfixture.Status] {
	t.Helper()
	return ops.StatusesOf(ddbtrack.Config[opsfixture.Status]{
		Pending: opsfixture.Pending, Running: opsfixture.Running, Failed: opsfixture.Failed,
		Succeeded: opsfixture.Succeeded, Ignored: opsfixture.Ignored, Startable: []opsfixture.Status{20},
	})
}

func TestStatusesOf(t *testing.T) {
	t.Parallel()
	st := statuses(t)
	require.Equal(t, opsfixture.Failed, st.Of(ops.Failed))
	require.Equal(t, "s06_failed", st.Name(6))
	require.Equal(t, ops.Failed, st.RoleOf(6))
	require.Equal(t, "status(7)", st.Name(7), "a value the enum does not name")
	require.Equal(t, "status(20)", st.Name(20))
	require.Empty(t, st.RoleOf(20), "a startable status has no role")
	require.Equal(t, []opsfixture.Status{0, 3, 6, 9, 10, 20}, st.All())
}

func TestLookup(t *testing.T) {
	t.Parallel()
	st := statuses(t)
	for word, want := range map[string]opsfixture.Status{"failed": 6, "s06_failed": 6, "6": 6, " ignored ": 10, "42": 42} {
		got, err := st.Lookup(word)
		require.NoError(t, err, word)
		require.Equal(t, want, got, word)
	}
	_, err := st.Lookup("done")
	require.ErrorContains(t, err, `unknown status "done": use a role (pending, running, failed, succeeded, ignored), a name (s00_todo, s03_in_progress, s06_failed, s09_success, s10_ignore, status(20)) or a number`)

	list, err := st.LookupList("failed,s10_ignore,,6")
	require.NoError(t, err)
	require.Equal(t, []opsfixture.Status{6, 10}, list, "duplicates and blanks are dropped")
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

func TestFilterDescribe(t *testing.T) {
	t.Parallel()
	st := statuses(t)
	now := time.UnixMilli(1735787700000)
	many := make([]string, ops.MaxIDs+1)
	require.ErrorContains(t, ops.Filter[opsfixture.Status]{IDs: many}.Check(st), "at most 1000")
	require.NoError(t, ops.Filter[opsfixture.Status]{IDs: many[:200]}.Check(st), "more IDs than one request takes go in batches")
	require.ErrorContains(t, ops.Filter[opsfixture.Status]{Since: now, Until: now.Add(-time.Second)}.Check(st), "swap --since and --until")

	require.Equal(t, `s06_failed or s10_ignore, due since 2025-01-02 03:15:00Z, error contains "x", ID contains "y", among 2 selected`,
		ops.Filter[opsfixture.Status]{Statuses: []opsfixture.Status{6, 10}, Since: now, ErrorContains: "x", IDContains: "y", IDs: []string{"a", "b"}}.Describe(st))
	require.Equal(t, "stuck in s03_in_progress with an expired lease", ops.Filter[opsfixture.Status]{Stuck: true}.Describe(st))
}

func TestVisible(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, line, text string }{
		{"plain", "plain", "plain"},
		{"two\nlines", `two\nlines`, "two\nlines"},
		{"\x1b]0;PWNED\x07\x1b[41m", `\x1b]0;PWNED\a\x1b[41m`, `\x1b]0;PWNED\a\x1b[41m`},
		{"tab\there", "tab here", "tab\there"},
		{"rtl-\u202Egnp.exe", `rtl-\u202egnp.exe`, `rtl-\u202egnp.exe`},
		{"isolate\u2067x\u2069", `isolate\u2067x\u2069`, `isolate\u2067x\u2069`},
		{"zero\u200bwidth", `zero\u200bwidth`, `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`, `line\u2028sep`},
		{"bad \xff byte", `bad \xff byte`, `bad \xff byte`},
		{"ünïcødé ✓ 日本", "ünïcødé ✓ 日本", "ünïcødé ✓ 日本"},
	} {
		require.Equal(t, tc.line, ops.Visible(tc.in, false), "Visible(%q, false)", tc.in)
		require.Equal(t, tc.text, ops.Visible(tc.in, true), "Visible(%q, true)", tc.in)
	}
}

func TestSpan(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                                       "0s",
		time.Millisecond:                        "1s",
		45 * time.Second:                        "45s",
		3*time.Minute + 20*time.Second:          "3m 20s",
		3*time.Minute + 19*time.Second + 1:      "3m 20s",
		time.Hour:                               "1h",
		time.Hour + 5*time.Minute + time.Second: "1h 5m",
		51 * time.Hour:                          "2d 3h",
		48*time.Hour + 5*time.Minute:            "2d",
		-90 * time.Second:                       "1m 30s",
	} {
		require.Equal(t, want, ops.Span(d), d.String())
	}
}

func TestDueAndCancelText(t *testing.T) {
	t.Parallel()
	st := statuses(t)
	now := time.Date(2025, 1, 2, 3, 35, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		task      ddbtrack.Task[opsfixture.Status]
		due, when string
		notDue    bool
	}{
		{"backing off", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Failed, DueAt: now.Add(200 * time.Second)},
			"retry in 3m 20s", "retry in 3m 20s", true},
		{"scheduled", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Pending, DueAt: now.Add(51 * time.Hour)},
			"scheduled for 2025-01-04 06:35:00Z (in 2d 3h)", "scheduled for 2025-01-04 06:35:00Z (in 2d 3h)", true},
		{"snoozed in a pipeline's status", ddbtrack.Task[opsfixture.Status]{Status: 20, DueAt: now.Add(time.Minute)},
			"scheduled for 2025-01-02 03:36:00Z (in 1m)", "scheduled for 2025-01-02 03:36:00Z (in 1m)", true},
		{"due in this millisecond", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Failed, DueAt: now.Add(999 * time.Microsecond)},
			"due now", "due now", false},
		{"due", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Pending, DueAt: now.Add(-time.Hour)}, "due now", "due now", false},
		{"running", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Running, DueAt: now.Add(time.Hour)}, "", "", false},
		{"succeeded", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Succeeded, DueAt: now.Add(-time.Hour)}, "", "", false},
		{"cancel requested", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Running, CancelledAt: now.Add(-2 * time.Minute)}, "", "cancel requested 2m ago", false},
		{"cancelled", ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Ignored, CancelledAt: now}, "", "cancelled at 2025-01-02 03:35:00Z", false},
	} {
		require.Equal(t, tc.due, st.Due(&tc.task, now), tc.name)
		require.Equal(t, tc.when, st.When(&tc.task, now), tc.name)
		require.Equal(t, tc.notDue, st.NotDue(&tc.task, now), tc.name)
	}
	require.Equal(t, `cancelled at 2025-01-02 03:35:00Z: dup \x1b[31m`,
		st.Cancel(&ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Ignored, CancelledAt: now, CancelReason: "dup \x1b[31m"}, now), "the reason is made safe to show")
	require.Equal(t, "cancel requested at 2025-01-02 03:33:00Z (2m ago): dup",
		st.Cancel(&ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Running, CancelledAt: now.Add(-2 * time.Minute), CancelReason: "dup"}, now))
	require.Empty(t, st.Cancel(&ddbtrack.Task[opsfixture.Status]{Status: opsfixture.Ignored}, now))
}

func TestScheduledFilter(t *testing.T) {
	t.Parallel()
	st := statuses(t)
	require.Equal(t, []opsfixture.Status{0, 6, 20}, st.WaitingStatuses())
	require.Equal(t, []opsfixture.Status{0, 3, 6, 20}, st.Cancellable())
	f := ops.Filter[opsfixture.Status]{Scheduled: true}
	require.NoError(t, f.Check(st))
	require.Equal(t, "s00_todo or s06_failed or status(20), not due yet", f.Describe(st))
	require.ErrorContains(t, ops.Filter[opsfixture.Status]{Scheduled: true, Statuses: []opsfixture.Status{opsfixture.Succeeded}}.Check(st),
		"scheduled tasks wait to run, and s09_success tasks never do: select among s00_todo or s06_failed or status(20)")
	require.ErrorContains(t, ops.Filter[opsfixture.Status]{Scheduled: true, Stuck: true}.Check(st), "select one or the other")
}
