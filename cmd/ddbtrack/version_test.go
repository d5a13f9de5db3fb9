package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{
			name: "installed at a release",
			info: &debug.BuildInfo{
				GoVersion: "go1.25.0",
				Main:      debug.Module{Path: "github.com/ddbtrack/ddbtrack/cmd/ddbtrack", Version: "v0.1.0"},
				Deps: []*debug.Module{
					{Path: "github.com/aws/aws-sdk-go-v2", Version: "v1.48.0"},
					{Path: "github.com/ddbtrack/ddbtrack", Version: "v0.1.0"},
					{Path: "github.com/ddbtrack/ddbtrack/dashboard", Version: "v0.1.0"},
					{Path: "github.com/ddbtrack/ddbtrackish", Version: "v9.9.9"},
				},
			},
			want: "ddbtrack v0.1.0\n" +
				"  github.com/ddbtrack/ddbtrack v0.1.0\n" +
				"  github.com/ddbtrack/ddbtrack/dashboard v0.1.0\n" +
				"  built with go1.25.0\n",
		},
		{
			name: "built in the workspace",
			info: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/ddbtrack/ddbtrack/cmd/ddbtrack", Version: "(devel)"},
				Deps: []*debug.Module{
					{Path: "github.com/ddbtrack/ddbtrack", Version: "v0.1.0", Replace: &debug.Module{Path: "../.."}},
				},
			},
			want: "ddbtrack (devel)\n" +
				"  github.com/ddbtrack/ddbtrack v0.1.0 => ../..\n" +
				"  built with go1.26.8\n",
		},
		{
			name: "no build information",
			want: "ddbtrack (unknown version: the binary carries no build information)\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, versionText(tc.info))
		})
	}
}

// TestVersionCommand checks that both spellings work without a table,
// job or AWS configuration, as a first command on a fresh machine must.
func TestVersionCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var stdout, stderr strings.Builder
		a := &app{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
		require.Equal(t, exitOK, a.run(t.Context(), args), "%v: %s", args, stderr.String())
		require.True(t, strings.HasPrefix(stdout.String(), "ddbtrack "), "%v printed %q", args, stdout.String())
		require.Empty(t, stderr.String())
	}
	var stderr strings.Builder
	a := &app{stdout: &strings.Builder{}, stderr: &stderr, getenv: func(string) string { return "" }}
	require.Equal(t, exitUsage, a.run(t.Context(), []string{"version", "extra"}))
	require.Contains(t, stderr.String(), "version takes no arguments")
}
