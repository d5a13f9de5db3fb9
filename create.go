package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// NewTask is a task to create with [Tracker.CreateMany].
type NewTask struct {
	ID   string
	Data any
}

// Create stores a new Pending task with the given data, which may be nil.
// It never overwrites: if the task exists it returns a [*TaskError]
// matching ErrTaskExists and leaves the stored task as it was.
//
// Data is marshalled with [attributevalue.Marshal]; structs and maps are
// stored as DynamoDB maps, so query filters can reach inside them.
func (t *Tracker[S]) Create(ctx context.Context, taskID string, data any) error {
	item, err := t.newItem(taskID, data)
	if err != nil {
		return err
	}
	if err := t.put(ctx, taskID, item); err != nil {
		return err
	}
	t.log.Debug("task created", "task", taskID, "status", t.cfg.Pending.String())
	return nil
}

// put writes a new task's item unless the task exists.
func (t *Tracker[S]) put(ctx context.Context, taskID string, item map[string]types.AttributeValue) error {
	_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.cfg.Table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": "pk"},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return &TaskError{Op: "create", Job: t.cfg.Job, TaskID: taskID, Err: ErrTaskExists, Cause: err}
	case err != nil:
		return t.writeError("create", taskID, err)
	}
	return nil
}

// newItem validates a new task and returns its item.
func (t *Tracker[S]) newItem(taskID string, data any) (map[string]types.AttributeValue, error) {
	if err := t.checkID(taskID); err != nil {
		return nil, err
	}
	now := numAV(t.cfg.Now().UnixMilli())
	item := map[string]types.AttributeValue{
		"pk":         strAV(keys.Task(t.cfg.Job, taskID)),
		"job":        strAV(t.cfg.Job),
		"task_id":    strAV(taskID),
		"attempts":   numAV(0),
		"fence":      numAV(0),
		"created_at": now,
		"updated_at": now,
	}
	t.setStatus(item, taskID, t.cfg.Pending)
	if data != nil {
		av, err := marshalAttr("data", data)
		if err != nil {
			return nil, fmt.Errorf("task %q: %w", taskID, err)
		}
		if av != nil {
			item["data"] = av
		}
	}
	return item, nil
}

// setStatus puts the three attributes that make up a status into item: the
// number, its name, and the sharded status-index key.
func (t *Tracker[S]) setStatus(item map[string]types.AttributeValue, taskID string, s S) {
	item["status"] = numAV(int64(s))
	item["status_name"] = strAV(statusName[S](int(s)))
	item["status_key"] = strAV(keys.Status(t.cfg.Job, int(s), keys.Shard(taskID, t.cfg.Shards)))
}

func (t *Tracker[S]) checkID(taskID string) error {
	if err := keys.CheckTask(t.cfg.Job, taskID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTaskID, err)
	}
	return nil
}

// CreateManyResult says what CreateMany did with each task.
type CreateManyResult struct {
	// Created lists the IDs of the tasks created.
	Created []string
	// Existing lists the IDs of tasks that already existed and were left
	// as they were, so a loader that is run twice creates nothing twice.
	Existing []string
}

// createConcurrency bounds CreateMany's requests in flight. It is enough to
// keep a connection pool busy without tripping a table's burst capacity.
const createConcurrency = 16

// CreateMany creates many Pending tasks. Like Create it never overwrites
// an existing task: BatchWriteItem cannot be conditional, so CreateMany
// sends conditional PutItem requests, several at a time. Each costs one
// write unit, the same as a batched put.
//
// Every task is checked before anything is sent, so bad input writes
// nothing. A task whose write fails for another reason is neither in
// Created nor in Existing, and its error, naming its ID, is in the
// returned error; rerunning CreateMany with the same tasks is safe.
func (t *Tracker[S]) CreateMany(ctx context.Context, tasks []NewTask) (CreateManyResult, error) {
	items := make([]map[string]types.AttributeValue, len(tasks))
	seen := make(map[string]int, len(tasks))
	for i, nt := range tasks {
		if j, dup := seen[nt.ID]; dup {
			return CreateManyResult{}, fmt.Errorf("%w: tasks[%d] and tasks[%d] have the same ID %q: each task in one call needs its own ID", ErrInvalidTaskID, j, i, nt.ID)
		}
		seen[nt.ID] = i
		item, err := t.newItem(nt.ID, nt.Data)
		if err != nil {
			return CreateManyResult{}, fmt.Errorf("tasks[%d]: %w", i, err)
		}
		items[i] = item
	}

	var (
		mu   sync.Mutex
		res  CreateManyResult
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, createConcurrency)
	)
	for i, item := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := t.put(ctx, tasks[i].ID, item)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrTaskExists):
				res.Existing = append(res.Existing, tasks[i].ID)
			case err != nil:
				errs = append(errs, err)
			default:
				res.Created = append(res.Created, tasks[i].ID)
			}
		})
	}
	wg.Wait()
	t.log.Debug("tasks created", "created", len(res.Created), "existing", len(res.Existing), "failed", len(errs))
	return res, errors.Join(errs...)
}
