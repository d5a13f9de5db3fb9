// Command eachserver runs a command, usually `go test`, once for each local
// DynamoDB server this machine has: dynalite, then moto if Python can
// import it. Two independent emulators catch tests that lean on one
// emulator's quirks. The command learns the server from DDBTRACK_SERVER and
// starts it itself, as the tests do.
//
// Usage:
//
//	go run ./internal/dev/eachserver -- go test -race ./...
//
// With AWS_ENDPOINT_URL_DYNAMODB set, the command runs once, against that
// endpoint. It stops at the first run that fails.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/ddbtrack/ddbtrack/internal/dev/devenv"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/dev/eachserver -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	if err := runAll(args); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			fmt.Fprintln(os.Stderr, "eachserver:", err)
		}
		os.Exit(1)
	}
}

func runAll(args []string) error {
	if endpoint := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"); endpoint != "" {
		fmt.Printf("==> AWS_ENDPOINT_URL_DYNAMODB is set: testing against %s only\n", endpoint)
		return runWith(args, "")
	}
	fmt.Println("==> Testing against dynalite (DDBTRACK_SERVER=dynalite)")
	if err := runWith(args, "dynalite"); err != nil {
		return err
	}
	python, ok := devenv.MotoPython()
	if !ok {
		fmt.Printf("==> Skipped the moto run: moto is not installed for %s (pip install 'moto[server]')\n", python)
		return nil
	}
	fmt.Println("==> Testing against moto (DDBTRACK_SERVER=moto)")
	return runWith(args, "moto")
}

// runWith runs the command with DDBTRACK_SERVER set to server, or as it
// is when server is empty.
func runWith(args []string, server string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if server != "" {
		cmd.Env = append(cmd.Env, "DDBTRACK_SERVER="+server)
	}
	return cmd.Run()
}
