package ddbtrack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

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
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
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
	// a task's key is its job and its ID. Job may not contain '#', and is
	// at most 1,000 bytes.
	Job string

	// Pending, Running, Failed, Succeeded and Ignored are the job's values
	// for the five roles a task moves through. They must be distinct.
	// A new task is Pending; Start moves it to Running, then to Succeeded,
	// Failed or, after MaxAttempts failures in a row or a cancellation,
	// Ignored.
	Pending, Running, Failed, Succeeded, Ignored S

	// Startable lists extra statuses from which Start may claim a task,
	// besides Pending and Failed: a pipeline's second step sets it to the
	// first step's succeeded status. Defaults to none.
	Startable []S

	// MaxAttempts is how many attempts in a row may fail before a task is
	// Ignored. An attempt whose worker died without recording a result
	// counts as failed. Defaults to 3.
	MaxAttempts int

	// RetryDelay returns how long a task waits after its n-th failed
	// attempt in a row before it may start again. The wait is stored with
	// the task, so every worker honours it, and a claim before it ends is
	// refused with ErrTaskNotDue. It protects a dependency that is down
	// from being hammered, and gives it time to recover before a task runs
	// out of attempts. Return 0 to retry at once. Defaults to
	// Exponential(30*time.Second, time.Hour): 30 s, 1 min, 2 min, ...,
	// each up to half as long again at random.
	RetryDelay func(n int) time.Duration

	// Lease is how long a claim holds a task without renewal. Start renews
	// it every Lease/3 while fn runs, and another worker may take over the
	// task once it has expired, so it must be longer than the longest pause
	// a worker may suffer (GC, a suspended VM, a network outage) plus the
	// largest clock skew between workers. It is also how long a dead
	// worker's task waits before it is taken over. Defaults to 15 minutes.
	Lease time.Duration

	// AttemptTimeout bounds one run of the task's function: its context is
	// cancelled with a deadline after this long, and an attempt that fails
	// past it is recorded as a timed-out failure, retried under RetryDelay.
	// Defaults to 0, no limit.
	AttemptTimeout time.Duration

	// ErrorHistory is how many failures a task keeps in its error history;
	// older ones are dropped. Defaults to 10.
	ErrorHistory int

	// Shards is the number of status-index partitions each status of the
	// job is spread over, so that a status with many changes per second
	// does not become a hot partition: each takes about 1,000 writes per
	// second, so two carry a job that finishes about 600 tasks a second.
	// Queries, counts and idle workers read every shard, so each one more
	// costs requests; raise it for faster jobs only. It does not keep the
	// pools of a fleet apart, since every pool reads every shard. Keep it
	// fixed for the life of a job: a task is indexed under the shard count
	// in force when its status last changed. Defaults to 2.
	Shards int

	// SlimIndex makes the status index hold only what listings show (the
	// status, times, attempts, lease and last error) instead of the whole
	// item, so that an index write costs the same whatever the size of a
	// task's data, output and error history: about 5 write units per
	// lifecycle instead of 5 per KB. Tasks read through the index (Query,
	// QueryPage) then come without Data, Output and Errors, which Get
	// reads; a query filter on those is refused. It must match the table:
	// CreateTable builds the index with it, and refuses a table whose
	// index holds less than the Config needs. Defaults to false, the whole
	// item.
	SlimIndex bool

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

	// FinishTimeout is how long Start keeps trying to record an outcome,
	// or to settle a claim whose answer was lost, through errors and
	// outages of DynamoDB. The lease is kept alive meanwhile. The outcome
	// is written even when Start's context is cancelled, so that a
	// cancelled caller never leaves its task Running. Defaults to 15
	// seconds.
	FinishTimeout time.Duration

	// CountMaxAge lets Count return the job's counts shared by every
	// tracker of the job, when they are at most this old, at the cost of
	// one GetItem, instead of counting afresh: one caller at a time
	// refreshes them when they are older, so the job is counted at most
	// once per CountMaxAge, however many dashboards, watchers and progress
	// reports ask, and a refresh reads the finished tasks only once (see
	// [Tracker.Count]). Defaults to 0: Count always counts afresh.
	CountMaxAge time.Duration

	// OnEvent, if set, is called at every step of every attempt, by Start
	// and by Process: a claim, each outcome, a refused claim, and the
	// errors Process backs off from (see [Event]). It is how metrics,
	// tracing and logs observe the tracker. The context it returns for
	// an EventClaimed is the one the task's function runs with, and is
	// passed to the attempt's later events, so that a tracing hook can
	// start a span at the claim and end it at the outcome; for other
	// events its result is ignored. It is called from the workers'
	// goroutines, concurrently, and must be quick. Defaults to none.
	OnEvent func(ctx context.Context, ev Event[S]) context.Context

	// Logger receives the task lifecycle: claims, outcomes and refusals at
	// Info, Warn and Error, the start and end of Start at Debug. The keys
	// it uses are listed in the package documentation. Defaults to
	// slog.Default().
	Logger *slog.Logger

	// Now is the clock used for leases, due times and every stored time.
	// Tests replace it to expire leases and backoffs without sleeping.
	// Defaults to time.Now.
	Now func() time.Time
}

// Tracker records the status of one job's tasks in a DynamoDB table. It is
// safe for concurrent use by many goroutines, and many trackers in many
// processes may work on the same job.
type Tracker[S Status] struct {
	client Client
	cfg    Config[S]
	log    *slog.Logger
	// startable holds the statuses a claim may take a task from, besides
	// Running under an expired lease.
	startable map[S]bool
	// start is the options of an attempt that sets none: the Config's.
	start StartOptions
	// writes holds what every write of this tracker shares (lock.go).
	writes *writeParts[S]
	// sched is the clock Process schedules its reads by (schedclock.go).
	sched schedClock
	// registered says that this tracker has recorded its job, and the
	// statuses it claims from, in the job's item (summary.go).
	registered atomic.Bool
}

// New returns a Tracker for cfg.Job in cfg.Table. It checks cfg and fills
// in defaults, but makes no request and starts no goroutine.
func New[S Status](client Client, cfg Config[S]) (*Tracker[S], error) {
	if client == nil {
		return nil, optionError("client", "is nil", "pass a *dynamodb.Client, such as dynamodb.NewFromConfig(awsCfg)")
	}
	if cfg.Table == "" {
		return nil, optionError("Config.Table", "is empty", "set it to the name of the DynamoDB table")
	}
	if problem, fix := keys.CheckJob(cfg.Job); problem != "" {
		return nil, optionError("Config.Job", problem, fix)
	}
	if err := checkRoles(&cfg); err != nil {
		return nil, err
	}
	startable := map[S]bool{cfg.Pending: true, cfg.Failed: true}
	for _, s := range cfg.Startable {
		if s == cfg.Running || s == cfg.Ignored || s == cfg.Succeeded {
			return nil, optionError("Config.Startable", fmt.Sprintf("contains %q, which is the Running, Succeeded or Ignored role", s.String()),
				"list only statuses outside this tracker's roles, such as an earlier step's succeeded status")
		}
		startable[s] = true
	}
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	t := &Tracker[S]{client: client, cfg: cfg, startable: startable, sched: realClock{}}
	t.log = cfg.Logger.With(logJob, cfg.Job)
	t.writes = t.newWriteParts()
	var err error
	if t.start, err = t.startOptions(StartOptions{}, "StartOptions"); err != nil {
		return nil, err
	}
	return t, nil
}

// defaults checks the optional fields of cfg and fills in their defaults.
func defaults[S Status](cfg *Config[S]) error {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxAttempts", &cfg.MaxAttempts, 3},
		{"ErrorHistory", &cfg.ErrorHistory, 10},
		{"Shards", &cfg.Shards, 2},
	} {
		if err := positive("Config."+f.name, f.v, f.def); err != nil {
			return err
		}
	}
	if err := durations("Config.", []durationField{
		{"Lease", &cfg.Lease, 15 * time.Minute},
		{"FinishTimeout", &cfg.FinishTimeout, 15 * time.Second},
		{"AttemptTimeout", &cfg.AttemptTimeout, 0},
		{"CountMaxAge", &cfg.CountMaxAge, 0},
	}); err != nil {
		return err
	}
	if err := duration("Config.Retention", &cfg.Retention, 0, time.Second); err != nil {
		return err
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = Exponential(30*time.Second, time.Hour)
	}
	if err := checkRetryDelay("Config.RetryDelay", cfg.RetryDelay, cfg.MaxAttempts); err != nil {
		return err
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

// positive checks an optional count: negative is an error, zero means the
// default.
func positive(field string, v *int, def int) error {
	switch {
	case *v < 0:
		return optionError(field, fmt.Sprintf("is %d", *v), fmt.Sprintf("use a positive number, or 0 for the default (%d)", def))
	case *v == 0:
		*v = def
	}
	return nil
}

// durationField is an optional duration of an options struct, for
// durations: its name, where it is, and its default.
type durationField struct {
	name string
	v    *time.Duration
	def  time.Duration
}

// durations checks optional durations counted in milliseconds, as
// duration does; prefix qualifies their names, such as "Config.".
func durations(prefix string, fields []durationField) error {
	for _, f := range fields {
		if err := duration(prefix+f.name, f.v, f.def, time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// duration checks an optional duration: negative is an error, zero means
// the default, and anything else must be at least unit, the precision it is
// stored or used with.
func duration(field string, v *time.Duration, def, unit time.Duration) error {
	fix := fmt.Sprintf("use a positive duration, or 0 for the default (%v)", def)
	if def == 0 {
		fix = "use a positive duration, or 0 for none"
	}
	switch {
	case *v < 0:
		return optionError(field, fmt.Sprintf("is %v", *v), fix)
	case *v == 0:
		*v = def
	case *v < unit:
		return optionError(field, fmt.Sprintf("is %v", *v), fmt.Sprintf("it counts in steps of %v: use at least %v", unit, unit))
	}
	return nil
}

// Config returns the tracker's configuration with defaults filled in.
func (t *Tracker[S]) Config() Config[S] { return t.cfg }

// Get returns the task, read with strong consistency. A missing task gives
// a [*TaskError] matching ErrTaskNotFound.
func (t *Tracker[S]) Get(ctx context.Context, taskID string) (*Task[S], error) {
	if err := t.checkID("taskID", taskID); err != nil {
		return nil, err
	}
	item, err := t.read(ctx, taskID)
	if err != nil {
		return nil, err
	}
	if item == nil {
		return nil, &TaskError{Op: "get", Job: t.cfg.Job, TaskID: taskID, Err: ErrTaskNotFound}
	}
	return decodeTask[S](item)
}
