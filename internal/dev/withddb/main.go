// Command withddb runs a command against a local DynamoDB server that it
// starts for the command and stops after it.
//
// Usage:
//
//	go run ./internal/dev/withddb [-port N] [-kind dynalite|moto] -- COMMAND [ARGS...]
//
// The command finds the server the way any program built on the AWS SDK
// finds DynamoDB: AWS_ENDPOINT_URL_DYNAMODB holds the server's URL, and
// when the environment names no credentials or region of its own, it gets
// the placeholder credentials local/local and us-east-1, which a local
// server accepts. So the examples need nothing of this repository's to find
// the server, and run unchanged against any endpoint or AWS itself.
//
// With AWS_ENDPOINT_URL_DYNAMODB already set, no server is started and the
// command runs against that endpoint, with placeholder credentials if it is
// on this machine. DDBTRACK_SERVER=moto picks moto over
// dynalite, as it does for the tests.
//
// Ctrl-C reaches the command first, as it would without withddb; the
// server is stopped once the command has exited, and withddb exits with
// the command's status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
	"github.com/ddbtrack/ddbtrack/internal/localaws"
)

func main() {
	port := flag.Int("port", 0, "loopback port for the server; 0 picks a free one")
	kindFlag := flag.String("kind", "", "server to start, dynalite or moto; defaults to $DDBTRACK_SERVER, then dynalite")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: go run ./internal/dev/withddb [-port N] [-kind dynalite|moto] -- COMMAND [ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Args(), *port, ddblocal.Kind(*kindFlag)))
}

// run returns the exit status for withddb: the command's, or 1 when the
// server could not be started or stopped cleanly.
func run(args []string, port int, kind ddblocal.Kind) int {
	// The terminal sends Ctrl-C to the whole foreground process group, so
	// the command gets it directly; withddb only has to outlive the
	// command, to stop the server after it. A SIGTERM is aimed at withddb
	// alone, so it is passed on. The signals are caught rather than
	// ignored, because an ignored signal stays ignored in the command.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	env := os.Environ()
	if envKind, err := ddblocal.KindFromEnv(); err != nil {
		return fail(err)
	} else if envKind == ddblocal.External {
		endpoint := os.Getenv(ddblocal.EnvEndpoint)
		fmt.Fprintf(os.Stderr, "withddb: %s is set: running against %s\n", ddblocal.EnvEndpoint, endpoint)
		// A server on this machine is a local one that takes any
		// credentials; anywhere else, the SDK's own search must run.
		if isLoopback(endpoint) {
			env = localEnv(env, endpoint, localaws.CredentialsInEnv())
		}
	} else {
		if kind == "" {
			kind = envKind
		}
		srv, err := ddblocal.Start(context.Background(), ddblocal.Options{Kind: kind, Port: port})
		if err != nil {
			return fail(err)
		}
		defer func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "withddb:", err)
			}
		}()
		fmt.Fprintf(os.Stderr, "withddb: %s is serving DynamoDB on %s\n", srv.Kind, srv.Endpoint)
		env = localEnv(env, srv.Endpoint, localaws.CredentialsInEnv())
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	go func() {
		for sig := range signals {
			if sig == syscall.SIGTERM {
				_ = cmd.Process.Signal(sig)
			}
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	case errors.As(err, &exit):
		// Killed by a signal, most often the Ctrl-C that stopped it.
		fmt.Fprintf(os.Stderr, "withddb: %s: %v\n", args[0], err)
		return 130
	default:
		return fail(err)
	}
}

// localEnv points the AWS SDK at endpoint. Placeholder credentials are
// added only when the environment has none, because a user who exported
// real ones may be pointing the command at a server that checks them.
// Local servers accept any region, but the SDK refuses to sign a request
// without one.
func localEnv(env []string, endpoint string, haveCredentials bool) []string {
	env = append(env, ddblocal.EnvEndpoint+"="+endpoint)
	if !haveCredentials {
		env = append(env, "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local")
	}
	if !hasVar(env, "AWS_REGION") && !hasVar(env, "AWS_DEFAULT_REGION") {
		env = append(env, "AWS_REGION=us-east-1")
	}
	return env
}

// isLoopback reports whether endpoint is a URL on this machine.
func isLoopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// hasVar reports whether env sets name to something; the SDK treats an
// empty value as unset.
func hasVar(env []string, name string) bool {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name && v != "" {
			return true
		}
	}
	return false
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "withddb:", err)
	return 1
}
