// Package ddbtrack tracks the status of a job's tasks in Amazon DynamoDB:
// which succeeded, which failed and why, which are running and on which
// worker. A [Tracker] claims a task, runs the caller's function, and records
// the outcome, so that many workers on many machines can share a job with
// at most one of them running each task at a time.
//
// # Model
//
// A job is a set of tasks with IDs unique within the job; one table holds
// many jobs. Each job brings its own status enum (any ~int type with a
// String method, see [Status]) and names five of its values in [Config]:
//
//	Pending ──Start──▶ Running ──fn returns nil──▶ Succeeded
//	   ▲                  │
//	   │                  └──fn fails──▶ Failed ──Start──▶ Running ...
//	 Reset                               └─ after MaxAttempts in a row ─▶ Ignored
//
// [Tracker.Start] is the heart of the package: it claims the task with one
// conditional write, runs fn, and writes the outcome with one conditional
// write fenced by the claim's lease token.
//
// # Table schema
//
// One item per task, keyed by the string "pk" = job + "#" + task ID. The
// status index [IndexName] is keyed by "status_key" = job + "#" + status +
// "#" + shard and "updated_at" (epoch milliseconds), and projects all
// attributes, so a listing by status needs no read per row. The shard is
// FNV-1a of the task ID modulo [Config].Shards: it spreads each status over
// several index partitions so that none becomes hot. Times are stored as
// epoch milliseconds, which sort and compare as numbers.
//
// Other attributes: job, task_id, status, status_name, attempts, fence,
// data, output, errors (the bounded history), last_error, created_at,
// started_at, succeeded_at, lease_owner, lease_token and lease_expires_at.
//
// # Cost
//
// On the normal path a task costs three writes and no reads: the create,
// the claim and the outcome. Each write that changes a status also moves
// the task's index entry, which the index bills as a delete and a put.
//
// # Guarantees
//
// A claim succeeds only if the task is startable or its lease has expired,
// so two workers never hold the same task's lease at once. Execution is
// at-least-once, not exactly-once: if a worker hangs or dies past its lease,
// another may take the task over while the first is still running. The
// first worker's late result is then refused (ErrLeaseLost) and the new
// owner's record stands. Use [Task].Fence in conditions on your own tables
// to refuse a stale worker's side effects too. Leases compare the workers'
// clocks, so Config.Lease must exceed the task's run time plus clock skew.
//
// An attempt whose worker died counts as a failed attempt: it is recorded
// in the history by the worker that takes the task over, and a task that
// keeps killing its workers is Ignored after MaxAttempts.
//
// Writes that DynamoDB applied but whose response was lost are recognised
// when the SDK's retry is refused by the write itself, so they are reported
// as done, not as refusals.
//
// # Errors
//
// Refusals are [*TaskError] values that match the sentinels (ErrTaskLocked,
// ErrTaskIgnored, ...) with [errors.Is] and carry the state the task was
// found in. Errors from the caller's function are returned unchanged.
package ddbtrack
