package ddbtrack_test

// This file holds every call that the chaos test (chaos_test.go) and the
// lost-response tests (reliability_test.go) make into the parts of
// ddbtrack's API: Create, CreateMany, the tracker's Config, and Process
// with the events of Config.OnEvent.
// It also holds the matchers that pick ddbtrack's writes out of the traffic
// through the fault proxy, which depend on how those writes are built. When
// the API or the shape of a write changes, this is the one file to adapt;
// the tests themselves see only the small types below.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

// Kinds of poolEvent, one per way an attempt of Process can be reported.
const (
	evClaimed   = "claimed"
	evSucceeded = "succeeded"
	evFailed    = "failed"
	evIgnored   = "ignored"
	evReleased  = "released"
	evLeaseLost = "lease-lost"
	evError     = "error"
)

// poolEvent is one report from Process about an attempt, or an error that
// is no attempt's outcome. TaskID is empty for an error that names no task.
type poolEvent struct {
	Kind    string
	TaskID  string
	Fence   int64
	Attempt int
	Err     string
}

// poolCounts is what one call of Process counted.
type poolCounts struct {
	Claimed, Succeeded, Failed, Ignored, Released, LeaseLost, Refused, Errors int
}

// poolOptions are the few settings of Process that the tests choose.
type poolOptions struct {
	Concurrency  int
	PollInterval time.Duration
	MaxBackoff   time.Duration
}

// sinks holds, for each tracker that runPool runs, where its events go.
// The trackers of trackerOn and newTrackerWith send their Config.OnEvent
// there, so that runPool can listen to a tracker built before it.
var sinks sync.Map // *ddbtrack.Tracker[Step] -> func(poolEvent)

// withSink sets cfg.OnEvent to report the events of the tracker that
// build returns to whatever runPool registers for it.
func withSink(cfg ddbtrack.Config[Step], build func(ddbtrack.Config[Step]) (*ddbtrack.Tracker[Step], error)) (*ddbtrack.Tracker[Step], error) {
	var tr *ddbtrack.Tracker[Step]
	kinds := map[ddbtrack.EventKind]string{
		ddbtrack.EventClaimed: evClaimed, ddbtrack.EventSucceeded: evSucceeded, ddbtrack.EventFailed: evFailed,
		ddbtrack.EventIgnored: evIgnored, ddbtrack.EventReleased: evReleased, ddbtrack.EventLeaseLost: evLeaseLost,
		ddbtrack.EventError: evError,
	}
	cfg.OnEvent = func(ctx context.Context, ev ddbtrack.Event[Step]) context.Context {
		kind, ok := kinds[ev.Kind]
		sink, listening := sinks.Load(tr)
		if !ok || !listening {
			return ctx
		}
		pe := poolEvent{Kind: kind, TaskID: ev.TaskID}
		if ev.Task != nil {
			pe.Fence, pe.Attempt = ev.Task.Fence, ev.Task.Attempts
		}
		if ev.Err != nil {
			pe.Err = ev.Err.Error()
		}
		sink.(func(poolEvent))(pe)
		return ctx
	}
	var err error
	tr, err = build(cfg)
	return tr, err
}

// runPool runs Process in Batch mode and reports every event of its
// attempts as a poolEvent. onEvent is called from the pool's workers,
// concurrently.
func runPool(ctx context.Context, tr *ddbtrack.Tracker[Step], fn func(context.Context, *ddbtrack.Task[Step]) error,
	opts poolOptions, onEvent func(poolEvent)) (poolCounts, error) {
	sinks.Store(tr, onEvent)
	defer sinks.Delete(tr)
	res, err := tr.Process(ctx, fn, ddbtrack.ProcessOptions[Step]{
		Concurrency:  opts.Concurrency,
		PollInterval: opts.PollInterval,
		MaxBackoff:   opts.MaxBackoff,
	})
	return poolCounts{
		Claimed: res.Claimed, Succeeded: res.Succeeded, Failed: res.Failed, Ignored: res.Ignored,
		Released: res.Released, LeaseLost: res.LeaseLost, Refused: res.Refused, Errors: res.Errors,
	}, err
}

// createTask creates one Pending task without data.
func createTask(ctx context.Context, tr *ddbtrack.Tracker[Step], id string) error {
	return tr.Create(ctx, ddbtrack.NewTask{ID: id})
}

// createMany creates Pending tasks without data and says which were
// created and which already existed.
func createMany(ctx context.Context, tr *ddbtrack.Tracker[Step], ids []string) (created, existing []string, err error) {
	tasks := make([]ddbtrack.NewTask, len(ids))
	for i, id := range ids {
		tasks[i] = ddbtrack.NewTask{ID: id}
	}
	res, err := tr.CreateMany(ctx, tasks)
	return res.Created, res.Existing, err
}

// trackerSettings are the Config fields the chaos workers and the
// lost-response tests set beyond the roles.
type trackerSettings struct {
	Table, Owner              string
	Lease, FinishTimeout      time.Duration
	MaxAttempts, ErrorHistory int
	Now                       func() time.Time
}

// newTrackerWith returns a tracker on an existing table for the job
// "test-job", with the seed's statuses and a quiet logger.
func newTrackerWith(client *dynamodb.Client, s trackerSettings) (*ddbtrack.Tracker[Step], error) {
	return withSink(ddbtrack.Config[Step]{
		Table: s.Table, Job: "test-job",
		Pending: Todo, Running: InProgress, Failed: Failed, Succeeded: Success, Ignored: Ignore,
		Owner: s.Owner, Lease: s.Lease, FinishTimeout: s.FinishTimeout,
		MaxAttempts: s.MaxAttempts, ErrorHistory: s.ErrorHistory,
		Now: s.Now, Logger: quietLogger(), RetryDelay: noDelay,
	}, func(cfg ddbtrack.Config[Step]) (*ddbtrack.Tracker[Step], error) { return ddbtrack.New(client, cfg) })
}

// isLeaseLost reports whether an error from Start says that the attempt's
// lease was lost, so its outcome was not recorded.
func isLeaseLost(err error) bool { return errors.Is(err, ddbtrack.ErrLeaseLost) }

// isAbandonedEntry reports whether a history entry is the one a takeover
// writes for the attempt whose worker died.
func isAbandonedEntry(msg string) bool { return strings.HasPrefix(msg, "abandoned") }

// isNotRunEntry reports whether a history entry is the one written for an
// attempt that was not run because too many workers died running it.
func isNotRunEntry(msg string) bool { return strings.HasPrefix(msg, "not run") }

// The matchers below pick ddbtrack's writes out of the requests through the
// fault proxy, by what only that write does. They follow the request
// bodies that lock.go and create.go build today.

// isClaim matches a claim: the only write that sets a new lease token.
func isClaim(op string, body []byte) bool {
	return op == "UpdateItem" && bytes.Contains(body, []byte("#lease_token = :lease_token"))
}

// isOutcome matches an outcome or release write: fenced by the attempt's
// lease token (":token"), and removing the lease, which a renewal does not.
func isOutcome(op string, body []byte) bool {
	return op == "UpdateItem" && bytes.Contains(body, []byte(`":token":`)) &&
		bytes.Contains(body, []byte("REMOVE")) && !isRenewal(op, body)
}

// forTask narrows a matcher to one task of the job "test-job", by the key
// in the request.
func forTask(id string, match func(string, []byte) bool) func(string, []byte) bool {
	key := []byte(`{"S":"test-job#` + id + `"}`)
	return func(op string, body []byte) bool {
		return bytes.Contains(body, key) && (match == nil || match(op, body))
	}
}

// trackerOn returns a tracker for cfg's table and job that sends its
// requests with client, under its own owner name.
func trackerOn(t testing.TB, client *dynamodb.Client, cfg ddbtrack.Config[Step], owner string) *ddbtrack.Tracker[Step] {
	t.Helper()
	cfg.Owner = owner
	tr, err := withSink(cfg, func(cfg ddbtrack.Config[Step]) (*ddbtrack.Tracker[Step], error) { return ddbtrack.New(client, cfg) })
	require.NoError(t, err)
	return tr
}
