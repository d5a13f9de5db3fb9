package ddbtracktest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// Step is a job's status enum, as a user would declare it.
type Step int

const (
	Todo Step = iota
	Doing
	Retry
	Done
	Dropped
)

func (s Step) String() string {
	return [...]string{"todo", "doing", "retry", "done", "dropped"}[s]
}

func config() ddbtrack.Config[Step] {
	return ddbtrack.Config[Step]{Job: "job", Pending: Todo, Running: Doing, Failed: Retry, Succeeded: Done, Ignored: Dropped}
}

func TestNewGivesEachTestATableOfItsOwn(t *testing.T) {
	t.Parallel()
	client := ddbtracktest.Client(t)

	var mu sync.Mutex
	tables := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for i := range 3 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				tr := ddbtracktest.New(t, config())
				table := tr.Config().Table
				require.True(t, strings.HasPrefix(table, "TestNewGivesEachTestATableOfItsOwn_group_"), table)
				require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "a"}), "the table must exist and be active")
				mu.Lock()
				tables[table] = true
				mu.Unlock()
			})
		}
	})

	require.Len(t, tables, 3, "parallel tests must not share a table")
	for table := range tables {
		_, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var notFound *types.ResourceNotFoundException
		require.ErrorAs(t, err, &notFound, "the test's cleanup should have deleted %s", table)
	}
}

func TestNewKeepsATableItIsGiven(t *testing.T) {
	t.Parallel()
	// Two jobs on one table: the second tracker reuses the first's table.
	first := ddbtracktest.New(t, config())
	cfg := config()
	cfg.Job, cfg.Table = "second-job", first.Config().Table
	second := ddbtracktest.New(t, cfg)

	require.NoError(t, first.Create(t.Context(), ddbtrack.NewTask{ID: "a"}))
	require.NoError(t, second.Create(t.Context(), ddbtrack.NewTask{ID: "a"}), "one table holds many jobs")
}

func TestNewFailsOnABadConfig(t *testing.T) {
	t.Parallel()
	cfg := config()
	cfg.Job = ""
	msg := fatal(t, func(tb testing.TB) { ddbtracktest.New(tb, cfg) })
	require.Contains(t, msg, "ddbtracktest: ")
	require.Contains(t, msg, "Job", "the message must name the field to fix")
}

func TestTableNames(t *testing.T) {
	t.Parallel()
	validTableName := regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)
	for _, tt := range []struct {
		subtest    string
		wantPrefix string
	}{
		{subtest: "plain", wantPrefix: "TestTableNames_plain-"},
		{subtest: "spaces and/slash ünïcode", wantPrefix: "TestTableNames_spaces_and_slash__n_code-"},
		{subtest: strings.Repeat("x", 400), wantPrefix: "TestTableNames_xxx"},
	} {
		t.Run(tt.subtest, func(t *testing.T) {
			t.Parallel()
			first, second := ddbtracktest.Table(t), ddbtracktest.Table(t)
			require.Regexp(t, validTableName, first)
			require.True(t, strings.HasPrefix(first, tt.wantPrefix), "%q should start with %q", first, tt.wantPrefix)
			require.NotEqual(t, first, second, "two tables in one test must not collide")
		})
	}
}

func TestClientIsShared(t *testing.T) {
	t.Parallel()
	require.Same(t, ddbtracktest.Client(t), ddbtracktest.Client(t), "the test binary must share one client and server")
}

func TestDrainRunsEveryTaskToTheEnd(t *testing.T) {
	t.Parallel()
	cfg := config()
	cfg.MaxAttempts = 2
	tr := ddbtracktest.New(t, cfg)
	for _, id := range []string{"ok-1", "ok-2", "ok-3", "bad-1"} {
		require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: id, Data: map[string]any{"n": len(id)}}))
	}

	var mu sync.Mutex
	runs := map[string]int{}
	res := ddbtracktest.Drain(t, tr, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		mu.Lock()
		runs[task.ID]++
		mu.Unlock()
		if strings.HasPrefix(task.ID, "bad") {
			return errors.New("cannot parse row 7")
		}
		var in struct{ N int }
		if err := task.UnmarshalData(&in); err != nil {
			return err
		}
		return task.SetOutput(map[string]any{"doubled": 2 * in.N})
	})

	require.Equal(t, map[string]int{"ok-1": 1, "ok-2": 1, "ok-3": 1, "bad-1": 2}, runs)
	require.Equal(t, 5, res.Claimed)
	require.Equal(t, 3, res.Succeeded)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 1, res.Ignored)
	ddbtracktest.RequireTask(t, tr, "ok-1", ddbtracktest.Want[Step]{Status: Done, Output: map[string]any{"doubled": 8}})
	ddbtracktest.RequireTask(t, tr, "bad-1", ddbtracktest.Want[Step]{Status: Dropped, Attempts: 2, LastError: "row 7"})
}

func TestDrainWithAStoppedClock(t *testing.T) {
	t.Parallel()
	// A retried task's stored times do not move while the clock stands
	// still; Drain must retry it all the same, and promptly.
	var clock ddbtracktest.Clock
	cfg := config()
	cfg.Now = clock.Now
	tr := ddbtracktest.New(t, cfg)
	require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "flaky"}))

	began := time.Now()
	res := ddbtracktest.Drain(t, tr, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		if task.Attempts < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	require.Less(t, time.Since(began), 10*time.Second)
	require.Equal(t, 3, res.Claimed)
	task := ddbtracktest.RequireTask(t, tr, "flaky", ddbtracktest.Want[Step]{Status: Done})
	require.True(t, task.SucceededAt.Equal(clock.Now()), "stored times come from the clock: %v", task.SucceededAt)
}

func TestDrainFailsBeforeTheDeadlineWithWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	// A worker dies holding the task: under the stopped clock its lease
	// never expires, and a Batch run would wait for it for ever.
	var clock ddbtracktest.Clock
	cfg := config()
	cfg.Now = clock.Now
	tr := ddbtracktest.New(t, cfg)
	require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "held"}))
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		_ = tr.Start(t.Context(), "held", func(context.Context, *ddbtrack.Task[Step]) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-dead

	began := time.Now()
	msg := fatal(t, func(tb testing.TB) {
		// Drain leaves itself at least 5 s before the deadline.
		ddbtracktest.Drain(&deadlined{TB: tb, at: time.Now().Add(6 * time.Second)}, tr, func(context.Context, *ddbtrack.Task[Step]) error { return nil })
	})
	require.Less(t, time.Since(began), 5*time.Second)
	require.Contains(t, msg, `drain job "job": not drained before the test's deadline`)
	require.Regexp(t, `held: doing, due \S+, attempt 1, leased by \S+ until \S+`, msg)
}

// deadlined is a testing.TB whose test must end by at.
type deadlined struct {
	testing.TB
	at time.Time
}

func (d *deadlined) Deadline() (time.Time, bool) { return d.at, true }

func TestRequireTaskListsEachDifference(t *testing.T) {
	t.Parallel()
	cfg := config()
	tr := ddbtracktest.New(t, cfg)
	ctx := t.Context()
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "a"}))
	require.ErrorContains(t, tr.Start(ctx, "a", func(context.Context, *ddbtrack.Task[Step]) error {
		return errors.New("disk full")
	}), "disk full")

	msg := fatal(t, func(tb testing.TB) {
		ddbtracktest.RequireTask(tb, tr, "a", ddbtracktest.Want[Step]{Status: Done, Output: struct{ Rows int }{3}})
	})
	require.Equal(t, `ddbtracktest: task "a" of job "job" is not as wanted:
	status:     got retry (2), want done (3)
	attempts:   got 1, want 0
	output:     got  (no output)
	            want {"Rows":3}
	last error: "disk full"
`, msg)

	msg = fatal(t, func(tb testing.TB) {
		ddbtracktest.RequireTask(tb, tr, "a", ddbtracktest.Want[Step]{Status: Retry, Attempts: 1, LastError: "timeout"})
	})
	require.Equal(t, `ddbtracktest: task "a" of job "job" is not as wanted:
	last error: got "disk full", want it to contain "timeout"
`, msg)

	msg = fatal(t, func(tb testing.TB) {
		ddbtracktest.RequireTask(tb, tr, "missing", ddbtracktest.Want[Step]{Status: Done})
	})
	require.Equal(t, `ddbtracktest: task "missing" of job "job" does not exist; want it done (3)`, msg)

	task := ddbtracktest.RequireTask(t, tr, "a", ddbtracktest.Want[Step]{Status: Retry, Attempts: 1, LastError: "disk"})
	require.Equal(t, "a", task.ID, "RequireTask returns the task for further checks")
}

func TestRequireTaskComparesOutputsByTheirType(t *testing.T) {
	t.Parallel()
	tr := ddbtracktest.New(t, config())
	ctx := t.Context()
	type result struct {
		Rows  int
		Names []string
	}
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "a"}))
	require.NoError(t, tr.Start(ctx, "a", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		return task.SetOutput(map[string]any{"Rows": 3, "Names": []string{"x"}, "Extra": true})
	}))

	// A struct matches the fields it declares; a map must match every
	// field, with numbers compared by value.
	ddbtracktest.RequireTask(t, tr, "a", ddbtracktest.Want[Step]{Status: Done, Output: result{Rows: 3, Names: []string{"x"}}})
	ddbtracktest.RequireTask(t, tr, "a", ddbtracktest.Want[Step]{Status: Done, Output: &result{Rows: 3, Names: []string{"x"}}})
	ddbtracktest.RequireTask(t, tr, "a", ddbtracktest.Want[Step]{Status: Done, Output: map[string]any{"Rows": 3, "Names": []string{"x"}, "Extra": true}})

	msg := fatal(t, func(tb testing.TB) {
		ddbtracktest.RequireTask(tb, tr, "a", ddbtracktest.Want[Step]{Status: Done, Output: result{Rows: 4, Names: []string{"x"}}})
	})
	require.Contains(t, msg, "output:     got  {\"Rows\":3,\"Names\":[\"x\"]}\n\t            want {\"Rows\":4,\"Names\":[\"x\"]}\n")
}

func TestClock(t *testing.T) {
	t.Parallel()
	var clock ddbtracktest.Clock
	start := time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, start, clock.Now(), "the zero Clock reads a fixed start")
	require.Equal(t, start.Add(time.Hour), clock.Advance(time.Hour))
	require.Equal(t, start.Add(time.Hour), clock.Now())

	later := time.Date(2030, time.June, 1, 0, 0, 0, 0, time.UTC)
	clock.Set(later)
	require.Equal(t, later, clock.Now())

	// Trackers read the clock from their workers' goroutines while the
	// test moves it; -race checks that this is safe.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				clock.Now()
				clock.Advance(time.Millisecond)
			}
		})
	}
	wg.Wait()
	require.Equal(t, later.Add(400*time.Millisecond), clock.Now())
}

func TestClockExpiresLeasesWithoutSleeping(t *testing.T) {
	t.Parallel()
	var clock ddbtracktest.Clock
	cfg := config()
	cfg.Now = clock.Now
	cfg.Lease = time.Minute
	tr := ddbtracktest.New(t, cfg)
	ctx := t.Context()
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "a"}))

	// A worker that died holding the task: its lease runs until the
	// clock passes it.
	claimed, release, finished := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		finished <- tr.Start(context.Background(), "a", func(context.Context, *ddbtrack.Task[Step]) error {
			close(claimed)
			<-release
			return nil
		})
	}()
	<-claimed

	other := ddbtracktest.New(t, func() ddbtrack.Config[Step] {
		c := cfg
		c.Table, c.Owner = tr.Config().Table, "other"
		return c
	}())
	require.ErrorIs(t, other.Start(ctx, "a", func(context.Context, *ddbtrack.Task[Step]) error { return nil }), ddbtrack.ErrTaskLocked)
	clock.Advance(cfg.Lease + time.Millisecond)
	require.NoError(t, other.Start(ctx, "a", func(context.Context, *ddbtrack.Task[Step]) error { return nil }))

	close(release)
	require.ErrorIs(t, <-finished, ddbtrack.ErrLeaseLost, "the first worker's late outcome must be refused")
}

func TestLoggerIsQuietUnlessVerbose(t *testing.T) {
	t.Parallel()
	logger := ddbtracktest.Logger(t)
	require.Equal(t, testing.Verbose(), logger.Enabled(t.Context(), slog.LevelInfo))
	logger.Info("shown with -v only")
}

// fatal runs fn with a testing.TB that records the first Fatalf instead of
// failing the test, and returns its message. fn runs in a goroutine of its
// own because Fatalf must stop it, as t.Fatalf would.
func fatal(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	require.NotEmpty(t, rec.msg, "the call should have failed the test")
	return rec.msg
}

type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
