package ddbtrackotel_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	ddbtrackotel "github.com/ddbtrack/ddbtrack/otel"
)

// This example traces a task's attempt under the span of the request that
// started it, and chains a second hook that logs each step with the
// attempt's trace. In a service the tracer provider exports to a
// collector; here it records the spans in memory to print them.
func ExampleNew() {
	t := newExampleT() // In a test, the test's own *testing.T.
	defer t.finish()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	// A logging hook after the tracing one finds the attempt's span in
	// its context; a slog handler that reads trace IDs from the context
	// would get them the same way.
	logSteps := func(ctx context.Context, ev ddbtrack.Event[Status]) context.Context {
		fmt.Printf("%s %s, traced: %t\n", ev.TaskID, ev.Kind, trace.SpanContextFromContext(ctx).IsValid())
		return ctx
	}
	tr := ddbtracktest.New(t, ddbtrack.Config[Status]{
		Job:     "resize",
		Pending: Queued, Running: Working, Failed: Retry, Succeeded: Done, Ignored: GaveUp,
		OnEvent: ddbtrackotel.Chain(ddbtrackotel.New[Status](ddbtrackotel.Options{TracerProvider: tp}), logSteps),
	})
	if err := tr.Create(t.Context(), ddbtrack.NewTask{ID: "cat.png"}); err != nil {
		panic(err)
	}

	ctx, request := tp.Tracer("example").Start(t.Context(), "POST /resize")
	err := tr.Start(ctx, "cat.png", func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		// The function's own spans nest under the attempt's.
		_, span := tp.Tracer("example").Start(ctx, "decode image")
		defer span.End()
		return nil
	})
	request.End()
	if err != nil {
		panic(err)
	}

	names := map[trace.SpanID]string{}
	for _, s := range spans.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, s := range spans.Ended() {
		fmt.Printf("span %q under %q", s.Name(), names[s.Parent().SpanID()])
		for _, kv := range s.Attributes() {
			fmt.Printf(", %s=%s", kv.Key, kv.Value.String())
		}
		fmt.Println()
	}
	// Output:
	// cat.png claimed, traced: true
	// cat.png succeeded, traced: true
	// span "decode image" under "attempt resize"
	// span "attempt resize" under "POST /resize", ddbtrack.job=resize, ddbtrack.task.id=cat.png, ddbtrack.task.attempt=1, ddbtrack.task.fence=1, ddbtrack.outcome=succeeded, ddbtrack.task.status=done
	// span "POST /resize" under ""
}

// This example serves a tracker's metrics to Prometheus: the exporter is
// a metric reader that registers the metrics with a Prometheus registry,
// and promhttp serves the registry on /metrics. Here the job runs on a
// local DynamoDB through the test kit, and the example scrapes the page
// once and prints the counters and the histograms' counts.
func Example_prometheus() {
	t := newExampleT() // In a test, the test's own *testing.T.
	defer t.finish()

	// In a service: a registry of its own, or prometheus.DefaultRegisterer,
	// and the meter provider that the rest of the service uses too.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		panic(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	var clock ddbtracktest.Clock
	tr := ddbtracktest.New(t, ddbtrack.Config[Status]{
		Job:     "resize",
		Pending: Queued, Running: Working, Failed: Retry, Succeeded: Done, Ignored: GaveUp,
		OnEvent: ddbtrackotel.New[Status](ddbtrackotel.Options{MeterProvider: mp}),
		Now:     clock.Now,
	})
	for _, id := range []string{"cat.png", "dog.png", "owl.png"} {
		if err := tr.Create(t.Context(), ddbtrack.NewTask{ID: id}); err != nil {
			panic(err)
		}
	}
	clock.Advance(time.Minute) // Each task waits a minute to be claimed.
	ddbtracktest.Drain(t, tr, func(_ context.Context, task *ddbtrack.Task[Status]) error {
		if task.ID == "owl.png" && task.Attempts == 1 {
			return errors.New("storage busy") // Retried at once, and then it succeeds.
		}
		return nil
	})

	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()
	resp, err := http.Get(server.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer func() { _ = resp.Body.Close() }()
	printSeries(resp.Body)
	// Output:
	// ddbtrack_task_claims_total{ddbtrack_job="resize",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 4
	// ddbtrack_task_failures_total{ddbtrack_job="resize",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 1
	// ddbtrack_task_run_duration_seconds_count{ddbtrack_job="resize",ddbtrack_outcome="failed",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 1
	// ddbtrack_task_run_duration_seconds_count{ddbtrack_job="resize",ddbtrack_outcome="succeeded",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 3
	// ddbtrack_task_successes_total{ddbtrack_job="resize",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 3
	// ddbtrack_task_wait_duration_seconds_sum{ddbtrack_job="resize",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 180
	// ddbtrack_task_wait_duration_seconds_count{ddbtrack_job="resize",otel_scope_name="github.com/ddbtrack/ddbtrack/otel",otel_scope_schema_url="",otel_scope_version=""} 4
}

// printSeries prints the ddbtrack series of a /metrics page, leaving out
// the histograms' buckets, and the sums of run times, which vary from run
// to run.
func printSeries(page io.Reader) {
	lines := bufio.NewScanner(page)
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "ddbtrack_") && !strings.Contains(line, "_bucket{") &&
			!strings.HasPrefix(line, "ddbtrack_task_run_duration_seconds_sum") {
			fmt.Println(line)
		}
	}
}

// exampleT stands in for the *testing.T that the test kit takes, since
// Example functions get none. A failure panics, which fails the example
// with its message; finish runs the cleanups, such as deleting the table.
// The embedded testing.TB is nil, so a method the kit starts to call
// panics at once instead of passing quietly.
type exampleT struct {
	testing.TB
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
}

func newExampleT() *exampleT {
	ctx, cancel := context.WithCancel(context.Background())
	return &exampleT{ctx: ctx, cancel: cancel}
}

func (t *exampleT) finish() {
	t.cancel()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *exampleT) Helper()                           {}
func (t *exampleT) Name() string                      { return "Example" }
func (t *exampleT) Context() context.Context          { return t.ctx }
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Output() io.Writer                 { return io.Discard }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
