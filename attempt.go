package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file is one attempt at a task, from its claim to its outcome: Start
// claims the task, runs the function while a heartbeat renews the lease,
// and records what happened. Every write it makes is described in lock.go.

// Start claims the task, runs fn, and records the outcome. It blocks until
// fn has returned and the outcome is written. It is [Tracker.StartWith]
// with the Config's settings.
//
// The claim is one conditional write. It succeeds only if the task is in a
// startable status (Pending, Failed or one of Config.Startable) and due, or
// Running under a lease that has expired, so at most one worker holds a
// task at a time. A refused claim returns a [*TaskError] matching
// ErrTaskNotFound, ErrTaskLocked, ErrTaskNotDue, ErrTaskSucceeded,
// ErrTaskIgnored or ErrTaskNotReady, and fn does not run.
//
// While fn runs, Start renews the lease every third of its length with a
// write fenced by the lease token, so a task may run far longer than its
// lease as long as its worker is alive and reaches DynamoDB. If the lease
// is lost (a renewal is refused because another worker took the task over
// or it was reset, or renewals fail until the lease runs out), fn's context
// is cancelled and [context.Cause] on it matches ErrLeaseLost: fn should
// stop, because another worker may be running the task. A [Tracker.Cancel]
// is seen the same way, with a cause matching ErrCancelled.
//
// If fn returns nil, the task becomes Succeeded, with the output and data
// that fn set on the task, and the writes it added with [Task.AddWrites]
// are committed in the same transaction. If fn returns an error or panics,
// the task becomes Failed, due again after Config.RetryDelay, or Ignored
// once Config.MaxAttempts attempts in a row have failed; its stored data is
// left as it was and the error joins its history. If fn returns an error
// matching [ErrRelease] (or a [Snooze]), the task goes back to the status
// it was claimed from without counting the attempt. Start returns fn's
// error unchanged, so errors.Is works on it; if recording the outcome also
// failed, the two are joined. A panic is recorded with its stack and then
// re-raised, because recovering it would hide a bug from the code that
// called Start.
//
// The outcome is written with one conditional write fenced by the claim's
// lease token, even if ctx has been cancelled, and is tried again through
// errors and outages for up to Config.FinishTimeout while the lease is kept
// alive. If the lease was lost meanwhile, nothing is written and the error
// matches ErrLeaseLost. The heartbeat has stopped by the time Start
// returns.
func (t *Tracker[S]) Start(ctx context.Context, taskID string, fn func(ctx context.Context, task *Task[S]) error) error {
	if err := t.checkID("taskID", taskID); err != nil {
		return err
	}
	return t.newAttempt(taskID, t.start).run(ctx, fn)
}

// StartOptions adjusts one [Tracker.StartWith] call. The zero value means
// the Config's settings.
type StartOptions struct {
	// Lease overrides Config.Lease for this attempt, for a task known to
	// need a longer or shorter one than most. The heartbeat renews it every
	// Lease/3. Defaults to Config.Lease.
	Lease time.Duration

	// MaxAttempts overrides Config.MaxAttempts for this attempt: it decides
	// whether this attempt's failure makes the task Failed or Ignored. The
	// count of attempts is stored with the task, whatever the limit.
	// Defaults to Config.MaxAttempts.
	MaxAttempts int

	// RetryDelay overrides Config.RetryDelay for this attempt's failure.
	// Defaults to Config.RetryDelay.
	RetryDelay func(n int) time.Duration

	// Timeout overrides Config.AttemptTimeout for this attempt. Defaults
	// to Config.AttemptTimeout.
	Timeout time.Duration

	// ReleaseOnCancel releases the task instead of recording a failure
	// when ctx is cancelled while fn runs and fn returns an error: the task
	// goes back to the status it was claimed from and the attempt is not
	// counted. Use it when cancellation means "this worker is shutting
	// down", not "this task went wrong". A success is still recorded.
	// Defaults to false: a cancelled attempt is a failed one.
	ReleaseOnCancel bool
}

// startOptions fills in opts from the Config and checks the result. name
// is how the caller knows opts, for errors: "StartOptions" or
// "ProcessOptions.Start".
func (t *Tracker[S]) startOptions(opts StartOptions, name string) (StartOptions, error) {
	switch {
	case opts.Lease == 0:
		opts.Lease = t.cfg.Lease
	case opts.Lease < 3*time.Millisecond:
		return opts, optionError(name+".Lease", fmt.Sprintf("is %v", opts.Lease),
			fmt.Sprintf("use at least 3ms, so the heartbeat can renew it every Lease/3, or 0 for Config.Lease (%v)", t.cfg.Lease))
	}
	switch {
	case opts.MaxAttempts == 0:
		opts.MaxAttempts = t.cfg.MaxAttempts
	case opts.MaxAttempts < 0:
		return opts, optionError(name+".MaxAttempts", fmt.Sprintf("is %d", opts.MaxAttempts),
			fmt.Sprintf("use a positive number, or 0 for Config.MaxAttempts (%d)", t.cfg.MaxAttempts))
	}
	if err := duration(name+".Timeout", &opts.Timeout, t.cfg.AttemptTimeout, time.Millisecond); err != nil {
		return opts, err
	}
	if opts.RetryDelay == nil {
		opts.RetryDelay = t.cfg.RetryDelay
	} else if err := checkRetryDelay(name+".RetryDelay", opts.RetryDelay, opts.MaxAttempts); err != nil {
		return opts, err
	}
	return opts, nil
}

// StartWith is [Tracker.Start] with per-call options: a lease, an attempt
// limit, a retry delay and a timeout of its own, or release instead of
// failure on cancellation.
func (t *Tracker[S]) StartWith(ctx context.Context, taskID string, opts StartOptions, fn func(ctx context.Context, task *Task[S]) error) error {
	if err := t.checkID("taskID", taskID); err != nil {
		return err
	}
	opts, err := t.startOptions(opts, "StartOptions")
	if err != nil {
		return err
	}
	return t.newAttempt(taskID, opts).run(ctx, fn)
}

// attempt is one run of a task. Its state is private: the task it holds is
// the record that the function sees.
type attempt[S Status] struct {
	t    *Tracker[S]
	opts StartOptions
	log  *slog.Logger
	id   string

	task        *Task[S] // the record as claimed, with the function's staged changes
	token       string   // the claim's lease token
	claimedFrom S        // the status the claim found, which a release restores
	// abandoned is the history record of the dead worker's attempt that
	// this claim took over, or nil.
	abandoned *ErrorRecord
	// outcomes are the fences of the recent outcomes the claimed item
	// remembered, to which this attempt's outcome adds its own.
	outcomes []int64
	waited   time.Duration // from due to claim
	ran      time.Duration // how long the function ran
	// kind is how the attempt ended: an outcome's event kind, or zero
	// while it runs and when its claim was refused.
	kind EventKind
	// quiet says that the tracker's logger records nothing.
	quiet bool
	// unwritten is the outcome that got no answer within
	// Config.FinishTimeout, which Process goes on trying to record.
	unwritten *unwritten[S]
}

// unwritten is an outcome whose write got no answer, and fn's error.
type unwritten[S Status] struct {
	ending *ending[S]
	fnErr  error
}

// claimLate reads the task once, for a claim that got no answer within
// Config.FinishTimeout, and reports whether the claim is settled. If it
// was applied (the item holds its token), it releases the task, without
// counting the attempt, for any worker to claim again. While the task is
// still claimable the claim is not settled, since a request the server
// has not processed yet can land after the worker gave up on it; once the
// task is another worker's, it cannot land.
func (a *attempt[S]) claimLate(ctx context.Context) bool {
	t := a.t
	item, err := t.readKey(ctx, t.key(a.id), a.id)
	switch {
	case err != nil:
		return permanent(err)
	case item == nil:
		return true
	case str(item, attrLeaseToken) != a.token:
		return !t.claimable(item, t.cfg.Now())
	}
	if a.claimed(ctx, item) == nil {
		release := fmt.Errorf("%w: the claim was settled after Config.FinishTimeout", ErrRelease)
		_ = a.finish(context.WithoutCancel(ctx), release, false, "", nil)
	}
	return true
}

// writeLate tries once more, within Config.FinishTimeout, to record the
// outcome that finish could not. It reports whether it is settled: written,
// or refused because the task has moved on; not if DynamoDB still does not
// answer.
func (a *attempt[S]) writeLate(ctx context.Context) bool {
	u := a.unwritten
	wctx, cancel := context.WithTimeout(ctx, a.t.cfg.FinishTimeout)
	defer cancel()
	_, err := a.t.send(wctx, u.ending.write)
	switch {
	case err == nil:
		a.recorded(u.ending)
		_ = a.end(ctx, u.ending.kind, u.fnErr, nil)
	case errors.Is(err, ErrUnavailable) || ctx.Err() != nil:
		return false
	default:
		_ = a.end(ctx, EventLeaseLost, u.fnErr, err)
	}
	a.unwritten = nil
	return true
}

// newAttempt prepares an attempt at taskID. Its logger names the task,
// unless the tracker's logger records nothing even at Error, as with
// slog.DiscardHandler: then the attributes would be built for no record.
func (t *Tracker[S]) newAttempt(taskID string, opts StartOptions) *attempt[S] {
	a := &attempt[S]{t: t, opts: opts, log: t.log, id: taskID}
	if a.quiet = !t.log.Enabled(context.Background(), slog.LevelError); !a.quiet {
		a.log = t.log.With(logTask, taskID)
	}
	return a
}

// run runs the attempt: claim, function, outcome. The attempt keeps what
// became of it, even when the function panics, for Process to count.
func (a *attempt[S]) run(ctx context.Context, fn func(context.Context, *Task[S]) error) error {
	t := a.t
	if err := a.claim(ctx); err != nil {
		a.kind = EventRefused
		if !isRefusal(err) {
			a.kind = EventError
		}
		a.log.LogAttrs(ctx, debugLevel, "claim refused", errAttr(err))
		t.emit(ctx, Event[S]{Kind: a.kind, TaskID: a.id, Err: err})
		return err
	}
	cause := context.Cause(ctx) // The caller may have given up while the claim was settled.
	ctx = t.emit(ctx, Event[S]{Kind: EventClaimed, TaskID: a.id, Task: a.task, Waited: a.waited})
	switch {
	case cause != nil:
		release := fmt.Errorf("%w: %w", ErrRelease, cause)
		return errors.Join(cause, a.finish(context.WithoutCancel(ctx), release, false, "", nil))
	case a.task.CancelledAt.IsZero() && (a.abandoned == nil || a.task.Attempts <= a.opts.MaxAttempts):
		return a.execute(ctx, fn)
	case !a.task.CancelledAt.IsZero():
		// The worker that held the task died after a cancel was asked for.
		return a.finish(ctx, nil, false, "", a.cancelledBefore())
	default:
		// This claim took the task over, and the earlier attempts ended
		// without a result, most likely because the task crashes its
		// worker. Running it again would crash the next worker too.
		msg := fmt.Sprintf("not run: the previous %d attempts ended without a result (limit %d)", a.task.Attempts-1, a.opts.MaxAttempts)
		if err := a.finish(ctx, errors.New(msg), false, "", nil); a.kind != EventIgnored {
			return err
		}
		return &TaskError{Op: "start", Job: t.cfg.Job, TaskID: a.id, Err: ErrTaskIgnored,
			Status: int(a.task.Status), StatusName: a.task.StatusName, Attempts: a.task.Attempts}
	}
}

// maxClaimTries bounds the claims one Start makes when each refusal is
// contradicted by the item that explains it.
const maxClaimTries = 3

// claim takes the lease. A claim whose answer is lost is tried again, with
// the same token, until it is settled or Config.FinishTimeout has passed:
// it may have been applied, and the token is how its effect is recognised.
// It goes on when ctx ends, so that run can release a claim that was
// applied.
func (a *attempt[S]) claim(ctx context.Context) error {
	t := a.t
	if err := t.announce(ctx); err != nil {
		return err
	}
	a.token = newToken()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.FinishTimeout)
	defer cancel()
	for try := 1; ; try++ {
		now := t.cfg.Now()
		item, err := t.send(sctx, t.claimWrite(a.id, a.token, a.opts.Lease, now))
		var te *TaskError
		switch {
		case err == nil:
			return a.claimed(ctx, item)
		case errors.Is(err, ErrUnavailable):
			return fmt.Errorf("%w; if the claim was applied, the task stays Running until its lease expires", err)
		case errors.As(err, &te) && item != nil && t.claimable(item, t.cfg.Now()):
			// Without the item in the refusal, the read that explains it
			// came after it, and the task was released meanwhile; with it,
			// the lease has expired since the claim's :now. Either way it
			// is claimable now, so the right answer is a new claim.
			if try < maxClaimTries {
				continue
			}
			// It keeps changing hands between claims and reads: it is
			// busy, which is what locked means to a caller.
			te.Err = ErrTaskLocked
		}
		return err
	}
}

// claimed takes the attempt's state from the item as the claim left it.
func (a *attempt[S]) claimed(ctx context.Context, item map[string]types.AttributeValue) error {
	task, err := decodeTask[S](item)
	if err != nil {
		return err
	}
	task.staged = &staged{table: a.t.cfg.Table}
	a.task = task
	a.claimedFrom = S(num(item, attrClaimedFrom))
	a.outcomes = outcomes(item)
	a.waited = max(task.StartedAt.Sub(millis(item, attrClaimedDue)), 0)
	if !a.quiet {
		a.log = a.log.With(logAttempt, task.Attempts, logFence, task.Fence)
	}
	if owner := str(item, attrAbandonedOwner); owner != "" {
		// The previous worker's lease expired before it recorded a result.
		// Its attempt was counted by its claim; the history says what
		// became of it, written with this attempt's outcome.
		until := millis(item, attrAbandonedUntil)
		a.abandoned = &ErrorRecord{
			Attempt: task.Attempts - 1,
			Fence:   task.Fence - 1,
			At:      task.StartedAt,
			Message: fmt.Sprintf("abandoned: the lease of worker %s expired at %s before it recorded a result",
				owner, until.UTC().Format(time.RFC3339Nano)),
		}
		a.log.WarnContext(ctx, "took over an expired lease", logOwner, owner, logLeaseExpiresAt, until)
	}
	a.log.LogAttrs(ctx, infoLevel, "task claimed", slog.String(logStatus, task.StatusName), slog.Time(logLeaseExpiresAt, task.LeaseExpiresAt))
	return nil
}

// execute runs fn under the heartbeat and records its outcome.
func (a *attempt[S]) execute(ctx context.Context, fn func(context.Context, *Task[S]) error) error {
	fnCtx, cancelFn := context.WithCancelCause(ctx)
	defer cancelFn(nil)
	runCtx := fnCtx
	if a.opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(fnCtx, a.opts.Timeout, errTimedOut)
		defer cancel()
	}
	hb := a.beat(ctx, cancelFn)
	// The deferred stop covers an fn that never returns normally, such as
	// one calling runtime.Goexit (t.FailNow in a test): without it the
	// heartbeat would keep the dead attempt's lease alive. Such an attempt
	// records nothing, and its end is reported as an error.
	defer func() {
		hb.stop()
		if a.kind == 0 {
			a.end(ctx, EventError, nil, errGoexit)
		}
	}()
	began := time.Now()
	panicked, stack, fnErr := call(runCtx, a.task, fn)
	a.ran = time.Since(began)
	if fnErr != nil && errors.Is(context.Cause(runCtx), errTimedOut) {
		fnErr = &timeoutError{after: a.opts.Timeout, err: fnErr}
	}
	err := a.finish(ctx, fnErr, panicked, stack, hb.state())
	hb.stop()
	if panicked {
		panic(fnErr.(*panicError).value)
	}
	return err
}

// finish records the outcome of fn's error (nil for a success) and
// returns what Start returns. lease is what the heartbeat learned while fn
// ran, or nil.
func (a *attempt[S]) finish(ctx context.Context, fnErr error, panicked bool, stack string, lease *leaseState) error {
	t := a.t
	if lease != nil && lease.refused && !lease.cancelled {
		// A renewal was refused: another worker holds the task or it was
		// reset, so there is nothing this attempt may write.
		return a.end(ctx, EventLeaseLost, fnErr, lease.err)
	}
	// The outcome must be written even if the caller has given up, or the
	// task would sit in Running until its lease expires.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.FinishTimeout)
	defer cancel()
	e := a.outcome(fnErr, panicked, stack, lease)
	var item map[string]types.AttributeValue
	var err error
	if e.kind == EventSucceeded && len(a.task.staged.writes) > 0 {
		err = t.checkCommit(wctx, a.task)
	}
	if err == nil {
		item, err = t.send(wctx, e.write)
	}
	if errors.Is(err, ErrCancelled) {
		// A cancel reached DynamoDB before this outcome: it wins.
		e = a.cancelled(str(item, attrCancelReason), millis(item, attrCancelledAt))
		_, err = t.send(wctx, e.write)
	}
	if e.kind == EventSucceeded && (errors.Is(err, ErrItemTooLarge) || errors.Is(err, ErrTransaction)) {
		// The result cannot be stored as it is, but the attempt must not
		// vanish: record it as a failure that says why.
		fnErr = err
		e = a.outcome(err, false, "", lease)
		_, err = t.send(wctx, e.write)
	}
	switch {
	case errors.Is(err, ErrLeaseLost):
		return a.end(ctx, EventLeaseLost, fnErr, err)
	case err != nil:
		if errors.Is(err, ErrUnavailable) {
			a.unwritten = &unwritten[S]{ending: e, fnErr: fnErr}
		}
		return a.end(ctx, EventError, fnErr, err)
	}
	a.recorded(e)
	if e.kind == EventCancelled {
		return a.end(ctx, e.kind, fnErr, &TaskError{Op: "start", Job: t.cfg.Job, TaskID: a.task.ID, Err: ErrCancelled,
			Status: int(a.task.Status), StatusName: a.task.StatusName, Attempts: a.task.Attempts})
	}
	return a.end(ctx, e.kind, fnErr, nil)
}

// ending is how an attempt ends: the write that records it, and what the
// task looks like once it is written.
type ending[S Status] struct {
	kind      EventKind
	write     *write
	status    S
	due, now  time.Time
	errors    []ErrorRecord // the new history, or nil if unchanged
	lastError *string       // the new last error, or nil if unchanged
	cancelled time.Time     // the cancel's time, for EventCancelled
	reason    string        // and its reason
}

// outcome chooses how fn's error ends the attempt.
func (a *attempt[S]) outcome(fnErr error, panicked bool, stack string, lease *leaseState) *ending[S] {
	t, task, now := a.t, a.task, a.t.cfg.Now()
	var snoozed *snooze
	switch {
	case lease != nil && lease.cancelled:
		return a.cancelled(lease.reason, lease.at)
	case fnErr == nil:
		e := &ending[S]{kind: EventSucceeded, status: t.cfg.Succeeded, due: now, now: now}
		if a.abandoned != nil {
			e.errors = a.history(*a.abandoned)
		}
		e.write = t.succeedWrite(a, e.errors, now)
		return e
	case !panicked && errors.As(fnErr, &snoozed):
		return a.release(now.Add(snoozed.d), now)
	case !panicked && (errors.Is(fnErr, ErrRelease) || (a.opts.ReleaseOnCancel && errors.Is(fnErr, context.Canceled))):
		return a.release(now, now)
	}
	msg := fnErr.Error()
	if panicked {
		msg = "panic: " + msg
	}
	if lease != nil && lease.err != nil {
		msg += " (" + lease.err.Error() + ")"
	}
	rec := ErrorRecord{Attempt: task.Attempts, Fence: task.Fence, At: whole(now),
		Message: truncate(msg, maxMessageBytes), Stack: truncate(stack, maxStackBytes)}
	e := &ending[S]{kind: EventFailed, status: t.cfg.Failed, now: now, lastError: &rec.Message,
		due: now.Add(max(a.opts.RetryDelay(task.Attempts), 0))}
	if task.Attempts >= a.opts.MaxAttempts {
		e.kind, e.status, e.due = EventIgnored, t.cfg.Ignored, now
	}
	if a.abandoned != nil {
		e.errors = a.history(*a.abandoned, rec)
	} else {
		e.errors = a.history(rec)
	}
	e.write = t.failWrite(a, e.status, e.errors, rec.Message, e.due, now)
	return e
}

// release ends the attempt by putting the task back, due at due, without
// counting the attempt. It goes back to the status it was claimed from. A
// task taken over from a dead worker cannot go back to Running without a
// lease, where no claim would find it; it becomes Failed instead (Ignored
// once the dead attempt reaches the limit), with the dead attempt in its
// history, as the next claim would have recorded it.
func (a *attempt[S]) release(due, now time.Time) *ending[S] {
	e := &ending[S]{kind: EventReleased, status: a.claimedFrom, due: due, now: now}
	if a.abandoned != nil {
		e.status = a.t.cfg.Failed
		if a.task.Attempts-1 >= a.opts.MaxAttempts {
			e.status = a.t.cfg.Ignored
		}
		e.errors, e.lastError = a.history(*a.abandoned), &a.abandoned.Message
	}
	e.write = a.t.releaseWrite(a, e.status, e.errors, e.lastError, due, now)
	return e
}

// cancelled ends the attempt by recording a cancel, asked for at at with
// reason.
func (a *attempt[S]) cancelled(reason string, at time.Time) *ending[S] {
	now := a.t.cfg.Now()
	msg := cancelMessage(reason)
	e := &ending[S]{kind: EventCancelled, status: a.t.cfg.Ignored, due: now, now: now, lastError: &msg, cancelled: at, reason: reason}
	if a.abandoned != nil {
		e.errors = a.history(*a.abandoned)
	}
	e.write = a.t.cancelledWrite(a, e.errors, msg, now)
	return e
}

// cancelledBefore is the lease state of an attempt that found the task
// cancelled when it claimed it.
func (a *attempt[S]) cancelledBefore() *leaseState {
	return &leaseState{cancelled: true, reason: a.task.CancelReason, at: a.task.CancelledAt}
}

// history returns the task's error history with records appended, bounded.
func (a *attempt[S]) history(records ...ErrorRecord) []ErrorRecord {
	return appendBounded(a.task.Errors, a.t.cfg.ErrorHistory, records...)
}

// recorded updates the attempt's task to show what the ending stored, so
// that events and Process report the task as it now is.
func (a *attempt[S]) recorded(e *ending[S]) {
	task := a.task
	task.Status, task.StatusName = e.status, statusName[S](int(e.status))
	task.DueAt, task.UpdatedAt = whole(e.due), whole(e.now)
	task.ExpiresAt = a.t.expiresAt(e.status, e.now)
	task.LeaseOwner, task.LeaseExpiresAt = "", time.Time{}
	if e.errors != nil {
		task.Errors = e.errors
	}
	if e.lastError != nil {
		task.LastError = *e.lastError
	}
	switch e.kind {
	case EventSucceeded:
		task.Attempts, task.LastError, task.SucceededAt = 0, "", task.UpdatedAt
		task.output = task.staged.output
		if task.staged.dataSet {
			task.data = task.staged.data
		}
	case EventReleased:
		task.Attempts--
	case EventCancelled:
		task.CancelledAt, task.CancelReason = e.cancelled, e.reason
	}
}

// end logs and reports how the attempt ended, and returns what Start
// returns: fn's error, joined with err if recording failed or the lease
// was lost.
func (a *attempt[S]) end(ctx context.Context, kind EventKind, fnErr, err error) error {
	a.kind = kind
	evErr := fnErr
	switch kind {
	case EventSucceeded:
		a.log.LogAttrs(ctx, infoLevel, "task succeeded", slog.String(logStatus, a.task.StatusName))
	case EventFailed:
		a.log.WarnContext(ctx, "task failed", logStatus, a.task.StatusName, logDueAt, a.task.DueAt, logError, fnErr)
	case EventIgnored:
		a.log.ErrorContext(ctx, "task ignored", logStatus, a.task.StatusName, logError, fnErr)
	case EventReleased:
		a.log.InfoContext(ctx, "task released", logStatus, a.task.StatusName, logDueAt, a.task.DueAt)
	case EventCancelled:
		a.log.InfoContext(ctx, "task cancelled", logStatus, a.task.StatusName, logReason, a.task.CancelReason)
		evErr = err
	case EventLeaseLost:
		a.log.WarnContext(ctx, "outcome not recorded: lease lost", logError, err)
		evErr = err
	case EventError:
		a.log.ErrorContext(ctx, "outcome not recorded", logError, err)
		evErr = errors.Join(fnErr, err)
	}
	a.t.emit(ctx, Event[S]{Kind: kind, TaskID: a.task.ID, Task: a.task, Err: evErr, Waited: a.waited, Ran: a.ran})
	if err == nil {
		return fnErr
	}
	if fnErr == nil {
		return err
	}
	return errors.Join(fnErr, err)
}

// emit reports ev to Config.OnEvent and returns the context for what
// follows: OnEvent's, for an EventClaimed.
func (t *Tracker[S]) emit(ctx context.Context, ev Event[S]) context.Context {
	if t.cfg.OnEvent == nil {
		return ctx
	}
	ev.Job = t.cfg.Job
	if next := t.cfg.OnEvent(ctx, ev); next != nil && ev.Kind == EventClaimed {
		return next
	}
	return ctx
}

// errGoexit is how an attempt ends whose function never returned.
var errGoexit = errors.New("ddbtrack: the task's function ended its goroutine without returning (runtime.Goexit); " +
	"no outcome was recorded, and the task is taken over when its lease expires")

// errTimedOut is the cause of the function's context when the attempt's
// timeout passes.
var errTimedOut = errors.New("ddbtrack: attempt timed out")

// timeoutError is a function's error after its attempt timed out, recorded
// with a message that says so. It unwraps to the function's error.
type timeoutError struct {
	after time.Duration
	err   error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("attempt timed out after %v: %v", e.after, e.err)
}

func (e *timeoutError) Unwrap() error { return e.err }

// panicError carries a recovered panic value until the failure is recorded.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprint(p.value) }

// call calls fn and turns a panic into an error, with the stack of the
// goroutine at the point of the panic.
func call[S Status](ctx context.Context, task *Task[S], fn func(context.Context, *Task[S]) error) (panicked bool, stack string, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked, stack, err = true, string(debug.Stack()), &panicError{v}
		}
	}()
	return false, "", fn(ctx, task)
}

// Snooze returns an error for a task's function to return when the task
// cannot run yet and should be tried again after d, without counting the
// attempt: the task goes back to the status it was claimed from, due at
// now+d. It matches ErrRelease with errors.Is. A negative d, or one beyond
// ten years, is refused with an error that is recorded as the attempt's
// failure, so that the mistake shows.
func Snooze(d time.Duration) error {
	if d < 0 || d > maxAhead {
		return optionError("Snooze", fmt.Sprintf("was given %v", d), "pass a delay of 0 or more, up to ten years")
	}
	return &snooze{d: d}
}

// maxAhead is the furthest ahead a task may be scheduled: further is more
// likely a unit mistake than a plan.
const maxAhead = 10 * 365 * 24 * time.Hour

type snooze struct{ d time.Duration }

func (s *snooze) Error() string { return fmt.Sprintf("ddbtrack: snooze the task for %v", s.d) }

// Is makes a snooze match ErrRelease.
func (s *snooze) Is(target error) bool { return target == ErrRelease }

// leaseState is what a heartbeat learned about the lease.
type leaseState struct {
	// err is why the lease is gone or the task cancelled, or nil.
	err error
	// reason and at are the cancel's, when cancelled.
	reason string
	at     time.Time
	// refused says that a renewal was refused: the token can never be
	// this attempt's again, or a cancel was asked for (cancelled).
	refused, cancelled bool
}

// heartbeat renews a lease while fn runs and until its outcome is written.
// No renewal starts after stop has returned, and one under way has ended,
// so nothing of an attempt outlives Start. The goroutine starts only when
// the first renewal is due, from a timer, and only then makes what renewing
// needs (its context and channels), so that the many tasks that end within
// a third of their lease pay for no more than the timer.
type heartbeat struct {
	first *time.Timer
	mu    sync.Mutex
	// stopping says that stop was called; the goroutine then starts no
	// renewals.
	stopping bool
	// stopc, done and cancel are made by the goroutine, under mu, when it
	// starts: nil until then.
	stopc  chan struct{}      // closed by stop
	done   chan struct{}      // closed when the goroutine ends
	cancel context.CancelFunc // cuts a renewal in flight short
	lease  leaseState
}

// beat starts renewing the task's lease every Lease/3. When the lease is
// lost, or a cancel is seen, it cancels fn's context with a cause matching
// ErrLeaseLost or ErrCancelled. The lease is lost when a renewal is
// refused, because another worker claimed the task or it was reset or
// deleted, and also when renewals keep failing until the lease runs out by
// this worker's clock: from then on another worker may claim the task, so
// fn must stop even though nobody may have.
func (a *attempt[S]) beat(ctx context.Context, cancel context.CancelCauseFunc) *heartbeat {
	h := &heartbeat{}
	expires, interval := a.task.LeaseExpiresAt, max(a.opts.Lease/3, time.Millisecond)
	h.first = time.AfterFunc(interval, func() {
		h.mu.Lock()
		if h.stopping {
			h.mu.Unlock()
			return // The attempt ended as its first renewal fell due.
		}
		// Renewals must not end with the caller's context, which is fn's
		// to react to; they end when the attempt has recorded its outcome.
		rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
		h.stopc, h.done, h.cancel = make(chan struct{}), make(chan struct{}), rcancel
		h.mu.Unlock()
		defer close(h.done)
		timer := time.NewTimer(interval)
		defer timer.Stop()
		for !h.stopped() {
			wait, st := a.renew(rctx, h, &expires, interval)
			if st.err != nil {
				h.mu.Lock()
				h.lease = st
				h.mu.Unlock()
				a.log.LogAttrs(rctx, warnLevel, "lease lost or task cancelled while it ran; cancelling its function", errAttr(st.err))
				cancel(st.err)
				return
			}
			if wait < 0 {
				return // The renewal was cut short because the attempt ended.
			}
			timer.Reset(wait)
			select {
			case <-h.stopc:
				return
			case <-timer.C:
			}
		}
	})
	return h
}

// renew sends one renewal of the lease that expires at *expires, and
// moves *expires on when it lands. It returns how long to wait before the
// next one (negative if the heartbeat was stopped meanwhile), or what
// became of the lease if it is lost or the task cancelled.
func (a *attempt[S]) renew(ctx context.Context, h *heartbeat, expires *time.Time, interval time.Duration) (time.Duration, leaseState) {
	t, lease := a.t, a.opts.Lease
	// A renewal may take as long as the lease has left, for a slow answer
	// is as good as a fast one until then; at least a beat, as the
	// injected clock may not move with real time.
	cctx, cancel := context.WithTimeout(ctx, max(min(expires.Sub(t.cfg.Now()), lease), interval))
	defer cancel()
	next := whole(t.cfg.Now().Add(lease))
	item, err := t.send(cctx, t.renewWrite(a.id, a.token, next))
	switch {
	case err == nil:
		if item != nil {
			next = millis(item, attrLeaseExpiresAt) // A lost answer's retry; the item holds the expiry.
		}
		*expires = next
		return interval, leaseState{}
	case errors.Is(err, ErrCancelled):
		return 0, leaseState{err: err, refused: true, cancelled: true, reason: str(item, attrCancelReason), at: millis(item, attrCancelledAt)}
	case errors.Is(err, ErrLeaseLost):
		return 0, leaseState{err: err, refused: true}
	case h.stopped():
		return -1, leaseState{}
	case t.cfg.Now().Before(*expires):
		a.log.LogAttrs(ctx, warnLevel, "lease renewal failed; trying again", slog.Time(logLeaseExpiresAt, *expires), errAttr(err))
		return max(interval/4, time.Millisecond), leaseState{}
	}
	return 0, leaseState{err: fmt.Errorf("%w: could not renew the lease of task %q before it expired at %s: %w",
		ErrLeaseLost, a.id, expires.UTC().Format(time.RFC3339Nano), err)}
}

func (h *heartbeat) stopped() bool {
	select {
	case <-h.stopc:
		return true
	default:
		return false
	}
}

// state returns what the heartbeat has learned so far, or nil if the lease
// is well.
func (h *heartbeat) state() *leaseState {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lease.err == nil {
		return nil
	}
	st := h.lease
	return &st
}

// stop ends the heartbeat, cutting short a renewal in flight, and waits
// for its goroutine. A renewal cut short may still land; it is harmless,
// because the outcome write removes the token it is fenced on. It may be
// called more than once.
func (h *heartbeat) stop() {
	h.mu.Lock()
	if !h.stopping {
		h.stopping = true
		h.first.Stop()
		if h.stopc != nil {
			close(h.stopc)
			h.cancel()
		}
	}
	done := h.done // nil if the goroutine never started renewing
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}
