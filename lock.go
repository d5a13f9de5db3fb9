package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		item, gerr := t.refusingItem(ctx, taskID, ccf)
		if gerr != nil {
			return nil, errors.Join(gerr, err)
		}
		if item != nil && str(item, "lease_token") == token {
			// The claim was applied, but its response was lost and the
			// SDK's retry was refused by our own write. The task is ours.
			task, derr := decodeTask[S](item)
			if derr != nil {
				return nil, derr
			}
			task.leaseToken = token
			return task, nil
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
			At:      now,
			Message: fmt.Sprintf("abandoned: the lease of worker %s expired at %s before it recorded a result",
				task.LeaseOwner, task.LeaseExpiresAt.UTC().Format(time.RFC3339Nano)),
		}
		t.log.Warn("took over expired lease", "task", taskID, "previous_owner", task.LeaseOwner,
			"expired_at", task.LeaseExpiresAt, "attempt", task.Attempts)
	}
	// Apply the claim to the old item rather than ask for the new one: the
	// result is the same, and the old one is what told us about takeovers.
	task.Status = t.cfg.Running
	task.Attempts++
	task.Fence++
	task.StartedAt, task.UpdatedAt = time.UnixMilli(now.UnixMilli()), time.UnixMilli(now.UnixMilli())
	task.LeaseOwner, task.LeaseExpiresAt, task.leaseToken = t.cfg.Owner, time.UnixMilli(now.Add(lease).UnixMilli()), token
	return task, nil
}

// succeed records the attempt's success with the data and output fn set.
func (t *Tracker[S]) succeed(ctx context.Context, task *Task[S]) error {
	var e ddbexpr.Expr
	t.setStatusExpr(&e, task.ID, t.cfg.Succeeded, t.cfg.Now()).
		SetExpr("#succeeded_at = :now").
		Set("attempts", numAV(0)).
		Remove("last_error")
	if task.outputSet && task.output != nil {
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
	if task.abandonedEntry != nil {
		e.Set("errors", encodeErrors(appendBounded(task.Errors, t.cfg.ErrorHistory, *task.abandonedEntry)))
	}
	return t.finish(ctx, task, &e, t.cfg.Succeeded)
}

// fail records the attempt's failure: the task becomes Failed, or Ignored
// once the attempt count reaches MaxAttempts. Data and output are left as
// they were, so the next attempt starts from the same input.
func (t *Tracker[S]) fail(ctx context.Context, task *Task[S], msg, stack string) error {
	to := t.cfg.Failed
	if task.Attempts >= t.cfg.MaxAttempts {
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
	var e ddbexpr.Expr
	t.setStatusExpr(&e, task.ID, to, now).
		Set("errors", encodeErrors(appendBounded(task.Errors, t.cfg.ErrorHistory, entries...))).
		Set("last_error", strAV(rec.Message))
	if err := t.finish(ctx, task, &e, to); err != nil {
		return err
	}
	log := t.log.With("task", task.ID, "attempt", task.Attempts, "status", to.String(), "error", rec.Message)
	if to == t.cfg.Ignored {
		log.Error("task ignored", "max_attempts", t.cfg.MaxAttempts)
	} else {
		log.Warn("task failed", "max_attempts", t.cfg.MaxAttempts)
	}
	return nil
}

// finish writes the attempt's outcome and releases the lease, fenced by the
// lease token so that a worker whose lease was lost changes nothing.
func (t *Tracker[S]) finish(ctx context.Context, task *Task[S], e *ddbexpr.Expr, to S) error {
	e.Remove("lease_owner", "lease_token", "lease_expires_at").
		Where("#lease_token = :token").
		Value("token", strAV(task.leaseToken))
	_, err := t.update(ctx, task.ID, e, types.ReturnValueNone)
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		if err != nil {
			return t.writeError("record result of", task.ID, err)
		}
		return nil
	}
	item, gerr := t.refusingItem(ctx, task.ID, ccf)
	if gerr != nil {
		return errors.Join(gerr, err)
	}
	if landed(item, task.Fence, int(to)) {
		// The write was applied, its response lost, and the SDK's retry
		// refused by the write itself: the outcome is recorded.
		return nil
	}
	return t.refusal("record result of", task.ID, item, err)
}

// landed reports whether item shows the outcome of the attempt with the
// given fencing token already written: same fence, no lease, and the
// expected status. No other attempt can leave that state, because any
// other claim would have raised the fence.
func landed(item map[string]types.AttributeValue, fence int64, status int) bool {
	return item != nil && num(item, "fence") == fence && str(item, "lease_token") == "" && int(num(item, "status")) == status
}

// setStatusExpr adds the status, its name, its index key and the update
// time to e, and now as the value :now. Every write that changes a status
// goes through it, so the three attributes never disagree.
func (t *Tracker[S]) setStatusExpr(e *ddbexpr.Expr, taskID string, s S, now time.Time) *ddbexpr.Expr {
	item := make(map[string]types.AttributeValue, 3)
	t.setStatus(item, taskID, s)
	return e.Set("status", item["status"]).
		Set("status_name", item["status_name"]).
		Set("status_key", item["status_key"]).
		SetExpr("#updated_at = :now").
		Value("now", numAV(now.UnixMilli()))
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

// refusingItem returns the item that refused a conditional write: the one
// DynamoDB sent back with the refusal, or, from servers that do not send it
// (dynalite), one strongly consistent read. It returns nil if the task does
// not exist.
func (t *Tracker[S]) refusingItem(ctx context.Context, taskID string, ccf *types.ConditionalCheckFailedException) (map[string]types.AttributeValue, error) {
	if len(ccf.Item) > 0 {
		return ccf.Item, nil
	}
	return t.getItem(ctx, taskID)
}

// refusal explains why a task refused a write, from the refusing item.
func (t *Tracker[S]) refusal(op, taskID string, item map[string]types.AttributeValue, cause error) *TaskError {
	e := &TaskError{Op: op, Job: t.cfg.Job, TaskID: taskID, Cause: cause}
	if item == nil {
		e.Err = ErrTaskNotFound
		if op == "record result of" {
			e.Err = ErrLeaseLost
		}
		return e
	}
	s := S(num(item, "status"))
	e.Status, e.StatusName, e.Attempts = int(s), statusName[S](int(s)), int(num(item, "attempts"))
	e.LeaseOwner, e.LeaseExpiresAt = str(item, "lease_owner"), millis(item, "lease_expires_at")
	switch {
	case op == "record result of":
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
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		item, gerr := t.refusingItem(ctx, taskID, ccf)
		if gerr != nil {
			return errors.Join(gerr, err)
		}
		return t.refusal("reset", taskID, item, err)
	case err != nil:
		return t.writeError("reset", taskID, err)
	}
	t.log.Info("task reset", "task", taskID, "status", t.cfg.Pending.String())
	return nil
}
