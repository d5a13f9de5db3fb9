package opsfixture

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

// RetryIn is how long SeedSchedule's failed task waits before its retry.
const RetryIn = 3*time.Minute + 20*time.Second

// ScheduledFor is when SeedSchedule's scheduled task is due: two days and
// three hours after Now.
var ScheduledFor = Now.Add(51 * time.Hour)

// CancelReason is the reason SeedSchedule cancels its tasks with.
const CancelReason = "superseded by the 2025-01-03 import"

// SeedSchedule writes the tasks that wait for a time or were cancelled,
// beside the ones Seed writes, and leaves the clock at Now:
//
//	t-later       pending, created at Now, scheduled for ScheduledFor
//	t-retry       failed once at Now ("rate limited"), backing off until
//	              Now+RetryIn
//	t-cancelled   cancelled at Now while pending, with CancelReason: ignored
//	t-cancelling  running under worker-9's live lease since Now-5m, with
//	              a cancel requested at Now-2m
//
// The retry delay is fixed, rather than the library's jittered default,
// so that every run shows the same due time.
func (f *Fixture) SeedSchedule(t testing.TB) {
	t.Helper()
	ctx := t.Context()
	f.Clock.Set(Now)
	require.NoError(t, f.Tracker.Create(ctx, ddbtrack.NewTask{ID: "t-later", Data: map[string]any{"file": "s3://bucket/2025-01-04.csv"}, DueAt: ScheduledFor}))

	cfg := f.Config("worker-7")
	cfg.RetryDelay = func(int) time.Duration { return RetryIn }
	backoff, err := ddbtrack.New(f.Client, cfg)
	require.NoError(t, err)
	require.NoError(t, backoff.Create(ctx, ddbtrack.NewTask{ID: "t-retry"}))
	err = backoff.Start(ctx, "t-retry", func(context.Context, *Task) error { return errors.New("rate limited") })
	require.EqualError(t, err, "rate limited")

	require.NoError(t, f.Tracker.Create(ctx, ddbtrack.NewTask{ID: "t-cancelled"}))
	require.NoError(t, f.Tracker.Cancel(ctx, "t-cancelled", CancelReason))

	// Claimed five minutes ago, with a cancel asked for two minutes ago
	// that its worker has yet to see.
	f.Clock.Set(Now.Add(-5 * time.Minute))
	f.Hold(t, "t-cancelling", "worker-9")
	f.Clock.Set(Now.Add(-2 * time.Minute))
	require.NoError(t, f.Tracker.Cancel(ctx, "t-cancelling", CancelReason))
	f.Clock.Set(Now)
}
