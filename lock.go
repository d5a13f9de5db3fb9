package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbtrack/ddbtrack/internal/ddbexpr"
)

// This file holds every write that moves a task between statuses. Each is
// one conditional UpdateItem: none reads first and then writes, because a
// read is stale as soon as it returns. The claim is conditioned on the
// task's status and lease; every later write of the attempt is fenced by
// the claim's random lease token, which only the claiming worker knows.

// claim takes a lease on the task and returns the task as it is after the
// claim. The request asks for the item as it was before the write: on
// success that tells whether a dead worker's lease was taken over, and on
// refusal (where the server supports ReturnValuesOnConditionCheckFailure)
// it tells why, without another read.
func (t *Tracker[S]) claim(ctx context.Context, taskID string, lease time.Duration) (*Task[S], error) {
	for try := 1; ; try++ {
		task, err := t.claimOnce(ctx, taskID, lease)
		var again *claimAgain
		if !errors.As(err, &again) {
			return task, err
		}
		if try == maxClaimTries {
			// The task keeps changing hands between our refusals and our
			// reads: it is busy, which is what locked means to a caller.
			e := t.refusal("start", taskID, again.item, again.cause)
			e.Err = ErrTaskLocked
			return nil, e
		}
	}
}

// maxClaimTries bounds the claims one Start makes when each refusal is
// contradicted by the read that follows it.
const maxClaimTries = 3

// claimAgain reports a refusal that the read made to explain it
// contradicts: the task is claimable now.
type claimAgain struct {
	item  map[string]types.AttributeValue
	cause error
}

func (c *claimAgain) Error() string { return "ddbtrack: claim refused but the task is claimable now" }

// claimable reports whether a claim at time now would be accepted by item.
func (t *Tracker[S]) claimable(item map[string]types.AttributeValue, now time.Time) bool {
	s := S(num(item, "status"))
	return t.isStart[s] || (s == t.cfg.Running && num(item, "lease_expires_at") < now.UnixMilli())
}

// claimOnce sends one claim.
func (t *Tracker[S]) claimOnce(ctx context.Context, taskID string, lease time.Duration) (*Task[S], error) {
	now := t.cfg.Now()
	token := newToken()
	var e ddbexpr.Expr
	t.setStatusExpr(&e, taskID, t.cfg.Running, now).
		SetExpr("#started_at = :now").
		Set("lease_owner", strAV(t.cfg.Owner)).
		Set("lease_token", strAV(token)).
		Set("lease_expires_at", numAV(now.Add(lease).UnixMilli())).
		Add("attempts", numAV(1)).
		Add("fence", numAV(1)).
		Where(t.claimCond)
	for p, v := range t.startable {
		e.Value(p, v)
	}
	out, err := t.update(ctx, taskID, &e, types.ReturnValueAllOld)

	item, refused, rerr := t.refused(ctx, taskID, err)
	switch {
	case rerr != nil:
		return nil, rerr
	case refused:
		if item != nil && str(item, "lease_token") == token {
			// The claim was applied, but its response was lost and the
			// SDK's retry was refused by our own write. The task is ours.
			task, derr := decodeTask[S](item)
			if derr != nil {
				return nil, derr
			}
			task.leaseToken = token
			// The item from before the claim was lost with the response,
			// so the status to release to is a guess from the count:
			// a task with earlier attempts was most likely Failed.
			task.claimedFrom = t.cfg.Pending
			if task.Attempts > 1 {
				task.claimedFrom = t.cfg.Failed
			}
			return task, nil
		}
		if item != nil && t.claimable(item, t.cfg.Now()) {
			// The item shows a task that can be claimed now. Without the
			// item in the refusal (dynalite), the read comes after it, and
			// the worker that held the task finished or released it in
			// between; with it, the lease has expired since the claim's
			// :now. Reporting ErrTaskNotReady for a startable task would be
			// wrong; claiming again is right.
			return nil, &claimAgain{item: item, cause: err}
		}
		return nil, t.refusal("start", taskID, item, err)
	case err != nil:
		return nil, t.writeError("start", taskID, err)
	}

	task, err := decodeTask[S](out.Attributes)
	if err != nil {
		return nil, err
	}
	if task.Status == t.cfg.Running {
		// The previous worker's lease expired before it recorded a result.
		// Its attempt has been counted by its claim; the history should say
		// what became of it. The entry is written with this attempt's result.
		task.abandonedEntry = &ErrorRecord{
			Attempt: task.Attempts,
			At:      time.UnixMilli(now.UnixMilli()),
			Message: fmt.Sprintf("abandoned: the lease of worker %s expired at %s before it recorded a result",
				task.LeaseOwner, task.LeaseExpiresAt.UTC().Format(time.RFC3339Nano)),
		}
		t.log.Warn("took over expired lease", "task", taskID, "previous_owner", task.LeaseOwner,
			"expired_at", task.LeaseExpiresAt, "attempt", task.Attempts)
	}
	// Apply the claim to the old item rather than ask for the new one: the
	// result is the same, and the old one is what told us about takeovers.
	task.claimedFrom = task.Status
	task.Status, task.StatusName = t.cfg.Running, statusName[S](int(t.cfg.Running))
	task.Attempts++
	task.Fence++
	task.StartedAt, task.UpdatedAt = time.UnixMilli(now.UnixMilli()), time.UnixMilli(now.UnixMilli())
	task.LeaseOwner, task.LeaseExpiresAt, task.leaseToken = t.cfg.Owner, time.UnixMilli(now.Add(lease).UnixMilli()), token
	task.ExpiresAt = time.Time{}
	return task, nil
}

// succeed records the attempt's success with the data and output fn set.
func (t *Tracker[S]) succeed(ctx context.Context, task *Task[S]) error {
	now := t.cfg.Now()
	var e ddbexpr.Expr
	t.setStatusExpr(&e, task.ID, t.cfg.Succeeded, now).
		SetExpr("#succeeded_at = :now").
		Set("attempts", numAV(0)).
		Remove("last_error")
	if !task.outputSet {
		task.output = nil
	}
	if task.output != nil {
		e.Set("output", task.output)
	} else {
		e.Remove("output")
	}
	if task.dataSet {
		if task.data != nil {
			e.Set("data", task.data)
		} else {
			e.Remove("data")
		}
	}
	errs := task.Errors
	if task.abandonedEntry != nil {
		errs = appendBounded(task.Errors, t.cfg.ErrorHistory, *task.abandonedEntry)
		e.Set("errors", encodeErrors(errs))
	}
	if err := t.finish(ctx, task, &e, t.cfg.Succeeded, now); err != nil {
		return err
	}
	task.SucceededAt, task.Attempts, task.LastError, task.Errors = time.UnixMilli(now.UnixMilli()), 0, "", errs
	return nil
}

// fail records the attempt's failure: the task becomes Failed, or Ignored
// once the attempt count reaches MaxAttempts. Data and output are left as
// they were, so the next attempt starts from the same input.
func (t *Tracker[S]) fail(ctx context.Context, task *Task[S], msg, stack string) error {
	to := t.cfg.Failed
	if task.Attempts >= task.maxAttempts {
		to = t.cfg.Ignored
	}
	now := t.cfg.Now()
	rec := ErrorRecord{
		Attempt: task.Attempts,
		At:      time.UnixMilli(now.UnixMilli()),
		Message: truncate(msg, maxMessageBytes),
		Stack:   truncate(stack, maxStackBytes),
	}
	entries := []ErrorRecord{rec}
	if task.abandonedEntry != nil {
		entries = []ErrorRecord{*task.abandonedEntry, rec}
	}
	errs := appendBounded(task.Errors, t.cfg.ErrorHistory, entries...)
	var e ddbexpr.Expr
	t.setStatusExpr(&e, task.ID, to, now).
		Set("errors", encodeErrors(errs)).
		Set("last_error", strAV(rec.Message))
	if err := t.finish(ctx, task, &e, to, now); err != nil {
		return err
	}
	task.Errors, task.LastError = errs, rec.Message
	log := t.log.With("task", task.ID, "attempt", task.Attempts, "status", to.String(), "error", rec.Message)
	if to == t.cfg.Ignored {
		log.Error("task ignored", "max_attempts", task.maxAttempts)
	} else {
		log.Warn("task failed", "max_attempts", task.maxAttempts)
	}
	return nil
}

// finish writes the attempt's outcome and releases the lease, fenced by the
// lease token so that a worker whose lease was lost changes nothing. Once
// the outcome is recorded, task shows the status, update time and expiry it
// was recorded with, and no lease; the caller updates the fields that are
// its own.
func (t *Tracker[S]) finish(ctx context.Context, task *Task[S], e *ddbexpr.Expr, to S, now time.Time) error {
	return t.finishOp(ctx, "record result of", task, e, to, now)
}

func (t *Tracker[S]) finishOp(ctx context.Context, op string, task *Task[S], e *ddbexpr.Expr, to S, now time.Time) error {
	e.Remove("lease_owner", "lease_token", "lease_expires_at").
		Where("#lease_token = :token").
		Value("token", strAV(task.leaseToken))
	_, err := t.update(ctx, task.ID, e, types.ReturnValueNone)
	item, refused, rerr := t.refused(ctx, task.ID, err)
	switch {
	case rerr != nil:
		return rerr
	case refused:
		if !landed(item, task.Fence, int(to)) {
			return t.refusal(op, task.ID, item, err)
		}
		// The write was applied, its response lost, and the SDK's retry
		// refused by the write itself: the outcome is recorded.
	case err != nil:
		return t.writeError(op, task.ID, err)
	}
	task.Status, task.StatusName = to, statusName[S](int(to))
	task.UpdatedAt, task.ExpiresAt = time.UnixMilli(now.UnixMilli()), t.expiresAt(to, now)
	task.LeaseOwner, task.LeaseExpiresAt, task.leaseToken = "", time.Time{}, ""
	return nil
}

// landed reports whether item shows the outcome of the attempt with the
// given fencing token already written: same fence, no lease, and the
// expected status. No other attempt can leave that state, because any
// other claim would have raised the fence.
func landed(item map[string]types.AttributeValue, fence int64, status int) bool {
	return item != nil && num(item, "fence") == fence && str(item, "lease_token") == "" && int(num(item, "status")) == status
}

// setStatusExpr adds the status, its name, its index key, the update time
// and the expiry to e, and now as the value :now. Every write that changes
// a status goes through it, so those attributes never disagree. The expiry
// is removed on every other status change, so that time to live deletes
// only a task that is still Succeeded.
func (t *Tracker[S]) setStatusExpr(e *ddbexpr.Expr, taskID string, s S, now time.Time) *ddbexpr.Expr {
	item := make(map[string]types.AttributeValue, 3)
	t.setStatus(item, taskID, s)
	if exp := t.expiresAt(s, now); !exp.IsZero() {
		e.Set(expiresAttr, numAV(exp.Unix()))
	} else {
		e.Remove(expiresAttr)
	}
	return e.Set("status", item["status"]).
		Set("status_name", item["status_name"]).
		Set("status_key", item["status_key"]).
		SetExpr("#updated_at = :now").
		Value("now", numAV(now.UnixMilli()))
}

// expiresAt returns when a task that moves to status s at now may be
// deleted by time to live, or the zero time if it is to be kept. It is
// whole seconds, the only unit time to live reads.
func (t *Tracker[S]) expiresAt(s S, now time.Time) time.Time {
	if s != t.cfg.Succeeded || t.cfg.Retention <= 0 {
		return time.Time{}
	}
	return time.Unix(now.Add(t.cfg.Retention).Unix(), 0)
}

// update sends one conditional UpdateItem.
func (t *Tracker[S]) update(ctx context.Context, taskID string, e *ddbexpr.Expr, rv types.ReturnValue) (*dynamodb.UpdateItemOutput, error) {
	b, err := e.Build()
	if err != nil {
		return nil, err
	}
	return t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(t.cfg.Table),
		Key:                                 t.key(taskID),
		UpdateExpression:                    b.Update,
		ConditionExpression:                 b.Condition,
		ExpressionAttributeNames:            b.Names,
		ExpressionAttributeValues:           b.Values,
		ReturnValues:                        rv,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
}

// refused reports whether err is DynamoDB refusing a conditional write and,
// if so, returns the item that refused it: the one DynamoDB sent back with
// the refusal, or, from servers that do not send it (dynalite), one
// strongly consistent read. The item is nil if the task does not exist. If
// that read fails, the returned error joins its error with err.
func (t *Tracker[S]) refused(ctx context.Context, taskID string, err error) (item map[string]types.AttributeValue, ok bool, _ error) {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return nil, false, nil
	}
	if len(ccf.Item) > 0 {
		return ccf.Item, true, nil
	}
	item, gerr := t.getItem(ctx, taskID)
	if gerr != nil {
		return nil, true, errors.Join(gerr, err)
	}
	return item, true, nil
}

// refusal explains why a task refused a write, from the refusing item.
func (t *Tracker[S]) refusal(op, taskID string, item map[string]types.AttributeValue, cause error) *TaskError {
	e := &TaskError{Op: op, Job: t.cfg.Job, TaskID: taskID, Cause: cause}
	if item == nil {
		e.Err = ErrTaskNotFound
		if fencedOp(op) {
			e.Err = ErrLeaseLost
		}
		return e
	}
	s := S(num(item, "status"))
	e.Status, e.StatusName, e.Attempts = int(s), statusName[S](int(s)), int(num(item, "attempts"))
	e.LeaseOwner, e.LeaseExpiresAt = str(item, "lease_owner"), millis(item, "lease_expires_at")
	switch {
	case fencedOp(op):
		e.Err = ErrLeaseLost
	case s == t.cfg.Running || e.LeaseOwner != "":
		// A lease that expired between the refusal and this check is still
		// reported as locked: the claim that lost the race lost to a
		// worker that took the task over.
		e.Err = ErrTaskLocked
	case s == t.cfg.Succeeded:
		e.Err = ErrTaskSucceeded
	case s == t.cfg.Ignored:
		e.Err = ErrTaskIgnored
	default:
		e.Err = ErrTaskNotReady
	}
	return e
}

// fencedOp reports whether op is a write fenced by the lease token, which
// only a lost lease can refuse.
func fencedOp(op string) bool {
	return op == "record result of" || op == "renew lease of" || op == "release"
}

// writeError wraps an error from DynamoDB that is not a refused condition.
func (t *Tracker[S]) writeError(op, taskID string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(strings.ToLower(api.ErrorMessage()), "size") {
		return fmt.Errorf("%w: %s task %q: %w; keep large payloads in S3 and store a reference in the task", ErrItemTooLarge, op, taskID, err)
	}
	return fmt.Errorf("ddbtrack: %s task %q: %w", op, taskID, err)
}

// Reset moves a task back to Pending with its attempt count at zero, so
// that it runs again; its history, data and last output are kept. It
// refuses a task that a worker holds under an unexpired lease, with a
// [*TaskError] matching ErrTaskLocked, and a missing task with one matching
// ErrTaskNotFound.
func (t *Tracker[S]) Reset(ctx context.Context, taskID string) error {
	if err := t.checkID(taskID); err != nil {
		return err
	}
	var e ddbexpr.Expr
	t.setStatusExpr(&e, taskID, t.cfg.Pending, t.cfg.Now()).
		Set("attempts", numAV(0)).
		Remove("lease_owner", "lease_token", "lease_expires_at", "last_error").
		Where("attribute_exists(#pk) AND NOT (#lease_expires_at > :now)")
	_, err := t.update(ctx, taskID, &e, types.ReturnValueNone)
	item, refused, rerr := t.refused(ctx, taskID, err)
	switch {
	case rerr != nil:
		return rerr
	case refused:
		return t.refusal("reset", taskID, item, err)
	case err != nil:
		return t.writeError("reset", taskID, err)
	}
	t.log.Info("task reset", "task", taskID, "status", t.cfg.Pending.String())
	return nil
}

// renew extends the task's lease to now + lease, fenced by the lease token.
// It sets the expiry to a value rather than adding to it, so a renewal
// whose response was lost can be retried, by the SDK or by the next beat,
// and lands the same way twice: the only refusal is a token that is no
// longer ours, and a token never comes back once a claim has replaced it.
// The update time is left alone, because it is the status index's sort
// key: a heartbeat is not a status change.
func (t *Tracker[S]) renew(ctx context.Context, taskID, token string, lease time.Duration) (time.Time, error) {
	expires := time.UnixMilli(t.cfg.Now().Add(lease).UnixMilli())
	var e ddbexpr.Expr
	e.Set("lease_expires_at", numAV(expires.UnixMilli())).
		Where("#lease_token = :token").
		Value("token", strAV(token))
	_, err := t.update(ctx, taskID, &e, types.ReturnValueNone)
	item, refused, rerr := t.refused(ctx, taskID, err)
	switch {
	case rerr != nil:
		return time.Time{}, rerr
	case refused:
		if item != nil && str(item, "lease_token") == token {
			// Not refused by a lost lease after all; whichever renewal
			// landed last set this expiry.
			return millis(item, "lease_expires_at"), nil
		}
		return time.Time{}, t.refusal("renew lease of", taskID, item, err)
	case err != nil:
		return time.Time{}, t.writeError("renew lease of", taskID, err)
	}
	return expires, nil
}

// release puts a claimed task back where the claim found it, without
// counting the attempt: same status, the attempt count as it was, the lease
// removed. The fence is not lowered, so a fencing token handed to fn's side
// effects stays unique.
//
// A task claimed from an expired lease cannot go back to Running without a
// lease, where no claim would find it; it becomes Failed instead (Ignored
// once the dead attempt reaches the limit), with the dead attempt in its
// history, as the next claim would have recorded it.
func (t *Tracker[S]) release(ctx context.Context, task *Task[S]) error {
	to := task.claimedFrom
	now := t.cfg.Now()
	var e ddbexpr.Expr
	errs, lastErr := task.Errors, task.LastError
	if task.abandonedEntry != nil {
		to = t.cfg.Failed
		if task.Attempts-1 >= task.maxAttempts {
			to = t.cfg.Ignored
		}
		errs, lastErr = appendBounded(task.Errors, t.cfg.ErrorHistory, *task.abandonedEntry), task.abandonedEntry.Message
		e.Set("errors", encodeErrors(errs)).Set("last_error", strAV(lastErr))
	}
	t.setStatusExpr(&e, task.ID, to, now).Add("attempts", numAV(-1))
	if err := t.finishOp(ctx, "release", task, &e, to, now); err != nil {
		return err
	}
	task.Attempts--
	task.Errors, task.LastError = errs, lastErr
	t.log.Info("task released", "task", task.ID, "status", to.String(), "attempts", task.Attempts)
	return nil
}

// heartbeat renews a lease while fn runs. Its goroutine ends before stop
// returns, so nothing of an attempt outlives Start. The goroutine starts
// only when the first renewal is due, from a timer, so that the many tasks
// that end within a third of their lease never start one: starting a
// goroutine per task was the largest single cost of Start in the profile.
type heartbeat struct {
	first    *time.Timer
	stopc    chan struct{}
	done     chan struct{}
	cancel   context.CancelFunc
	stopOnce sync.Once
	// lost is why the lease is gone, or nil; confirmed says that a
	// renewal was refused, so the token can never be ours again. Both are
	// written before done is closed.
	lost      error
	confirmed bool
}

// beat starts renewing the task's lease every lease/3. When the lease is
// lost, it cancels fn's context with a cause matching ErrLeaseLost. That
// happens when a renewal is refused, because another worker claimed the
// task or it was reset or deleted, and also when renewals keep failing
// until the lease runs out by this worker's clock: from then on another
// worker may claim the task, so fn must stop even though nobody may have.
func (t *Tracker[S]) beat(ctx context.Context, task *Task[S], lease time.Duration, cancel context.CancelCauseFunc) *heartbeat {
	// Renewals must not end with the caller's context, which is fn's to
	// react to; they end when fn has returned.
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &heartbeat{stopc: make(chan struct{}), done: make(chan struct{}), cancel: rcancel}
	// Copy what the goroutine needs: fn owns the task while it runs.
	id, token, expires := task.ID, task.leaseToken, task.LeaseExpiresAt
	interval := max(lease/3, time.Millisecond)
	h.first = time.AfterFunc(interval, func() {
		defer close(h.done)
		var timer *time.Timer
		for {
			select {
			case <-h.stopc:
				return
			default:
			}
			// A renewal may take as long as the lease has left, for a slow
			// answer is as good as a fast one until then; at least a beat,
			// as the injected clock may not move with real time.
			timeout := interval
			if left := expires.Sub(t.cfg.Now()); left > timeout {
				timeout = min(left, lease)
			}
			cctx, ccancel := context.WithTimeout(rctx, timeout)
			next, err := t.renew(cctx, id, token, lease)
			ccancel()
			wait := interval
			switch {
			case err == nil:
				expires = next
			case errors.Is(err, ErrLeaseLost):
				h.lost, h.confirmed = err, true
			default:
				select {
				case <-h.stopc:
					return // The renewal was cut short because fn returned.
				default:
				}
				if t.cfg.Now().Before(expires) {
					t.log.Warn("lease renewal failed; retrying", "task", id, "lease_expires_at", expires, "error", err)
					wait = max(interval/4, time.Millisecond)
					break
				}
				h.lost = fmt.Errorf("%w: could not renew the lease of task %q before it expired at %s: %w",
					ErrLeaseLost, id, expires.UTC().Format(time.RFC3339Nano), err)
			}
			if h.lost != nil {
				t.log.Warn("lease lost while the task ran; cancelling it", "task", id, "error", h.lost)
				cancel(h.lost)
				return
			}
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			} else {
				timer.Reset(wait)
			}
			select {
			case <-h.stopc:
				return
			case <-timer.C:
			}
		}
	})
	return h
}

// stop ends the heartbeat, cutting short a renewal in flight, and waits
// for its goroutine. A renewal cut short may still land; it is harmless,
// because the outcome write that follows removes the token it is fenced on.
// It may be called more than once.
func (h *heartbeat) stop() {
	h.stopOnce.Do(func() {
		close(h.stopc)
		h.cancel()
		if h.first.Stop() {
			// The first renewal was not due yet, so no goroutine ran.
			close(h.done)
		}
	})
	<-h.done
}
