package ddbtrack_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// TestRetention: with Config.Retention set, a success stores its expiry in
// epoch seconds, every other status change removes it, and CreateTable
// turns time to live on where the server has it and warns where it does
// not.
func TestRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs bytes.Buffer
	cfg, clk := clockedConfig(t)
	cfg.Retention = 30 * 24 * time.Hour
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	client := ddbtracktest.Client(t)
	tr := newTracker(t, cfg)

	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(cfg.Table)})
	require.NoError(t, err)
	if serverKind() == "dynalite" {
		require.Equal(t, types.TimeToLiveStatusDisabled, ttl.TimeToLiveDescription.TimeToLiveStatus)
		require.Contains(t, logs.String(), "the server has no time to live", "a server without TTL is named in a warning")
	} else {
		require.Contains(t, []types.TimeToLiveStatus{types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling},
			ttl.TimeToLiveDescription.TimeToLiveStatus)
		require.Equal(t, "expires_at", aws.ToString(ttl.TimeToLiveDescription.AttributeName))
	}

	// A success expires Retention later, stored in the seconds TTL reads.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "done"}))
	clk.Advance(1500 * time.Millisecond) // Off a whole second, to see the rounding.
	require.NoError(t, tr.Start(ctx, "done", ok))
	want := time.Unix(clk.Now().Add(cfg.Retention).Unix(), 0).UTC()
	require.Equal(t, want, get(t, tr, "done").ExpiresAt)
	require.Equal(t, strconv.FormatInt(want.Unix(), 10), rawAttr(t, client, cfg, "done", "expires_at"))

	// Failures are kept, to be looked at.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "broken"}))
	require.Error(t, tr.Start(ctx, "broken", func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("no") }))
	require.Zero(t, get(t, tr, "broken").ExpiresAt)
	require.Empty(t, rawAttr(t, client, cfg, "broken", "expires_at"))

	// A task requeued from Succeeded runs again, so it must not expire.
	clk.Advance(time.Millisecond)
	res, err := tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Statuses: []Step{Success}})
	require.NoError(t, err)
	require.Equal(t, 1, res.Moved)
	require.Zero(t, get(t, tr, "done").ExpiresAt)
	require.Empty(t, rawAttr(t, client, cfg, "done", "expires_at"))

	// Neither may a succeeded task that a pipeline's next step claims.
	require.NoError(t, tr.Start(ctx, "done", ok))
	require.NotZero(t, get(t, tr, "done").ExpiresAt)
	cfg2 := cfg
	cfg2.Pending, cfg2.Running, cfg2.Failed, cfg2.Succeeded, cfg2.Ignored = 100, 103, 106, 109, 110
	cfg2.Startable, cfg2.Retention = []Step{Success}, 0
	step2, err := ddbtrack.New(client, cfg2)
	require.NoError(t, err)
	require.NoError(t, step2.Start(ctx, "done", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		require.Zero(t, task.ExpiresAt)
		require.Empty(t, rawAttr(t, client, cfg, "done", "expires_at"), "claimed from Succeeded")
		return nil
	}))
	require.Zero(t, get(t, tr, "done").ExpiresAt, "step 2 keeps its tasks")
}

// TestRetentionOffLeavesTTLAlone: without Retention, CreateTable never
// touches time to live and a success stores no expiry.
func TestRetentionOffLeavesTTLAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	counted := reqcount.New(ddbtracktest.Client(t))
	cfg := config(t)
	tr, err := ddbtrack.New(counted, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(ctx))
	require.Zero(t, counted.Counts()[reqcount.DescribeTimeToLive]+counted.Counts()[reqcount.UpdateTimeToLive])
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	require.NoError(t, tr.Start(ctx, "t", ok))
	require.Zero(t, get(t, tr, "t").ExpiresAt)
}

// TestRetentionOnExistingTable: CreateTable turns time to live on for a
// table made without it, leaves it alone once it is on, and refuses a
// table that expires items by another attribute, since a table has one.
func TestRetentionOnExistingTable(t *testing.T) {
	if serverKind() == "dynalite" {
		t.Skip("dynalite has no time to live; run with DDBTRACK_SERVER=moto")
	}
	t.Parallel()
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	// withRetention creates a table without Retention, as an older
	// release would have, and returns a tracker on it with Retention set.
	withRetention := func(c ddbtrack.Client) (*ddbtrack.Tracker[Step], ddbtrack.Config[Step]) {
		cfg := config(t)
		newTracker(t, cfg)
		cfg.Retention = time.Hour
		tr, err := ddbtrack.New(c, cfg)
		require.NoError(t, err)
		return tr, cfg
	}

	counted := reqcount.New(client)
	tr, _ := withRetention(counted)
	require.NoError(t, tr.CreateTable(ctx))
	require.Equal(t, 1, counted.Counts()[reqcount.UpdateTimeToLive])
	require.NoError(t, tr.CreateTable(ctx), "a second run finds it on")
	require.Equal(t, 1, counted.Counts()[reqcount.UpdateTimeToLive], "and does not turn it on again")

	tr, cfg := withRetention(client)
	_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(cfg.Table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("purge_after"), Enabled: aws.Bool(true)},
	})
	require.NoError(t, err)
	err = tr.CreateTable(ctx)
	require.ErrorIs(t, err, ddbtrack.ErrTableSchema)
	require.ErrorContains(t, err, `expires items by attribute "purge_after"`)
}

// rawAttr returns the stored text of a number or string attribute, or ""
// when the item lacks it.
func rawAttr(t testing.TB, client ddbtrack.Client, cfg ddbtrack.Config[Step], id, name string) string {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(cfg.Table),
		Key:            keyOf(cfg.Job, id),
		ConsistentRead: aws.Bool(true),
	})
	require.NoError(t, err)
	switch v := out.Item[name].(type) {
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberS:
		return v.Value
	}
	return ""
}
