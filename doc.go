// Package ddbtrack tracks the status of a job's tasks in Amazon DynamoDB:
// which succeeded, which failed and why, which are running and on which
// worker, and when each waiting task is due. A [Tracker] claims a task,
// runs the caller's function, and records the outcome, so that many
// workers on many machines can share a job with at most one of them
// running each task at a time.
//
// # Model
//
// A job is a set of tasks with IDs unique within the job; one table holds
// many jobs. Each job brings its own status enum (any ~int type with a
// String method, see [Status]) and names five of its values in [Config]:
//
//	Pending ──claim──▶ Running ──fn returns nil──▶ Succeeded
//	  ▲  ▲                │  │
//	  │  └─ErrRelease,────┘  ├──fn fails──▶ Failed ──due again after RetryDelay──▶ claim
//	  │     Snooze           │                 └─ after MaxAttempts in a row ─▶ Ignored
//	Reset,                   └──Cancel──▶ Ignored (cancelled)
//	Requeue
//
// [Tracker.Start] claims a task with one conditional write, runs fn, and
// writes the outcome with one conditional write fenced by the claim's lease
// token. [Tracker.Process] does the same for every due task of the job with
// a pool of workers. A task may be created for later ([NewTask].DueAt), a
// failed one waits out [Config].RetryDelay, and a function may [Snooze] its
// task; until then a claim is refused with ErrTaskNotDue. [Tracker.Cancel]
// stops a task for good, and reaches a running one at its next lease
// renewal.
//
// # Table schema
//
// One item per task, keyed by the string "pk" = job + "#" + task ID. The
// status index, "status-index", is keyed by "status_key" = job + "#" + status +
// "#" + shard and "order_key" = the task's due time as 15 zero-padded
// digits of epoch milliseconds, "#", and its ID. Every index partition is
// thus sorted by due time and then ID, a total order: finding due work
// reads no task that is not yet due, and a page boundary never splits a
// run of equal times. The shard is FNV-1a of the task ID modulo
// [Config].Shards: it spreads each status over several index partitions so
// that none becomes hot. The index projects all attributes, so a listing
// needs no read per row. Times are stored as epoch milliseconds.
//
// The other attributes are job, task_id, status, status_name, due_at,
// attempts, fence, data, output, errors (the bounded history), last_error,
// created_at, updated_at, started_at, succeeded_at, lease_owner,
// lease_token, lease_expires_at, cancelled_at and cancel_reason; a claim
// adds what its outcome needs (claimed_from, claimed_due, abandoned_owner,
// abandoned_until), and outcomes, the fences of the last outcomes written,
// by which a write whose answer was lost recognises its own effect. With
// [Config].Retention set, a succeeded task also has expires_at, its expiry
// for DynamoDB's time to live, in epoch seconds, the one unit it reads.
//
// # Cost
//
// On the normal path a task costs three writes and no reads: the create,
// the claim and the outcome. A renewal of the lease, every Lease/3 while fn
// runs, is one write. Each write that changes a status also moves the
// task's index entry, which the index bills as a delete and a put: one
// table write and two index writes. A create, a delete or a renewal is one
// index write. A task's normal path thus costs three table writes and five
// index writes, of one unit per KB of item each.
//
// # Queries and their cost
//
// [Tracker.Query], [Tracker.QueryPage], [Tracker.Count], [Tracker.Requeue]
// and [Tracker.DeleteByStatus] read the status index, never the table. Each
// status is read as Config.Shards streams, one per index partition, and the
// streams are merged on due time and then task ID, so a query over s
// statuses sends at least s × Shards requests, plus one for each further
// page a stream supplies. Index reads are eventually consistent and cost
// half a read unit per 4 KB of items read, summed and rounded up per
// request. A filter saves no read units, because DynamoDB applies it after
// the read. A query with a Limit and no filter reads at most Limit items
// per stream, so its cost does not grow with the job. Count reads every
// item it counts (Select=COUNT saves the transfer, not the read): about one
// read unit per 8 KB of the counted tasks, and a latency that grows with
// the largest partition. Shared counts (Config.CountMaxAge) read the
// finished tasks once, and afterwards only the unfinished tasks and those
// that finished since. docs/cost.md has the measured figures.
//
// # Guarantees
//
// A claim succeeds only if the task is startable and due, or Running under
// a lease that has expired, so two workers never hold the same task's
// lease at once. Execution is at-least-once: if a worker hangs or dies past
// its lease, another may take the task over while the first is still
// running. The first worker's late outcome is then refused (ErrLeaseLost)
// and the new owner's record stands. DynamoDB writes that fn adds with
// [Task.AddWrites] commit in one transaction with its success, so they
// apply exactly once however often fn runs; [Task.FenceCondition] guards
// writes that fn makes itself against a stale worker. While fn runs, Start renews
// the lease every Lease/3 and cancels fn's context once the lease is lost,
// so Config.Lease need not exceed the task's run time, only the longest
// pause a worker may suffer plus the clock skew between workers.
//
// A write that DynamoDB applied but whose answer was lost is recognised
// when its retry is refused by the write's own effect, and reported as
// done. An outcome is tried again through errors and outages for up to
// Config.FinishTimeout, with the lease kept alive meanwhile. An attempt
// whose worker died counts as a failed attempt: it is recorded in the
// history by the worker that takes the task over, and a task that keeps
// killing its workers is Ignored after MaxAttempts. docs/guarantees.md
// states what holds under crashes, lease loss and network faults, and
// which tests check it.
//
// # Events and logs
//
// [Config].OnEvent sees every step of every attempt, from Start and from
// Process, as an [Event] with a kind: the hook for metrics and tracing
// (the module github.com/ddbtrack/ddbtrack/otel builds on it). Every log
// call passes the caller's context, and records use these keys: job, task,
// attempt (the attempt's number within its run of failures), fence, status
// (the status moved to), op (the write that failed), owner (another
// worker's lease), lease_expires_at, due_at, error (an error value),
// reason (why a task was cancelled), and, in records about the table,
// table, attribute (the time-to-live attribute) and retention.
//
// # Errors
//
// Refusals are [*TaskError] values that match the sentinels (ErrTaskLocked,
// ErrTaskNotDue, ErrTaskIgnored, ...) with [errors.Is] and carry the state
// the task was found in. Bad options and arguments are [*OptionError]
// values that name the field, the problem and the fix. Errors from the
// caller's function are returned unchanged.
//
// # Testing
//
// Package [github.com/ddbtrack/ddbtrack/ddbtracktest] tests code that uses
// ddbtrack: it gives each test a tracker on a fresh table of a local
// DynamoDB that it starts itself, runs a job's tasks to the end, checks how
// a task ended, and provides a clock for [Config].Now that the test moves.
package ddbtrack
