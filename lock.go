package ddbtrack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/ddbtrack/ddbtrack/internal/ddbexpr"
	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file is the one home of every change to a task's item: create,
// claim, renew, succeed (alone or with the task's own writes in one
// transaction), fail, release, cancel, reset, requeue and delete. Each is a
// function that describes one conditional write, and [Tracker.send] sends
// it and explains a refusal. None reads first and then writes, because a
// read is stale as soon as it returns. A claim is conditioned on the task's
// status, due time and lease; every later write of the attempt is fenced by
// the claim's random lease token, which only the claiming worker knows.
//
// A write whose response is lost may have been applied. The SDK then sends
// it again, and the second try is refused by the first one's effect. Each
// write therefore says how to recognise its own effect in the refusing
// item (write.landed), so that it is reported as done, not as a refusal.

// write is one conditional write to a task's item, built once so that every
// try sends the same request.
type write struct {
	op     string                          // what the caller asked for, for errors: "start", "record outcome of", ...
	taskID string                          // the task written, or the job for the job's own item
	job    bool                            // the job's own item (summary.go), keyed by the job alone
	put    map[string]types.AttributeValue // a new item, for PutItem
	delete bool                            // DeleteItem instead of UpdateItem
	expr   ddbexpr.Expr                    // the update and condition, or only the condition
	// returnNew asks for the item as the write left it.
	returnNew bool
	// token is the lease token that fences the write, or "" for a write
	// that no lease fences.
	token string
	// landed reports whether the item that refused the write shows this
	// write's own effect: an earlier try was applied and its response
	// lost.
	landed func(item map[string]types.AttributeValue) bool
	// persist keeps trying through errors and outages until ctx ends, for
	// a write whose result must be settled: a claim's and an outcome's.
	persist bool
	// with are writes to commit in one transaction with this one, which is
	// then an update and comes first.
	with []types.TransactWriteItem
}

// writeParts are the parts of a tracker's writes that depend only on its
// Config, made once by New rather than for every write.
type writeParts[S Status] struct {
	// exprs holds the expressions of the tracker's writes, written out
	// and checked once per shape; only their values change.
	exprs ddbexpr.Cache
	table *string // Config.Table, for the SDK's inputs, which only read it
	// startable holds the startable statuses, in order, and placeholders
	// their names in a claim's and a cancel's conditions: s0, s1, ...
	startable    []S
	placeholders []string
	claimCond    string
	cancelCond   string
	// Values that writes send over and over, made once, like those
	// below: none may be changed.
	job, owner, running types.AttributeValue
	// statuses holds what place writes for each status of the tracker's
	// roles and of Config.Startable.
	statuses map[S]*statusValues
}

// statusValues are the values that place writes for one status.
type statusValues struct {
	num, name types.AttributeValue
	keys      []types.AttributeValue // the status index partition of each shard
}

// Attribute values that writes send over and over, made once. The SDK only
// reads what it is sent, and so does every write here: none may be
// changed.
var (
	zeroAV     = numAV(0)
	oneAV      = numAV(1)
	minusOneAV = numAV(-1)
	emptyAV    = strAV("")
)

// newWriteParts makes the parts of t's writes from its Config.
func (t *Tracker[S]) newWriteParts() *writeParts[S] {
	cfg := &t.cfg
	p := &writeParts[S]{
		table: aws.String(cfg.Table), job: strAV(cfg.Job), owner: strAV(cfg.Owner), running: numAV(int64(cfg.Running)),
		statuses: make(map[S]*statusValues),
	}
	for _, s := range []S{cfg.Pending, cfg.Running, cfg.Failed, cfg.Succeeded, cfg.Ignored} {
		p.statuses[s] = nil
	}
	for s := range t.startable {
		p.startable = append(p.startable, s)
		p.statuses[s] = nil
	}
	for s := range p.statuses {
		sv := &statusValues{num: numAV(int64(s)), name: strAV(statusName[S](int(s))), keys: make([]types.AttributeValue, cfg.Shards)}
		for shard := range sv.keys {
			sv.keys[shard] = strAV(keys.Status(cfg.Job, int(s), shard))
		}
		p.statuses[s] = sv
	}
	slices.Sort(p.startable)
	ph := make([]string, len(p.startable))
	for i := range p.startable {
		p.placeholders = append(p.placeholders, "s"+strconv.Itoa(i))
		ph[i] = ":" + p.placeholders[i]
	}
	in := "#status IN (" + strings.Join(ph, ", ") + ")"
	// The claim's own :status is Running: a claim takes over a Running
	// task whose lease has run out.
	p.claimCond = "attribute_exists(#pk) AND ((" + in + " AND #due_at <= :now) OR (#status = :status AND #lease_expires_at < :now))"
	p.cancelCond = "attribute_exists(#pk) AND (" + in + " OR (#status = :running AND #lease_expires_at < :now))"
	return p
}

// startableValues gives e the values of the placeholders :s0, :s1, ... of
// claimCond and cancelCond.
func (t *Tracker[S]) startableValues(e *ddbexpr.Expr) {
	for i, s := range t.writes.startable {
		e.Value(t.writes.placeholders[i], t.writes.statuses[s].num)
	}
}

// send sends w and returns the item as it left it (with returnNew), or the
// item that refused it together with a [*TaskError] that explains why. A
// refusal that shows w's own effect is no error: send returns the refusing
// item and nil.
func (t *Tracker[S]) send(ctx context.Context, w *write) (map[string]types.AttributeValue, error) {
	b, err := t.writes.exprs.Build(&w.expr)
	if err != nil {
		return nil, err // A malformed expression is a bug in this file.
	}
	var wait *pause        // made at the first retry, which most writes never need
	var sends atomic.Int32 // tries that reached the wire, counting the SDK's retries
	for {
		out, err := t.request(ctx, w, b, &sends)
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			return out, nil
		case errors.As(err, &ccf) || isOwnTxRefusal(err):
			item, rerr := t.refusingItem(ctx, w, err)
			switch {
			case rerr != nil:
				return nil, rerr
			case w.landed != nil && w.landed(item):
				return item, nil
			case item == nil && w.delete && sends.Load() > 1:
				// An earlier try deleted it, or someone else did
				// meanwhile: either way the task is gone, as asked.
				return nil, nil
			}
			return item, t.refusal(w, item, err)
		case w.persist && !permanent(err) && ctx.Err() != nil:
			return t.settle(ctx, w, err)
		case !w.persist || permanent(err) || ctx.Err() != nil:
			return nil, t.writeError(w, err)
		}
		t.log.LogAttrs(ctx, warnLevel, "write failed; trying again", slog.String(logTask, w.taskID), slog.String(logOp, w.op), errAttr(err))
		if wait == nil {
			wait = newPause(2 * time.Second)
		}
		if serr := sleep(ctx, wait.next()); serr != nil {
			return t.settle(ctx, w, err)
		}
	}
}

// request sends one try of w.
func (t *Tracker[S]) request(ctx context.Context, w *write, b ddbexpr.Built, sends *atomic.Int32) (map[string]types.AttributeValue, error) {
	table := t.writes.table
	switch {
	case w.put != nil:
		_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: table, Item: w.put, ConditionExpression: b.Condition,
			ExpressionAttributeNames: b.Names, ExpressionAttributeValues: b.Values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return nil, err
	}
	key := t.keyOf(w)
	switch {
	case w.delete:
		_, err := t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: table, Key: key, ConditionExpression: b.Condition,
			ExpressionAttributeNames: b.Names, ExpressionAttributeValues: b.Values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}, countSends(sends))
		return nil, err
	case len(w.with) > 0:
		return nil, t.transact(ctx, w, b, table, key)
	}
	rv := types.ReturnValueNone
	if w.returnNew {
		rv = types.ReturnValueAllNew
	}
	out, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: table, Key: key, UpdateExpression: b.Update, ConditionExpression: b.Condition,
		ExpressionAttributeNames: b.Names, ExpressionAttributeValues: b.Values,
		ReturnValues: rv, ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// transact sends w's update, first, and the writes added with it as one
// TransactWriteItems. Its client request token is the lease token, which
// is unique to the attempt, so that DynamoDB recognises a retry of a
// transaction it applied as the same one for ten minutes, and answers it
// as applied.
func (t *Tracker[S]) transact(ctx context.Context, w *write, b ddbexpr.Built, table *string, key map[string]types.AttributeValue) error {
	items := make([]types.TransactWriteItem, 0, 1+len(w.with))
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName: table, Key: key, UpdateExpression: b.Update, ConditionExpression: b.Condition,
		ExpressionAttributeNames: b.Names, ExpressionAttributeValues: b.Values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}})
	items = append(items, w.with...)
	_, err := t.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: items, ClientRequestToken: aws.String(w.token),
	})
	if err == nil || isOwnTxRefusal(err) {
		return err
	}
	return txError(err)
}

// countSends returns an SDK option that counts the tries of one request,
// the SDK's own retries included. Only deletes need the count, to tell
// that a refusal may answer an earlier try of their own; the rest recognise
// their effect in the item.
func countSends(n *atomic.Int32) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Add(middleware.FinalizeMiddlewareFunc("ddbtrackCountSends",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					n.Add(1)
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// refusingItem returns the item that refused a write: the one DynamoDB sent
// back with the refusal, or, from servers that do not send it, one strongly
// consistent read, tried again through errors if the write persists. It is
// nil if the task does not exist.
func (t *Tracker[S]) refusingItem(ctx context.Context, w *write, refusal error) (map[string]types.AttributeValue, error) {
	if item := itemOfRefusal(refusal); item != nil {
		return item, nil
	}
	wait := newPause(2 * time.Second)
	for {
		item, err := t.readKey(ctx, t.keyOf(w), w.taskID)
		switch {
		case err == nil:
			return item, nil
		case w.persist && !permanent(err) && ctx.Err() != nil:
			// FinishTimeout ran out during the read: what the refusal
			// means, and so whether this write's earlier try landed, is
			// unknown.
			return nil, t.unsettled(w, err)
		case !w.persist || permanent(err):
			return nil, errors.Join(err, t.writeError(w, refusal))
		}
		if serr := sleep(ctx, wait.next()); serr != nil {
			return nil, t.unsettled(w, err)
		}
	}
}

// itemOfRefusal returns the item that a refusal carries, if any: a
// ConditionalCheckFailedException's, or the task update's reason of a
// cancelled transaction.
func itemOfRefusal(err error) map[string]types.AttributeValue {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) && len(ccf.Item) > 0 {
		return ccf.Item
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) > 0 && len(tce.CancellationReasons[0].Item) > 0 {
		return tce.CancellationReasons[0].Item
	}
	return nil
}

// read returns the task's item, read with strong consistency, or nil if the
// task does not exist.
func (t *Tracker[S]) read(ctx context.Context, taskID string) (map[string]types.AttributeValue, error) {
	return t.readKey(ctx, t.key(taskID), taskID)
}

// readKey returns the item of key, read with strong consistency, or nil if
// there is none; name says what it is, for errors.
func (t *Tracker[S]) readKey(ctx context.Context, key map[string]types.AttributeValue, name string) (map[string]types.AttributeValue, error) {
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.cfg.Table),
		Key:            key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: get %q: %w", name, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func (t *Tracker[S]) key(taskID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: strAV(keys.Task(t.cfg.Job, taskID))}
}

// keyOf returns the key of the item w writes.
func (t *Tracker[S]) keyOf(w *write) map[string]types.AttributeValue {
	if w.job {
		return map[string]types.AttributeValue{attrPK: strAV(t.cfg.Job)}
	}
	return t.key(w.taskID)
}

// refusal explains why a task refused a write, from the refusing item.
func (t *Tracker[S]) refusal(w *write, item map[string]types.AttributeValue, cause error) *TaskError {
	e := &TaskError{Op: w.op, Job: t.cfg.Job, TaskID: w.taskID, Cause: cause}
	if item == nil {
		e.Err = ErrTaskNotFound
		if w.token != "" {
			e.Err = ErrLeaseLost
		}
		return e
	}
	s := S(num(item, attrStatus))
	e.Status, e.StatusName, e.Attempts = int(s), statusName[S](int(s)), int(num(item, attrAttempts))
	e.LeaseOwner, e.LeaseExpiresAt = str(item, attrLeaseOwner), millis(item, attrLeaseExpiresAt)
	e.DueAt = millis(item, attrDueAt)
	now := t.cfg.Now()
	switch {
	case w.token != "" && str(item, attrLeaseToken) == w.token && item[attrCancelledAt] != nil:
		// The lease is still this attempt's, but a cancel was asked for.
		e.Err = ErrCancelled
	case w.token != "":
		e.Err = ErrLeaseLost
	case w.put != nil:
		e.Err = ErrTaskExists
	case s == t.cfg.Running || e.LeaseOwner != "":
		// A lease that expired between the refusal and this check is still
		// reported as locked: the write that lost the race lost to a
		// worker that took the task over.
		e.Err = ErrTaskLocked
	case t.startable[s] && e.DueAt.After(now):
		e.Err = ErrTaskNotDue
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
func (t *Tracker[S]) writeError(w *write, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" && strings.Contains(strings.ToLower(api.ErrorMessage()), "size") {
		return fmt.Errorf("%w: %s task %q: %w; keep large payloads in S3 and store a reference in the task", ErrItemTooLarge, w.op, w.taskID, err)
	}
	return fmt.Errorf("ddbtrack: %s task %q: %w", w.op, w.taskID, err)
}

// settleTimeout bounds the last read of a persistent write that ran out of
// time.
const settleTimeout = 2 * time.Second

// settle is the end of a persistent write that ran out of time with no
// answer: its last try may still have been applied, so one last read, with
// a moment of its own, looks for its effect. Only if that read cannot tell
// is the result unknown.
func (t *Tracker[S]) settle(ctx context.Context, w *write, last error) (map[string]types.AttributeValue, error) {
	if w.landed != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		if item, err := t.readKey(rctx, t.keyOf(w), w.taskID); err == nil && w.landed(item) {
			return item, nil
		}
	}
	return nil, t.unsettled(w, last)
}

// unsettled reports a persistent write that ran out of time with its
// result unknown.
func (t *Tracker[S]) unsettled(w *write, last error) error {
	return fmt.Errorf("%w: %s task %q: no answer from DynamoDB within Config.FinishTimeout (%v); last error: %w",
		ErrUnavailable, w.op, w.taskID, t.cfg.FinishTimeout, last)
}

// permanent reports whether an error will not go away by retrying: the
// table is missing, access is denied, or a request is malformed.
func permanent(err error) bool {
	if errors.Is(err, ErrInvalidOption) || errors.Is(err, ErrTransaction) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
		"ValidationException", "MissingAuthenticationTokenException", "InvalidSignatureException",
		"UnknownOperationException", "IdempotentParameterMismatchException":
		return true
	}
	return false
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// place adds the attributes of a task in status s, due at due, with set:
// the status, its name, the status index's keys and the due time. Every
// write that changes a status goes through it, so they never disagree.
func (t *Tracker[S]) place(set func(attr string, v types.AttributeValue), taskID string, s S, due time.Time) {
	shard := keys.Shard(taskID, t.cfg.Shards)
	if sv := t.writes.statuses[s]; sv != nil {
		set(attrStatus, sv.num)
		set(attrStatusName, sv.name)
		set(attrStatusKey, sv.keys[shard])
	} else {
		set(attrStatus, numAV(int64(s)))
		set(attrStatusName, strAV(statusName[S](int(s))))
		set(attrStatusKey, strAV(keys.Status(t.cfg.Job, int(s), shard)))
	}
	ms := due.UnixMilli()
	set(attrDueAt, numAV(ms))
	set(attrOrderKey, strAV(keys.Order(ms, taskID)))
}

// move sets e to move a task to status s, due at due, at now: place's
// attributes, the update time (as :now), and the expiry that only a
// Succeeded task has.
func (t *Tracker[S]) move(e *ddbexpr.Expr, taskID string, s S, due, now time.Time) *ddbexpr.Expr {
	t.place(func(attr string, v types.AttributeValue) { e.Set(attr, v) }, taskID, s, due)
	e.SetExpr("#updated_at = :now").Value("now", numAV(now.UnixMilli()))
	if exp := t.expiresAt(s, now); !exp.IsZero() {
		e.Set(attrExpiresAt, numAV(exp.Unix()))
	} else {
		e.Remove(attrExpiresAt)
	}
	return e
}

// expiresAt returns when a task that moves to status s at now may be
// deleted by time to live, or the zero time if it is to be kept. It is
// whole seconds, the only unit time to live reads.
func (t *Tracker[S]) expiresAt(s S, now time.Time) time.Time {
	if s != t.cfg.Succeeded || t.cfg.Retention <= 0 {
		return time.Time{}
	}
	return time.Unix(now.Add(t.cfg.Retention).Unix(), 0).UTC()
}

// leaseAttrs are the attributes of a claim, which every write that ends an
// attempt removes.
var leaseAttrs = []string{attrLeaseOwner, attrLeaseToken, attrLeaseExpiresAt, attrClaimedFrom, attrClaimedDue, attrAbandonedOwner, attrAbandonedUntil}

// createAttrs is how many attributes createWrite stores at most, to size
// its item's map once.
const createAttrs = 14

// createWrite stores a new Pending task, due at due, unless the task exists.
// Its item carries a token of its own, by which a retry recognises it.
func (t *Tracker[S]) createWrite(taskID string, data types.AttributeValue, due, now time.Time) *write {
	token := newToken()[:16]
	at := numAV(now.UnixMilli())
	item := make(map[string]types.AttributeValue, createAttrs)
	item[attrPK] = strAV(keys.Task(t.cfg.Job, taskID))
	item[attrJob] = t.writes.job
	item[attrTaskID] = strAV(taskID)
	item[attrAttempts] = zeroAV
	item[attrFence] = zeroAV
	item[attrCreatedAt] = at
	item[attrUpdatedAt] = at
	item[attrCreateToken] = strAV(token)
	t.place(func(attr string, v types.AttributeValue) { item[attr] = v }, taskID, t.cfg.Pending, due)
	if data != nil {
		item[attrData] = data
	}
	w := &write{op: "create", taskID: taskID, put: item}
	w.expr.Where("attribute_not_exists(#pk)")
	w.landed = func(item map[string]types.AttributeValue) bool { return str(item, attrCreateToken) == token }
	return w
}

// claimWrite takes a lease on the task until now+lease, if it is startable
// and due, or Running under a lease that has expired: a worker that held it
// died or hung, and this is how its task is recovered. The claim copies
// what a release or the outcome will need from the item it replaces: the
// status it was claimed from, and the lease it took over, if any.
func (t *Tracker[S]) claimWrite(taskID, token string, lease time.Duration, now time.Time) *write {
	w := &write{op: "start", taskID: taskID, returnNew: true, persist: true}
	expires := now.Add(lease)
	e := t.move(&w.expr, taskID, t.cfg.Running, expires, now).
		SetExpr("#started_at = :now, #claimed_from = #status, #claimed_due = #due_at").
		SetExpr("#abandoned_owner = if_not_exists(#lease_owner, :none), #abandoned_until = if_not_exists(#lease_expires_at, :zero)").
		Set(attrLeaseOwner, t.writes.owner).
		Set(attrLeaseToken, strAV(token)).
		SetExpr("#lease_expires_at = :due_at"). // A Running task is due when its lease runs out.
		Add(attrAttempts, oneAV).
		Add(attrFence, oneAV).
		Value("none", emptyAV).
		Value("zero", zeroAV).
		Where(t.writes.claimCond)
	t.startableValues(e)
	w.landed = func(item map[string]types.AttributeValue) bool { return str(item, attrLeaseToken) == token }
	return w
}

// claimable reports whether a claim at time now would be accepted by item.
func (t *Tracker[S]) claimable(item map[string]types.AttributeValue, now time.Time) bool {
	s := S(num(item, attrStatus))
	if t.startable[s] {
		return num(item, attrDueAt) <= now.UnixMilli()
	}
	return s == t.cfg.Running && num(item, attrLeaseExpiresAt) < now.UnixMilli()
}

// renewWrite extends the lease to expires. It sets the expiry to a value
// rather than adding to it, so a renewal whose response was lost lands the
// same way twice. A cancel asked for meanwhile refuses it: that is how the
// worker learns of the cancel, from the renewal itself. The update time
// and due time are left alone, because they are the status index's: a
// renewal is not a status change.
func (t *Tracker[S]) renewWrite(taskID, token string, expires time.Time) *write {
	w := &write{op: "renew lease of", taskID: taskID, token: token}
	w.expr.Set(attrLeaseExpiresAt, numAV(expires.UnixMilli())).
		Where("#lease_token = :token AND attribute_not_exists(#cancelled_at)").
		Value("token", strAV(token))
	w.landed = func(item map[string]types.AttributeValue) bool {
		return str(item, attrLeaseToken) == token && item[attrCancelledAt] == nil
	}
	return w
}

// outcomeWrite begins the write that ends attempt a: it moves the task to
// status s, due at due, removes the lease, records the attempt's fence as
// the outcome's, and is fenced by the lease token. Unless the outcome is a
// cancellation, a cancel asked for meanwhile refuses it, so that a cancel
// that reached DynamoDB first always wins. A retry recognises the write by
// its fence among the item's recent outcomes, which claims leave alone and
// later outcomes keep.
func (t *Tracker[S]) outcomeWrite(a *attempt[S], op string, s S, due, now time.Time, cancel bool) *write {
	w := &write{op: op, taskID: a.task.ID, token: a.token, persist: true}
	fence := a.task.Fence
	t.move(&w.expr, a.task.ID, s, due, now).
		Set(attrOutcomes, withOutcome(a.outcomes, fence)).
		Remove(leaseAttrs...).
		Value("token", strAV(a.token))
	if cancel {
		w.expr.Where("#lease_token = :token")
	} else {
		w.expr.Where("#lease_token = :token AND attribute_not_exists(#cancelled_at)")
	}
	w.landed = func(item map[string]types.AttributeValue) bool { return slices.Contains(outcomes(item), fence) }
	return w
}

// succeedWrite records the attempt's success with the data and output its
// function staged, and the history if it changed, and commits the writes
// the function added in the same transaction.
func (t *Tracker[S]) succeedWrite(a *attempt[S], history []ErrorRecord, now time.Time) *write {
	w := t.outcomeWrite(a, "record success of", t.cfg.Succeeded, now, now, false)
	st := a.task.staged
	w.expr.SetExpr("#succeeded_at = :now").Set(attrAttempts, zeroAV).Remove(attrLastError)
	if st.output != nil {
		w.expr.Set(attrOutput, st.output)
	} else {
		w.expr.Remove(attrOutput)
	}
	if st.dataSet {
		if st.data != nil {
			w.expr.Set(attrData, st.data)
		} else {
			w.expr.Remove(attrData)
		}
	}
	if history != nil {
		w.expr.Set(attrErrors, encodeErrors(history))
	}
	w.with = st.writes
	return w
}

// failWrite records a failure: the task becomes s (Failed or Ignored), due
// again at due, with the new history and last error.
func (t *Tracker[S]) failWrite(a *attempt[S], s S, history []ErrorRecord, lastError string, due, now time.Time) *write {
	w := t.outcomeWrite(a, "record failure of", s, due, now, false)
	w.expr.Set(attrErrors, encodeErrors(history)).Set(attrLastError, strAV(lastError))
	return w
}

// releaseWrite puts the task in status s, due at due, and uncounts the
// attempt. The fence is not lowered, so a fencing token handed to the
// function's side effects stays unique. A takeover's release also records
// the dead attempt, which stays counted: history and lastError are then
// set.
func (t *Tracker[S]) releaseWrite(a *attempt[S], s S, history []ErrorRecord, lastError *string, due, now time.Time) *write {
	w := t.outcomeWrite(a, "release", s, due, now, false)
	w.expr.Add(attrAttempts, minusOneAV)
	if history != nil {
		w.expr.Set(attrErrors, encodeErrors(history)).Set(attrLastError, strAV(*lastError))
	}
	return w
}

// cancelledWrite records that the attempt ended because the task was
// cancelled: it becomes Ignored, keeping the cancel's time and reason.
func (t *Tracker[S]) cancelledWrite(a *attempt[S], history []ErrorRecord, lastError string, now time.Time) *write {
	w := t.outcomeWrite(a, "record cancellation of", t.cfg.Ignored, now, now, true)
	w.expr.Set(attrLastError, strAV(lastError))
	if history != nil {
		w.expr.Set(attrErrors, encodeErrors(history))
	}
	return w
}

func cancelMessage(reason string) string { return truncate("cancelled: "+reason, maxMessageBytes) }

// cancelWrite cancels a task that no worker holds: it becomes Ignored at
// once, with the time and reason of the cancel.
func (t *Tracker[S]) cancelWrite(taskID, reason string, now time.Time) *write {
	w := &write{op: "cancel", taskID: taskID}
	e := t.move(&w.expr, taskID, t.cfg.Ignored, now, now).
		Set(attrCancelledAt, numAV(now.UnixMilli())).
		Set(attrCancelReason, strAV(reason)).
		Set(attrLastError, strAV(cancelMessage(reason))).
		Remove(leaseAttrs...).
		Value("running", t.writes.running).
		Where(t.writes.cancelCond)
	t.startableValues(e)
	at := now.UnixMilli()
	w.landed = func(item map[string]types.AttributeValue) bool {
		return num(item, attrCancelledAt) == at && str(item, attrCancelReason) == reason
	}
	return w
}

// cancelRequestWrite asks the worker that holds a task to stop: the next
// renewal of its lease is refused, which tells it. A second request keeps
// the first one's time and reason, so the write may be sent twice.
func (t *Tracker[S]) cancelRequestWrite(taskID, reason string, now time.Time) *write {
	w := &write{op: "cancel", taskID: taskID}
	w.expr.SetExpr("#cancelled_at = if_not_exists(#cancelled_at, :now), #cancel_reason = if_not_exists(#cancel_reason, :reason)").
		Where("#status = :running AND #lease_expires_at >= :now").
		Value("now", numAV(now.UnixMilli())).
		Value("reason", strAV(reason)).
		Value("running", numAV(int64(t.cfg.Running)))
	return w
}

// requeueWrite makes a task Pending and due now, with its attempt count at
// zero, no lease and no cancel, if cond holds; its history, data and last
// output are kept. Reset and Requeue differ only in cond.
func (t *Tracker[S]) requeueWrite(op, taskID, cond string, now time.Time) *write {
	w := &write{op: op, taskID: taskID}
	t.move(&w.expr, taskID, t.cfg.Pending, now, now).
		Set(attrAttempts, zeroAV).
		Remove(leaseAttrs...).
		Remove(attrLastError, attrCancelledAt, attrCancelReason).
		Where(cond)
	return w
}

// resetWrite is Reset's write: any task no worker holds.
func (t *Tracker[S]) resetWrite(taskID string, now time.Time) *write {
	return t.requeueWrite("reset", taskID, "attribute_exists(#pk) AND NOT (#lease_expires_at > :now)", now)
}

// requeueTaskWrite is Requeue's write of one task it listed: it moves the
// task only if it still has the status, update time and fence it was
// listed with, and no worker holds it. The fence guards against a claim and
// its outcome that both fell within the millisecond of the listing, which
// the update time alone would miss. A retry recognises the move by the
// task being Pending with the same fence and this write's time.
func (t *Tracker[S]) requeueTaskWrite(task *Task[S], now time.Time) *write {
	w := t.requeueWrite("requeue", task.ID,
		"#status = :was_status AND #updated_at = :was_updated AND #fence = :was_fence AND NOT (#lease_expires_at > :now)", now)
	w.expr.Value("was_status", numAV(int64(task.Status))).
		Value("was_updated", numAV(task.UpdatedAt.UnixMilli())).
		Value("was_fence", numAV(task.Fence))
	at := now.UnixMilli()
	w.landed = func(item map[string]types.AttributeValue) bool {
		return S(num(item, attrStatus)) == t.cfg.Pending && num(item, attrFence) == task.Fence && num(item, attrUpdatedAt) == at
	}
	return w
}

// registerWrite records that the job exists, in its own item, listed in
// the status index under jobsKey, and adds the statuses this tracker
// claims tasks from to the job's (see recount.go). It sets nothing that
// changes, so it may be sent any number of times.
func (t *Tracker[S]) registerWrite(now time.Time) *write {
	w := &write{op: "register job", taskID: t.cfg.Job, job: true}
	claimable := make([]string, 0, len(t.startable))
	for s := range t.startable {
		claimable = append(claimable, strconv.Itoa(int(s)))
	}
	w.expr.Set(attrJob, strAV(t.cfg.Job)).
		Set(attrStatusKey, strAV(jobsKey)).
		Set(attrOrderKey, strAV(t.cfg.Job)).
		SetExpr("#registered_at = if_not_exists(#registered_at, :now)").
		Add(attrClaimable, &types.AttributeValueMemberNS{Value: claimable}).
		Value("now", numAV(now.UnixMilli()))
	return w
}

// removedWrite records that an operator is about to take tasks out of
// their status, which a refresh of the shared counts must not assume they
// keep. A job with no item has no shared counts, so it is not made one.
func (t *Tracker[S]) removedWrite(now time.Time) *write {
	w := &write{op: "record a removal from job", taskID: t.cfg.Job, job: true}
	w.expr.Set(attrRemovedAt, numAV(now.UnixMilli())).Where("attribute_exists(#pk)")
	return w
}

// countClaimWrite takes the lease on a refresh of the job's shared counts,
// if they are older than maxAge and no other refresh holds it. It does not
// register the job: a viewer that mistyped a job's name must not make it
// a job.
func (t *Tracker[S]) countClaimWrite(token string, now time.Time, maxAge time.Duration) *write {
	w := &write{op: "refresh the counts of job", taskID: t.cfg.Job, job: true}
	w.expr.Value("now", numAV(now.UnixMilli())).
		Set(attrCountingOwner, strAV(token)).
		Set(attrCountingUntil, numAV(now.Add(countLease).UnixMilli())).
		Where("(attribute_not_exists(#counting_until) OR #counting_until < :now) AND "+
			"(attribute_not_exists(#counted_at) OR #counted_at < :stale)").
		Value("stale", numAV(now.Add(-maxAge).UnixMilli()))
	return w
}

// countRenewWrite extends the lease on a refresh of the shared counts
// that token holds to until.
func (t *Tracker[S]) countRenewWrite(token string, until time.Time) *write {
	w := &write{op: "renew the refresh of the counts of job", taskID: t.cfg.Job, job: true}
	w.expr.Set(attrCountingUntil, numAV(until.UnixMilli())).
		Where("#counting_token = :token").
		Value("token", strAV(token))
	return w
}

// countStoreWrite stores fresh shared counts, taken at at, with the bases
// of the next refresh, and ends the refresh that token holds; with no
// counts, it only ends the refresh.
func (t *Tracker[S]) countStoreWrite(token string, counts map[string]types.AttributeValue, base *countBase, at time.Time) *write {
	w := &write{op: "store the counts of job", taskID: t.cfg.Job, job: true}
	if counts != nil {
		w.expr.Set(attrCounts, &types.AttributeValueMemberM{Value: counts}).
			Set(attrCountBase, base.av()).
			Set(attrCountedAt, numAV(at.UnixMilli()))
	}
	w.expr.Remove(attrCountingOwner, attrCountingUntil).
		Where("#counting_token = :token").
		Value("token", strAV(token))
	return w
}

// deleteWrite deletes a task, whatever its state.
func (t *Tracker[S]) deleteWrite(taskID string) *write {
	w := &write{op: "delete", taskID: taskID, delete: true}
	w.expr.Where("attribute_exists(#pk)")
	return w
}

// deleteIdleWrite deletes a task if it still has the status it was listed
// with and no worker holds it.
func (t *Tracker[S]) deleteIdleWrite(task *Task[S], now time.Time) *write {
	w := &write{op: "delete", taskID: task.ID, delete: true}
	w.expr.Where("#status = :status AND NOT (#lease_expires_at > :now)").
		Value("status", numAV(int64(task.Status))).
		Value("now", numAV(now.UnixMilli()))
	return w
}

// newToken returns a random token: a lease token, or a create's. Tokens
// only need to be unique; 128 random bits make a collision implausible.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}
