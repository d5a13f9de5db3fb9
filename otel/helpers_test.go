package ddbtrackotel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	ddbtrackotel "github.com/ddbtrack/ddbtrack/otel"
)

// Status is a job's enum of statuses, as a user would declare it.
type Status int

const (
	Queued Status = iota
	Working
	Retry
	Done
	GaveUp
)

func (s Status) String() string {
	return [...]string{"queued", "working", "retry", "done", "gave_up"}[s]
}

// job is the job every test's tracker works on; each test has a table of
// its own.
const job = "resize"

// observer holds a hook's in-memory telemetry: the spans ended so far, and
// a reader that collects the metrics when a test asks.
type observer struct {
	tp     *sdktrace.TracerProvider
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	hook   func(context.Context, ddbtrack.Event[Status]) context.Context
}

func newObserver(t *testing.T) *observer {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	o := &observer{
		tp:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		spans:  spans,
		reader: reader,
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	o.hook = ddbtrackotel.New[Status](ddbtrackotel.Options{TracerProvider: o.tp, MeterProvider: mp})
	return o
}

// tracer is the tracer of the test's own spans: the caller's, and those
// the task's function starts.
func (o *observer) tracer() trace.Tracer { return o.tp.Tracer("test") }

// named returns the ended spans with the given name.
func (o *observer) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attempts returns the attempt spans.
func (o *observer) attempts() []sdktrace.ReadOnlySpan { return o.named("attempt " + job) }

// metrics collects the metrics recorded so far, by name.
func (o *observer) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(t.Context(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		require.Equal(t, ddbtrackotel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// counts sums each counter over its data points whose attributes include
// want's, by counter name; a counter without such points is missing.
func counts(t *testing.T, metrics map[string]metricdata.Aggregation, want ...attribute.KeyValue) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, data := range metrics {
		sum, ok := data.(metricdata.Sum[int64])
		if !ok {
			continue
		}
		require.True(t, sum.IsMonotonic, name)
		for _, dp := range sum.DataPoints {
			if has(dp.Attributes, want...) {
				out[name] += dp.Value
			}
		}
	}
	return out
}

// histogram returns the count and sum of a histogram's data points whose
// attributes include want's.
func histogram(t *testing.T, metrics map[string]metricdata.Aggregation, name string, want ...attribute.KeyValue) (uint64, float64) {
	t.Helper()
	h, ok := metrics[name].(metricdata.Histogram[float64])
	require.True(t, ok, "%s is not a float64 histogram: %T", name, metrics[name])
	var count uint64
	var sum float64
	for _, dp := range h.DataPoints {
		if has(dp.Attributes, want...) {
			count += dp.Count
			sum += dp.Sum
		}
	}
	return count, sum
}

func has(set attribute.Set, want ...attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// attrs returns a span's attributes as a map, for require.Subset.
func attrs(kvs []attribute.KeyValue) map[attribute.Key]any {
	out := map[attribute.Key]any{}
	for _, kv := range kvs {
		out[kv.Key] = kv.Value.AsInterface()
	}
	return out
}

// eventNames lists the names of a span's events.
func eventNames(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, e.Name)
	}
	return out
}

// config is the job's configuration, with the observer's hook and the
// test's clock. Failed tasks are retried at once.
func config(o *observer, clock *ddbtracktest.Clock) ddbtrack.Config[Status] {
	return ddbtrack.Config[Status]{
		Job:     job,
		Pending: Queued, Running: Working, Failed: Retry, Succeeded: Done, Ignored: GaveUp,
		RetryDelay: func(int) time.Duration { return 0 },
		OnEvent:    o.hook,
		Now:        clock.Now,
	}
}

// newTracker returns a tracker for cfg on a table of the test's own,
// through client, which may inject faults. cfg.Table is filled in.
func newTracker(t *testing.T, client ddbtrack.Client, cfg *ddbtrack.Config[Status]) *ddbtrack.Tracker[Status] {
	t.Helper()
	if cfg.Table == "" {
		cfg.Table = ddbtracktest.Table(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = ddbtracktest.Logger(t)
	}
	tr, err := ddbtrack.New(client, *cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(t.Context()))
	return tr
}

// faultyClient fails UpdateItem calls while failUpdates is set, and the
// first failQueries Query calls, with an error DynamoDB could return, so
// that a test can see how errors are reported. Everything else goes to the
// real client.
type faultyClient struct {
	*dynamodb.Client
	failUpdates atomic.Bool
	failQueries atomic.Int32
}

// errServer is the error faultyClient injects: one that retrying may fix.
var errServer = &smithy.GenericAPIError{Code: "InternalServerError", Message: "injected by the test", Fault: smithy.FaultServer}

func (c *faultyClient) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if c.failUpdates.Load() {
		return nil, errServer
	}
	return c.Client.UpdateItem(ctx, in, optFns...)
}

func (c *faultyClient) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if c.failQueries.Add(-1) >= 0 {
		return nil, errServer
	}
	return c.Client.Query(ctx, in, optFns...)
}

// isErr reports whether err matches target, treating a nil target as "no
// error", for tables of expected errors.
func isErr(err, target error) bool {
	if target == nil {
		return err == nil
	}
	return errors.Is(err, target)
}
