package ops_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// afterGet runs a function once, after the first GetItem it passes on,
// to change a task between an operation's read and its write.
type afterGet struct {
	ddbtrack.Client
	once sync.Once
	fn   func()
}

func (c *afterGet) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.Client.GetItem(ctx, in, opts...)
	c.once.Do(c.fn)
	return out, err
}

// TestDueNowLeavesATaskThatChanged cancels a backing-off task between
// due-now's read and its write: the cancel stands, and due-now says the
// task changed.
func TestDueNowLeavesATaskThatChanged(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.SeedSchedule(t)
	client := &afterGet{Client: fx.Client, fn: func() {
		require.NoError(t, fx.Tracker.Cancel(t.Context(), "t-retry", "operator A"))
	}}
	tr, err := ddbtrack.New(client, fx.Config("viewer"))
	require.NoError(t, err)

	was, err := ops.NewJob(tr).DueNow(t.Context(), "t-retry", fx.Clock.Now())
	require.ErrorIs(t, err, ops.ErrChanged)
	require.Equal(t, opsfixture.Failed, was.Status, "the task as due-now read it")
	task, err := fx.Tracker.Get(t.Context(), "t-retry")
	require.NoError(t, err)
	require.Equal(t, opsfixture.Ignored, task.Status)
	require.Equal(t, "operator A", task.CancelReason)
}

// TestCancelByFilter cancels every task that waits or runs, after a dry
// run: the running ones are asked to stop, and the finished ones are not
// read at all.
func TestCancelByFilter(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.Seed(t)
	fx.SeedSchedule(t)
	job := ops.NewJob(fx.Tracker)
	now := fx.Clock.Now()

	_, err := job.Cancel(t.Context(), ops.Filter[opsfixture.Status]{}, " ", now, false)
	require.ErrorIs(t, err, ddbtrack.ErrInvalidOption, "a cancel needs a reason")
	_, err = job.Cancel(t.Context(), ops.Filter[opsfixture.Status]{Statuses: []opsfixture.Status{opsfixture.Succeeded}}, "x", now, true)
	require.ErrorContains(t, err, "include s09_success, whose tasks have finished")

	// Pending: t-pending, t-later. Failed: t-fail-1, t-fail-2, XSS,
	// t-retry. Running: t-stuck, t-running, t-cancelling (a cancel asked
	// for already, which a second one keeps).
	dry, err := job.Cancel(t.Context(), ops.Filter[opsfixture.Status]{}, "", now, true)
	require.NoError(t, err)
	require.Equal(t, 9, dry.Matched)
	require.Equal(t, 2, dry.Running, "t-running and t-cancelling are held; t-stuck's lease expired")
	require.Zero(t, dry.Cancelled)

	res, err := job.Cancel(t.Context(), ops.Filter[opsfixture.Status]{}, "job retired", now, false)
	require.NoError(t, err)
	require.Equal(t, 9, res.Cancelled)
	require.Zero(t, res.Skipped)
	counts, err := fx.Tracker.Count(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(0), counts.ByStatus[opsfixture.Pending])
	require.Equal(t, int64(0), counts.ByStatus[opsfixture.Failed])
	require.Equal(t, int64(2), counts.ByStatus[opsfixture.Running], "held tasks stop when their workers see the request")
	cancelling, err := fx.Tracker.Get(t.Context(), "t-cancelling")
	require.NoError(t, err)
	require.Equal(t, opsfixture.CancelReason, cancelling.CancelReason, "the first request's reason is kept")
}
