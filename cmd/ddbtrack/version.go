package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
)

var cmdVersion = &command{
	name:    "version",
	args:    "",
	short:   "Print the version of the command and of the library it was built with.",
	offline: true,
	long: `
A binary installed with 'go install github.com/ddbtrack/ddbtrack/cmd/ddbtrack@VERSION'
prints that version. A binary built from a checkout prints (devel), or the
pseudo-version the go command stamped from the repository.`,
	define: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, s *session, args []string) error {
			if len(args) != 0 {
				return usagef("version takes no arguments")
			}
			info, ok := debug.ReadBuildInfo()
			if !ok {
				info = nil
			}
			fmt.Fprint(s.stdout, versionText(info))
			return nil
		}
	},
}

// ddbtrackModules is the prefix of every module this repository publishes.
// The command reports the versions of those it was built with, because a
// bug report needs the library's version as much as the command's own.
const ddbtrackModules = "github.com/ddbtrack/ddbtrack"

// versionText formats what the binary knows about its own build. The go
// command records the module versions in every binary it builds, so the
// version comes from there rather than from a constant that a release
// could forget to bump. info is nil when the binary was built without
// module support, which only a hand-rolled build can do.
func versionText(info *debug.BuildInfo) string {
	if info == nil {
		return "ddbtrack (unknown version: the binary carries no build information)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ddbtrack %s\n", moduleVersion(&info.Main))
	for _, dep := range info.Deps {
		if dep.Path == ddbtrackModules || strings.HasPrefix(dep.Path, ddbtrackModules+"/") {
			fmt.Fprintf(&b, "  %s %s\n", dep.Path, moduleVersion(dep))
		}
	}
	fmt.Fprintf(&b, "  built with %s\n", info.GoVersion)
	return b.String()
}

// moduleVersion names the version a module was built at. A replaced module
// (a go.work or replace directive pointing at a directory) says so, since
// its code need not match any published version.
func moduleVersion(m *debug.Module) string {
	v := m.Version
	if v == "" {
		v = "(devel)"
	}
	if m.Replace != nil {
		// A directory replacement reports its version as "(devel)", which
		// says nothing the path does not.
		if m.Replace.Version != "" && m.Replace.Version != "(devel)" {
			return fmt.Sprintf("%s => %s %s", v, m.Replace.Path, m.Replace.Version)
		}
		return fmt.Sprintf("%s => %s", v, m.Replace.Path)
	}
	return v
}
