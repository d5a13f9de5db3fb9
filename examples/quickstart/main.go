// Command quickstart replays the seed notebook's status-tracker walkthrough
// with ddbtrack against a local DynamoDB: a task that succeeds, one that
// fails, three failures in a row that make it ignored, the refusal that
// follows, and the records as JSON.
//
// It finds DynamoDB through the AWS SDK's own configuration, as any
// program would. `make demo` starts a local dynalite and points it there;
// to use another server, name it and give any credentials and region:
//
//	make demo
//	AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000 AWS_REGION=us-east-1 \
//		AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local go run ./examples/quickstart
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack"
)

// StatusEnum is the seed notebook's enum: a machine-readable integer that
// grows as the task gets closer to done, and a human-readable name.
type StatusEnum int

const (
	Todo       StatusEnum = 0
	InProgress StatusEnum = 3
	Failed     StatusEnum = 6
	Success    StatusEnum = 9
	Ignore     StatusEnum = 10
)

func (s StatusEnum) String() string {
	switch s {
	case Todo:
		return "s00_todo"
	case InProgress:
		return "s03_in_progress"
	case Failed:
		return "s06_failed"
	case Success:
		return "s09_success"
	case Ignore:
		return "s10_ignore"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	client := dynamodb.NewFromConfig(awsCfg)

	tracker, err := ddbtrack.New(client, ddbtrack.Config[StatusEnum]{
		Table:       envOr("DDBTRACK_TABLE", "ddbtrack-quickstart"),
		Job:         envOr("DDBTRACK_JOB", "test-job"),
		Pending:     Todo,
		Running:     InProgress,
		Failed:      Failed,
		Succeeded:   Success,
		Ignored:     Ignore,
		MaxAttempts: 3,
		Lease:       15 * time.Minute,
		// A failed task waits before its next attempt: 100-150 ms, then
		// 200-300 ms here; the default starts at 30 s.
		RetryDelay: ddbtrack.Exponential(100*time.Millisecond, time.Second),
		Logger:     logger(slog.LevelDebug),
	})
	if err != nil {
		return err
	}

	step("1. Create the table (and its status index), and wait until it is active")
	if err := tracker.CreateTable(ctx); err != nil {
		return err
	}

	const id = "t-1"
	if err := succeed(ctx, tracker, id); err != nil {
		return err
	}
	if err := failUntilIgnored(ctx, tracker, id); err != nil {
		return err
	}

	step("6. The task's record, as readable JSON")
	task, err := tracker.Get(ctx, id)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(task, "   ", "  ")
	if err != nil {
		return err
	}
	fmt.Println("   " + string(out))

	step("7. A batch: 40 tasks through a pool of 4 workers; every fifth one can never succeed")
	return batch(ctx, client, tracker.Config())
}

// succeed creates the task afresh and runs it to success, showing it as
// another worker would see it before, during and after.
func succeed(ctx context.Context, tracker *ddbtrack.Tracker[StatusEnum], id string) error {
	step("2. Create a task and run it to success")
	// A rerun of the demo against a persistent server finds the task from
	// last time; start it afresh, as the seed's Tracker.new does.
	if err := tracker.Delete(ctx, id); err != nil && !errors.Is(err, ddbtrack.ErrTaskNotFound) {
		return err
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: id, Data: map[string]int{"version": 1}}); err != nil {
		return err
	}
	if err := show(ctx, tracker, id, "before the task started"); err != nil {
		return err
	}
	err := tracker.Start(ctx, id, func(ctx context.Context, task *ddbtrack.Task[StatusEnum]) error {
		if err := show(ctx, tracker, id, "inside Start, as another worker would see it"); err != nil {
			return err
		}
		// Do some work, and keep new data: it is stored with the success.
		if err := task.SetData(map[string]int{"version": 2}); err != nil {
			return err
		}
		return task.SetOutput(map[string]string{"result": "processed"})
	})
	if err != nil {
		return err
	}
	return show(ctx, tracker, id, "after Start returned")
}

// failUntilIgnored runs the task again with business logic that fails,
// until MaxAttempts failures in a row make it ignored, and shows that it
// is then refused.
func failUntilIgnored(ctx context.Context, tracker *ddbtrack.Tracker[StatusEnum], id string) error {
	step("3. Reset the task and run it again; this time the business logic fails")
	if err := tracker.Reset(ctx, id); err != nil {
		return err
	}
	err := tracker.Start(ctx, id, func(ctx context.Context, task *ddbtrack.Task[StatusEnum]) error {
		if err := task.SetData(map[string]int{"version": 3}); err != nil {
			return err
		}
		return errors.New("something went wrong")
	})
	fmt.Printf("   Start returned the function's own error: %v\n", err)
	if err := show(ctx, tracker, id, "after the failure (the data is still version 2)"); err != nil {
		return err
	}

	step("4. Fail it until it is ignored (MaxAttempts = 3 failures in a row)")
	if err := tracker.Reset(ctx, id); err != nil {
		return err
	}
	for attempt := 1; attempt <= 3; attempt++ {
		err := tracker.Start(ctx, id, func(ctx context.Context, task *ddbtrack.Task[StatusEnum]) error {
			return fmt.Errorf("attempt %d failed", task.Attempts)
		})
		var refused *ddbtrack.TaskError
		if errors.As(err, &refused) && errors.Is(err, ddbtrack.ErrTaskNotDue) {
			// Too soon after the last failure: wait out the retry delay.
			fmt.Printf("   attempt %d: refused, due at %s; waiting\n", attempt, refused.DueAt.Format(time.StampMilli))
			time.Sleep(time.Until(refused.DueAt))
			attempt--
			continue
		}
		fmt.Printf("   attempt %d: %v\n", attempt, err)
		if err := show(ctx, tracker, id, fmt.Sprintf("after attempt %d", attempt)); err != nil {
			return err
		}
	}

	step("5. A fourth start is refused, and the function does not run")
	err = tracker.Start(ctx, id, func(context.Context, *ddbtrack.Task[StatusEnum]) error {
		return errors.New("unreachable: an ignored task does not run")
	})
	fmt.Printf("   errors.Is(err, ddbtrack.ErrTaskIgnored) = %v\n   %v\n", errors.Is(err, ddbtrack.ErrTaskIgnored), err)
	return nil
}

// batch runs a small job through Process and prints its counts, which also
// leaves the table with something to look at in the dashboard (make
// dashboard).
func batch(ctx context.Context, client ddbtrack.Client, cfg ddbtrack.Config[StatusEnum]) error {
	// Forty tasks' lifecycles at Debug would bury the point; log only the
	// tasks that end ignored.
	cfg.Logger = logger(slog.LevelError)
	tracker, err := ddbtrack.New(client, cfg)
	if err != nil {
		return err
	}
	tasks := make([]ddbtrack.NewTask, 40)
	for i := range tasks {
		tasks[i] = ddbtrack.NewTask{ID: fmt.Sprintf("batch-%02d", i), Data: map[string]int{"n": i}}
	}
	for _, nt := range tasks {
		if err := tracker.Delete(ctx, nt.ID); err != nil && !errors.Is(err, ddbtrack.ErrTaskNotFound) {
			return err
		}
	}
	if _, err = tracker.CreateMany(ctx, tasks); err != nil {
		return err
	}
	res, err := tracker.Process(ctx, func(ctx context.Context, task *ddbtrack.Task[StatusEnum]) error {
		var data map[string]int
		if err := task.UnmarshalData(&data); err != nil {
			return err
		}
		switch n := data["n"]; {
		case n%5 == 0:
			return fmt.Errorf("record %d: invalid date %q", n, "2026-02-30")
		case n%7 == 3 && task.Attempts == 1:
			return errors.New("upstream timeout; a retry will do")
		}
		return task.SetOutput(map[string]int{"square": data["n"] * data["n"]})
	}, ddbtrack.ProcessOptions[StatusEnum]{Concurrency: 4, PollInterval: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	fmt.Printf("   attempts: %d claimed, %d succeeded, %d failed and retried, %d ignored\n",
		res.Claimed, res.Succeeded, res.Failed, res.Ignored)
	counts, err := tracker.Count(ctx)
	if err != nil {
		return err
	}
	fmt.Println("   the job's status counts, t-1 included (Count: COUNT queries on the status index):")
	for _, s := range []StatusEnum{Todo, InProgress, Failed, Success, Ignore} {
		fmt.Printf("     %-16s %d\n", s, counts.ByStatus[s])
	}
	return nil
}

// show prints the task's status and lock, as the seed notebook does with
// tracker.is_locked() and tracker.status_name.
func show(ctx context.Context, tracker *ddbtrack.Tracker[StatusEnum], id, when string) error {
	task, err := tracker.Get(ctx, id)
	if err != nil {
		return err
	}
	var data map[string]int
	if err := task.UnmarshalData(&data); err != nil {
		return err
	}
	lock := "unlocked"
	if task.LeaseOwner != "" && time.Now().Before(task.LeaseExpiresAt) {
		lock = fmt.Sprintf("locked by %s until %s", task.LeaseOwner, task.LeaseExpiresAt.Format(time.TimeOnly))
	}
	fmt.Printf("   %-50s status=%-16s attempts=%d %s data=%v\n", when+":", task.Status, task.Attempts, lock, data)
	return nil
}

func step(title string) { fmt.Printf("\n== %s\n", title) }

// logger prints ddbtrack's lifecycle log lines in logfmt without
// timestamps, indented under the step that caused them, so the demo reads
// like the notebook.
func logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(prefixWriter{os.Stdout, []byte("   log: ")}, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// prefixWriter writes each log line with a prefix. slog's handlers write
// one whole line per call, so prefixing each call is enough.
type prefixWriter struct {
	w      io.Writer
	prefix []byte
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append(p.prefix[:len(p.prefix):len(p.prefix)], b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
