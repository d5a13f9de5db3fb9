package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// hostileOwner is what a worker's Config.Owner can hold to attack the
// terminal of an operator who reads it: OSC 0 retitles the window, and
// SGR 41 paints the background red.
const hostileOwner = "\x1b]0;PWNED\x07\x1b[41m"

// holdHostile leaves t-held Running under a live lease of a worker whose
// name is hostile.
func holdHostile(t *testing.T, fx *fixture.Fixture) {
	t.Helper()
	fx.Hold(t, "t-held", hostileOwner)
}

// TestRefusalsAreEscaped checks the exact bytes the command writes when it
// refuses a task whose lease owner holds terminal escapes: the escapes are
// shown as text, and no control byte reaches the terminal.
func TestRefusalsAreEscaped(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	holdHostile(t, fx)
	r := newCLI(t, fx).run("reset", "t-held")
	require.Equal(t, exitLocked, r.code, r.stderr)
	require.Equal(t, `ddbtrack reset: task "t-held" is s03_in_progress and worker \x1b]0;PWNED\a\x1b[41m holds its lease until 2025-01-02 03:15:00Z: wait for the worker to finish, or for the lease to expire
`, r.stderr)
	require.NotRegexp(t, `[\x00-\x08\x0b-\x1f\x7f]`, r.stderr+r.stdout, "a control byte reached the terminal")
}

// TestTerminalIsNotHijacked runs the built command in a real terminal,
// tmux's, against the test server, and checks that the refusal left the
// window's title and colours alone.
func TestTerminalIsNotHijacked(t *testing.T) {
	t.Parallel()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatalf("the terminal test needs tmux, and none is on PATH: run `make browser-deps` (installs Debian's tmux and chromium), or apt-get install tmux")
	}
	endpoint := fixture.Endpoint(t)
	if endpoint == "" {
		t.Skip("the tests run against real AWS, where the built command cannot be pointed at the test server")
	}
	fx := fixture.New(t)
	// The built command reads the real clock, so the leases must be live
	// by it.
	fx.Clock.Set(time.Now())
	holdHostile(t, fx)

	dir := t.TempDir()
	bin := filepath.Join(dir, "ddbtrack")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the command: %s", out)

	// A server of its own, on a socket in the test's directory, so the
	// test never touches a tmux the developer is running.
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(context.WithoutCancel(t.Context()), tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		require.NoError(t, err, "tmux %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	script := filepath.Join(dir, "run.sh")
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
export AWS_ENDPOINT_URL_DYNAMODB='`+endpoint+`' DDBTRACK_TABLE='`+fx.Table+`' DDBTRACK_JOB='`+fixture.Job+`'
'`+bin+`' reset t-held
echo "exit $?"
sleep 60
`), 0o755))
	tm("new-session", "-d", "-s", "s1", "-x", "250", "-y", "20", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", sock, "kill-server").Run() })

	var screen string
	require.Eventually(t, func() bool {
		screen = tm("capture-pane", "-p", "-e", "-t", "s1")
		return strings.Contains(screen, "exit 4")
	}, 30*time.Second, 100*time.Millisecond, "the command did not finish; the screen:\n%s", screen)
	title := tm("display-message", "-p", "-t", "s1", "#{pane_title}")
	require.NotContains(t, title, "PWNED", "the command retitled the terminal")
	require.Contains(t, screen, `worker \x1b]0;PWNED\a\x1b[41m holds its lease`)
	require.NotRegexp(t, regexp.MustCompile(`\x1b\[(?:[0-9;]*;)?41(?:;[0-9;]*)?m`), screen, "the command painted the terminal red")
}
