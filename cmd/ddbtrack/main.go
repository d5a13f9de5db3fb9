// Command ddbtrack shows and repairs the tasks of a job tracked by the
// ddbtrack library: counts per status, failed tasks with their errors and
// stacks, stuck tasks, tasks scheduled or backing off and when each is
// due, and requeues, cancels and resets. `ddbtrack serve` opens the same
// views as a web dashboard.
//
// Usage:
//
//	ddbtrack <command> [flags] [args]
//	ddbtrack help <command>
//
// Every command takes --table and --job (or DDBTRACK_TABLE and DDBTRACK_JOB)
// and the AWS SDK's own configuration: AWS_PROFILE or --profile, AWS_REGION
// or --region, and AWS_ENDPOINT_URL_DYNAMODB or --endpoint-url for a local
// server.
//
// The command does not know the job's Go enum, so --statuses (or
// DDBTRACK_STATUSES) tells it which value plays each role and what each
// value is called; see `ddbtrack help statuses`. It must match the job's
// own names, because resets and requeues store the name beside the value.
// The default is the seed notebook's enum, which `make demo` uses.
//
// Exit codes: 0 success, 1 failure (DynamoDB, network, credentials),
// 2 usage error, 3 task or table not found, 4 task locked by a worker,
// 130 interrupted.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		now:      time.Now,
		terminal: isTerminal(os.Stdout),
		progress: isTerminal(os.Stderr),
	}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// isTerminal reports whether f is a character device, which is all the
// command needs to know to decide whether to draw progress bars and clear
// the screen.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
