package ddbtrack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// Client is the subset of *dynamodb.Client that ddbtrack calls. Pass the
// real client; tests and middleware may wrap it, for example to count
// requests or inject faults.
type Client interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

var _ Client = (*dynamodb.Client)(nil)

// Config configures a [Tracker]. Table, Job and the five roles are
// required; every other field has a default.
type Config[S Status] struct {
	// Table is the name of the DynamoDB table. [Tracker.CreateTable] creates
	// it, or see [Tracker.CreateTableInput] for the schema.
	Table string

	// Job names the job this tracker works on. One table holds many jobs;
	// a task's key is its job and its ID. Job may not contain '#'.
	Job string

	// Pending, Running, Failed, Succeeded and Ignored are the job's values
	// for the five roles a task moves through. They must be distinct.
	// A new task is Pending; Start moves it to Running, then to Succeeded,
	// Failed or, after MaxAttempts failures in a row, Ignored.
	Pending, Running, Failed, Succeeded, Ignored S

	// Startable lists extra statuses from which Start may claim a task,
	// besides Pending and Failed. A pipeline's second step sets it to the
	// first step's succeeded status, as the seed's more_pending_status does.
	// Defaults to none.
	Startable []S

	// MaxAttempts is how many attempts in a row may fail before a task is
	// Ignored. An attempt whose worker died without recording a result
	// counts as failed. Defaults to 3.
	MaxAttempts int

	// Lease is how long a claim holds a task without renewal. Start renews
	// it every Lease/3 while fn runs, and another worker may take over the
	// task once it has expired, so it must be longer than the longest pause
	// a worker may suffer (GC, a suspended VM, a network outage) plus the
	// largest clock skew between workers. It is also how long a dead
	// worker's task waits before it is taken over. Defaults to 15 minutes,
	// the seed's LOCK_EXPIRE_SECONDS.
	Lease time.Duration

	// ErrorHistory is how many failures a task keeps in its error history;
	// older ones are dropped. Defaults to 10.
	ErrorHistory int

	// Shards is the number of status-index partitions each status of the
	// job is spread over, so that a status with many changes per second
	// does not become a hot partition. Queries read every shard, so more
	// shards cost more requests per query. Keep it fixed for the life of a
	// job: a task is indexed under the shard count in force when its status
	// last changed. Defaults to 4.
	Shards int

	// Retention is how long a task is kept once it has succeeded. When it
	// is positive, every success stores "expires_at", the time DynamoDB's
	// time to live may delete the task from, and [Tracker.CreateTable]
	// turns time to live on for that attribute. DynamoDB deletes expired
	// items within days rather than at once, and queries return them until
	// it does. A task that leaves Succeeded (requeued, reset, or claimed by
	// a pipeline's next step) loses its expiry, so only finished work ever
	// expires. Failed and Ignored tasks are kept: they need a person. In a
	// pipeline, set it on the last step's tracker only: a task that
	// succeeded in an earlier step is the next step's to start, and would
	// be deleted if that step had not claimed it within Retention.
	// Defaults to 0, which keeps every task.
	Retention time.Duration

	// Owner identifies this worker in leases and logs. Defaults to
	// "hostname:pid:random".
	Owner string

	// FinishTimeout bounds the write that records a result. That write
	// runs even when Start's context is cancelled, so that a cancelled
	// caller never leaves its task Running. Defaults to 15 seconds.
	FinishTimeout time.Duration

	// Logger receives the task lifecycle: claims, successes, failures and
	// ignored tasks at Info, Warn and Error, the start and end of Start at
	// Debug. Defaults to slog.Default().
	Logger *slog.Logger

	// Now is the clock used for lease expiry and for every stored time.
	// Tests replace it to expire leases without sleeping. Defaults to
	// time.Now.
	Now func() time.Time
}

// Defaults for the optional Config fields.
const (
	DefaultMaxAttempts   = 3
	DefaultLease         = 15 * time.Minute
	DefaultErrorHistory  = 10
	DefaultShards        = 4
	DefaultFinishTimeout = 15 * time.Second
)

// Tracker records the status of one job's tasks in a DynamoDB table. It is
// safe for concurrent use by many goroutines, and many trackers in many
// processes may work on the same job.
type Tracker[S Status] struct {
	client Client
	cfg    Config[S]
	log    *slog.Logger

	// claimCond and startable are the claim's condition and its values,
	// built once because they depend only on the Config.
	claimCond string
	startable map[string]types.AttributeValue
	isStart   map[S]bool
}

// New returns a Tracker for cfg.Job in cfg.Table. It checks cfg and fills
// in defaults, but makes no request and starts no goroutine.
func New[S Status](client Client, cfg Config[S]) (*Tracker[S], error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client is nil: pass a *dynamodb.Client, e.g. dynamodb.NewFromConfig(awsCfg)", ErrInvalidConfig)
	}
	if cfg.Table == "" {
		return nil, configError("Table", "is empty", "set it to the name of the DynamoDB table")
	}
	if err := keys.CheckJob(cfg.Job); err != nil {
		return nil, configError("Job", strings.TrimPrefix(err.Error(), "job ID "), "")
	}
	r := roles[S]{cfg.Pending, cfg.Running, cfg.Failed, cfg.Succeeded, cfg.Ignored}
	if err := r.check(); err != nil {
		return nil, err
	}
	isStart := map[S]bool{cfg.Pending: true, cfg.Failed: true}
	for _, s := range cfg.Startable {
		if s == cfg.Running || s == cfg.Ignored || s == cfg.Succeeded {
			return nil, configError("Startable", fmt.Sprintf("contains %q, which is the Running, Succeeded or Ignored role", s.String()),
				"list only statuses outside this tracker's roles, such as an earlier step's succeeded status")
		}
		isStart[s] = true
	}
	if err := defaults(&cfg); err != nil {
		return nil, err
	}

	t := &Tracker[S]{client: client, cfg: cfg, isStart: isStart, startable: make(map[string]types.AttributeValue, len(isStart))}
	t.log = cfg.Logger.With("job", cfg.Job)
	placeholders := make([]string, 0, len(isStart))
	for s := range isStart {
		p := "s" + strconv.Itoa(len(placeholders))
		placeholders = append(placeholders, ":"+p)
		t.startable[p] = numAV(int64(s))
	}
	// A task may be claimed from a startable status, or from Running once
	// its lease has expired: the worker that held it died or hung, and this
	// is how its task is recovered. :status is the Running value the claim
	// sets.
	t.claimCond = "attribute_exists(#pk) AND (#status IN (" + strings.Join(placeholders, ", ") +
		") OR (#status = :status AND #lease_expires_at < :now))"
	return t, nil
}

func defaults[S Status](cfg *Config[S]) error {
	type intField struct {
		name string
		v    *int
		def  int
	}
	for _, f := range []intField{
		{"MaxAttempts", &cfg.MaxAttempts, DefaultMaxAttempts},
		{"ErrorHistory", &cfg.ErrorHistory, DefaultErrorHistory},
		{"Shards", &cfg.Shards, DefaultShards},
	} {
		switch {
		case *f.v < 0:
			return configError(f.name, fmt.Sprintf("is %d", *f.v), fmt.Sprintf("use a positive number, or 0 for the default (%d)", f.def))
		case *f.v == 0:
			*f.v = f.def
		}
	}
	type durField struct {
		name string
		v    *time.Duration
		def  time.Duration
	}
	for _, f := range []durField{
		{"Lease", &cfg.Lease, DefaultLease},
		{"FinishTimeout", &cfg.FinishTimeout, DefaultFinishTimeout},
	} {
		switch {
		case *f.v < 0:
			return configError(f.name, fmt.Sprintf("is %v", *f.v), fmt.Sprintf("use a positive duration, or 0 for the default (%v)", f.def))
		case *f.v == 0:
			*f.v = f.def
		case *f.v < time.Millisecond:
			return configError(f.name, fmt.Sprintf("is %v", *f.v), "times are stored in milliseconds: use at least 1ms")
		}
	}
	switch {
	case cfg.Retention < 0:
		return configError("Retention", fmt.Sprintf("is %v", cfg.Retention), "use a positive duration, or 0 to keep tasks forever")
	case cfg.Retention > 0 && cfg.Retention < time.Second:
		return configError("Retention", fmt.Sprintf("is %v", cfg.Retention), "time to live counts in whole seconds: use at least 1s, or 0 to keep tasks forever")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), newToken()[:6])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// Config returns the tracker's configuration with defaults filled in.
func (t *Tracker[S]) Config() Config[S] { return t.cfg }

// Get returns the task, read with strong consistency. A missing task gives
// a [*TaskError] matching ErrTaskNotFound.
func (t *Tracker[S]) Get(ctx context.Context, taskID string) (*Task[S], error) {
	if err := t.checkID(taskID); err != nil {
		return nil, err
	}
	item, err := t.getItem(ctx, taskID)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, &TaskError{Op: "get", Job: t.cfg.Job, TaskID: taskID, Err: ErrTaskNotFound}
	}
	return decodeTask[S](item)
}

func (t *Tracker[S]) getItem(ctx context.Context, taskID string) (map[string]types.AttributeValue, error) {
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.cfg.Table),
		Key:            t.key(taskID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: get task %q: %w", taskID, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func (t *Tracker[S]) key(taskID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": strAV(keys.Task(t.cfg.Job, taskID))}
}

// Delete removes a task. A worker still running it will find its lease lost
// when it tries to record its result. A missing task gives a [*TaskError]
// matching ErrTaskNotFound.
func (t *Tracker[S]) Delete(ctx context.Context, taskID string) error {
	if err := t.checkID(taskID); err != nil {
		return err
	}
	out, err := t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(t.cfg.Table),
		Key:          t.key(taskID),
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return t.writeError("delete", taskID, err)
	}
	if len(out.Attributes) == 0 {
		return &TaskError{Op: "delete", Job: t.cfg.Job, TaskID: taskID, Err: ErrTaskNotFound}
	}
	t.log.Info("task deleted", "task", taskID)
	return nil
}

// Start claims the task, runs fn, and records the outcome. It blocks until
// fn has returned and the outcome is written. It is [Tracker.StartWith]
// with the Config's lease and attempt limit.
//
// The claim is one conditional write. It succeeds only if the task is in a
// startable status (Pending, Failed or one of Config.Startable), or Running
// under a lease that has expired, so at most one worker holds a task at a
// time. A refused claim returns a [*TaskError] matching ErrTaskNotFound,
// ErrTaskLocked, ErrTaskSucceeded, ErrTaskIgnored or ErrTaskNotReady, and
// fn does not run.
//
// While fn runs, Start renews the lease every third of its length with a
// write fenced by the lease token, so a task may run far longer than its
// lease as long as its worker is alive and reaches DynamoDB. If the lease
// is lost (a renewal is refused because another worker took the task over
// or it was reset, or renewals fail until the lease runs out), fn's context
// is cancelled and [context.Cause] on it matches ErrLeaseLost: fn should
// stop, because another worker may be running the task.
//
// If fn returns nil, the task becomes Succeeded, with the output and data
// that fn set on the task. If fn returns an error or panics, the task
// becomes Failed, or Ignored once Config.MaxAttempts attempts in a row have
// failed; its stored data is left as it was and the error joins its
// history. If fn returns an error matching [ErrRelease], the task goes back
// to the status it was claimed from and the attempt is not counted. Start
// returns fn's error unchanged, so errors.Is works on it; if recording the
// outcome also failed, the two are joined. A panic is recorded with its
// stack and then re-raised, because recovering it would hide a bug from the
// code that called Start.
//
// The outcome is written with one conditional write fenced by the claim's
// lease token, even if ctx has been cancelled. If the lease was lost
// meanwhile, nothing is written and the error matches ErrLeaseLost. The
// heartbeat has stopped by the time Start returns.
func (t *Tracker[S]) Start(ctx context.Context, taskID string, fn func(ctx context.Context, task *Task[S]) error) error {
	return t.StartWith(ctx, taskID, StartOptions{}, fn)
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

	// ReleaseOnCancel releases the task instead of recording a failure
	// when ctx is cancelled while fn runs and fn returns an error: the task
	// goes back to the status it was claimed from and the attempt is not
	// counted. Use it when cancellation means "this worker is shutting
	// down", not "this task went wrong". A success is still recorded.
	// Defaults to false: a cancelled attempt is a failed one.
	ReleaseOnCancel bool
}

// startOptions fills in opts from the Config and checks the result.
func (t *Tracker[S]) startOptions(opts StartOptions) (StartOptions, error) {
	switch {
	case opts.Lease == 0:
		opts.Lease = t.cfg.Lease
	case opts.Lease < 3*time.Millisecond:
		return opts, fmt.Errorf("%w: StartOptions.Lease is %v: use at least 3ms, so the heartbeat can renew it every Lease/3, or 0 for Config.Lease (%v)",
			ErrInvalidConfig, opts.Lease, t.cfg.Lease)
	}
	switch {
	case opts.MaxAttempts == 0:
		opts.MaxAttempts = t.cfg.MaxAttempts
	case opts.MaxAttempts < 0:
		return opts, fmt.Errorf("%w: StartOptions.MaxAttempts is %d: use a positive number, or 0 for Config.MaxAttempts (%d)",
			ErrInvalidConfig, opts.MaxAttempts, t.cfg.MaxAttempts)
	}
	return opts, nil
}

// StartWith is [Tracker.Start] with per-call options: a lease and an
// attempt limit of its own, or release instead of failure on cancellation.
func (t *Tracker[S]) StartWith(ctx context.Context, taskID string, opts StartOptions, fn func(ctx context.Context, task *Task[S]) error) error {
	if err := t.checkID(taskID); err != nil {
		return err
	}
	opts, err := t.startOptions(opts)
	if err != nil {
		return err
	}
	_, err = t.attempt(ctx, taskID, opts, fn)
	return err
}

// attempt is StartWith. It also returns the claimed task, or nil if the
// claim failed, so that Process can report what became of it.
func (t *Tracker[S]) attempt(ctx context.Context, taskID string, opts StartOptions, fn func(ctx context.Context, task *Task[S]) error) (*Task[S], error) {
	log := t.log.With("task", taskID)
	log.Debug("start")

	task, err := t.claim(ctx, taskID, opts.Lease)
	if err != nil {
		log.Debug("end", "error", err)
		return nil, err
	}
	task.maxAttempts = opts.MaxAttempts
	log = log.With("attempt", task.Attempts)
	log.Info("task claimed", "status", task.Status.String(), "lease_expires_at", task.LeaseExpiresAt, "fence", task.Fence)

	// The final write must happen even if the caller has given up, or the
	// task would sit in Running until its lease expires.
	finish := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), t.cfg.FinishTimeout)
	}

	if task.Attempts > task.maxAttempts {
		// Earlier attempts ended without a result, most likely because
		// the task crashes its worker. Running it again would crash the
		// next worker too.
		fctx, cancel := finish()
		defer cancel()
		msg := fmt.Sprintf("not run: the previous %d attempts ended without a result (limit %d)", task.Attempts-1, task.maxAttempts)
		if err := t.fail(fctx, task, msg, ""); err != nil {
			return task, err
		}
		task.outcome = outcomeIgnored
		log.Error("task ignored", "status", t.cfg.Ignored.String(), "reason", msg)
		return task, &TaskError{Op: "start", Job: t.cfg.Job, TaskID: taskID, Err: ErrTaskIgnored,
			Status: int(t.cfg.Ignored), StatusName: t.cfg.Ignored.String(), Attempts: task.Attempts}
	}

	fnCtx, cancelFn := context.WithCancelCause(ctx)
	defer cancelFn(nil)
	hb := t.beat(ctx, task, opts.Lease, cancelFn)
	// The deferred stop covers an fn that never returns normally, such as
	// one calling runtime.Goexit (t.FailNow in a test): without it the
	// heartbeat would keep the dead attempt's lease alive.
	defer hb.stop()
	fnErr, panicked, stack := run(fnCtx, task, fn)
	hb.stop()

	if hb.confirmed {
		// A renewal was refused: another worker holds the task or it was
		// reset, so there is nothing this attempt may write.
		task.outcome = outcomeLeaseLost
		log.Warn("result not recorded: lease lost", "error", hb.lost)
		if panicked {
			panic(fnErr.(*panicError).value)
		}
		if fnErr != nil {
			return task, errors.Join(fnErr, hb.lost)
		}
		return task, hb.lost
	}

	fctx, cancel := finish()
	defer cancel()
	if fnErr == nil && !panicked {
		err := t.succeed(fctx, task)
		if errors.Is(err, ErrItemTooLarge) {
			// The result cannot be stored as it is, but the attempt must
			// not vanish: record it as a failure that says why.
			err = errors.Join(err, t.fail(fctx, task, err.Error(), ""))
		}
		task.outcome = t.outcomeOf(task, err)
		if err == nil {
			log.Info("task succeeded", "status", t.cfg.Succeeded.String())
		}
		log.Debug("end", "error", err)
		return task, err
	}

	if !panicked && (errors.Is(fnErr, ErrRelease) || (opts.ReleaseOnCancel && ctx.Err() != nil)) {
		werr := t.release(fctx, task)
		task.outcome = t.outcomeOf(task, werr)
		if werr == nil {
			task.outcome = outcomeReleased
		}
		log.Debug("end", "error", errors.Join(fnErr, werr))
		if werr != nil {
			return task, errors.Join(fnErr, werr)
		}
		return task, fnErr
	}

	msg := fnErr.Error()
	if panicked {
		msg = "panic: " + msg
	}
	if hb.lost != nil {
		msg += " (" + hb.lost.Error() + ")"
	}
	werr := t.fail(fctx, task, msg, stack)
	task.outcome = t.outcomeOf(task, werr)
	log.Debug("end", "error", errors.Join(fnErr, werr))
	if panicked {
		panic(fnErr.(*panicError).value)
	}
	if werr != nil {
		return task, errors.Join(fnErr, werr)
	}
	return task, fnErr
}

// outcome is what an attempt recorded, as Process reports it.
type outcome int

const (
	outcomeUnknown   outcome = iota // The outcome could not be written.
	outcomeSucceeded                // Recorded as Succeeded.
	outcomeFailed                   // Recorded as Failed.
	outcomeIgnored                  // Recorded as Ignored.
	outcomeReleased                 // Put back without counting the attempt.
	outcomeLeaseLost                // Not written: the lease was lost.
)

// outcomeOf classifies the write that ended an attempt, from the status
// finish left on the task.
func (t *Tracker[S]) outcomeOf(task *Task[S], werr error) outcome {
	switch {
	case errors.Is(werr, ErrLeaseLost):
		return outcomeLeaseLost
	case werr != nil && task.Status == t.cfg.Running:
		return outcomeUnknown
	case task.Status == t.cfg.Succeeded:
		return outcomeSucceeded
	case task.Status == t.cfg.Ignored:
		return outcomeIgnored
	case task.Status == t.cfg.Running:
		return outcomeUnknown
	default:
		return outcomeFailed
	}
}

// panicError carries a recovered panic value until the failure is recorded.
type panicError struct{ value any }

func (p *panicError) Error() string { return fmt.Sprint(p.value) }

// run calls fn and turns a panic into an error, with the stack of the
// goroutine at the point of the panic.
func run[S Status](ctx context.Context, task *Task[S], fn func(context.Context, *Task[S]) error) (err error, panicked bool, stack string) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked, stack = &panicError{v}, true, string(debug.Stack())
		}
	}()
	return fn(ctx, task), false, ""
}

// newToken returns a random lease token. Tokens only need to be unique per
// claim; 128 random bits make a collision implausible.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}
