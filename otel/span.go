package ddbtrackotel

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
)

// eventRefused names the span event that a refused claim adds to the
// caller's span.
const eventRefused = "ddbtrack.claim.refused"

// attemptKey is the context key of the attempt that a span traces.
type attemptKey struct{}

// attempt is what the hook remembers of an attempt from its claim to its
// outcome, in the context that the claim's event returns and the core
// passes to the outcome's.
type attempt struct {
	span trace.Span
	// job, taskID and fence name the attempt, so that an outcome ends
	// only its own span: a task's function may start an attempt at
	// another task (a pipeline's next step, say) with the context it was
	// given, and that attempt's events then see this one in the context.
	job, taskID string
	fence       int64
}

// startSpan starts the attempt's span as a child of the caller's span.
// The span's name holds the job, which is few-valued, in the way the
// semantic conventions name a messaging span after its destination.
func (h *hook) startSpan(ctx context.Context, ev event) context.Context {
	ctx, span := h.tracer.Start(ctx, "attempt "+ev.job, trace.WithAttributes(
		attrJob.String(ev.job),
		attrTask.String(ev.taskID),
		// The attempt's number is read here because an outcome changes it:
		// a success resets the task's count to zero.
		attrAttempt.Int(ev.attempt),
		attrFence.Int64(ev.fence),
	))
	return context.WithValue(ctx, attemptKey{}, &attempt{span: span, job: ev.job, taskID: ev.taskID, fence: ev.fence})
}

// endSpan ends the attempt's span with its outcome. Outcomes that mean the
// work did not get done (a failure, a lease lost, an outcome that could
// not be written) set the span's status to Error; a release or a
// cancellation is what the task or its owner asked for, and leaves it
// unset, as does a success, as the semantic conventions ask of
// instrumentation.
func (h *hook) endSpan(ctx context.Context, ev event) {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	if a == nil || a.job != ev.job || a.taskID != ev.taskID || a.fence != ev.fence {
		// No span of this attempt: its claim was not reported (the caller
		// gave up while the claim was being settled, and the claim was
		// released at once). Note the outcome where the caller can see it.
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("ddbtrack.attempt."+ev.kind.String(), trace.WithAttributes(
				attrJob.String(ev.job), attrTask.String(ev.taskID), attrFence.Int64(ev.fence)))
		}
		return
	}
	span := a.span
	span.SetAttributes(attrOutcome.String(ev.kind.String()), attrStatus.String(ev.status))
	switch ev.kind {
	case ddbtrack.EventFailed, ddbtrack.EventIgnored, ddbtrack.EventLeaseLost, ddbtrack.EventError:
		if ev.err != nil {
			span.RecordError(ev.err)
			span.SetStatus(codes.Error, ev.err.Error())
		} else {
			span.SetStatus(codes.Error, ev.kind.String())
		}
	case ddbtrack.EventCancelled:
		span.SetAttributes(attrCancelReason.String(ev.cancelReason))
	}
	span.End()
}
