package ddbtrack_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

// crashWorkerEnv names the table a child process works on when
// TestWorkerKilledMidTask starts this test binary as a worker.
const crashWorkerEnv = "DDBTRACK_CRASH_WORKER_TABLE"

// crashOwner is the child worker's lease owner.
const crashOwner = "crash-child"

// TestCrashWorkerProcess is not a test of its own: it is the worker that
// TestWorkerKilledMidTask runs in a child process and kills. Without the
// environment variable that the parent sets it does nothing.
func TestCrashWorkerProcess(t *testing.T) {
	table := os.Getenv(crashWorkerEnv)
	if table == "" {
		return
	}
	// Not config(t): that would delete the parent's table when this
	// process ends, if it ever ended on its own.
	tr, err := ddbtrack.New(ddbtracktest.Client(t), ddbtrack.Config[Step]{
		Table: table, Job: "test-job",
		Pending: Todo, Running: InProgress, Failed: Failed, Succeeded: Success, Ignored: Ignore,
		Lease:  time.Second,
		Owner:  crashOwner,
		Logger: quietLogger(),
	})
	require.NoError(t, err)
	_, err = tr.Process(context.Background(), func(_ context.Context, task *ddbtrack.Task[Step]) error {
		fmt.Printf("started %s\n", task.ID)
		time.Sleep(time.Minute) // Killed long before this ends.
		return nil
	}, ddbtrack.ProcessOptions[Step]{Concurrency: 3, Mode: ddbtrack.Service})
	require.NoError(t, err)
}

// TestWorkerKilledMidTask: a worker process is killed with SIGKILL while it
// runs three tasks. Its leases stop being renewed; once they expire, a
// worker in this process takes the tasks over, records the dead attempts,
// and finishes the job.
func TestWorkerKilledMidTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = time.Second
	tr := newTracker(t, cfg)
	ids := pendingTasks(t, tr, 6)

	endpoint := serverEndpoint(t)
	if endpoint == "" {
		t.Skip("the child process needs an endpoint to reach the same server; the tests run against real AWS")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestCrashWorkerProcess$", "-test.count=1", "-test.timeout=5m")
	child.Env = append(os.Environ(), crashWorkerEnv+"="+cfg.Table, ddblocal.EnvEndpoint+"="+endpoint)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})

	started := map[string]bool{}
	lines := bufio.NewScanner(out)
	deadline := time.AfterFunc(time.Minute, func() { _ = child.Process.Kill() })
	for len(started) < 3 && lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "started "); ok {
			started[id] = true
		}
	}
	deadline.Stop()
	require.Len(t, started, 3, "the child did not start three tasks")
	require.NoError(t, child.Process.Kill()) // SIGKILL: no cleanup of any kind.
	_ = child.Wait()
	for id := range started {
		task := get(t, tr, id)
		require.Equal(t, InProgress, task.Status)
		require.Equal(t, crashOwner, task.LeaseOwner)
	}

	var mu sync.Mutex
	runs := map[string]int{}
	res, err := tr.Process(ctx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		mu.Lock()
		defer mu.Unlock()
		runs[task.ID]++
		return nil
	}, ddbtrack.ProcessOptions[Step]{PollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, 6, res.Succeeded)

	for _, id := range ids {
		task := get(t, tr, id)
		require.Equal(t, Success, task.Status, id)
		require.Equal(t, 1, runs[id], id)
		if !started[id] {
			require.Equal(t, int64(1), task.Fence, id)
			continue
		}
		require.Equal(t, int64(2), task.Fence, "%s: the dead worker's claim and the takeover", id)
		require.Len(t, task.Errors, 1, id)
		require.Contains(t, task.Errors[0].Message, "lease of worker "+crashOwner+" expired")
		require.Equal(t, 1, task.Errors[0].Attempt)
	}
}
