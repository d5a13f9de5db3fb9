// Package ddblocal runs a local DynamoDB-compatible server for ddbtrack's
// tests, examples and benchmarks, and for the public test kit
// (ddbtracktest), and builds SDK clients that talk to it.
//
// Two servers are supported. [Dynalite] (pinned in package-lock.json) is the
// default because it starts in well under a second and can keep its data on
// disk across a [Server.Restart]. In this repository `make deps` installs it
// into node_modules; anywhere else, the first start installs the pinned
// version into the user's cache directory (see [DynaliteVersion]). [Moto] is
// a second, independent implementation: running the suite against both
// catches tests that depend on one emulator's quirks rather than on
// DynamoDB's documented behaviour.
//
// A server runs as a child process in its own process group, so [Server.Stop]
// removes it together with anything it spawned. The child also exits when
// the process that started it dies, so a test binary that panics, times out,
// or never stops its shared server does not leave servers behind: it reads
// its standard input, a pipe from the starter, until the OS closes it, and
// on Linux the parent-death signal kills it as well.
package ddblocal

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack/internal/localaws"
)

// Kind names a local server implementation.
type Kind string

const (
	// Dynalite is the Node.js server installed from package-lock.json.
	Dynalite Kind = "dynalite"

	// Moto is the Python server from the moto package (`pip install
	// 'moto[server]'`).
	Moto Kind = "moto"

	// External means no local server is started because
	// AWS_ENDPOINT_URL_DYNAMODB names an endpoint to use instead. [Start]
	// does not accept it; [KindFromEnv] reports it.
	External Kind = "external"
)

// Environment variables that choose the server. They are read by
// [KindFromEnv] and [Connect].
const (
	// EnvServer selects the server to start: "dynalite" (the default) or
	// "moto".
	EnvServer = "DDBTRACK_SERVER"

	// EnvEndpoint is the SDK's own per-service endpoint variable. When it is
	// set, no server is started and clients use that endpoint, so the same
	// tests can run against any DynamoDB-compatible server or real AWS.
	EnvEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"
)

const (
	// readyTimeout caps how long Start waits for the server to answer. A
	// loaded 2-core CI machine starts dynalite in about a second and moto in
	// about three, so 30 seconds means "broken", not "slow".
	readyTimeout = 30 * time.Second

	// pollInterval is the pause between readiness probes: short enough
	// that tests do not notice, long enough not to burn a core.
	pollInterval = 25 * time.Millisecond

	// stopGrace is how long Stop waits after SIGTERM before it sends
	// SIGKILL. Both servers exit on SIGTERM at once; the grace only matters
	// when one is wedged.
	stopGrace = 3 * time.Second

	// tailSize is how much of the server's output is kept for error
	// messages: enough for a Node.js or Python stack trace.
	tailSize = 4 << 10
)

// Options configures [Start].
type Options struct {
	// Kind is the server to run. Defaults to Dynalite.
	Kind Kind

	// Port is the loopback port to listen on. Defaults to 0, which picks a
	// free port.
	Port int

	// Path is a directory where dynalite keeps its data on disk, so the data
	// survives [Server.Restart]. Moto has no on-disk mode and rejects a
	// non-empty Path. Defaults to "", which keeps data in memory.
	Path string

	// Log receives the server's stdout and stderr. The last few kilobytes
	// are also kept for error messages whatever Log is. Defaults to nil,
	// which discards the output.
	Log io.Writer
}

// Server is a running local server. Its methods are safe for concurrent use.
type Server struct {
	// Endpoint is the server's base URL, e.g. "http://127.0.0.1:8000". It
	// stays the same across Restart.
	Endpoint string

	// Kind is the server implementation that is running.
	Kind Kind

	opts   Options // opts.Port is the port actually in use.
	script string  // dynalite's cli.js, for Kind Dynalite.

	mu   sync.Mutex
	proc *process // nil once stopped.
}

// process is one run of the server's child process.
type process struct {
	cmd  *exec.Cmd
	tail *tailBuffer
	done chan struct{} // closed when cmd.Wait returns.
	err  error         // cmd.Wait's result, valid after done is closed.
}

// Start starts a server and returns once it answers a ListTables call, so the
// caller can use it straight away. ctx bounds only the start-up; the server
// runs until [Server.Stop].
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}

	// Finding dynalite may mean installing it, which has its own, longer
	// time limit, so it happens before the start-up clock runs.
	var script string
	if opts.Kind == Dynalite {
		if script, err = findDynalite(ctx); err != nil {
			return nil, err
		}
	}

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	// Picking a port and handing it to the child is racy: another process
	// can take the port in between. That is rare, so one retry on a fresh
	// port is enough; an explicit port is never silently changed.
	pick := opts.Port == 0
	for attempt := 0; ; attempt++ {
		if pick {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			opts.Port = port
		}
		s := &Server{
			Endpoint: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)),
			Kind:     opts.Kind,
			opts:     opts,
			script:   script,
		}
		err := s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if pick && attempt == 0 && errors.Is(err, errAddrInUse) {
			continue
		}
		return nil, err
	}
}

// check returns the options with their defaults filled in, or an error
// that says which one is wrong and what to use instead.
func (opts Options) check() (Options, error) {
	if opts.Kind == "" {
		opts.Kind = Dynalite
	}
	switch opts.Kind {
	case Dynalite:
	case Moto:
		if opts.Path != "" {
			return opts, errors.New("ddblocal: moto keeps its data only in memory: leave Options.Path empty or use Kind Dynalite")
		}
	default:
		return opts, fmt.Errorf("ddblocal: unknown server kind %q: use %q or %q", opts.Kind, Dynalite, Moto)
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return opts, fmt.Errorf("ddblocal: Options.Port %d is not a TCP port: use 0 to pick a free one", opts.Port)
	}
	if opts.Path != "" {
		// dynalite resolves a relative path against its own working
		// directory; make it absolute so it means the same to both sides.
		abs, err := filepath.Abs(opts.Path)
		if err != nil {
			return opts, fmt.Errorf("ddblocal: resolve Options.Path: %w", err)
		}
		opts.Path = abs
	}
	return opts, nil
}

// Stop stops the server and waits for it to exit. Calling Stop again, or on a
// server that failed to restart, does nothing and returns nil.
//
// Stop reports an error only when the server had already exited on its own,
// since a server that dies mid-test explains failures the test itself would
// report confusingly.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Restart stops the server and starts it again on the same port, so clients
// keep working without being rebuilt: their pooled connections break, and the
// SDK's default retryer retries the request on a fresh one. With
// [Options.Path] set, the data survives; in memory it is lost.
//
// dynalite answers CreateTable while the table is still CREATING and records
// it as ACTIVE a moment later. A table created just before a restart can
// therefore stay CREATING for good, so wait for ACTIVE before restarting.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	// An unexpected exit is not a reason to refuse the restart: bringing a
	// dead server back is what a caller of Restart wants.
	_ = s.stopLocked()

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()

	// The old process has exited, but the kernel can take a moment to
	// release its port, and the port cannot change without breaking every
	// client that holds Endpoint. So keep trying the same port briefly.
	for {
		err := s.launch(ctx)
		if err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up waiting for port %d to become free: %w)", err, s.opts.Port, context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) stopLocked() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil

	select {
	case <-p.done:
		return fmt.Errorf("ddblocal: %s on %s had already exited (%v) before Stop; its output ended with:\n%s",
			s.Kind, s.Endpoint, p.err, p.tail)
	default:
	}

	// Signal the whole group so nothing the server spawned outlives it.
	if err := signalGroup(p.cmd, false); err != nil && !isProcessGone(err) {
		return fmt.Errorf("ddblocal: stop %s: %w", s.Kind, err)
	}
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		if err := signalGroup(p.cmd, true); err != nil && !isProcessGone(err) {
			return fmt.Errorf("ddblocal: kill %s: %w", s.Kind, err)
		}
		<-p.done
	}
	return nil
}

// errAddrInUse marks a start that failed because the port was taken, the one
// failure that is worth retrying.
var errAddrInUse = errors.New("address already in use")

// launch starts the child process on s.opts.Port and waits until it is ready.
// The caller holds s.mu or owns s exclusively.
func (s *Server) launch(ctx context.Context) error {
	cmd, err := s.command()
	if err != nil {
		return err
	}

	tail := &tailBuffer{max: tailSize}
	var out io.Writer = tail
	if s.opts.Log != nil {
		out = io.MultiWriter(tail, s.opts.Log)
	}
	// The same writer for both streams makes os/exec serialise the writes,
	// so a Log that is not safe for concurrent use still works.
	cmd.Stdout, cmd.Stderr = out, out
	// If the server ever hands its stdout to a grandchild that outlives
	// it, Wait would block on the pipe forever; this bounds that.
	cmd.WaitDelay = time.Second
	setProcAttr(cmd)

	// The server's standard input is a pipe whose write end only this
	// process holds, until the server exits. The OS closes it when this
	// process dies, however it dies, and both dynalite's guard script and
	// moto's launcher exit when their input ends. So a test binary that never stops its shared server,
	// or crashes, leaves none behind, also where there is no parent-death
	// signal (macOS, Windows).
	stdin, keepOpen, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("ddblocal: start %s: %w", s.Kind, err)
	}
	cmd.Stdin = stdin
	err = cmd.Start()
	stdin.Close() // The child has its own copy.
	if err != nil {
		keepOpen.Close()
		return fmt.Errorf("ddblocal: start %s: %w", s.Kind, err)
	}
	p := &process{cmd: cmd, tail: tail, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		keepOpen.Close()
		close(p.done)
	}()
	s.proc = p

	if err := s.waitReady(ctx, p); err != nil {
		// Do not leave a half-started server behind; its exit, if any, is
		// already part of err.
		if p.isRunning() {
			_ = s.stopLocked()
		}
		s.proc = nil
		return err
	}
	return nil
}

// command builds the child process for s.Kind without starting it.
func (s *Server) command() (*exec.Cmd, error) {
	port := strconv.Itoa(s.opts.Port)
	switch s.Kind {
	case Dynalite:
		// Without node the start would fail with a bare "executable file
		// not found"; a direct check names the fix.
		if _, err := exec.LookPath("node"); err != nil {
			return nil, errors.New("ddblocal: node is not on PATH: install Node.js 20 or newer (with npm)")
		}
		args := []string{
			"--host", "127.0.0.1",
			"--port", port,
			// dynalite mimics DynamoDB's table state transitions with
			// 500 ms delays by default; tests gain nothing from waiting.
			"--createTableMs", "0",
			"--deleteTableMs", "0",
			"--updateTableMs", "0",
		}
		if s.opts.Path != "" {
			args = append(args, "--path", s.opts.Path)
		}
		guard, err := writeGuard()
		if err != nil {
			return nil, err
		}
		return exec.Command("node", append([]string{"--require", guard, s.script}, args...)...), nil
	case Moto:
		python, err := findPython()
		if err != nil {
			return nil, err
		}
		// -I keeps the user's site directory and PYTHON* variables from
		// changing which moto is imported.
		return exec.Command(python, "-I", "-c", motoLauncher, "-H", "127.0.0.1", "-p", port), nil
	default:
		return nil, fmt.Errorf("ddblocal: unknown server kind %q: use %q or %q", s.Kind, Dynalite, Moto)
	}
}

// motoLauncher runs moto's server as `python -m moto.server` would, and
// exits when its standard input ends, as dynalite's guard does: the input is
// a pipe whose write end only the starting process holds, so the server ends
// with that process on every OS, not only where a parent-death signal exists.
const motoLauncher = `import os, sys, threading

def exit_when_input_ends():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=exit_when_input_ends, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
`

// waitReady polls ListTables until the server answers, the process exits, or
// ctx ends.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	client, err := NewClient(ctx, s.Endpoint)
	if err != nil {
		return err
	}
	var lastErr error
	for {
		// One attempt per probe: the retryer's backoff would only delay
		// noticing that the server is up, and this loop already retries.
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, lastErr = client.ListTables(probeCtx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)},
			func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
		cancel()
		if lastErr == nil {
			return nil
		}

		select {
		case <-p.done:
			return s.exitError(p)
		case <-ctx.Done():
			return fmt.Errorf("ddblocal: %s on %s did not answer ListTables within the start-up limit (%w); last error: %v; its output ended with:\n%s",
				s.Kind, s.Endpoint, context.Cause(ctx), lastErr, p.tail)
		case <-time.After(pollInterval):
		}
	}
}

// exitError explains why the server exited before it was ready, including the
// end of its output, which is usually a stack trace that names the problem.
func (s *Server) exitError(p *process) error {
	out := p.tail.String()
	var hint string
	switch {
	case strings.Contains(out, "EADDRINUSE") || strings.Contains(out, "Address already in use"):
		return fmt.Errorf("ddblocal: %s could not listen on port %d: %w; its output ended with:\n%s",
			s.Kind, s.opts.Port, errAddrInUse, out)
	case s.Kind == Moto && strings.Contains(out, "No module named"):
		hint = "moto or one of its server dependencies is not installed: run `pip install 'moto[server]'`; "
	case s.Kind == Dynalite && strings.Contains(out, "Cannot find module"):
		hint = fmt.Sprintf("the node_modules holding %s is incomplete: run npm ci there again; ", s.script)
	}
	return fmt.Errorf("ddblocal: %s exited before it was ready (%v): %sits output ended with:\n%s",
		s.Kind, p.err, hint, out)
}

func (p *process) isRunning() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// freePort asks the kernel for an unused loopback port. The port is free only
// until someone else takes it; Start retries once if that happens.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ddblocal: find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findPython prefers python3 because on older systems "python" is Python 2,
// which moto does not support.
func findPython() (string, error) {
	for _, name := range []string{"python3", "python"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("ddblocal: python3 is not on PATH: install Python 3 and run `pip install 'moto[server]'`, or use dynalite")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := bytes.TrimSpace(t.buf)
	if len(out) == 0 {
		return "(no output)"
	}
	return string(out)
}

// NewClient returns a DynamoDB client for endpoint, or for the endpoint the
// SDK resolves itself (AWS_ENDPOINT_URL_DYNAMODB, the shared config, or real
// AWS) when endpoint is empty.
//
// It uses the SDK's default configuration with three adjustments that let a
// fresh machine talk to a local server:
//   - The HTTP client is the SDK's buildable client, because
//     LoadDefaultConfig refuses any other kind when AWS_CA_BUNDLE is set.
//   - The region defaults to us-east-1 when none is configured; local
//     servers accept any region, but the SDK refuses to sign without one.
//   - When the endpoint is not real AWS and the environment holds no
//     credentials, the credentials are the dummy pair local/local. Local
//     servers accept anything, and leaving the SDK to search would make
//     every call wait for the EC2 metadata service to time out.
//
// The SDK's default retryer stays on: dynalite occasionally drops a
// response, and a restarted server breaks pooled connections; both are
// retried transparently.
func NewClient(ctx context.Context, endpoint string) (*dynamodb.Client, error) {
	kind, _ := KindFromEnv()
	return newClient(ctx, endpoint, kind)
}

// newClient is NewClient for a server of a known kind, which moto's
// serialised transport depends on.
func newClient(ctx context.Context, endpoint string, kind Kind) (*dynamodb.Client, error) {
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient()),
	}
	if (endpoint != "" || os.Getenv(EnvEndpoint) != "") && !localaws.CredentialsInEnv() {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(localaws.Credentials("ddblocal")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("ddblocal: load AWS config (check AWS_* variables and ~/.aws/config): %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if kind == Moto {
		cfg.HTTPClient = &serialHTTP{next: cfg.HTTPClient}
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// KindFromEnv reports which server the environment selects: [External] when
// AWS_ENDPOINT_URL_DYNAMODB is set, otherwise the value of DDBTRACK_SERVER,
// which defaults to [Dynalite]. For an unknown DDBTRACK_SERVER it returns that
// value as the Kind together with an error.
//
// Only the DynamoDB-specific endpoint variable counts. The global
// AWS_ENDPOINT_URL is often set for other services in a developer's shell,
// and silently sending the tests there would be surprising.
func KindFromEnv() (Kind, error) {
	if os.Getenv(EnvEndpoint) != "" {
		return External, nil
	}
	switch v := Kind(os.Getenv(EnvServer)); v {
	case "", Dynalite:
		return Dynalite, nil
	case Moto:
		return Moto, nil
	default:
		return v, fmt.Errorf("ddblocal: %s=%q is not a known server: use %q or %q, or set %s to use another endpoint",
			EnvServer, string(v), Dynalite, Moto, EnvEndpoint)
	}
}

// Connect returns a client for the server the environment selects (see
// [KindFromEnv]) and a function that stops it. With AWS_ENDPOINT_URL_DYNAMODB
// set, nothing is started and stop does nothing. When DDBTRACK_SERVER is
// unset and dynalite cannot start, for example because neither it nor npm is
// installed, Connect starts moto instead if Python has it. It is meant for
// programs such as examples and the demo; tests use [Shared], which shares
// one server across a test binary.
//
// The client's Options().BaseEndpoint holds the endpoint in use.
func Connect(ctx context.Context) (client *dynamodb.Client, stop func(), err error) {
	c, err := connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c.Client, c.stop, nil
}

// Conn is a client for a server that [Shared] or [Connect] chose.
type Conn struct {
	// Client is the client for the server.
	Client *dynamodb.Client
	// Endpoint is the server's base URL. For an external server it is
	// the endpoint the SDK resolved, which is empty for real AWS.
	Endpoint string
	// Kind is the server that is running, which differs from what the
	// environment selects when dynalite was unavailable and moto stood in.
	Kind Kind

	stop func()
}

func connect(ctx context.Context) (*Conn, error) {
	kind, err := KindFromEnv()
	if err != nil {
		return nil, err
	}
	if kind == External {
		client, err := newClient(ctx, "", External)
		if err != nil {
			return nil, err
		}
		return &Conn{Client: client, Endpoint: aws.ToString(client.Options().BaseEndpoint), Kind: External, stop: func() {}}, nil
	}

	srv, err := Start(ctx, Options{Kind: kind})
	if err != nil && kind == Dynalite && os.Getenv(EnvServer) == "" && motoInstalled(ctx) {
		// dynalite is the default, not a requirement: a machine with
		// Python and moto but no Node.js can run the tests too. An explicit
		// DDBTRACK_SERVER=dynalite never falls back, so `make test` always
		// tests what it says.
		var motoErr error
		if srv, motoErr = Start(ctx, Options{Kind: Moto}); motoErr != nil {
			return nil, fmt.Errorf("%w; moto, tried instead, failed too: %w", err, motoErr)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	client, err := newClient(ctx, srv.Endpoint, srv.Kind)
	if err != nil {
		_ = srv.Stop()
		return nil, err
	}
	// A stop error means the server died early; the caller's own requests
	// will have reported that already, so there is nothing useful to do here.
	return &Conn{Client: client, Endpoint: srv.Endpoint, Kind: srv.Kind, stop: func() { _ = srv.Stop() }}, nil
}

// motoInstalled reports whether Python can import moto's server.
func motoInstalled(ctx context.Context) bool {
	python, err := findPython()
	if err != nil {
		return false
	}
	return exec.CommandContext(ctx, python, "-I", "-c", "import moto.server").Run() == nil
}

// sharedTimeout bounds the shared server's start: a first install of
// dynalite, then up to two server starts (dynalite, then moto in its place).
const sharedTimeout = installTimeout + 2*readyTimeout

// shared is the process's one server and client.
var shared struct {
	once sync.Once
	conn *Conn
	err  error
}

// Shared returns the connection shared by the whole process, usually a test
// binary, connecting as [Connect] does on first use. Later calls return the
// same connection, or the same error: a server that failed to start once is
// not tried again by every test.
//
// Nothing needs to stop it: the server exits when its standard input, a
// pipe from this process, closes, which happens when this process ends
// however it ends, and on Linux the parent-death signal kills it too.
// [StopShared] stops it in order.
func Shared() (*Conn, error) {
	shared.once.Do(func() {
		// The server outlives any one caller, so its start must not be
		// bound to the context of the caller that happened to ask first.
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		shared.conn, shared.err = connect(ctx)
	})
	return shared.conn, shared.err
}

// StopShared stops the shared server if one was started, and makes sure none
// is started after it.
func StopShared() {
	// Running the Once synchronises with whichever caller started the
	// server, and keeps anyone from starting one afterwards.
	shared.once.Do(func() { shared.err = errors.New("ddblocal: the shared server was stopped") })
	if shared.conn != nil {
		shared.conn.stop()
	}
}

// motoLock makes every client this process builds for moto send one request
// at a time. moto's server handles requests on threads and its DynamoDB
// backend takes no lock between checking a condition and writing, so racing
// conditional writes can all succeed: four of sixteen racing claims of one
// task did. DynamoDB and dynalite apply each item's writes one at a time.
// Serialising the requests keeps the race tests meaningful on moto: they
// still interleave ddbtrack's requests in every order, but each is applied
// atomically, as on DynamoDB. The lock is global because tests race several
// clients (one per simulated process) against each other.
var motoLock sync.Mutex

type serialHTTP struct {
	next aws.HTTPClient
}

func (s *serialHTTP) Do(req *http.Request) (*http.Response, error) {
	motoLock.Lock()
	defer motoLock.Unlock()
	resp, err := s.next.Do(req)
	if err != nil {
		return resp, err
	}
	// The SDK reads the body after Do returns; read it here so that the
	// next request waits until this one is over.
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, rerr
}

// dynaliteGuard keeps dynalite alive when a client aborts a request, and
// ends it with the process that started it; see the script's own comments.
//
//go:embed dynalite-guard.cjs
var dynaliteGuard []byte

// writeGuard writes the guard script where node can load it, once per
// content: the file name carries a hash, so concurrent test binaries
// share it and a changed script gets a new file.
func writeGuard() (string, error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ddbtrack-dynalite-guard-%08x.cjs", crc32.ChecksumIEEE(dynaliteGuard)))
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, dynaliteGuard) {
		return path, nil
	}
	// Write to a temporary name and rename, so a concurrent reader never
	// loads half a script.
	tmp, err := os.CreateTemp(filepath.Dir(path), "ddbtrack-dynalite-guard-*.tmp")
	if err != nil {
		return "", fmt.Errorf("ddblocal: write dynalite guard script: %w", err)
	}
	_, werr := tmp.Write(dynaliteGuard)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("ddblocal: write dynalite guard script: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("ddblocal: write dynalite guard script: %w", err)
	}
	return path, nil
}
