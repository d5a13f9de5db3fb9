package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// NewTask is a task to create with [Tracker.Create] or [Tracker.CreateMany].
type NewTask struct {
	// ID names the task within its job: any UTF-8 string of up to 1,008
	// bytes.
	ID string
	// Data is the task's input, marshalled with [attributevalue.Marshal]:
	// structs and maps are stored as DynamoDB maps, so query filters can
	// reach inside them. It may be nil.
	Data any
	// DueAt schedules the task: it may not start before then. Defaults to
	// the zero time, which makes it due at once.
	DueAt time.Time
}

// Create stores a new Pending task. It never overwrites: if the task exists
// it returns a [*TaskError] matching ErrTaskExists and leaves the stored
// task as it was. A create whose answer was lost and whose retry found its
// own task is reported as done.
func (t *Tracker[S]) Create(ctx context.Context, task NewTask) error {
	w, err := t.newTask(task, "NewTask")
	if err != nil {
		return err
	}
	if _, err := t.send(ctx, w); err != nil {
		return err
	}
	t.log.LogAttrs(ctx, debugLevel, "task created", slog.String(logTask, task.ID))
	return nil
}

// newTask checks a new task and returns the write that creates it. name is
// how the caller knows it, for errors.
func (t *Tracker[S]) newTask(task NewTask, name string) (*write, error) {
	if err := t.checkID(name+".ID", task.ID); err != nil {
		return nil, err
	}
	now := t.cfg.Now()
	due := task.DueAt
	switch {
	case due.IsZero():
		due = now
	case due.Before(earliestDue) || due.After(now.Add(maxAhead)):
		return nil, optionError(name+".DueAt", fmt.Sprintf("is %s", due.UTC().Format(time.RFC3339)),
			"schedule it between the year 2000 and ten years from now, or leave it zero to make the task due at once; a date far off is usually a unit mistake")
	}
	data, err := marshalAttr("data", task.Data)
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", task.ID, err)
	}
	return t.createWrite(task.ID, data, due, now), nil
}

// earliestDue is the earliest due time a task may be created with.
var earliestDue = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// CreateManyResult says what CreateMany did with each task.
type CreateManyResult struct {
	// Created lists the IDs of the tasks created.
	Created []string
	// Existing lists the IDs of tasks that already existed and were left
	// as they were, so a loader that is run twice creates nothing twice.
	Existing []string
}

// CreateMany creates many Pending tasks. Like Create it never overwrites
// an existing task: BatchWriteItem cannot be conditional, so CreateMany
// sends conditional PutItem requests, 16 at a time. Each costs one write
// unit, the same as a batched put.
//
// Every task is checked before anything is sent, so bad input writes
// nothing. Besides the tasks, each call records the job once, so that
// Tracker.Jobs lists it. A task whose write fails for another reason is neither in
// Created nor in Existing, and its error, naming its ID, is in the
// returned error; rerunning CreateMany with the same tasks is safe.
func (t *Tracker[S]) CreateMany(ctx context.Context, tasks []NewTask) (CreateManyResult, error) {
	writes := make([]*write, len(tasks))
	seen := make(map[string]int, len(tasks))
	for i, nt := range tasks {
		if j, dup := seen[nt.ID]; dup {
			return CreateManyResult{}, optionError(fmt.Sprintf("tasks[%d].ID", i), fmt.Sprintf("is %q, the same as tasks[%d].ID", nt.ID, j), "give each task in one call its own ID")
		}
		seen[nt.ID] = i
		w, err := t.newTask(nt, fmt.Sprintf("tasks[%d]", i))
		if err != nil {
			return CreateManyResult{}, err
		}
		writes[i] = w
	}
	// One write per call, not per task, lets Tracker.Jobs list the job.
	if err := t.register(ctx); err != nil {
		return CreateManyResult{}, err
	}
	var (
		mu   sync.Mutex
		res  CreateManyResult
		errs []error
	)
	// Every put runs, whatever the others' fate, so fn returns no error.
	_ = fanOut(ctx, len(writes), fanOutLimit, func(ctx context.Context, i int) error {
		_, err := t.send(ctx, writes[i])
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
		return nil
	})
	if ctx.Err() != nil && len(res.Created)+len(res.Existing)+len(errs) < len(tasks) {
		errs = append(errs, fmt.Errorf("ddbtrack: create many: %w", context.Cause(ctx)))
	}
	t.log.LogAttrs(ctx, debugLevel, "tasks created", slog.Int("created", len(res.Created)), slog.Int("existing", len(res.Existing)), slog.Int("failed", len(errs)))
	return res, errors.Join(errs...)
}
