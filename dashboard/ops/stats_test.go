package ops_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// gatedClient holds count queries (Select=COUNT) back while its gate is
// shut, as a full count of a big job keeps its caller waiting for seconds.
type gatedClient struct {
	ddbtrack.Client
	counts atomic.Int32 // count queries sent

	mu   sync.Mutex
	gate chan struct{} // nil while open
}

func (c *gatedClient) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if in.Select == types.SelectCount {
		c.counts.Add(1)
		c.mu.Lock()
		gate := c.gate
		c.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return c.Client.Query(ctx, in, opts...)
}

// shut holds count queries back until the returned function opens the gate.
func (c *gatedClient) shut() (open func()) {
	gate := make(chan struct{})
	c.mu.Lock()
	c.gate = gate
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.gate = nil
		c.mu.Unlock()
		close(gate)
	}
}

// TestCounterAnswersWhileItCounts checks that a Counter answers with the
// counts it had, dated, while a count takes longer than its wait; that it
// runs one count at a time however often it is asked; and that the next
// answer after the count has the new counts.
func TestCounterAnswersWhileItCounts(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.Seed(t)
	client := &gatedClient{Client: fx.Client}
	// CountMaxAge 0: every count of this tracker is a full count.
	tr, err := ddbtrack.New(client, fx.Config("viewer"))
	require.NoError(t, err)
	counter := ops.NewJob(tr).Counter(50 * time.Millisecond)
	ctx := t.Context()

	first, err := counter.Count(ctx, fx.Clock.Now())
	require.NoError(t, err)
	require.EqualValues(t, 8, first.Total)
	require.Equal(t, 1, first.Stuck)

	// A task arrives, and the next count is held back.
	require.NoError(t, fx.Tracker.Create(ctx, ddbtrack.NewTask{ID: "t-new"}))
	fx.Clock.Advance(10 * time.Minute)
	open := client.shut()
	sent := client.counts.Load()
	for range 3 {
		got, err := counter.Count(ctx, fx.Clock.Now())
		require.NoError(t, err)
		require.Equal(t, first.Total, got.Total, "the counts it had")
		require.Equal(t, first.At, got.At, "dated when they were taken")
		require.Equal(t, 2, got.Stuck, "stuck tasks are read afresh: t-running's lease ran out meanwhile")
	}
	// One count reads two of its 10 partitions at once: two queries held
	// at the gate.
	require.Eventually(t, func() bool { return client.counts.Load() == sent+2 }, 10*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, sent+2, client.counts.Load(), "one count at a time, however often the counter is asked")

	open()
	require.Eventually(t, func() bool {
		got, err := counter.Count(ctx, fx.Clock.Now())
		return err == nil && got.Total == first.Total+1 && got.At.Equal(fx.Clock.Now())
	}, 10*time.Second, 10*time.Millisecond, "the count that was held back has the new task")
}

// TestCounterWaitsForTheFirstCounts checks that a Counter with no counts
// yet waits for them, and that a failed count is reported.
func TestCounterWaitsForTheFirstCounts(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.Seed(t)
	client := &gatedClient{Client: fx.Client}
	tr, err := ddbtrack.New(client, fx.Config("viewer"))
	require.NoError(t, err)
	counter := ops.NewJob(tr).Counter(10 * time.Millisecond)

	open := client.shut()
	got := make(chan ops.Counts[opsfixture.Status], 1)
	go func() {
		c, err := counter.Count(t.Context(), fx.Clock.Now())
		if err == nil {
			got <- c
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("the first Count answered before any count ended")
	case <-time.After(200 * time.Millisecond):
	}
	open()
	first, ok := <-got
	require.True(t, ok, "the first Count failed")
	require.EqualValues(t, 8, first.Total)

	cfg := fx.Config("viewer")
	cfg.Table = "ddbtrack-no-such-table"
	missing, err := ddbtrack.New(fx.Client, cfg)
	require.NoError(t, err)
	_, err = ops.NewJob(missing).Counter(0).Count(t.Context(), fx.Clock.Now())
	require.True(t, ops.IsTableMissing(err), "got %v", err)
}
