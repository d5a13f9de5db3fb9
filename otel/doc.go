// Package ddbtrackotel traces and measures a ddbtrack tracker's work with
// OpenTelemetry. It is a module of its own, so that ddbtrack itself depends
// on nothing but the AWS SDK.
//
// [New] returns a hook for Config.OnEvent, which Start and Process both
// call at every step of every attempt:
//
//	cfg.OnEvent = ddbtrackotel.New[Status](ddbtrackotel.Options{TracerProvider: tp, MeterProvider: mp})
//
// Without providers it uses OpenTelemetry's global ones. To observe a
// tracker with another hook as well, such as one that logs, combine them
// with [Chain], this package's hook first.
//
// # Spans
//
// Each attempt is a span named "attempt {job}", such as "attempt resize".
// It starts when the claim succeeds and ends when the outcome is recorded,
// as a child of the span in the context given to Start or Process, and the
// task's function runs with it in its context, so the function's own spans
// nest under it. Its attributes are:
//
//   - ddbtrack.job and ddbtrack.task.id: the task.
//   - ddbtrack.task.attempt: the attempt's number within its run of
//     failures, from 1.
//   - ddbtrack.task.fence: the claim's fencing token.
//   - ddbtrack.outcome: how the attempt ended, named as
//     [ddbtrack.EventKind.String] names it: succeeded, failed, ignored,
//     released, cancelled, lease_lost or error.
//   - ddbtrack.task.status: the task's status name after the attempt (the
//     claimed status when nothing was recorded).
//   - ddbtrack.task.cancel_reason: the reason given to Tracker.Cancel, for
//     a cancelled attempt.
//
// An attempt that failed, was ignored, lost its lease or could not record
// its outcome has the status Error and the error recorded as an exception
// event. A success, a release and a cancellation leave the status unset:
// they are what the task or its owner asked for.
//
// A refused claim runs nothing, so it has no span: the caller's span gets
// a "ddbtrack.claim.refused" event with the job, the task and
// ddbtrack.refusal.reason. An error from DynamoDB outside any attempt, such
// as a failed query of Process's pool, is recorded as an exception event
// on the caller's span. Process reports these on the span of its own
// context, so a long-running Service pool keeps only the first ones, up to
// the SDK's limit of events per span; the metrics count them all.
//
// # Metrics
//
// Counters, each with the attribute ddbtrack.job:
//
//   - ddbtrack.task.claims: claims that succeeded, hence attempts.
//   - ddbtrack.task.refusals: claims refused by the task's state, with
//     ddbtrack.refusal.reason: locked, not_due, succeeded, ignored,
//     not_ready or not_found.
//   - ddbtrack.task.successes, ddbtrack.task.failures,
//     ddbtrack.task.ignored, ddbtrack.task.releases,
//     ddbtrack.task.cancellations and ddbtrack.task.lease_losses: attempts
//     by how they ended. Failures are the ones to be retried; an attempt
//     that makes its task Ignored counts under ignored alone.
//   - ddbtrack.errors: errors from DynamoDB that no outcome records, with
//     ddbtrack.operation (query, claim or outcome: an outcome that could
//     not be written within Config.FinishTimeout) and error.type
//     (DynamoDB's error code, such as ProvisionedThroughputExceededException,
//     "unavailable" for no answer, or "_OTHER").
//
// Histograms, in seconds, with buckets from 5 ms to an hour:
//
//   - ddbtrack.task.wait.duration: how long a task waited to be claimed,
//     from when it was due, by Config.Now.
//   - ddbtrack.task.run.duration: how long the task's function ran, with
//     ddbtrack.outcome. Attempts that ended without running it, such as
//     one that found its task cancelled when it took it over from a dead
//     worker, are not recorded.
//
// The Prometheus exporter renders the names with underscores, counters
// with a _total suffix and histograms with _seconds: see the Example and
// the module's README for the list.
//
// # Limits
//
// A function that never returns normally (it calls runtime.Goexit, as
// t.FailNow does) records no outcome: its attempt ends with an
// [ddbtrack.EventError], so its span ends with that error and it is
// counted in ddbtrack.errors with ddbtrack.operation "outcome", not as a
// failure; the task is taken over when its lease expires.
package ddbtrackotel
