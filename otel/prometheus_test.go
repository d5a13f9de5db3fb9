package ddbtrackotel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ddbtrack/ddbtrack"
	ddbtrackotel "github.com/ddbtrack/ddbtrack/otel"
)

// TestPrometheusNames checks the names and labels that the README lists,
// as the Prometheus exporter renders them, by feeding the hook one event
// of every kind. No DynamoDB is needed: the hook is a plain function.
func TestPrometheusNames(t *testing.T) {
	t.Parallel()
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	hook := ddbtrackotel.New[Status](ddbtrackotel.Options{MeterProvider: mp})

	task := &ddbtrack.Task[Status]{Job: job, ID: "cat.png", Attempts: 1, Fence: 1}
	ctx := hook(t.Context(), ddbtrack.Event[Status]{Kind: ddbtrack.EventClaimed, TaskID: task.ID, Task: task, Waited: time.Second})
	for _, kind := range []ddbtrack.EventKind{
		ddbtrack.EventSucceeded, ddbtrack.EventFailed, ddbtrack.EventIgnored, ddbtrack.EventReleased,
		ddbtrack.EventCancelled, ddbtrack.EventLeaseLost, ddbtrack.EventError,
	} {
		hook(ctx, ddbtrack.Event[Status]{Kind: kind, TaskID: task.ID, Task: task, Err: errServer, Ran: time.Second})
	}
	hook(context.Background(), ddbtrack.Event[Status]{Kind: ddbtrack.EventRefused, TaskID: task.ID,
		Err: &ddbtrack.TaskError{Op: "start", Job: job, TaskID: task.ID, Err: ddbtrack.ErrTaskLocked}})

	families, err := registry.Gather()
	require.NoError(t, err)
	got := map[string][]string{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "ddbtrack_") {
			got[f.GetName()] = labels(f)
		}
	}
	// Every series also carries otel_scope_name, otel_scope_schema_url and
	// otel_scope_version; the exporter's target_info series, with the
	// resource's attributes, is not the hook's.
	require.Equal(t, map[string][]string{
		"ddbtrack_task_claims_total":          {"ddbtrack_job"},
		"ddbtrack_task_refusals_total":        {"ddbtrack_job", "ddbtrack_refusal_reason"},
		"ddbtrack_task_successes_total":       {"ddbtrack_job"},
		"ddbtrack_task_failures_total":        {"ddbtrack_job"},
		"ddbtrack_task_ignored_total":         {"ddbtrack_job"},
		"ddbtrack_task_releases_total":        {"ddbtrack_job"},
		"ddbtrack_task_cancellations_total":   {"ddbtrack_job"},
		"ddbtrack_task_lease_losses_total":    {"ddbtrack_job"},
		"ddbtrack_errors_total":               {"ddbtrack_job", "ddbtrack_operation", "error_type"},
		"ddbtrack_task_wait_duration_seconds": {"ddbtrack_job"},
		"ddbtrack_task_run_duration_seconds":  {"ddbtrack_job", "ddbtrack_outcome"},
	}, got)
}

// labels lists the labels of a metric family's first series, other than
// the instrumentation scope's.
func labels(f *dto.MetricFamily) []string {
	var out []string
	for _, l := range f.GetMetric()[0].GetLabel() {
		switch l.GetName() {
		case "otel_scope_name", "otel_scope_schema_url", "otel_scope_version":
		default:
			out = append(out, l.GetName())
		}
	}
	return out
}
