package ddbtrackotel_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// outcomeCounters are the counters of the outcomes an attempt can end with.
var outcomeCounters = []string{
	"ddbtrack.task.successes", "ddbtrack.task.failures", "ddbtrack.task.ignored", "ddbtrack.task.releases",
	"ddbtrack.task.cancellations", "ddbtrack.task.lease_losses",
}

func TestStartTracesAndCountsEachOutcome(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	// attempt is what a case's function gets: the task, the test's clock,
	// and the tracker's client and configuration, to act as another
	// worker or an operator would.
	type attempt struct {
		task   *ddbtrack.Task[Status]
		tr     *ddbtrack.Tracker[Status]
		clock  *ddbtracktest.Clock
		client *faultyClient
		cfg    ddbtrack.Config[Status]
	}
	for _, tc := range []struct {
		name        string
		maxAttempts int
		fn          func(context.Context, attempt) error
		startErr    error  // what Start returns, matched with errors.Is
		outcome     string // the span's ddbtrack.outcome, and the run time's
		counter     string // the outcome's counter, or "" for none
		status      string // the task's status after the attempt
		code        codes.Code
	}{
		{
			name:    "succeeded",
			fn:      func(context.Context, attempt) error { return nil },
			outcome: "succeeded", counter: "ddbtrack.task.successes", status: "done", code: codes.Unset,
		},
		{
			name:     "failed",
			fn:       func(context.Context, attempt) error { return errBoom },
			startErr: errBoom,
			outcome:  "failed", counter: "ddbtrack.task.failures", status: "retry", code: codes.Error,
		},
		{
			name:        "ignored after its last attempt",
			maxAttempts: 1,
			fn:          func(context.Context, attempt) error { return errBoom },
			startErr:    errBoom,
			outcome:     "ignored", counter: "ddbtrack.task.ignored", status: "gave_up", code: codes.Error,
		},
		{
			name:     "snoozed",
			fn:       func(context.Context, attempt) error { return ddbtrack.Snooze(time.Hour) },
			startErr: ddbtrack.ErrRelease,
			outcome:  "released", counter: "ddbtrack.task.releases", status: "queued", code: codes.Unset,
		},
		{
			name: "cancelled while it ran",
			fn: func(ctx context.Context, a attempt) error {
				return a.tr.Cancel(ctx, a.task.ID, "superseded")
			},
			startErr: ddbtrack.ErrCancelled,
			outcome:  "cancelled", counter: "ddbtrack.task.cancellations", status: "gave_up", code: codes.Unset,
		},
		{
			name: "lease lost to another worker",
			fn: func(ctx context.Context, a attempt) error {
				// This worker stalls past its lease, and another takes the
				// task over and finishes it; that worker has no hook, so
				// that the telemetry is this attempt's alone.
				a.clock.Advance(a.cfg.Lease + time.Second)
				cfg := a.cfg
				cfg.OnEvent = nil
				other, err := ddbtrack.New(a.client.Client, cfg)
				require.NoError(t, err)
				require.NoError(t, other.Start(context.Background(), a.task.ID, func(context.Context, *ddbtrack.Task[Status]) error { return nil }))
				return nil
			},
			startErr: ddbtrack.ErrLeaseLost,
			outcome:  "lease_lost", counter: "ddbtrack.task.lease_losses", status: "working", code: codes.Error,
		},
		{
			name: "outcome not written",
			fn: func(_ context.Context, a attempt) error {
				// DynamoDB fails every write from here on, past
				// Config.FinishTimeout.
				a.client.failUpdates.Store(true)
				return nil
			},
			startErr: ddbtrack.ErrUnavailable,
			outcome:  "error", status: "working", code: codes.Error,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := newObserver(t)
			clock := &ddbtracktest.Clock{}
			client := &faultyClient{Client: ddbtracktest.Client(t)}
			cfg := config(o, clock)
			cfg.MaxAttempts = tc.maxAttempts
			cfg.Lease = time.Minute
			if tc.startErr == ddbtrack.ErrUnavailable {
				// An outcome that cannot be written is given up on
				// quicker than by default, though not so quick that a
				// slow server's claim is given up on too: moto took over
				// 200 ms with two test suites running.
				cfg.FinishTimeout = 2 * time.Second
			}
			tr := newTracker(t, client, &cfg)
			cfg = tr.Config()
			require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "cat.png"}))
			clock.Advance(90 * time.Second) // The task waits this long to be claimed.

			ctx, caller := o.tracer().Start(t.Context(), "caller")
			err := tr.Start(ctx, "cat.png", func(ctx context.Context, task *ddbtrack.Task[Status]) error {
				// The function's own spans nest under the attempt's.
				_, work := o.tracer().Start(ctx, "work")
				work.End()
				return tc.fn(ctx, attempt{task: task, tr: tr, clock: clock, client: client, cfg: cfg})
			})
			caller.End()
			require.True(t, isErr(err, tc.startErr), "Start returned %v, want %v", err, tc.startErr)

			// One attempt span, under the caller's, with the function's
			// span under it.
			spans := o.attempts()
			require.Len(t, spans, 1)
			span := spans[0]
			callerSpan := o.named("caller")[0]
			require.Equal(t, callerSpan.SpanContext().SpanID(), span.Parent().SpanID())
			require.Equal(t, callerSpan.SpanContext().TraceID(), span.SpanContext().TraceID())
			require.Equal(t, span.SpanContext().SpanID(), o.named("work")[0].Parent().SpanID())
			require.Subset(t, attrs(span.Attributes()), map[attribute.Key]any{
				"ddbtrack.job":          job,
				"ddbtrack.task.id":      "cat.png",
				"ddbtrack.task.attempt": int64(1),
				"ddbtrack.task.fence":   int64(1),
				"ddbtrack.outcome":      tc.outcome,
				"ddbtrack.task.status":  tc.status,
			})
			require.Equal(t, tc.code, span.Status().Code)
			if tc.code == codes.Error {
				require.Contains(t, eventNames(span), "exception", "the error is recorded on the span")
				require.NotEmpty(t, span.Status().Description)
			} else {
				require.Empty(t, eventNames(span))
			}
			if tc.outcome == "cancelled" {
				require.Equal(t, "superseded", attrs(span.Attributes())["ddbtrack.task.cancel_reason"])
			}

			metrics := o.metrics(t)
			byJob := counts(t, metrics, attribute.String("ddbtrack.job", job))
			require.EqualValues(t, 1, byJob["ddbtrack.task.claims"])
			for _, name := range outcomeCounters {
				want := 0
				if name == tc.counter {
					want = 1
				}
				require.EqualValues(t, want, byJob[name], name)
			}
			require.Zero(t, byJob["ddbtrack.task.refusals"])
			errs := counts(t, metrics, attribute.String("ddbtrack.operation", "outcome"), attribute.String("error.type", "InternalServerError"))
			if tc.outcome == "error" {
				require.EqualValues(t, 1, errs["ddbtrack.errors"])
			} else {
				require.Zero(t, errs["ddbtrack.errors"])
			}

			n, waited := histogram(t, metrics, "ddbtrack.task.wait.duration", attribute.String("ddbtrack.job", job))
			require.EqualValues(t, 1, n)
			require.InDelta(t, 90, waited, 0.001, "the wait is measured with Config.Now, from due to claim")
			n, ran := histogram(t, metrics, "ddbtrack.task.run.duration", attribute.String("ddbtrack.job", job), attribute.String("ddbtrack.outcome", tc.outcome))
			require.EqualValues(t, 1, n)
			require.Positive(t, ran)
		})
	}
}

func TestRefusedClaimsAreCountedNotTraced(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, tr *ddbtrack.Tracker[Status], clock *ddbtracktest.Clock)
		reason string
		err    error
	}{
		{
			name:   "missing",
			setup:  func(*testing.T, *ddbtrack.Tracker[Status], *ddbtracktest.Clock) {},
			reason: "not_found", err: ddbtrack.ErrTaskNotFound,
		},
		{
			name: "scheduled for later",
			setup: func(t *testing.T, tr *ddbtrack.Tracker[Status], clock *ddbtracktest.Clock) {
				require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "cat.png", DueAt: clock.Now().Add(time.Hour)}))
			},
			reason: "not_due", err: ddbtrack.ErrTaskNotDue,
		},
		{
			name: "finished",
			setup: func(t *testing.T, tr *ddbtrack.Tracker[Status], _ *ddbtracktest.Clock) {
				require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "cat.png"}))
				require.NoError(t, tr.Start(t.Context(), "cat.png", func(context.Context, *ddbtrack.Task[Status]) error { return nil }))
			},
			reason: "succeeded", err: ddbtrack.ErrTaskSucceeded,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := &ddbtracktest.Clock{}
			// The setup runs without the hook, so that only the refusal
			// shows.
			o := newObserver(t)
			cfg := config(o, clock)
			cfg.OnEvent = nil
			setupTracker := newTracker(t, ddbtracktest.Client(t), &cfg)
			tc.setup(t, setupTracker, clock)
			cfg.OnEvent = o.hook
			tr, err := ddbtrack.New(ddbtracktest.Client(t), cfg)
			require.NoError(t, err)

			ctx, caller := o.tracer().Start(t.Context(), "caller")
			err = tr.Start(ctx, "cat.png", func(context.Context, *ddbtrack.Task[Status]) error {
				t.Error("the function of a refused claim ran")
				return nil
			})
			caller.End()
			require.ErrorIs(t, err, tc.err)

			require.Empty(t, o.attempts(), "a refused claim starts no attempt span")
			events := o.named("caller")[0].Events()
			require.Len(t, events, 1)
			require.Equal(t, "ddbtrack.claim.refused", events[0].Name)
			require.Subset(t, attrs(events[0].Attributes), map[attribute.Key]any{
				"ddbtrack.job": job, "ddbtrack.task.id": "cat.png", "ddbtrack.refusal.reason": tc.reason,
			})

			metrics := o.metrics(t)
			require.Equal(t, map[string]int64{"ddbtrack.task.refusals": 1},
				counts(t, metrics, attribute.String("ddbtrack.job", job), attribute.String("ddbtrack.refusal.reason", tc.reason)))
		})
	}
}

func TestProcessTracesEveryAttempt(t *testing.T) {
	t.Parallel()
	o := newObserver(t)
	clock := &ddbtracktest.Clock{}
	client := &faultyClient{Client: ddbtracktest.Client(t)}
	cfg := config(o, clock)
	cfg.MaxAttempts = 2
	tr := newTracker(t, client, &cfg)
	const tasks = 6
	for i := range tasks {
		require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: fmt.Sprintf("img-%d", i)}))
	}
	clock.Advance(90 * time.Second) // Every task waits this long for its first claim.
	// The pool's first two reads of the task list fail; it backs off and
	// carries on.
	client.failQueries.Store(2)

	ctx, caller := o.tracer().Start(t.Context(), "caller")
	res, err := tr.Process(ctx, func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		_, work := o.tracer().Start(ctx, "work", trace.WithAttributes(attribute.String("task", task.ID)))
		defer work.End()
		switch {
		case task.ID == "img-1" && task.Attempts == 1: // Fails once, then succeeds.
			return errors.New("timeout")
		case task.ID == "img-2": // Fails every time, and is given up on.
			return errors.New("corrupt")
		}
		return nil
	}, ddbtrack.ProcessOptions[Status]{Concurrency: 3, PollInterval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	caller.End()
	require.NoError(t, err)
	require.Equal(t, ddbtrack.ProcessResult{Claimed: tasks + 2, Succeeded: tasks - 1, Failed: 2, Ignored: 1, Errors: 2}, res)

	// Each attempt is a span under the caller's, with the function's span
	// under it, and says how it ended.
	callerSpan := o.named("caller")[0]
	spans := o.attempts()
	require.Len(t, spans, res.Claimed)
	outcomes := map[string]int{}
	byID := map[trace.SpanID]map[attribute.Key]any{}
	for _, s := range spans {
		require.Equal(t, callerSpan.SpanContext().SpanID(), s.Parent().SpanID())
		a := attrs(s.Attributes())
		byID[s.SpanContext().SpanID()] = a
		outcomes[a["ddbtrack.outcome"].(string)]++
		if a["ddbtrack.task.id"] == "img-2" {
			require.Equal(t, codes.Error, s.Status().Code)
			require.Equal(t, "corrupt", s.Status().Description)
		}
	}
	require.Equal(t, map[string]int{"succeeded": res.Succeeded, "failed": res.Failed, "ignored": res.Ignored}, outcomes)
	work := o.named("work")
	require.Len(t, work, res.Claimed)
	for _, w := range work {
		parent, ok := byID[w.Parent().SpanID()]
		require.True(t, ok, "a function's span is not under an attempt span")
		require.Equal(t, attrs(w.Attributes())["task"], parent["ddbtrack.task.id"])
	}
	// The failed reads are recorded on the caller's span, which is the
	// pool's.
	var exceptions int
	for _, e := range callerSpan.Events() {
		if e.Name == "exception" {
			exceptions++
			require.Subset(t, attrs(e.Attributes), map[attribute.Key]any{"ddbtrack.operation": "query", "error.type": "InternalServerError"})
		}
	}
	require.Equal(t, res.Errors, exceptions)

	metrics := o.metrics(t)
	byJob := counts(t, metrics, attribute.String("ddbtrack.job", job))
	require.Positive(t, res.Errors, "the proxy failed no read")
	require.Equal(t, map[string]int64{
		"ddbtrack.task.claims":    int64(res.Claimed),
		"ddbtrack.task.successes": int64(res.Succeeded),
		"ddbtrack.task.failures":  int64(res.Failed),
		"ddbtrack.task.ignored":   int64(res.Ignored),
		"ddbtrack.errors":         int64(res.Errors), // A failed read is no task's, but it is the job's.
	}, byJob)
	require.Equal(t, map[string]int64{"ddbtrack.errors": int64(res.Errors)},
		counts(t, metrics, attribute.String("ddbtrack.job", job), attribute.String("ddbtrack.operation", "query"), attribute.String("error.type", "InternalServerError")))
	n, waited := histogram(t, metrics, "ddbtrack.task.wait.duration", attribute.String("ddbtrack.job", job))
	require.EqualValues(t, res.Claimed, n)
	// Retries are due at once and the clock stands still, so only the
	// first claims waited.
	require.InDelta(t, tasks*90, waited, 0.001)
	for outcome, want := range outcomes {
		n, _ := histogram(t, metrics, "ddbtrack.task.run.duration", attribute.String("ddbtrack.outcome", outcome))
		require.EqualValues(t, want, n, outcome)
	}
}
