package ddbtrackotel

import (
	"context"

	"github.com/ddbtrack/ddbtrack"
)

// Chain returns one hook for Config.OnEvent that calls hooks in order, for
// a tracker observed by more than one: tracing and metrics, and logs, say.
// Each hook gets the context the one before it returned, so put the hook of
// [New] first, and a logging hook after it sees the attempt's span in the
// context and can log its trace ID. The context the last hook returns is
// the one Chain returns, which for an EventClaimed is the one the task's
// function runs with. A nil hook is skipped, and a hook that returns nil
// leaves the context as it was.
func Chain[S ddbtrack.Status](hooks ...func(context.Context, ddbtrack.Event[S]) context.Context) func(context.Context, ddbtrack.Event[S]) context.Context {
	return func(ctx context.Context, ev ddbtrack.Event[S]) context.Context {
		for _, h := range hooks {
			if h == nil {
				continue
			}
			if next := h(ctx, ev); next != nil {
				ctx = next
			}
		}
		return ctx
	}
}
