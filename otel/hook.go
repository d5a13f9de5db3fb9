package ddbtrackotel

import (
	"context"
	"errors"

	"github.com/aws/smithy-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
)

// ScopeName is the instrumentation scope of the tracer and meter that the
// hook uses: the import path of this package, as OpenTelemetry asks.
const ScopeName = "github.com/ddbtrack/ddbtrack/otel"

// Options configures [New]. The zero value uses the global providers.
type Options struct {
	// TracerProvider creates the tracer of the attempt spans. Pass
	// trace/noop's provider to turn tracing off. Defaults to
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider

	// MeterProvider creates the meter of the counters and histograms.
	// Pass metric/noop's provider to turn metrics off. Defaults to
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// New returns a hook for Config.OnEvent that traces every attempt and
// counts what becomes of it. Set it on the tracker's Config:
//
//	cfg.OnEvent = ddbtrackotel.New[Status](ddbtrackotel.Options{TracerProvider: tp, MeterProvider: mp})
//
// One hook may serve many trackers of the same status type, and is safe
// for concurrent use, as OnEvent must be. New creates its instruments at
// once; an instrument the meter refuses is reported to OpenTelemetry's
// global error handler (otel.Handle), and the hook goes on without it,
// because an observer must never stop the work it observes. To run
// another hook as well, such as one that logs, see [Chain].
func New[S ddbtrack.Status](opts Options) func(context.Context, ddbtrack.Event[S]) context.Context {
	tp, mp := opts.TracerProvider, opts.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	h := &hook{
		tracer: tp.Tracer(ScopeName),
		m:      newInstruments(mp.Meter(ScopeName)),
	}
	return func(ctx context.Context, ev ddbtrack.Event[S]) context.Context {
		e := event{kind: ev.Kind, job: ev.Job, taskID: ev.TaskID, err: ev.Err, waited: ev.Waited.Seconds(), ran: ev.Ran.Seconds()}
		if t := ev.Task; t != nil {
			e.hasTask = true
			e.attempt, e.fence, e.status, e.cancelReason = t.Attempts, t.Fence, t.StatusName, t.CancelReason
		}
		return h.observe(ctx, e)
	}
}

// hook holds what every event needs. It does not depend on the status
// type, so the generic part of New stays a thin adapter.
type hook struct {
	tracer trace.Tracer
	m      *instruments
}

// event is a [ddbtrack.Event] with the status type taken out: the fields
// of its task that the hook reads are copied, so that the hook's code is
// not generic.
type event struct {
	kind        ddbtrack.EventKind
	job, taskID string
	err         error
	// waited and ran are in seconds, the unit of OpenTelemetry durations.
	waited, ran float64

	// hasTask says whether the event carried a task; the fields after it
	// are the task's, and zero without one.
	hasTask      bool
	attempt      int
	fence        int64
	status       string
	cancelReason string
}

func (h *hook) observe(ctx context.Context, ev event) context.Context {
	switch ev.kind {
	case ddbtrack.EventClaimed:
		return h.claimed(ctx, ev)
	case ddbtrack.EventRefused:
		h.refused(ctx, ev)
	case ddbtrack.EventError:
		h.failedRequest(ctx, ev)
		if ev.hasTask {
			h.ended(ctx, ev)
		}
	default:
		h.ended(ctx, ev)
	}
	return ctx
}

// claimed counts the claim, measures how long the task waited for it, and
// starts the attempt's span, whose context the task's function runs with.
func (h *hook) claimed(ctx context.Context, ev event) context.Context {
	h.m.claims.Add(ctx, 1, metric.WithAttributeSet(jobSet(ev.job)))
	h.m.wait.Record(ctx, ev.waited, metric.WithAttributeSet(jobSet(ev.job)))
	return h.startSpan(ctx, ev)
}

// ended counts the attempt's outcome, measures how long its function ran,
// and ends its span.
func (h *hook) ended(ctx context.Context, ev event) {
	if c := h.m.outcomes[ev.kind]; c != nil {
		c.Add(ctx, 1, metric.WithAttributeSet(jobSet(ev.job)))
	}
	// An attempt that ends without running its function, such as one that
	// found its task cancelled when it took it over from a dead worker,
	// has a zero run time; recording it would pull the run time down with
	// runs that never happened. A function that did run always takes some
	// time by the monotonic clock.
	if ev.ran > 0 {
		h.m.run.Record(ctx, ev.ran, metric.WithAttributes(attrJob.String(ev.job), attrOutcome.String(ev.kind.String())))
	}
	h.endSpan(ctx, ev)
}

// refused counts a refused claim, by reason, and notes it on the caller's
// span: the function did not run, so there is no attempt to trace.
func (h *hook) refused(ctx context.Context, ev event) {
	reason := "other"
	var te *ddbtrack.TaskError
	if errors.As(ev.err, &te) {
		reason = refusalReason(te.Err)
	}
	attrs := []attribute.KeyValue{attrJob.String(ev.job), attrRefusalReason.String(reason)}
	h.m.refusals.Add(ctx, 1, metric.WithAttributes(attrs...))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(eventRefused, trace.WithAttributes(append(attrs, attrTask.String(ev.taskID))...))
	}
}

// failedRequest counts an error from DynamoDB, by the step it came from,
// and records it on the caller's span; an attempt's own span gets it when
// it ends.
func (h *hook) failedRequest(ctx context.Context, ev event) {
	op := "outcome"
	switch {
	case ev.taskID == "":
		op = "query"
	case !ev.hasTask:
		op = "claim"
	}
	attrs := []attribute.KeyValue{attrJob.String(ev.job), attrOperation.String(op), attrErrorType.String(errorType(ev.err))}
	h.m.errors.Add(ctx, 1, metric.WithAttributes(attrs...))
	if ev.hasTask {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() && ev.err != nil {
		if ev.taskID != "" {
			attrs = append(attrs, attrTask.String(ev.taskID))
		}
		span.RecordError(ev.err, trace.WithAttributes(attrs...))
	}
}

// refusalReason names the sentinel that a refused claim matches, in the
// snake case of the event kinds.
func refusalReason(sentinel error) string {
	switch sentinel {
	case ddbtrack.ErrTaskLocked:
		return "locked"
	case ddbtrack.ErrTaskNotDue:
		return "not_due"
	case ddbtrack.ErrTaskSucceeded:
		return "succeeded"
	case ddbtrack.ErrTaskIgnored:
		return "ignored"
	case ddbtrack.ErrTaskNotReady:
		return "not_ready"
	case ddbtrack.ErrTaskNotFound:
		return "not_found"
	}
	return "other"
}

// errorType classifies an error from DynamoDB for the error.type
// attribute: the API's error code, such as
// ProvisionedThroughputExceededException, which tells throttling from an
// outage; "unavailable" when ddbtrack gave up on a request that got no
// answer; "_OTHER" otherwise, as the semantic conventions ask.
func errorType(err error) string {
	var api smithy.APIError
	switch {
	case errors.As(err, &api):
		return api.ErrorCode()
	case errors.Is(err, ddbtrack.ErrUnavailable):
		return "unavailable"
	}
	return "_OTHER"
}
