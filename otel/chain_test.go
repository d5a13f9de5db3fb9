package ddbtrackotel_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	ddbtrackotel "github.com/ddbtrack/ddbtrack/otel"
)

// requestKey is a context key that the second hook of a chain sets, as a
// hook that adds a logger or a request ID to the function's context would.
type requestKey struct{}

func TestChainHandsEachHookTheContextOfTheOneBefore(t *testing.T) {
	t.Parallel()
	o := newObserver(t)
	var mu sync.Mutex
	seen := map[ddbtrack.EventKind]trace.SpanID{}
	logHook := func(ctx context.Context, ev ddbtrack.Event[Status]) context.Context {
		mu.Lock()
		seen[ev.Kind] = trace.SpanContextFromContext(ctx).SpanID()
		mu.Unlock()
		if ev.Kind == ddbtrack.EventClaimed {
			return context.WithValue(ctx, requestKey{}, "req-1")
		}
		return nil // A hook may return nil for the events whose context is ignored.
	}
	cfg := config(o, &ddbtracktest.Clock{})
	cfg.OnEvent = ddbtrackotel.Chain(o.hook, nil, logHook)
	tr := newTracker(t, ddbtracktest.Client(t), &cfg)
	require.NoError(t, tr.Create(t.Context(), ddbtrack.NewTask{ID: "cat.png"}))

	var fnSpan trace.SpanID
	require.NoError(t, tr.Start(t.Context(), "cat.png", func(ctx context.Context, _ *ddbtrack.Task[Status]) error {
		require.Equal(t, "req-1", ctx.Value(requestKey{}), "the last hook's context is the function's")
		fnSpan = trace.SpanContextFromContext(ctx).SpanID()
		return nil
	}))

	spans := o.attempts()
	require.Len(t, spans, 1)
	id := spans[0].SpanContext().SpanID()
	require.Equal(t, id, fnSpan, "the function runs in the attempt's span")
	require.Equal(t, map[ddbtrack.EventKind]trace.SpanID{ddbtrack.EventClaimed: id, ddbtrack.EventSucceeded: id}, seen,
		"the hook after the tracing one sees the attempt's span, so its logs can carry the trace")
}
