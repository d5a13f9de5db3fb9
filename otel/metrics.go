package ddbtrackotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/ddbtrack/ddbtrack"
)

// The attributes of the spans and metrics. They carry the ddbtrack prefix,
// as the semantic conventions ask of names outside them; it also keeps
// ddbtrack.job apart from the job label that Prometheus adds to every
// series it scrapes.
const (
	attrJob           = attribute.Key("ddbtrack.job")
	attrTask          = attribute.Key("ddbtrack.task.id")
	attrAttempt       = attribute.Key("ddbtrack.task.attempt")
	attrFence         = attribute.Key("ddbtrack.task.fence")
	attrStatus        = attribute.Key("ddbtrack.task.status")
	attrCancelReason  = attribute.Key("ddbtrack.task.cancel_reason")
	attrOutcome       = attribute.Key("ddbtrack.outcome")
	attrRefusalReason = attribute.Key("ddbtrack.refusal.reason")
	attrOperation     = attribute.Key("ddbtrack.operation")
	attrErrorType     = attribute.Key("error.type")
)

// The names of the metrics, listed with their meaning in the package
// documentation and the README.
const (
	metricClaims        = "ddbtrack.task.claims"
	metricRefusals      = "ddbtrack.task.refusals"
	metricSuccesses     = "ddbtrack.task.successes"
	metricFailures      = "ddbtrack.task.failures"
	metricIgnored       = "ddbtrack.task.ignored"
	metricReleases      = "ddbtrack.task.releases"
	metricCancellations = "ddbtrack.task.cancellations"
	metricLeaseLosses   = "ddbtrack.task.lease_losses"
	metricErrors        = "ddbtrack.errors"
	metricWait          = "ddbtrack.task.wait.duration"
	metricRun           = "ddbtrack.task.run.duration"
)

// durationBuckets are the histograms' bucket boundaries, in seconds. The
// SDK's default boundaries (0 to 10,000) suit milliseconds; tasks run and
// wait from milliseconds to hours, so these run from 5 ms to an hour.
var durationBuckets = []float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
}

// instruments are the hook's counters and histograms.
type instruments struct {
	claims, refusals, errors metric.Int64Counter
	// outcomes holds the counter of each outcome's event kind.
	outcomes  map[ddbtrack.EventKind]metric.Int64Counter
	wait, run metric.Float64Histogram
}

// newInstruments creates the instruments on meter. An instrument the meter
// refuses is reported, and replaced by a no-op one, so that the hook
// carries on without it.
func newInstruments(meter metric.Meter) *instruments {
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			otel.Handle(err)
		}
		if c == nil {
			return noop.Int64Counter{}
		}
		return c
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		if err != nil {
			otel.Handle(err)
		}
		if h == nil {
			return noop.Float64Histogram{}
		}
		return h
	}
	return &instruments{
		claims:   counter(metricClaims, "{claim}", "Claims that succeeded: attempts started."),
		refusals: counter(metricRefusals, "{claim}", "Claims refused because of the task's state, by ddbtrack.refusal.reason; the function did not run."),
		errors:   counter(metricErrors, "{error}", "Errors from DynamoDB that no task's outcome records: failed queries and claims of the worker pool, and outcomes that could not be written."),
		outcomes: map[ddbtrack.EventKind]metric.Int64Counter{
			ddbtrack.EventSucceeded: counter(metricSuccesses, "{attempt}", "Attempts recorded as succeeded."),
			ddbtrack.EventFailed:    counter(metricFailures, "{attempt}", "Attempts recorded as failed, to be retried."),
			ddbtrack.EventIgnored:   counter(metricIgnored, "{attempt}", "Attempts recorded as failed that made their task Ignored, after MaxAttempts in a row."),
			ddbtrack.EventReleased:  counter(metricReleases, "{attempt}", "Attempts that put their task back without counting it: ErrRelease, Snooze, or a release on cancellation."),
			ddbtrack.EventCancelled: counter(metricCancellations, "{attempt}", "Attempts that recorded a cancellation asked for with Tracker.Cancel."),
			ddbtrack.EventLeaseLost: counter(metricLeaseLosses, "{attempt}", "Attempts that lost their lease, so that nothing was recorded."),
		},
		wait: histogram(metricWait, "How long a task waited to be claimed, from when it was due."),
		run:  histogram(metricRun, "How long a task's function ran, by ddbtrack.outcome."),
	}
}

// jobSet is the attribute set of the metrics that carry the job alone.
func jobSet(job string) attribute.Set { return attribute.NewSet(attrJob.String(job)) }
