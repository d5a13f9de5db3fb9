package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// Exit codes. Scripts can tell "nothing to do" from "broken" from "you
// typed it wrong" without parsing messages.
const (
	exitOK          = 0   // The command did what it was asked.
	exitFailure     = 1   // DynamoDB, the network or credentials failed.
	exitUsage       = 2   // Bad flags or arguments; nothing was done.
	exitNotFound    = 3   // The task or the table does not exist.
	exitLocked      = 4   // A worker holds the task under a live lease.
	exitInterrupted = 130 // Interrupted by Ctrl-C or SIGTERM.
)

// app is one run of the command. Tests build their own, with buffers for
// output, a map for the environment, a fixed clock and a client for the
// test server.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// terminal says stdout is a terminal, so stats --watch may clear it.
	terminal bool
	// progress says stderr is a terminal, so long requeues draw a bar.
	progress bool
	// dial overrides how the DynamoDB client is made; tests use it to
	// reach their shared server. Nil means loadClient.
	dial func(ctx context.Context, c *common) (ddbtrack.Client, error)
	// explain tells an error as an operator needs it; once a command has
	// its job, it names the job's table. Nil means ops.Explain.
	explain func(error) ops.Explanation
}

// command is one subcommand. define registers the command's own flags on
// fs and returns the function that runs it, which reads the parsed flags
// through the closure.
type command struct {
	name  string
	args  string // the synopsis after the name, e.g. "[flags] TASK"
	short string // one line for the command list
	long  string // the rest of `ddbtrack help NAME`
	// offline commands need no table, job or DynamoDB client.
	offline bool
	define  func(fs *flag.FlagSet) runFunc
}

type runFunc func(ctx context.Context, s *session, args []string) error

// session is what a running command works with.
type session struct {
	*app
	common  *common
	tracker *ddbtrack.Tracker[Code]
	// job is the tracker's job as the operator sees it; commands reach the
	// library through it, apart from create-table.
	job *ops.Job[Code]
	st  *ops.Statuses[Code]
}

// commands is the command list in the order help shows it.
var commands []*command

func init() {
	commands = []*command{
		cmdCreateTable, cmdStats, cmdLs, cmdShow, cmdErrors, cmdRequeue, cmdReset, cmdCancel, cmdDueNow, cmdDelete, cmdServe,
		cmdCompletion, cmdVersion,
	}
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line. It exits with exitUsage and
// nothing has been done.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// run runs the command line and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.printUsage(a.stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return a.help(args[1])
		}
		a.printUsage(a.stdout)
		return exitOK
	case "-version", "--version":
		// The flag spelling is what people try first; it means the
		// version command.
		args = append([]string{"version"}, args[1:]...)
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		fmt.Fprintf(a.stderr, "ddbtrack: unknown command %q: run `ddbtrack help` for the list\n", args[0])
		return exitUsage
	}
	return a.report(ctx, cmd, a.runCommand(ctx, cmd, args[1:]))
}

func (a *app) runCommand(ctx context.Context, cmd *command, args []string) error {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Errors are reported once, by report.
	var c *common
	if !cmd.offline {
		c = registerCommon(fs, a.getenv)
	}
	runFn := cmd.define(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		a.printCommandHelp(a.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return usagef("%v: run `ddbtrack help %s`", err, cmd.name)
	}
	s := &session{app: a, common: c}
	if !cmd.offline {
		if err := s.open(ctx); err != nil {
			return err
		}
	}
	return runFn(ctx, s, pos)
}

// parseInterspersed parses flags wherever they appear, so that
// `ddbtrack show TASK --json` works as well as `ddbtrack show --json TASK`.
// Arguments after "--" are never flags, for task IDs that start with '-'.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// report prints err, if any, with what to do about it, and returns the
// exit code. Every message goes through ops.Visible, whatever built it, so
// that no value an error carries from DynamoDB (a lease owner, a status
// name, a task ID) reaches the terminal as a control sequence.
func (a *app) report(ctx context.Context, cmd *command, err error) int {
	if err == nil {
		return exitOK
	}
	var errs multiError
	if !errors.As(err, &errs) {
		errs = multiError{err}
	}
	for _, e := range errs {
		fmt.Fprintf(a.stderr, "ddbtrack %s: %s\n", cmd.name, ops.Visible(a.message(e), true))
	}
	return exitCode(ctx, err)
}

// message says what went wrong in the command's words: the library's
// hints name Go methods, and the SDK's name exceptions, which mean little
// to someone at a shell. ops.Explain tells them as an operator needs them.
func (a *app) message(err error) string {
	var usage *usageError
	if errors.As(err, &usage) {
		return usage.msg
	}
	if a.explain != nil {
		return a.explain(err).String()
	}
	return ops.Explain(err).String()
}

// multiError holds the failures of a command that goes on after one task
// fails, such as reset with several IDs. Each is reported on its own line.
type multiError []error

func (m multiError) Error() string {
	msgs := make([]string, len(m))
	for i, e := range m {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

func (m multiError) Unwrap() []error { return m }

// joinErrors returns nil for no errors, and a multiError otherwise.
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return multiError(errs)
}

func exitCode(ctx context.Context, err error) int {
	var usage *usageError
	switch {
	case errors.As(err, &usage), ops.IsBadInput(err):
		return exitUsage
	case ops.IsNotFound(err), ops.IsTableMissing(err):
		return exitNotFound
	case ops.IsLocked(err):
		return exitLocked
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitFailure
}

// open connects to DynamoDB and builds the tracker from the common flags.
// It makes no request: a wrong table shows up on the first one.
func (s *session) open(ctx context.Context) error {
	c := s.common
	if c.table == "" {
		return usagef("no table: pass --table NAME or set %s", envTable)
	}
	if c.job == "" {
		return usagef("no job: pass --job NAME or set %s", envJob)
	}
	spec, err := parseStatuses(c.statuses)
	if err != nil {
		return usagef("--statuses: %v", err)
	}
	spec.register()
	dial := s.dial
	if dial == nil {
		dial = loadClient
	}
	client, err := dial(ctx, c)
	if err != nil {
		return err
	}
	cfg := spec.config(c.table, c.job)
	cfg.Shards = c.shards
	// Viewers share the job's counts, so that however many dashboards and
	// watchers are open, the job is counted once per CountMaxAge.
	cfg.CountMaxAge = countMaxAge
	cfg.Logger = slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Now = s.now
	if s.tracker, err = ddbtrack.New(client, cfg); err != nil {
		return err
	}
	s.job = ops.NewJob(s.tracker)
	s.st = s.job.Statuses()
	s.explain = s.job.Explain
	return nil
}

// Environment variables that supply defaults for the common flags.
const (
	envTable    = "DDBTRACK_TABLE"
	envJob      = "DDBTRACK_JOB"
	envStatuses = "DDBTRACK_STATUSES"
	envShards   = "DDBTRACK_SHARDS"
)

// common holds the flags every command that touches a table takes.
type common struct {
	table, job, statuses string
	shards               int
	region, profile      string
	endpoint             string
}

func registerCommon(fs *flag.FlagSet, getenv func(string) string) *common {
	c := &common{}
	fs.StringVar(&c.table, "table", getenv(envTable), "DynamoDB table `name` ($"+envTable+")")
	fs.StringVar(&c.job, "job", getenv(envJob), "job `name` ($"+envJob+")")
	statuses := getenv(envStatuses)
	if statuses == "" {
		statuses = defaultStatuses
	}
	fs.StringVar(&c.statuses, "statuses", statuses, "the job's status `list` as role:name=value,... ($"+envStatuses+"; see `ddbtrack help statuses`)")
	shards, _ := strconv.Atoi(getenv(envShards))
	if shards <= 0 {
		shards = defaultShards
	}
	fs.IntVar(&c.shards, "shards", shards, "status-index shards the job was configured with, Config.Shards ($"+envShards+")")
	fs.StringVar(&c.region, "region", "", "AWS `region`; defaults to the SDK's ($AWS_REGION, the profile)")
	fs.StringVar(&c.profile, "profile", "", "AWS shared config `profile`; defaults to $AWS_PROFILE")
	fs.StringVar(&c.endpoint, "endpoint-url", "", "DynamoDB endpoint `URL`, e.g. http://127.0.0.1:8000; defaults to $AWS_ENDPOINT_URL_DYNAMODB")
	return c
}

// countMaxAge is how old the counts that stats, stats --watch and the
// dashboard show may be: they are the job's shared counts, refreshed by one
// viewer at a time.
const countMaxAge = 10 * time.Second

// defaultShards is the default of ddbtrack's Config.Shards, which a job
// that does not set it is indexed with.
const defaultShards = 2

// commonFlags are shown apart from a command's own flags in its help.
var commonFlags = map[string]bool{
	"table": true, "job": true, "statuses": true, "shards": true,
	"region": true, "profile": true, "endpoint-url": true,
}

func (a *app) printUsage(w io.Writer) {
	fmt.Fprint(w, `ddbtrack shows and repairs the tasks of a job tracked in DynamoDB by ddbtrack.

Usage:
  ddbtrack <command> [flags] [args]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.short)
	}
	tw.Flush()
	fmt.Fprint(w, `
Every command takes --table and --job (or DDBTRACK_TABLE and DDBTRACK_JOB),
and uses the AWS SDK's configuration: AWS_PROFILE, AWS_REGION and
AWS_ENDPOINT_URL_DYNAMODB, or --profile, --region and --endpoint-url.

Run 'ddbtrack help <command>' for a command's flags, 'ddbtrack help statuses'
for --statuses, and 'ddbtrack help exit-codes' for exit codes.
`)
}

func (a *app) help(topic string) int {
	switch topic {
	case "statuses":
		fmt.Fprint(a.stdout, statusesHelp)
		return exitOK
	case "exit-codes":
		fmt.Fprint(a.stdout, exitCodesHelp)
		return exitOK
	}
	cmd := findCommand(topic)
	if cmd == nil {
		fmt.Fprintf(a.stderr, "ddbtrack: no help for %q: run `ddbtrack help` for the list of commands\n", topic)
		return exitUsage
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	if !cmd.offline {
		registerCommon(fs, a.getenv)
	}
	cmd.define(fs)
	a.printCommandHelp(a.stdout, cmd, fs)
	return exitOK
}

func (a *app) printCommandHelp(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: ddbtrack %s %s\n\n%s\n", cmd.name, cmd.args, cmd.short)
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.long))
	}
	own, shared := new(strings.Builder), new(strings.Builder)
	fs.VisitAll(func(f *flag.Flag) {
		out := own
		if commonFlags[f.Name] {
			out = shared
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(out, "%s\n      %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(out, " (default %s)", f.DefValue)
		}
		out.WriteString("\n")
	})
	if own.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", own)
	}
	if shared.Len() > 0 {
		fmt.Fprintf(w, "\nTable and AWS flags:\n%s", shared)
	}
}

const statusesHelp = `The command does not know your job's Go status enum, so --statuses (or
DDBTRACK_STATUSES) describes it: a comma-separated list of entries, each

  role:name=value   the status that plays a role, with your enum's name for it
  role=value        the same, when the name is the role itself
  name=value        a status outside the five roles, e.g. a pipeline step

The roles are pending, running, failed, succeeded and ignored, the five
fields of ddbtrack.Config. Each must be given once.

The names must be your enum's String() values: resets and requeues store the
name beside the number (status_name), and a different name would rename the
status in the table.

The default is the seed notebook's enum, which 'make demo' uses:

  ` + defaultStatuses + `

Commands accept a status as its role, its name or its number: --status failed,
--status s06_failed and --status 6 mean the same.
`

const exitCodesHelp = `Exit codes:

  0    success (a dry run that matched tasks is a success too)
  1    failure: DynamoDB, the network or credentials
  2    usage error: bad flags or arguments, nothing was done
  3    not found: the task or the table does not exist
  4    locked: a worker holds the task under a lease that has not expired
  130  interrupted (Ctrl-C, SIGTERM)
`
