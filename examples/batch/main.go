// Command batch runs a batch job with ddbtrack's worker pool: 5,000 tasks,
// 8 workers, failures injected at random. It shows a live progress line,
// then the count of tasks in each status and the errors of the tasks that
// failed for good, and finally reruns those once their "bug" is fixed.
//
// It finds DynamoDB through the AWS SDK's own configuration, as any
// program would. From the repository, withddb starts a local dynalite for
// it; AWS_ENDPOINT_URL_DYNAMODB with any credentials and region points it
// at another server. It works in a new table unless DDBTRACK_TABLE names
// one, on the job "thumbnails" unless DDBTRACK_JOB names another: the
// variables the ddbtrack command reads, so that the command can look at
// what the example left in a server that outlives it.
//
//	go run ./internal/dev/withddb -- go run ./examples/batch
//	go run ./internal/dev/withddb -- go run ./examples/batch -tasks 500 -workers 4
//	AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8765 DDBTRACK_TABLE=batch DDBTRACK_JOB=thumbnails go run ./examples/batch
//
// Interrupt it with Ctrl-C to see a graceful shutdown: no new claims, the
// tasks in flight finish, and a second run carries on where it stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/ddbtrack/ddbtrack"
)

// Status is the job's own enum: an image thumbnailing job.
type Status int

const (
	Queued Status = iota
	Resizing
	Retrying
	Done
	GaveUp
)

func (s Status) String() string {
	switch s {
	case Queued:
		return "queued"
	case Resizing:
		return "resizing"
	case Retrying:
		return "retrying"
	case Done:
		return "done"
	case GaveUp:
		return "gave-up"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Image is a task's data.
type Image struct {
	Key   string `dynamodbav:"key"`
	Bytes int    `dynamodbav:"bytes"`
}

// settings is one run's configuration.
type settings struct {
	table, job     string
	tasks, workers int
	flakiness      float64
	progressEvery  time.Duration
}

// fromEnv fills in the table and the job from the environment, as the
// ddbtrack command reads them: DDBTRACK_TABLE, or a new table; and
// DDBTRACK_JOB, or "thumbnails".
func (s settings) fromEnv(getenv func(string) string) settings {
	s.table, s.job = getenv("DDBTRACK_TABLE"), getenv("DDBTRACK_JOB")
	if s.table == "" {
		s.table = fmt.Sprintf("batch-example-%08x", rand.Uint32())
	}
	if s.job == "" {
		s.job = "thumbnails"
	}
	return s
}

// statusesFlag is the ddbtrack command's --statuses for Status.
const statusesFlag = "pending:queued=0,running:resizing=1,failed:retrying=2,succeeded:done=3,ignored:gave-up=4"

func main() {
	tasks := flag.Int("tasks", 5000, "number of tasks")
	workers := flag.Int("workers", 8, "concurrent workers")
	flakiness := flag.Float64("flaky", 0.05, "share of attempts that fail with a transient error")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := settings{tasks: *tasks, workers: *workers, flakiness: *flakiness, progressEvery: time.Second}.fromEnv(os.Getenv)
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err == nil {
		err = run(ctx, dynamodb.NewFromConfig(awsCfg), os.Stdout, s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "batch:", err)
		os.Exit(1)
	}
	if endpoint := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"); endpoint != "" {
		fmt.Printf("\nLook at it with the ddbtrack command (cd cmd/ddbtrack):\n  AWS_ENDPOINT_URL_DYNAMODB=%s DDBTRACK_TABLE=%s DDBTRACK_JOB=%s DDBTRACK_STATUSES=%s go run . stats\n",
			endpoint, s.table, s.job, statusesFlag)
	}
}

func run(ctx context.Context, client ddbtrack.Client, out io.Writer, s settings) error {
	tracker, err := ddbtrack.New(client, ddbtrack.Config[Status]{
		Table:       s.table,
		Job:         s.job,
		Pending:     Queued,
		Running:     Resizing,
		Failed:      Retrying,
		Succeeded:   Done,
		Ignored:     GaveUp,
		MaxAttempts: 3,
		Lease:       30 * time.Second,
		// Warnings and errors only: the pool logs every failure, which
		// would drown the progress line.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	if err := tracker.CreateTable(ctx); err != nil {
		return err
	}

	if err := createImages(ctx, out, tracker, s); err != nil {
		return err
	}
	r := &resizer{flakiness: s.flakiness}
	fmt.Fprintf(out, "Processing with %d workers (Ctrl-C stops claiming; tasks in flight finish):\n", s.workers)
	began := time.Now()
	res, err := process(ctx, out, tracker, r.resize, s)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n\nThis run took %v: %d attempts, %d succeeded, %d failed and were retried, %d gave up, %d claims lost to other workers.\n",
		time.Since(began).Round(time.Millisecond), res.Claimed, res.Succeeded, res.Failed, res.Ignored, res.Refused)
	if err := statusTable(ctx, out, tracker); err != nil {
		return err
	}
	return rerun(ctx, out, tracker, r, s)
}

// createImages creates the job's tasks, one per image, in one call.
func createImages(ctx context.Context, out io.Writer, tracker *ddbtrack.Tracker[Status], s settings) error {
	fmt.Fprintf(out, "Creating %d tasks in job %s of table %s... ", s.tasks, s.job, s.table)
	began := time.Now()
	newTasks := make([]ddbtrack.NewTask, s.tasks)
	for i := range newTasks {
		key := fmt.Sprintf("photos/%05d.jpg", i)
		newTasks[i] = ddbtrack.NewTask{ID: key, Data: Image{Key: key, Bytes: 50_000 + rand.IntN(5_000_000)}}
	}
	if _, err := tracker.CreateMany(ctx, newTasks); err != nil {
		return err
	}
	fmt.Fprintf(out, "done in %v.\n\n", time.Since(began).Round(time.Millisecond))
	return nil
}

// resizer is the business logic, with a "bug": about one image in a
// hundred is in a format it does not handle, so it fails on every attempt
// until fixed is set.
type resizer struct {
	fixed     bool // Set only between runs of the pool.
	flakiness float64
}

func (r *resizer) resize(ctx context.Context, task *ddbtrack.Task[Status]) error {
	var img Image
	if err := task.UnmarshalData(&img); err != nil {
		return err
	}
	select { // The work: a millisecond or two.
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(500+rand.IntN(1500)) * time.Microsecond):
	}
	if !r.fixed && unsupported(img.Key) {
		return fmt.Errorf("decode %s: unsupported color profile %q", img.Key, "CMYK")
	}
	if rand.Float64() < r.flakiness {
		return errors.New("upload thumbnail: connection reset by peer")
	}
	return task.SetOutput(map[string]any{"thumbnail": strings.TrimSuffix(img.Key, ".jpg") + "_200.jpg"})
}

// rerun shows the tasks that gave up and why, fixes the bug, and runs them
// again: one Requeue finds them all.
func rerun(ctx context.Context, out io.Writer, tracker *ddbtrack.Tracker[Status], r *resizer, s settings) error {
	fmt.Fprintln(out, "\nTasks that gave up, and why:")
	shown := 0
	for task, err := range tracker.Query(ctx, ddbtrack.QueryOptions[Status]{Statuses: []Status{GaveUp}, Limit: 10}) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-18s after %d attempts: %s\n", task.ID, task.Attempts, task.LastError)
		shown++
	}
	if shown == 0 {
		fmt.Fprintln(out, "  none")
		return nil
	}

	fmt.Fprintln(out, "\nThe resizer now handles CMYK. Requeueing the tasks that gave up, and running them again:")
	r.fixed = true
	moved, err := tracker.Requeue(ctx, ddbtrack.RequeueOptions[Status]{Statuses: []Status{GaveUp}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Requeued %d tasks.\n", moved.Moved)
	if _, err := process(ctx, out, tracker, r.resize, s); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return statusTable(ctx, out, tracker)
}

// process runs the pool with a live progress line.
func process(ctx context.Context, out io.Writer, tracker *ddbtrack.Tracker[Status], fn func(context.Context, *ddbtrack.Task[Status]) error, s settings) (ddbtrack.ProcessResult, error) {
	res, err := tracker.Process(ctx, fn, ddbtrack.ProcessOptions[Status]{
		Concurrency:  s.workers,
		PollInterval: 100 * time.Millisecond,
		// Each report counts every status with COUNT queries, which read
		// every task they count: once a second is plenty for a person.
		ProgressInterval: s.progressEvery,
		Progress: func(p ddbtrack.Progress) {
			total := p.Succeeded + p.Ignored + p.Remaining
			eta := "?"
			if p.ETA > 0 {
				eta = p.ETA.Round(time.Second).String()
			}
			fmt.Fprintf(out, "\r  %5d/%d done · %4d to retry · %3d gave up · %4d running · %6.0f tasks/s · ETA %-6s",
				p.Succeeded, total, p.Failed, p.Ignored, p.Running, p.Rate, eta)
		},
	})
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(out, "\n\nInterrupted: no new claims were made, and the tasks in flight finished. Run again to carry on.")
		return res, nil
	}
	return res, err
}

// statusTable prints the count of tasks in each status.
func statusTable(ctx context.Context, out io.Writer, tracker *ddbtrack.Tracker[Status]) error {
	counts, err := tracker.Count(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "status\ttasks\t")
	for _, s := range []Status{Queued, Resizing, Retrying, Done, GaveUp} {
		fmt.Fprintf(w, "%s\t%d\t\n", s, counts.ByStatus[s])
	}
	return w.Flush()
}

// unsupported decides, the same way on every run, which images the
// resizer cannot handle.
func unsupported(key string) bool {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32()%100 == 0
}
