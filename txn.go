package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file checks the writes a task's function adds to its success, which
// lock.go commits with it in one TransactWriteItems.

// DynamoDB's limits on one transaction.
const (
	maxTxItems = 100
	maxTxBytes = 4 << 20
)

// AddWrites adds DynamoDB writes (puts, updates, deletes and condition
// checks, on any table) to commit in one transaction with the task's
// success. If the function returns nil, the success and these writes are
// applied together or not at all: a worker whose lease was lost changes
// nothing, and the attempt's result matches ErrLeaseLost. If the function
// fails, they are dropped. A condition of theirs that fails makes the
// attempt a failure, recorded with DynamoDB's reason for each item, and
// retried as any other.
//
// The transaction's client request token is the attempt's own, so a retry
// of a transaction that was applied but whose answer was lost is
// recognised by DynamoDB as the same one for ten minutes; after that, the
// lease token still refuses a second application.
//
// AddWrites checks DynamoDB's limits as it goes and returns an error naming
// the one broken: at most 99 writes besides the task's own, no two on one
// item, none on the task's own item, and 4 MB in all. Two Puts of one item
// in another table are found only at the commit, which reads that table's
// key schema once per process to know which item a Put writes. An attempt
// whose writes break a limit is recorded as failed with that error, even
// if the function ignores it, and nothing is sent. Transactions cost twice
// the write units of plain writes; a server without them, as some local
// DynamoDB emulators are, fails the attempt with an error matching
// ErrTransaction. AddWrites works only inside the function that Start
// runs.
func (t *Task[S]) AddWrites(items ...types.TransactWriteItem) error {
	if t.staged == nil {
		return errNotRunning
	}
	st := t.staged
	st.writes = append(st.writes, items...)
	if err := checkWrites(st.table, keys.Task(t.Job, t.ID), st.writes, nil); err != nil && st.writesErr == nil {
		st.writesErr = err
	}
	return st.writesErr
}

// checkWrites checks a transaction's writes against DynamoDB's limits.
// keyAttrs gives the key attributes of a table, which a Put needs to know
// which item it writes; a Put to a table missing from it (other than the
// tracker's own) is checked for size only.
func checkWrites(table, pk string, items []types.TransactWriteItem, keyAttrs map[string][]string) error {
	if _, ok := keyAttrs[table]; !ok {
		// The tracker's own table is keyed by pk alone, which needs no
		// DescribeTable to know: a Put of the task's own item is caught
		// as soon as it is added.
		keyAttrs = maps.Clone(keyAttrs)
		if keyAttrs == nil {
			keyAttrs = map[string][]string{}
		}
		keyAttrs[table] = []string{attrPK}
	}
	if n := len(items); n > maxTxItems-1 {
		return fmt.Errorf("%w: %d writes added, over the limit of %d that a transaction of %d items leaves beside the task's own update: "+
			"split the work into several tasks", ErrTransaction, n, maxTxItems-1, maxTxItems)
	}
	size := 0
	seen := make(map[string]int, len(items))
	for i, it := range items {
		tbl, key, bytes, err := describeWrite(it, keyAttrs)
		if err != nil {
			return fmt.Errorf("%w: write %d: %w", ErrTransaction, i, err)
		}
		size += bytes
		if key == nil {
			continue
		}
		if tbl == table && str(key, attrPK) == pk {
			return fmt.Errorf("%w: write %d is on the task's own item in table %q: the success already updates it; "+
				"set data or output with Task.SetData or Task.SetOutput instead", ErrTransaction, i, table)
		}
		id := tbl + "\x00" + canonical(key)
		if j, dup := seen[id]; dup {
			return fmt.Errorf("%w: writes %d and %d are on the same item of table %q, and a transaction may touch an item once: merge them into one write",
				ErrTransaction, j, i, tbl)
		}
		seen[id] = i
	}
	if size > maxTxBytes {
		return fmt.Errorf("%w: the writes come to about %d bytes, over DynamoDB's 4 MB limit on a transaction: keep large payloads in S3",
			ErrTransaction, size)
	}
	return nil
}

// describeWrite returns the table, key and approximate size of one write.
// The key of a Put is taken from its item once the table's key attributes
// are known; until then it is nil.
func describeWrite(it types.TransactWriteItem, keyAttrs map[string][]string) (table string, key map[string]types.AttributeValue, size int, err error) {
	// Each set operation is counted, not only the first one found, so
	// that any two together are refused here rather than by DynamoDB.
	n := 0
	for _, set := range []bool{it.Put != nil, it.Update != nil, it.Delete != nil, it.ConditionCheck != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", nil, 0, errors.New("a TransactWriteItem needs exactly one of Put, Update, Delete and ConditionCheck")
	}
	switch {
	case it.Put != nil:
		table, size = aws.ToString(it.Put.TableName), itemSize(it.Put.Item)
		if attrs, ok := keyAttrs[table]; ok {
			key = make(map[string]types.AttributeValue, len(attrs))
			for _, a := range attrs {
				key[a] = it.Put.Item[a]
			}
		}
	case it.Update != nil:
		table, key = aws.ToString(it.Update.TableName), it.Update.Key
		size = itemSize(it.Update.Key) + itemSize(it.Update.ExpressionAttributeValues) + len(aws.ToString(it.Update.UpdateExpression))
	case it.Delete != nil:
		table, key, size = aws.ToString(it.Delete.TableName), it.Delete.Key, itemSize(it.Delete.Key)
	case it.ConditionCheck != nil:
		table, key = aws.ToString(it.ConditionCheck.TableName), it.ConditionCheck.Key
		size = itemSize(it.ConditionCheck.Key) + itemSize(it.ConditionCheck.ExpressionAttributeValues)
	}
	if table == "" {
		return "", nil, 0, errors.New("it has no TableName")
	}
	return table, key, size, nil
}

// canonical encodes a key so that equal keys encode equally.
func canonical(key map[string]types.AttributeValue) string {
	names := make([]string, 0, len(key))
	for k := range key {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s=%v;", k, plain(key[k]))
	}
	return b.String()
}

// keySchemas caches the key attributes of the tables that transactions
// write to, which the duplicate check of Puts needs: one DescribeTable per
// table per process.
var keySchemas sync.Map // table name -> []string

// checkCommit checks a transaction's writes before it is sent, with the
// key attributes of every table that one of its Puts writes to.
func (t *Tracker[S]) checkCommit(ctx context.Context, task *Task[S]) error {
	st := task.staged
	if st.writesErr != nil {
		return st.writesErr
	}
	keyAttrs := map[string][]string{}
	for _, it := range st.writes {
		if it.Put == nil || aws.ToString(it.Put.TableName) == t.cfg.Table {
			continue
		}
		table := aws.ToString(it.Put.TableName)
		if cached, ok := keySchemas.Load(table); ok {
			keyAttrs[table] = cached.([]string)
			continue
		}
		out, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: it.Put.TableName})
		if err != nil {
			return fmt.Errorf("%w: describe table %q to check the writes to it: %w", ErrTransaction, table, err)
		}
		var attrs []string
		for _, k := range out.Table.KeySchema {
			attrs = append(attrs, aws.ToString(k.AttributeName))
		}
		keySchemas.Store(table, attrs)
		keyAttrs[table] = attrs
	}
	return checkWrites(t.cfg.Table, keys.Task(t.cfg.Job, task.ID), st.writes, keyAttrs)
}

// isOwnTxRefusal reports whether err is a transaction cancelled because
// the task's own update, always its first item, was refused: the lease was
// lost, a cancel came first, or an earlier try was applied.
func isOwnTxRefusal(err error) bool {
	var tce *types.TransactionCanceledException
	return errors.As(err, &tce) && len(tce.CancellationReasons) > 0 &&
		aws.ToString(tce.CancellationReasons[0].Code) == "ConditionalCheckFailed"
}

// txError explains a transaction that DynamoDB refused for a reason other
// than the task's own update, or that the server could not run.
func txError(err error) error {
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		var reasons []string
		for i, r := range tce.CancellationReasons {
			code := aws.ToString(r.Code)
			if code == "" || code == "None" {
				continue
			}
			what := fmt.Sprintf("write %d", i-1)
			if i == 0 {
				what = "the task's own update"
			}
			reasons = append(reasons, fmt.Sprintf("%s: %s %s", what, code, aws.ToString(r.Message)))
		}
		if retryableTx(tce) {
			return err
		}
		return fmt.Errorf("%w: DynamoDB cancelled it: %s: %w", ErrTransaction, strings.Join(reasons, "; "), err)
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException" {
		return fmt.Errorf("%w: the server does not support TransactWriteItems, which Task.AddWrites needs: "+
			"run against DynamoDB, or a local server with transactions such as moto: %w", ErrTransaction, err)
	}
	if permanent(err) {
		// DynamoDB refused the request as a whole: a table of the added
		// writes is missing or denied, or a write is malformed. Retrying
		// cannot help, and the attempt must be recorded as failed with
		// the reason rather than left Running until its lease expires.
		return fmt.Errorf("%w: DynamoDB refused the writes added with Task.AddWrites: %w", ErrTransaction, err)
	}
	return err
}

// retryableTx reports whether every item's reason for cancelling the
// transaction passes with time: a conflict with another transaction, or
// throttling.
func retryableTx(tce *types.TransactionCanceledException) bool {
	for _, r := range tce.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "", "None", "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded":
		default:
			return false
		}
	}
	return true
}
