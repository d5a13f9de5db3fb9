package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

var cmdCompletion = &command{
	name:    "completion",
	args:    "bash",
	short:   "Print a bash completion script for commands and flags.",
	offline: true,
	long: `
Load it in the current shell, or add the line to ~/.bashrc:

  source <(ddbtrack completion bash)`,
	define: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, s *session, args []string) error {
			if len(args) != 1 || args[0] != "bash" {
				return usagef("only bash is supported: ddbtrack completion bash")
			}
			fmt.Fprint(s.stdout, bashCompletion())
			return nil
		}
	},
}

// bashCompletion builds the script from the command table, so it cannot
// drift from the flags.
func bashCompletion() string {
	var b strings.Builder
	names := []string{"help"}
	b.WriteString("# bash completion for ddbtrack: source <(ddbtrack completion bash)\n")
	b.WriteString("_ddbtrack() {\n  local cur=${COMP_WORDS[COMP_CWORD]}\n  local words=\n  case ${COMP_WORDS[1]} in\n")
	for _, c := range commands {
		names = append(names, c.name)
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		if !c.offline {
			registerCommon(fs, func(string) string { return "" })
		}
		c.define(fs)
		var flags []string
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		fmt.Fprintf(&b, "    %s) words=%q ;;\n", c.name, strings.Join(append(flags, "--help"), " "))
	}
	fmt.Fprintf(&b, "  esac\n  if [ \"$COMP_CWORD\" -eq 1 ]; then words=%q; fi\n", strings.Join(names, " "))
	b.WriteString("  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -o default -F _ddbtrack ddbtrack\n")
	return b.String()
}
