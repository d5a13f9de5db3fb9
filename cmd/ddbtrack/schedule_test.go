package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// scheduled returns a fixture with the standard tasks and those that wait
// for a time or were cancelled (see fixture.SeedSchedule).
func scheduled(t *testing.T) *fixture.Fixture {
	t.Helper()
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedSchedule(t)
	return fx
}

// TestGoldenSchedule runs the commands that show when tasks run, and the
// dry runs and refusals of cancel and due-now, against one job, and
// compares their output with testdata/*.golden.
func TestGoldenSchedule(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"ls-schedule", []string{"ls"}, exitOK},
		{"ls-scheduled", []string{"ls", "--scheduled"}, exitOK},
		{"ls-scheduled-failed", []string{"ls", "--scheduled", "--status", "failed"}, exitOK},
		{"ls-scheduled-json", []string{"ls", "--scheduled", "--json", "--id-contains", "later"}, exitOK},
		{"show-later", []string{"show", "t-later"}, exitOK},
		{"show-retry", []string{"show", "t-retry"}, exitOK},
		{"show-cancelled", []string{"show", "t-cancelled"}, exitOK},
		{"show-cancelling", []string{"show", "t-cancelling"}, exitOK},
		{"cancel-dry-run", []string{"cancel", "--reason", "duplicate", "t-later", "t-running", "t-fail-1"}, exitOK},
		{"cancel-dry-run-scheduled", []string{"cancel", "--reason", "duplicate", "--scheduled"}, exitOK},
		{"cancel-dry-run-json", []string{"cancel", "--reason", "duplicate", "--json", "t-later", "t-ok"}, exitFailure},
		{"cancel-succeeded", []string{"cancel", "--reason", "duplicate", "--yes", "t-ok"}, exitFailure},
		{"cancel-cancelled", []string{"cancel", "--reason", "duplicate", "--yes", "t-cancelled"}, exitFailure},
		{"cancel-missing", []string{"cancel", "--reason", "duplicate", "--yes", "t-nope"}, exitNotFound},
		{"cancel-no-reason", []string{"cancel", "--yes", "t-later"}, exitUsage},
		{"cancel-nothing-named", []string{"cancel", "--reason", "duplicate"}, exitUsage},
		{"cancel-finished-status", []string{"cancel", "--reason", "duplicate", "--status", "succeeded"}, exitUsage},
		{"due-now-refused", []string{"due-now", "t-ok", "t-running", "t-nope"}, exitNotFound},
		{"due-now-already", []string{"due-now", "t-pending"}, exitOK},
		{"usage-scheduled-and-stuck", []string{"ls", "--scheduled", "--stuck"}, exitUsage},
		{"usage-scheduled-succeeded", []string{"ls", "--scheduled", "--status", "succeeded"}, exitUsage},
		{"help-cancel", []string{"help", "cancel"}, exitOK},
		{"help-due-now", []string{"help", "due-now"}, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, fx)
			if strings.HasPrefix(tc.name, "help") {
				c.env = nil
			}
			r := c.run(tc.args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			golden(t, tc.name, transcript(tc.args, r))
		})
	}
	// Nothing above changed a task.
	require.Equal(t, "s00_todo", fx.Status(t, "t-later"))
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))
}

// TestDueTextFollowsTheClock lists the scheduled tasks as the clock moves
// past the retry: the backing-off task leaves the list once it is due.
func TestDueTextFollowsTheClock(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)
	c := newCLI(t, fx)
	require.Equal(t, []string{"t-retry", "t-later"}, c.lsIDs(t, "ls", "--scheduled"), "soonest due first")

	fx.Clock.Advance(fixture.RetryIn - time.Second)
	r := c.run("ls", "--scheduled", "--status", "failed")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "retry in 1s")

	fx.Clock.Advance(time.Second)
	require.Equal(t, []string{"t-later"}, c.lsIDs(t, "ls", "--scheduled"), "a task due now is not scheduled")
	r = c.run("show", "t-retry")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "Due:        now\n")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)
	c := newCLI(t, fx)

	// Named tasks: a scheduled one stops at once, a running one is asked
	// to stop, and a succeeded one is refused with what to do instead;
	// the others are still cancelled.
	r := c.run("cancel", "--reason", "duplicate of t-ok", "--yes", "t-later", "t-running", "t-ok")
	require.Equal(t, exitFailure, r.code, r.stderr)
	require.Equal(t, "Cancelled t-later: it is s10_ignore now.\n"+
		"Asked worker worker-7 to stop t-running: it stops at its next lease renewal, and records it as s10_ignore.\n", r.stdout)
	require.Equal(t, `ddbtrack cancel: task "t-ok" already succeeded (it is s09_success), so there is nothing to cancel: `+
		"a succeeded task does not run again unless it is reset; `ddbtrack delete` removes it if it should not be there at all\n", r.stderr)

	later := getTask(t, fx, "t-later")
	require.Equal(t, fixture.Ignored, later.Status)
	require.Equal(t, "duplicate of t-ok", later.CancelReason)
	require.True(t, fixture.Now.Equal(later.CancelledAt), "the cancel is dated by the injected clock")
	running := getTask(t, fx, "t-running")
	require.Equal(t, fixture.Running, running.Status, "a worker holds it until it sees the request")
	require.Equal(t, "duplicate of t-ok", running.CancelReason)
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))

	r = c.run("show", "t-later")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "Cancel:     cancelled at 2025-01-02 03:35:00Z: duplicate of t-ok\n")

	// By filter: every task not due yet, after a dry run that counts it.
	r = c.run("cancel", "--scheduled", "--reason", "queue drained")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "1 task matches (s00_todo or s06_failed, not due yet).\nDry run: nothing changed. Run again with --yes to cancel it.\n", r.stdout)
	require.Equal(t, "s06_failed", fx.Status(t, "t-retry"))
	r = c.run("cancel", "--scheduled", "--reason", "queue drained", "--yes", "--json")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.JSONEq(t, `{"dry_run": false, "matched": 1, "cancelled": 1, "running": 0, "skipped": 0, "refused": []}`, r.stdout)
	retry := getTask(t, fx, "t-retry")
	require.Equal(t, fixture.Ignored, retry.Status)
	require.Equal(t, "cancelled: queue drained", retry.LastError)
	require.Empty(t, c.lsIDs(t, "ls", "--scheduled"))
}

// TestCancelledTaskIsNotRun checks, through a worker, that a cancelled
// scheduled task does not run when its time comes.
func TestCancelledTaskIsNotRun(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)
	r := newCLI(t, fx).run("cancel", "--reason", "not needed", "--yes", "t-later")
	require.Equal(t, exitOK, r.code, r.stderr)
	fx.Clock.Set(fixture.ScheduledFor.Add(time.Minute))
	ran := false
	err := fx.Tracker.Start(t.Context(), "t-later", func(context.Context, *fixture.Task) error { ran = true; return nil })
	require.ErrorIs(t, err, ddbtrack.ErrTaskIgnored)
	require.False(t, ran)
}

func TestDueNow(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)
	c := newCLI(t, fx)

	r := c.run("due-now", "t-later", "t-retry", "t-pending")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "t-later is due now (it was scheduled for 2025-01-04 06:35:00Z (in 2d 3h)).\n"+
		"t-retry is due now: it moved from s06_failed to s00_todo, with its attempt count restarted (it had 1 failed attempt; it was retry in 3m 20s).\n"+
		"t-pending is due already (since 2025-01-02 03:01:00Z): nothing changed.\n", r.stdout)

	for _, id := range []string{"t-later", "t-retry"} {
		task := getTask(t, fx, id)
		require.Equal(t, fixture.Pending, task.Status, id)
		require.True(t, fixture.Now.Equal(task.DueAt), "%s is due at the injected clock's now, not %v", id, task.DueAt)
		require.Zero(t, task.Attempts, id)
	}
	require.Len(t, getTask(t, fx, "t-retry").Errors, 1, "the error history is kept")

	// A worker starts them now, without the clock moving.
	for _, id := range []string{"t-later", "t-retry"} {
		require.NoError(t, fx.Tracker.Start(t.Context(), id, func(context.Context, *fixture.Task) error { return nil }), id)
	}
	require.Empty(t, c.lsIDs(t, "ls", "--scheduled"))

	r = c.run("due-now")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "ddbtrack ls --scheduled")
}

// TestRequeueScheduled makes every backing-off task due with requeue,
// after a dry run.
func TestRequeueScheduled(t *testing.T) {
	t.Parallel()
	fx := scheduled(t)
	c := newCLI(t, fx)
	r := c.run("requeue", "--scheduled")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "1 task matches (s06_failed, not due yet).\nDry run: nothing changed. Run again with --yes to move it to s00_todo.\n", r.stdout)
	r = c.run("requeue", "--scheduled", "--yes")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Requeued 1 task to s00_todo.\n", r.stdout)
	require.Equal(t, "s00_todo", fx.Status(t, "t-retry"))
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-1"), "a failed task that is due is left")
}

func getTask(t *testing.T, fx *fixture.Fixture, id string) *fixture.Task {
	t.Helper()
	task, err := fx.Tracker.Get(t.Context(), id)
	require.NoError(t, err)
	return task
}
