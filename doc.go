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
// started_at, succeeded_at, lease_owner, lease_token and lease_expires_at,
// and, with [Config].Retention set, expires_at: a succeeded task's expiry for
// DynamoDB's time to live, in epoch seconds, the one unit it reads.
//
// # Cost
//
// On the normal path a task costs three writes and no reads: the create,
// the claim and the outcome. Each write that changes a status also moves
// the task's index entry, which the index bills as a delete and a put.
//
// # Queries and their cost
//
// [Tracker.Query], [Tracker.QueryPage], [Tracker.Unfinished], [Tracker.Count],
// [Tracker.Stats], [Tracker.Requeue] and [Tracker.DeleteByStatus] read the
// status index, never the table. Each status is read as Config.Shards
// streams, one per index partition, and the streams are merged on update
// time and then task ID, so a query over s statuses sends at least
// s × Shards requests, plus one for each further page a stream supplies.
// Index reads are eventually consistent and cost half a read unit per 4 KB
// of items read, summed and rounded up per request. A filter saves no read
// units, because DynamoDB applies it after the read. A query with a Limit
// and no filter reads at most Limit+1 items per stream, so its cost does
// not grow with the job. Count and Stats read every item they count
// (Select=COUNT saves the transfer, not the read): about one read unit per
// 8 KB of the counted tasks, one request per partition per 1 MB, and a
// latency that grows with the largest partition, as the partitions are
// read at most 16 at a time. Keep them off hot paths of big jobs;
// BENCHMARKS.md has measured figures.
//
// Writes cost one unit per KB of item, rounded up, on the table and again
// on the index, which holds a full copy of each item. A status change also
// changes the index key (status_key and updated_at), so the index deletes
// the old entry and puts the new one: one table write and two index writes.
// A write that leaves the key alone costs one index write, and a create or
// a delete one. A task's normal path, create, claim and outcome, thus costs
// three table writes and five index writes.
//
// # Guarantees
//
// A claim succeeds only if the task is startable or its lease has expired,
// so two workers never hold the same task's lease at once. Execution is
// at-least-once, not exactly-once: if a worker hangs or dies past its lease,
// another may take the task over while the first is still running. The
// first worker's late result is then refused (ErrLeaseLost) and the new
// owner's record stands. DynamoDB writes that fn adds with
// [Task.AddWrites] commit in one transaction with its success, so they
// apply exactly once however often fn runs; [Task.FenceCondition] guards
// writes that fn makes itself against a stale worker. While fn runs, Start
// renews the lease every Lease/3 and cancels fn's context with ErrLeaseLost
// once the lease is lost, so Config.Lease need not exceed the task's run
// time, only the longest pause a worker may suffer plus the clock skew
// between workers. docs/guarantees.md states what holds under crashes,
// lease loss and network faults, and which tests check it.
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
//
// # Testing
//
// Package [github.com/ddbtrack/ddbtrack/ddbtracktest] tests code that uses
// ddbtrack: it gives each test a tracker on a fresh table of a local
// DynamoDB that it starts itself, runs a job's tasks to the end, checks how
// a task ended, and provides a clock for [Config].Now that the test moves.
package ddbtrack
